// Weights (named tensors with checked access) and float8 decoding.
// Thread-safety: Weights is a plain value; const methods may be called concurrently.
#include "tensorio/weights.hpp"

#include <cmath>
#include <limits>
#include <sstream>

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
  auto idx = raw.to(torch::kCPU).contiguous().view(torch::kUInt8).to(torch::kLong).flatten();
  auto out = lut.index_select(0, idx).view(raw.sizes());
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

Weights::Weights(TensorMap tensors, std::string source) : tensors_(std::move(tensors)), source_(std::move(source)) {}

bool Weights::has(const std::string& name) const { return tensors_.count(name) != 0; }

torch::Tensor Weights::require(const std::string& name, const std::vector<int64_t>& shape, torch::Dtype dtype) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw WeightError(source_ + ": missing tensor '" + name + "'");
  const auto& t = it->second;
  if (!shape.empty() && t.sizes() != c10::IntArrayRef(shape))
    throw WeightError(source_ + ": tensor '" + name + "': expected shape " + shape_str(shape) + ", found " +
                      shape_str(t.sizes()));
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
}

}  // namespace reel::tensorio
