#pragma once
// The revkit subcommands. Each adds itself to the CLI11 app and returns the exit code through `run`:
// 0 success, 1 a check that failed, 2 bad input.
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace revkit::cli {

using Command = std::function<int()>;

// The command line as given (without the program name), for commands that start copies of themselves.
std::vector<std::string>& command_line();

// An integer option's check: 0 or more, said in those words ("--keep-columns: must be 0 or more, got -1";
// CLI::NonNegativeNumber names the largest double as the range's end).
const CLI::Validator& zero_or_more();
// An integer option's check: 1 or more, said in those words (CLI::PositiveNumber, too, names the largest double).
const CLI::Validator& positive();
// A drop-path rate's check: between 0 and 0.99 (CLI::Range lets NaN through).
const CLI::Validator& drop_path_rate();
// A seed's check: a whole number from 0 to 2^64 - 1 (CLI11 wraps -1 and clamps what is above).
const CLI::Validator& seed_value();
// --memory-budget's check: MB above 0 and at most kMaxBudgetMb (NaN passes a plain positive check).
const CLI::Validator& memory_budget_mb();

// The reversible engine's settings (reversible::ColumnOptions) that bench and check take as they are given.
struct ColumnArgs {
  int64_t store_every = 0, keep_columns = 0, keep_matmuls = 0, keep_levels = 0;
  double memory_budget_mb = 0.0;  // 0: auto mode's default budget
};
// --store-every, --keep-columns, --keep-matmuls, --keep-levels and --memory-budget, into `args`.
void add_column_args(CLI::App& cmd, ColumnArgs& args);

Command add_check(CLI::App& app);
Command add_convert(CLI::App& app);
Command add_bench(CLI::App& app);
Command add_info(CLI::App& app);
Command add_list(CLI::App& app);
Command add_train(CLI::App& app);
Command add_val(CLI::App& app);
Command add_detect(CLI::App& app);

}  // namespace revkit::cli
