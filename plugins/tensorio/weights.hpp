// Reading checkpoint tensors as they are published: safetensors (memory-mapped, single
// or sharded with an .index.json) and PyTorch's torch.save zip format (.pth/.pt),
// including Python state_dict OrderedDicts that LibTorch 1.13's pickle_load rejects.
//
// Tensors come back on the CPU in their stored dtype (f64, f32, bf16, f16, i64, i32,
// i16, i8, u8, bool). LibTorch 1.13 has no float8 types, so F8_E4M3 / F8_E5M2 tensors
// come back as uint8 holding the raw bytes: decode them with dequantize_fp8_e4m3 /
// dequantize_fp8_e5m2, or load through load_weights, whose require() decodes them.
// Loading copies nothing: the file is mapped private (copy-on-write) and tensors alias
// it; the mapping lives while any tensor from it does. Exceptions, copied out: a
// safetensors tensor whose offset is misaligned for its dtype, and a .pth storage
// that is compressed. Every error is a WeightError whose message names the file and,
// where there is one, the tensor.
// Thread-safety: loading functions are reentrant; Weights is not synchronised.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace reel::tensorio {

struct WeightError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using TensorMap = std::map<std::string, torch::Tensor>;

// One .safetensors file, memory-mapped.
TensorMap load_safetensors(const std::string& path);
// Only the header: names -> (dtype string, shape), without mapping the data.
struct TensorInfo {
  std::string dtype;                 // "F32", "BF16", "F16", "F8_E4M3", "I64", ...
  std::vector<int64_t> shape;
};
std::map<std::string, TensorInfo> read_safetensors_header(const std::string& path);
// diffusion_pytorch_model.safetensors.index.json: {"weight_map": {name: shard file}},
// shard files relative to the index's folder. Each shard is loaded once; a missing
// shard, or a listed tensor absent from its shard, is a WeightError.
TensorMap load_safetensors_index(const std::string& index_json_path);

// Decodes raw float8 bytes (uint8 tensor, as loaded) to float32 and multiplies by
// `scale`. e4m3fn: bias 7, no infinities, 0x7F/0xFF are NaN. e5m2: IEEE-like, bias 15.
torch::Tensor dequantize_fp8_e4m3(const torch::Tensor& raw_u8, double scale = 1.0);
torch::Tensor dequantize_fp8_e5m2(const torch::Tensor& raw_u8, double scale = 1.0);
// The other way, for fp8 weight storage: float8 e4m3fn bytes with one per-tensor scale
// (amax / 448, so the largest magnitude maps to e4m3's largest finite value), rounded to
// nearest, ties to even. dequantize_fp8_e4m3(bytes, scale) gives the stored values back;
// the relative error per element is at most 2^-4 (3 mantissa bits) above the subnormals.
// Throws WeightError when x holds NaN or infinity.
struct Fp8Tensor {
  torch::Tensor bytes;  // uint8, x's shape, on the CPU
  double scale = 1.0;
};
Fp8Tensor quantize_fp8_e4m3(const torch::Tensor& x);

// A torch.save zip archive holding a dict / OrderedDict of tensors, possibly nested
// ({"module": {...}}, {"state_dict": {...}}): nested keys are joined with '.', so
// {"module": {"a.weight": t}} gives "module.a.weight" (strip wrappers with
// Weights::strip_prefix). Non-tensor leaves (ints, strings, None...) are skipped.
// Only the pickle subset torch.save writes is understood, and only the globals that
// rebuild tensors and containers are allowed: anything else is refused (WeightError
// naming the file and the opcode or global), never executed.
// Float8 tensors (torch >= 2.1's Float8_e4m3fn / Float8_e5m2 storages) come back as
// uint8 raw bytes; `raw_fp8`, when given, receives their names and formats ("F8_E4M3",
// "F8_E5M2"), as Weights takes them.
TensorMap load_pth(const std::string& path, std::map<std::string, std::string>* raw_fp8 = nullptr);

// A checkpoint's tensors addressed by their published names, with the checks a
// model loader needs: require() names the file and the tensor when one is missing or
// has the wrong shape.
class Weights {
 public:
  Weights() = default;
  // `raw_fp8` names the tensors that hold raw float8 bytes (uint8), with their format
  // ("F8_E4M3" or "F8_E5M2"): require() decodes those before converting.
  Weights(TensorMap tensors, std::string source, std::map<std::string, std::string> raw_fp8 = {});

  bool has(const std::string& name) const;
  // The tensor, converted to `dtype` (float8 decoded first); throws WeightError if
  // missing or, when `shape` is given, of another shape. Unconverted tensors may alias
  // the file mapping: clone before writing in place if the Weights are shared.
  torch::Tensor require(const std::string& name, const std::vector<int64_t>& shape = {},
                        torch::Dtype dtype = torch::kFloat32) const;
  // The stored shape (for inferring sizes the config does not give).
  std::vector<int64_t> shape_of(const std::string& name) const;
  // Drops a prefix from every key that has it (e.g. ComfyUI's "model.diffusion_model.").
  void strip_prefix(const std::string& prefix);
  const TensorMap& all() const { return tensors_; }
  const std::string& source() const { return source_; }

 private:
  TensorMap tensors_;
  std::string source_;
  std::map<std::string, std::string> raw_fp8_;
};

// Any checkpoint by its file name: *.safetensors, *.index.json (sharded safetensors)
// or a torch.save archive (anything else: .pth, .pt, .bin, .ckpt). The Weights' source
// is `path`, and float8 safetensors tensors are marked so require() decodes them.
Weights load_weights(const std::string& path);

}  // namespace reel::tensorio
