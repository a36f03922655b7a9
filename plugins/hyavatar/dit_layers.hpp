// Small building blocks shared by the HunyuanVideo-Avatar DiT's components (hymm_sp's
// nn.Linear, RMSNorm, TimestepEmbedder, MLPEmbedder), loaded through CheckpointReader
// (checkpoint_keys.hpp).
//
// Invariants: weights are float32 on the CPU once loaded (bf16 / f16 checkpoints are
// upcast, float8 e4m3 bytes are decoded with their per-tensor scale); a default
// constructed DitLinear is "absent" (defined() false) and must not be called.
// Thread-safety: the layers are immutable after loading and may be used concurrently.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "checkpoint_keys.hpp"
#include "tensorio/weights.hpp"

namespace reel::hyavatar {

// nn.Linear: y = x W^T + b (b may be absent).
struct DitLinear {
  torch::Tensor w, b;
  static DitLinear load(CheckpointReader& r, const std::string& prefix, int64_t in, int64_t out, bool bias = true,
                        bool materialize = true);
  torch::Tensor operator()(const torch::Tensor& x) const;
  bool defined() const { return w.defined(); }
  int64_t bytes() const;
};

// hymm_sp's RMSNorm over the last dim: x * rsqrt(mean(x^2) + eps) * weight.
torch::Tensor dit_rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
// LayerNorm over the last dim; weight/bias may be undefined (elementwise_affine=False).
torch::Tensor dit_layer_norm(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                             double eps);
torch::Tensor dit_gelu_tanh(const torch::Tensor& x);
// x * (1 + scale) + shift with [B, D] modulation broadcast over the tokens of [B, L, D].
torch::Tensor dit_modulate(const torch::Tensor& x, const torch::Tensor& shift, const torch::Tensor& scale);

// Sinusoidal embedding of fractional timesteps t [N] -> [N, dim]: [cos, sin] halves,
// frequencies exp(-ln(max_period) * i / (dim/2)), in float32 as the reference.
torch::Tensor dit_timestep_embedding(const torch::Tensor& t, int64_t dim, double max_period = 10000.0);

// TimestepEmbedder: sinusoid (frequency_embedding_size 256) -> Linear -> SiLU -> Linear.
struct DitTimestepEmbedder {
  DitLinear fc0, fc2;
  int64_t freq_dim = 256;
  double max_period = 10000.0;
  static DitTimestepEmbedder load(CheckpointReader& r, const std::string& prefix, int64_t hidden);
  torch::Tensor operator()(const torch::Tensor& t) const;
  int64_t bytes() const { return fc0.bytes() + fc2.bytes(); }
};

// MLPEmbedder (vector_in): Linear -> SiLU -> Linear.
struct DitMLPEmbedder {
  DitLinear in_layer, out_layer;
  static DitMLPEmbedder load(CheckpointReader& r, const std::string& prefix, int64_t in, int64_t hidden);
  torch::Tensor operator()(const torch::Tensor& x) const;
  int64_t bytes() const { return in_layer.bytes() + out_layer.bytes(); }
};

int64_t dit_tensor_bytes(const torch::Tensor& t);

}  // namespace reel::hyavatar
