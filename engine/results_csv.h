#pragma once
// A run's results.csv, in Ultralytics YOLOv5's columns: one row per epoch of the training losses, the validation
// metrics and losses, and the three groups' learning rates.
#include <cstdint>
#include <string>
#include <vector>

namespace revkit {

const std::vector<std::string>& results_columns();
// The header and `rows` (each as many values as columns; the epoch written as an integer).
std::string results_csv(const std::vector<std::vector<double>>& rows);
// The rows of a results.csv for epochs before `before_epoch` (what a resumed run keeps); none when it is missing.
std::vector<std::vector<double>> read_results_csv(const std::string& path, int64_t before_epoch);

}  // namespace revkit
