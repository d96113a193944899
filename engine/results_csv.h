#pragma once
// A run's results.csv, in Ultralytics' columns: one row per epoch of the training losses, the validation metrics
// and losses, and the three groups' learning rates. The losses are named by the model's head (YOLOv5: box, obj,
// cls; YOLOv8: box, cls, dfl).
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace revkit {

using LossNames = std::array<std::string, 3>;
inline const LossNames kAnchorLossNames = {"box_loss", "obj_loss", "cls_loss"};

std::vector<std::string> results_columns(const LossNames& losses = kAnchorLossNames);
// The header and `rows` (each as many values as columns; the epoch written as an integer).
std::string results_csv(const std::vector<std::vector<double>>& rows, const LossNames& losses = kAnchorLossNames);
// The rows of a results.csv for epochs before `before_epoch` (what a resumed run keeps); none when it is missing.
std::vector<std::vector<double>> read_results_csv(const std::string& path, int64_t before_epoch);

}  // namespace revkit
