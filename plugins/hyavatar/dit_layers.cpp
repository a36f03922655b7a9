#include "dit_layers.hpp"

#include <cmath>
#include <sstream>

namespace reel::hyavatar {

int64_t dit_tensor_bytes(const torch::Tensor& t) {
  return t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0;
}

DitLinear DitLinear::load(CheckpointReader& r, const std::string& prefix, int64_t in, int64_t out, bool bias,
                          bool materialize) {
  DitLinear l;
  l.w = r.take(prefix + ".weight", {out, in}, materialize);
  if (bias) l.b = r.take(prefix + ".bias", {out}, materialize);
  return l;
}

torch::Tensor DitLinear::operator()(const torch::Tensor& x) const {
  return b.defined() ? torch::linear(x, w, b) : torch::linear(x, w);
}

int64_t DitLinear::bytes() const { return dit_tensor_bytes(w) + dit_tensor_bytes(b); }

torch::Tensor dit_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto y = x * torch::rsqrt(x.pow(2).mean(-1, true) + eps);
  return weight.defined() ? y * weight : y;
}

torch::Tensor dit_layer_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                             double eps) {
  return torch::layer_norm(x, {x.size(-1)}, weight, bias, eps);
}

torch::Tensor dit_gelu_tanh(const torch::Tensor& x) { return torch::gelu(x, "tanh"); }

torch::Tensor dit_modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale) {
  return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1);
}

torch::Tensor dit_timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period) {
  const int64_t half = dim / 2;
  auto freqs = torch::exp(-std::log(max_period) * torch::arange(0, half, torch::kFloat32) / half);
  auto args = t.to(torch::kFloat32).unsqueeze(1) * freqs.unsqueeze(0);
  auto emb = torch::cat({torch::cos(args), torch::sin(args)}, -1);
  if (dim % 2) emb = torch::cat({emb, torch::zeros_like(emb.slice(1, 0, 1))}, -1);
  return emb;
}

DitTimestepEmbedder DitTimestepEmbedder::load(CheckpointReader& r, const std::string& prefix, int64_t hidden) {
  DitTimestepEmbedder e;
  e.fc0 = DitLinear::load(r, prefix + ".mlp.0", e.freq_dim, hidden);
  e.fc2 = DitLinear::load(r, prefix + ".mlp.2", hidden, hidden);
  return e;
}

torch::Tensor DitTimestepEmbedder::operator()(const torch::Tensor& t) const {
  return fc2(torch::silu(fc0(dit_timestep_embedding(t, freq_dim, max_period))));
}

DitMLPEmbedder DitMLPEmbedder::load(CheckpointReader& r, const std::string& prefix, int64_t in, int64_t hidden) {
  return {DitLinear::load(r, prefix + ".in_layer", in, hidden), DitLinear::load(r, prefix + ".out_layer", hidden, hidden)};
}

torch::Tensor DitMLPEmbedder::operator()(const torch::Tensor& x) const { return out_layer(torch::silu(in_layer(x))); }

}  // namespace reel::hyavatar
