// The .pth (torch.save zip) reader (plugins/tensorio/pth.cpp). An input that starts
// with "PK" is taken as a whole archive (exercising the zip index); anything else is
// the pickle, wrapped here in a well-formed archive with four 256-byte storages
// archive/data/0..3, so the fuzzer spends its time in the pickle machine instead of
// fighting zip CRCs. Property: a WeightError is the only way to refuse a file, and every
// tensor returned lies inside its storage.
#include <caffe2/serialize/inline_container.h>

#include "fuzz_support.hpp"
#include "tensor_fuzz.hpp"

using namespace reel;

namespace {

std::string archive_around(std::string_view pickle) {
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&out](const void* buf, size_t n) {
    out.append(static_cast<const char*>(buf), n);
    return n;
  });
  writer.writeRecord("data.pkl", pickle.data(), pickle.size());
  std::string storage(256, '\0');
  for (size_t i = 0; i < storage.size(); ++i) storage[i] = static_cast<char>(i);
  for (int key = 0; key < 4; ++key)
    writer.writeRecord("data/" + std::to_string(key), storage.data(), storage.size());
  writer.writeEndOfFile();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in = fuzz::text_of(data, size);
  bool raw_archive = in.size() >= 2 && in[0] == 'P' && in[1] == 'K';
  fuzz::MemFile file(raw_archive ? std::string(in) : archive_around(in));
  try {
    fuzz::read_every_byte(tensorio::load_pth(file.path()));
  } catch (const tensorio::WeightError&) {
  }
  return 0;
}
