#include "audio_adapter.hpp"

#include <cmath>

namespace reel::hyavatar {

AudioAdapter AudioAdapter::load(CheckpointReader& r, const std::string& prefix, int64_t dim, int64_t dim_head) {
  AudioAdapter a;
  a.dim = dim;
  a.dim_head = dim_head;
  a.norm1_w = r.take(prefix + ".norm1.weight", {dim});
  a.norm1_b = r.take(prefix + ".norm1.bias", {dim});
  a.norm2_w = r.take(prefix + ".norm2.weight", {dim});
  a.norm2_b = r.take(prefix + ".norm2.bias", {dim});
  a.to_q = DitLinear::load(r, prefix + ".to_q", dim, dim_head, false);
  a.to_kv = DitLinear::load(r, prefix + ".to_kv", dim, 2 * dim_head, false);
  a.to_out = DitLinear::load(r, prefix + ".to_out", dim_head, dim, false);
  return a;
}

torch::Tensor AudioAdapter::forward(const torch::Tensor& audio, const torch::Tensor& img) const {
  auto x = dit_layer_norm(audio, norm1_w, norm1_b, 1e-5);
  auto latents = dit_layer_norm(img, norm2_w, norm2_b, 1e-5);
  auto q = to_q(latents);
  auto kv = to_kv(x).chunk(2, -1);
  // Both operands scaled by dim_head^-1/4, as the reference does (f16 stability there).
  const double scale = 1.0 / std::sqrt(std::sqrt(static_cast<double>(dim_head)));
  auto weight = torch::matmul(q * scale, (kv[0] * scale).transpose(-2, -1));
  weight = torch::softmax(weight.to(torch::kFloat32), -1);
  return to_out(torch::matmul(weight, kv[1]));
}

int64_t AudioAdapter::bytes() const {
  return dit_tensor_bytes(norm1_w) + dit_tensor_bytes(norm1_b) + dit_tensor_bytes(norm2_w) +
         dit_tensor_bytes(norm2_b) + to_q.bytes() + to_kv.bytes() + to_out.bytes();
}

}  // namespace reel::hyavatar
