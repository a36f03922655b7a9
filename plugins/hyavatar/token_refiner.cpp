#include "token_refiner.hpp"

#include <cmath>
#include <limits>

namespace reel::hyavatar {

TokenRefiner TokenRefiner::load(CheckpointReader& r, const std::string& prefix, int64_t in_dim, int64_t hidden,
                                int64_t num_heads, int64_t depth, double mlp_ratio) {
  TokenRefiner m;
  m.in_dim = in_dim;
  m.hidden = hidden;
  m.num_heads = num_heads;
  const auto mlp_hidden = static_cast<int64_t>(hidden * mlp_ratio);
  m.input_embedder = DitLinear::load(r, prefix + ".input_embedder", in_dim, hidden);
  m.t_embedder = DitTimestepEmbedder::load(r, prefix + ".t_embedder", hidden);
  m.c_linear_1 = DitLinear::load(r, prefix + ".c_embedder.linear_1", in_dim, hidden);
  m.c_linear_2 = DitLinear::load(r, prefix + ".c_embedder.linear_2", hidden, hidden);
  for (int64_t i = 0; i < depth; ++i) {
    const auto p = prefix + ".individual_token_refiner.blocks." + std::to_string(i);
    TokenRefinerBlock b;
    b.norm1_w = r.take(p + ".norm1.weight", {hidden});
    b.norm1_b = r.take(p + ".norm1.bias", {hidden});
    b.norm2_w = r.take(p + ".norm2.weight", {hidden});
    b.norm2_b = r.take(p + ".norm2.bias", {hidden});
    b.qkv = DitLinear::load(r, p + ".self_attn_qkv", hidden, 3 * hidden);
    b.proj = DitLinear::load(r, p + ".self_attn_proj", hidden, hidden);
    b.fc1 = DitLinear::load(r, p + ".mlp.fc1", hidden, mlp_hidden);
    b.fc2 = DitLinear::load(r, p + ".mlp.fc2", mlp_hidden, hidden);
    b.ada = DitLinear::load(r, p + ".adaLN_modulation.1", hidden, 2 * hidden);
    m.blocks.push_back(std::move(b));
  }
  return m;
}

torch::Tensor TokenRefiner::forward(const torch::Tensor& text, const torch::Tensor& t, const torch::Tensor& mask) const {
  auto x = text.to(torch::kFloat32);
  const int64_t B = x.size(0), L = x.size(1), hd = hidden / num_heads;
  torch::Tensor context;
  torch::Tensor allowed;  // [B, 1, L, L] bool
  if (mask.defined()) {
    auto mf = mask.to(torch::kFloat32).unsqueeze(-1);
    context = (x * mf).sum(1) / mf.sum(1);
    auto m = mask.to(torch::kBool);
    allowed = m.view({B, 1, 1, L}) & m.view({B, 1, L, 1});
    allowed.select(3, 0).fill_(true);
  } else {
    context = x.mean(1);
  }
  auto c = t_embedder(t) + c_linear_2(torch::silu(c_linear_1(context)));
  x = input_embedder(x);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (const auto& b : blocks) {
    auto gates = b.ada(torch::silu(c)).chunk(2, 1);
    auto qkv = b.qkv(dit_layer_norm(x, b.norm1_w, b.norm1_b, 1e-6)).view({B, L, 3, num_heads, hd});
    auto q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2),
         v = qkv.select(2, 2).transpose(1, 2);  // [B, H, L, hd]
    auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
    if (allowed.defined()) scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
    auto attn = torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2).reshape({B, L, hidden});
    x = x + b.proj(attn) * gates[0].unsqueeze(1);
    auto h = b.fc2(torch::silu(b.fc1(dit_layer_norm(x, b.norm2_w, b.norm2_b, 1e-6))));
    x = x + h * gates[1].unsqueeze(1);
  }
  return x;
}

int64_t TokenRefiner::bytes() const {
  int64_t n = input_embedder.bytes() + t_embedder.bytes() + c_linear_1.bytes() + c_linear_2.bytes();
  for (const auto& b : blocks)
    n += dit_tensor_bytes(b.norm1_w) + dit_tensor_bytes(b.norm1_b) + dit_tensor_bytes(b.norm2_w) +
         dit_tensor_bytes(b.norm2_b) + b.qkv.bytes() + b.proj.bytes() + b.fc1.bytes() + b.fc2.bytes() + b.ada.bytes();
  return n;
}

}  // namespace reel::hyavatar
