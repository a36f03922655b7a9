// Weights (named tensors with checked access) and float8 decoding.
// Thread-safety: Weights is a plain value; const methods may be called concurrently.
#include "tensorio/weights.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <ATen/Parallel.h>
#include <nlohmann/json.hpp>

namespace reel::tensorio {
namespace {

std::string shape_str(c10::IntArrayRef v) {
  std::ostringstream s;
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) s << (i ? ", " : "") << v[i];
  s << "]";
  return s.str();
}

// A 256-entry table is exact and trivially checkable against the bit layout;
// decoding is then an index_select.
torch::Tensor fp8_table(bool e4m3) {
  std::vector<float> lut(256);
  for (int b = 0; b < 256; ++b) {
    const int sign = b >> 7;
    float v;
    if (e4m3) {
      const int exp = (b >> 3) & 0xF, man = b & 0x7;
      if (exp == 0xF && man == 0x7)
        v = std::numeric_limits<float>::quiet_NaN();  // e4m3fn: only NaN, no inf
      else if (exp == 0)
        v = std::ldexp(static_cast<float>(man), -9);  // subnormal: man/8 * 2^-6
      else
        v = std::ldexp(1.0f + man / 8.0f, exp - 7);
    } else {
      const int exp = (b >> 2) & 0x1F, man = b & 0x3;
      if (exp == 0x1F)
        v = man ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
      else if (exp == 0)
        v = std::ldexp(static_cast<float>(man), -16);  // man/4 * 2^-14
      else
        v = std::ldexp(1.0f + man / 4.0f, exp - 15);
    }
    lut[b] = sign ? -v : v;
  }
  return torch::from_blob(lut.data(), {256}, torch::kFloat32).clone();
}

torch::Tensor dequantize(const torch::Tensor& raw, double scale, bool e4m3, const char* what) {
  if (raw.scalar_type() != torch::kUInt8 && raw.scalar_type() != torch::kInt8)
    throw WeightError(std::string(what) + ": expected raw uint8 bytes, got " + std::string(c10::toString(raw.scalar_type())));
  static const torch::Tensor t4 = fp8_table(true), t5 = fp8_table(false);
  const auto& lut = e4m3 ? t4 : t5;
  // Decoded where the bytes are (a GPU decodes its own block-swapped fp8 weights).
  auto idx = raw.contiguous().view(torch::kUInt8).to(torch::kLong).flatten();
  auto out = lut.to(raw.device()).index_select(0, idx).view(raw.sizes());
  if (scale != 1.0) out.mul_(scale);
  return out;
}

}  // namespace

torch::Tensor dequantize_fp8_e4m3(const torch::Tensor& raw_u8, double scale) {
  return dequantize(raw_u8, scale, true, "dequantize_fp8_e4m3");
}
torch::Tensor dequantize_fp8_e5m2(const torch::Tensor& raw_u8, double scale) {
  return dequantize(raw_u8, scale, false, "dequantize_fp8_e5m2");
}

Fp8Tensor quantize_fp8_e4m3(const torch::Tensor& x) {
  // The 127 finite non-negative codes 0x00..0x7E decode to increasing values, so the
  // nearest code is found by binary search; a tie goes to the even code (round half to
  // even, as a hardware cast does).
  static const std::vector<float> positive = [] {
    torch::Tensor lut = fp8_table(true);
    return std::vector<float>(lut.data_ptr<float>(), lut.data_ptr<float>() + 0x7F);
  }();
  constexpr float kMax = 448.0f;
  torch::Tensor src = x.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  const double amax = src.numel() ? src.abs().max().item<double>() : 0.0;
  if (!std::isfinite(amax)) throw WeightError("quantize_fp8_e4m3: the tensor holds NaN or infinity");
  Fp8Tensor out;
  out.scale = amax > 0 ? amax / kMax : 1.0;
  out.bytes = torch::empty(src.sizes(), torch::kUInt8);
  const float* in = src.data_ptr<float>();
  uint8_t* dst = out.bytes.data_ptr<uint8_t>();
  const float inv = static_cast<float>(1.0 / out.scale);
  at::parallel_for(0, src.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float v = std::min(std::fabs(in[i] * inv), kMax);
      auto hi = std::lower_bound(positive.begin(), positive.end(), v);
      size_t code = static_cast<size_t>(hi - positive.begin());
      if (code == positive.size()) code = positive.size() - 1;
      if (code > 0 && *hi != v) {
        const float below = positive[code - 1], above = positive[code];
        if (v - below < above - v || (v - below == above - v && (code - 1) % 2 == 0)) --code;
      }
      dst[i] = static_cast<uint8_t>(code | (std::signbit(in[i]) && code ? 0x80 : 0));
    }
  });
  return out;
}

