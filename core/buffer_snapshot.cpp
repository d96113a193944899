#include "core/buffer_snapshot.h"

#include <ATen/ATen.h>

namespace revkit {

BufferSnapshot::BufferSnapshot(std::vector<at::Tensor> buffers) : buffers_(std::move(buffers)) {
  saved_.reserve(buffers_.size());
  for (const auto& b : buffers_) saved_.push_back(b.detach().clone());
}

void BufferSnapshot::restore() const {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(saved_[i]);
}

}  // namespace revkit
