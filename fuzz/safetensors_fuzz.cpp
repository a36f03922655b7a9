// The safetensors reader (plugins/tensorio): the header alone, then the whole file
// mapped into tensors. Property: a WeightError is the only way to refuse a file; every
// tensor that comes back lies inside the file (reading it all must not fault).
#include "fuzz_support.hpp"
#include "tensorio/weights.hpp"

using namespace reel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::MemFile file(fuzz::text_of(data, size));
  try {
    tensorio::read_safetensors_header(file.path());
  } catch (const tensorio::WeightError&) {
  }
  try {
    for (auto& [name, t] : tensorio::load_safetensors(file.path())) {
      if (t.numel() == 0) continue;
      // Touch every byte through a copy: a view past the mapping faults here.
      auto bytes = t.contiguous().reshape({-1}).view(torch::kUInt8);
      volatile uint8_t sum = bytes.sum().item<int64_t>() & 0xFF;
      (void)sum;
    }
  } catch (const tensorio::WeightError&) {
  }
  return 0;
}
