#include "core/rng_state.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/Generator.h>

#include <algorithm>
#include <mutex>

namespace revkit {
namespace {
at::Tensor get_state(c10::Device device) {
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}
void set_state(c10::Device device, const at::Tensor& state) {
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}
}  // namespace

std::vector<int> cuda_devices_of(at::ArrayRef<at::Tensor> tensors) {
  std::vector<int> devices;
  for (const auto& t : tensors)
    if (t.defined() && t.is_cuda()) devices.push_back(t.get_device());
  std::sort(devices.begin(), devices.end());
  devices.erase(std::unique(devices.begin(), devices.end()), devices.end());
  return devices;
}

RngState RngState::capture(const std::vector<int>& cuda_devices) {
  RngState s;
  s.cpu_ = get_state(c10::Device(c10::kCPU));
  s.cuda_devices_ = cuda_devices;
  for (int d : cuda_devices) s.cuda_.push_back(get_state(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(d))));
  return s;
}

bool RngState::operator==(const RngState& other) const {
  if (empty() || other.empty()) return empty() == other.empty();
  if (cuda_devices_ != other.cuda_devices_ || !at::equal(cpu_, other.cpu_)) return false;
  for (size_t i = 0; i < cuda_.size(); ++i)
    if (!at::equal(cuda_[i], other.cuda_[i])) return false;
  return true;
}

void RngState::restore() const {
  if (empty()) return;
  set_state(c10::Device(c10::kCPU), cpu_);
  for (size_t i = 0; i < cuda_devices_.size(); ++i)
    set_state(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(cuda_devices_[i])), cuda_[i]);
}

std::map<std::string, at::Tensor> RngState::to_tensors() const {
  std::map<std::string, at::Tensor> out;
  if (empty()) return out;
  out["rng.cpu"] = cpu_;
  for (size_t i = 0; i < cuda_devices_.size(); ++i) out["rng.cuda." + std::to_string(cuda_devices_[i])] = cuda_[i];
  return out;
}

RngState RngState::from_tensors(const std::map<std::string, at::Tensor>& tensors) {
  RngState s;
  for (const auto& [name, t] : tensors) {
    if (name == "rng.cpu") s.cpu_ = t.to(at::kByte).contiguous();
    if (name.rfind("rng.cuda.", 0) == 0) {
      s.cuda_devices_.push_back(std::stoi(name.substr(9)));
      s.cuda_.push_back(t.to(at::kByte).contiguous());
    }
  }
  return s;
}

}  // namespace revkit
