// revkit: train, validate and check reversible networks from the command line.
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <thread>

#include <iostream>
#include <map>
#include <sstream>

#include "cli/commands.h"
#include "core/build_info.h"
#include "core/cpu_allocator.h"
#include "core/error.h"
#include "core/excerpt.h"
#include "core/logging.h"
#include "engine/launcher.h"
#include "engine/train_options.h"
#include "plugins/loader.h"

namespace revkit::cli {
std::vector<std::string>& command_line() {
  static std::vector<std::string> args;
  return args;
}

namespace {
// A number option's check, said in words: "must be <requirement>, got <text>". NaN meets no requirement.
CLI::Validator number_check(bool (*meets)(double), const std::string& requirement, const std::string& name) {
  return CLI::Validator(
      [meets, requirement](std::string& text) -> std::string {
        double value = 0.0;
        if (!CLI::detail::lexical_cast(text, value)) return "must be a number, got '" + text + "'";
        return meets(value) ? std::string() : "must be " + requirement + ", got " + text;
      },
      name);
}
}  // namespace

const CLI::Validator& zero_or_more() {
  static const CLI::Validator check = number_check([](double v) { return v >= 0; }, "0 or more", "NONNEGATIVE");
  return check;
}

const CLI::Validator& positive() {
  static const CLI::Validator check = number_check([](double v) { return v > 0; }, "positive", "POSITIVE");
  return check;
}

const CLI::Validator& drop_path_rate() {
  static const CLI::Validator check =
      number_check([](double v) { return v >= 0 && v <= 0.99; }, "between 0 and 0.99", "[0 - 0.99]");
  return check;
}

const CLI::Validator& seed_value() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        errno = 0;
        if (digits) std::strtoull(text.c_str(), nullptr, 10);
        if (digits && errno != ERANGE) return std::string();
        return "must be a whole number from 0 to 18446744073709551615, got " + text;
      },
      "UINT64");
  return check;
}

const CLI::Validator& memory_budget_mb() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        double mb = 0.0;
        if (!CLI::detail::lexical_cast(text, mb) || !(mb > 0 && mb <= kMaxBudgetMb))
          return fmt::format("must be a number of MB above 0 and at most {:g}, got {}", kMaxBudgetMb, text);
        return std::string();
      },
      "MB");
  return check;
}

void add_column_args(CLI::App& cmd, ColumnArgs& args) {
  cmd.add_option("--store-every", args.store_every, "full mode: keep every k-th column")->check(zero_or_more());
  cmd.add_option("--keep-columns", args.keep_columns, "column and full modes: keep the last K columns' internals")
      ->check(zero_or_more());
  cmd.add_option("--keep-matmuls", args.keep_matmuls,
                 "column and full modes: the last M recomputed columns keep their matrix products' outputs")
      ->check(zero_or_more());
  cmd.add_option("--keep-levels", args.keep_levels,
                 "column and full modes: every recomputed column keeps the internals of its last L levels")
      ->check(zero_or_more());
  cmd.add_option("--memory-budget", args.memory_budget_mb,
                 "auto mode: MB of activation memory the columns may take (default: half of what is available)")
      ->check(memory_budget_mb());
}
}  // namespace revkit::cli

int main(int argc, char** argv) {
  // First, so that every tensor of the run comes from it (core/cpu_allocator.h says why).
  revkit::CpuAllocator::install();
  revkit::cli::command_line().assign(argv + 1, argv + argc);
  CLI::App app{"revkit: memory-saving reversible backpropagation on LibTorch"};
  app.require_subcommand(1);
  app.fallthrough();  // --plugin and --log-level work after the subcommand too
  app.set_version_flag(
      "--version",
      [] {
        std::string text = revkit::format_build_info(revkit::build_info());
        return text.substr(0, text.size() - 1);  // CLI11 adds the line end
      },
      "print revkit's and LibTorch's versions, CUDA and the GPUs seen, and exit");
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "debug, info, warn, error or off");
  std::vector<std::string> plugin_paths;
  app.add_option("--plugin", plugin_paths, "load a plugin shared library (repeatable; also REVKIT_PLUGINS=a.so:b.so)");
  std::map<CLI::App*, revkit::cli::Command> commands;
  auto add = [&](auto adder) {
    const size_t before = app.get_subcommands({}).size();
    auto command = adder(app);
    commands[app.get_subcommands({}).at(before)] = command;
  };
  add(revkit::cli::add_train);
  add(revkit::cli::add_val);
  add(revkit::cli::add_detect);
  add(revkit::cli::add_check);
  add(revkit::cli::add_convert);
  add(revkit::cli::add_bench);
  add(revkit::cli::add_info);
  add(revkit::cli::add_list);

  // The first word that is no option nor an option's value names the command: one that is none is named (CLI11
  // would only say that a command is required).
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--plugin" || word == "--log-level") {
      ++i;
      continue;
    }
    if (word.empty() || word[0] == '-') continue;
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), word) != names.end()) break;
    std::cerr << fmt::format("revkit: error: unknown command '{}' (commands: {})\n", revkit::printable(word, 80),
                             fmt::join(names, ", "));
    return revkit::kExitBadInput;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "revkit: error: " << e.what() << "\n";
    return revkit::kExitBadInput;
  }
  // In a rank of `train --nproc`, the launcher prints the error line: once, however many ranks find it.
  std::ostringstream error_line;
  const int code = revkit::run_reporting_errors(
      [&] {
        // Use every core unless the user chose (OMP_NUM_THREADS); some OpenMP runtimes start with one thread.
        if (!std::getenv("OMP_NUM_THREADS"))
          at::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
        revkit::set_log_level(log_level);
        revkit::load_plugins_from_environment();
        for (const auto& path : plugin_paths) revkit::load_plugin(path);
        for (auto& [sub, command] : commands)
          if (sub->parsed()) return command();
        return static_cast<int>(revkit::kExitBadInput);
      },
      error_line);
  revkit::print_error_line(error_line.str());
  return code;
}
