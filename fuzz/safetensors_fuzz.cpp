// The safetensors reader (plugins/tensorio): the header alone, then the whole file
// mapped into tensors. Property: a WeightError is the only way to refuse a file; every
// tensor that comes back lies inside the file (reading it all must not fault).
#include "fuzz_support.hpp"
#include "tensor_fuzz.hpp"

using namespace reel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::MemFile file(fuzz::text_of(data, size));
  try {
    tensorio::read_safetensors_header(file.path());
  } catch (const tensorio::WeightError&) {
  }
  try {
    fuzz::read_every_byte(tensorio::load_safetensors(file.path()));
  } catch (const tensorio::WeightError&) {
  }
  return 0;
}
