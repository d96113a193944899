#include "engine/results_csv.h"

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace revkit {

std::vector<std::string> results_columns(const LossNames& losses) {
  std::vector<std::string> columns = {"epoch"};
  for (const auto& l : losses) columns.push_back("train/" + l);
  for (const char* m : {"metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95"})
    columns.push_back(m);
  for (const auto& l : losses) columns.push_back("val/" + l);
  for (const char* lr : {"x/lr0", "x/lr1", "x/lr2"}) columns.push_back(lr);
  return columns;
}

std::string results_csv(const std::vector<std::vector<double>>& rows, const LossNames& losses) {
  std::ostringstream out;
  const auto columns = results_columns(losses);
  for (size_t i = 0; i < columns.size(); ++i) out << (i ? "," : "") << columns[i];
  out << "\n";
  for (const auto& r : rows) {
    out << static_cast<int64_t>(r[0]);
    for (size_t i = 1; i < r.size(); ++i) out << "," << fmt::format("{:.6g}", r[i]);
    out << "\n";
  }
  return out.str();
}

std::vector<std::vector<double>> read_results_csv(const std::string& path, int64_t before_epoch) {
  std::vector<std::vector<double>> rows;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<double> row;
    std::stringstream cells(line);
    for (std::string cell; std::getline(cells, cell, ',');) row.push_back(std::strtod(cell.c_str(), nullptr));
    if (row.size() == results_columns().size() && row[0] < static_cast<double>(before_epoch)) rows.push_back(row);
  }
  return rows;
}

}  // namespace revkit
