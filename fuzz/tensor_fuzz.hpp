// Shared by the tensor readers' fuzz targets: reads a loaded checkpoint back in full.
#pragma once

#include "tensorio/weights.hpp"

namespace reel::fuzz {

// Touches every byte of every tensor through a copy, so a tensor that views memory
// past its mapping or storage faults (or trips ASan) here rather than in a model.
inline void read_every_byte(const tensorio::TensorMap& tensors) {
  for (const auto& [name, t] : tensors) {
    if (t.numel() == 0) continue;
    auto bytes = t.contiguous().reshape({-1}).view(torch::kUInt8);
    volatile int64_t sum = bytes.sum().item<int64_t>();
    (void)sum;
  }
}

}  // namespace reel::fuzz