Weights::Weights(TensorMap tensors, std::string source, std::map<std::string, std::string> raw_fp8)
    : tensors_(std::move(tensors)), source_(std::move(source)), raw_fp8_(std::move(raw_fp8)) {}

bool Weights::has(const std::string& name) const { return tensors_.count(name) != 0; }

torch::Tensor Weights::require(const std::string& name, const std::vector<int64_t>& shape, torch::Dtype dtype) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw WeightError(source_ + ": missing tensor '" + name + "'");
  const auto& t = it->second;
  if (!shape.empty() && t.sizes() != c10::IntArrayRef(shape))
    throw WeightError(source_ + ": tensor '" + name + "': expected shape " + shape_str(shape) + ", found " +
                      shape_str(t.sizes()));
  if (auto f8 = raw_fp8_.find(name); f8 != raw_fp8_.end()) {
    auto v = f8->second == "F8_E5M2" ? dequantize_fp8_e5m2(t) : dequantize_fp8_e4m3(t);
    return v.to(dtype);
  }
  return t.scalar_type() == dtype ? t : t.to(dtype);
}

std::vector<int64_t> Weights::shape_of(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw WeightError(source_ + ": missing tensor '" + name + "'");
  return it->second.sizes().vec();
}

void Weights::strip_prefix(const std::string& prefix) {
  if (prefix.empty()) return;
  TensorMap out;
  for (auto& [k, v] : tensors_) {
    std::string key = k.compare(0, prefix.size(), prefix) == 0 ? k.substr(prefix.size()) : k;
    // A stripped key colliding with an unprefixed one would silently lose a tensor.
    if (out.count(key)) throw WeightError(source_ + ": stripping '" + prefix + "' makes two tensors named '" + key + "'");
    out.emplace(std::move(key), v);
  }
  tensors_ = std::move(out);
  std::map<std::string, std::string> fp8;
  for (auto& [k, v] : raw_fp8_) fp8[k.compare(0, prefix.size(), prefix) == 0 ? k.substr(prefix.size()) : k] = v;
  raw_fp8_ = std::move(fp8);
}

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
void note_fp8(const std::string& file, std::map<std::string, std::string>& out) {
  for (auto& [name, info] : read_safetensors_header(file))
    if (info.dtype.rfind("F8_", 0) == 0) out[name] = info.dtype;
}
}  // namespace

Weights load_weights(const std::string& path) {
  std::map<std::string, std::string> fp8;
  if (ends_with(path, ".safetensors")) {
    TensorMap t = load_safetensors(path);
    note_fp8(path, fp8);
    return Weights(std::move(t), path, std::move(fp8));
  }
  if (ends_with(path, ".index.json")) {
    TensorMap t = load_safetensors_index(path);  // validates the index and every shard
    std::ifstream f(path);
    const auto j = nlohmann::json::parse(f);
    std::set<std::string> shards;
    for (auto& [name, shard] : j["weight_map"].items()) shards.insert(shard.get<std::string>());
    const auto dir = std::filesystem::path(path).parent_path();
    for (auto& shard : shards) note_fp8((dir / shard).string(), fp8);
    for (auto it = fp8.begin(); it != fp8.end();) it = t.count(it->first) ? std::next(it) : fp8.erase(it);
    return Weights(std::move(t), path, std::move(fp8));
  }
  TensorMap t = load_pth(path, &fp8);
  return Weights(std::move(t), path, std::move(fp8));
}

}  // namespace reel::tensorio
