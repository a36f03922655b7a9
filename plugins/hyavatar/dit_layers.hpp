// Small building blocks shared by the HunyuanVideo-Avatar DiT's components (hymm_sp's
// nn.Linear, RMSNorm, TimestepEmbedder, MLPEmbedder), and DitParamReader, the strict
// checkpoint-key bookkeeping every component loads through.
//
// Invariants: weights are float32 on the CPU once loaded (bf16 / f16 checkpoints are
// upcast, float8 e4m3 bytes are decoded with their per-tensor scale); a default
// constructed DitLinear is "absent" (defined() false) and must not be called.
// Thread-safety: the layers are immutable after loading and may be used concurrently;
// a DitParamReader belongs to one loading thread.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "tensorio/weights.hpp"

namespace reel::hyavatar {

// Reads a checkpoint's tensors by their published names and remembers which ones a model
// took, so that finish() can name every missing, misshapen and unexpected key in one
// error (the reference loads with strict=False and silently keeps random weights; reel
// refuses such a checkpoint).
class DitParamReader {
 public:
  // `fp8_scales`: tensors stored as raw float8 e4m3 bytes (uint8), by key, with the
  // per-tensor scale they are multiplied by (the reference's fp8 checkpoints).
  explicit DitParamReader(const tensorio::Weights& w, std::map<std::string, double> fp8_scales = {});

  // The tensor as float32 (decoded from float8 when listed). A missing key or a shape
  // mismatch is recorded and an undefined tensor returned; finish() reports it.
  // materialize=false only checks presence and shape (for blocks streamed later).
  torch::Tensor take(const std::string& name, const std::vector<int64_t>& shape, bool materialize = true);
  // Marks every key under `prefix` as expected without reading it (shapes not checked).
  void accept_prefix(const std::string& prefix);
  // Throws tensorio::WeightError naming the checkpoint and every missing, misshapen and
  // unexpected key; does nothing when the checkpoint matched exactly.
  void finish() const;

 private:
  const tensorio::Weights& w_;
  std::map<std::string, double> fp8_scales_;
  std::set<std::string> used_;
  std::vector<std::string> accepted_prefixes_;
  std::vector<std::string> missing_, misshapen_;
};

// nn.Linear: y = x W^T + b (b may be absent).
struct DitLinear {
  torch::Tensor w, b;
  static DitLinear load(DitParamReader& r, const std::string& prefix, int64_t in, int64_t out, bool bias = true,
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
  static DitTimestepEmbedder load(DitParamReader& r, const std::string& prefix, int64_t hidden);
  torch::Tensor operator()(const torch::Tensor& t) const;
  int64_t bytes() const { return fc0.bytes() + fc2.bytes(); }
};

// MLPEmbedder (vector_in): Linear -> SiLU -> Linear.
struct DitMLPEmbedder {
  DitLinear in_layer, out_layer;
  static DitMLPEmbedder load(DitParamReader& r, const std::string& prefix, int64_t in, int64_t hidden);
  torch::Tensor operator()(const torch::Tensor& x) const;
  int64_t bytes() const { return in_layer.bytes() + out_layer.bytes(); }
};

int64_t dit_tensor_bytes(const torch::Tensor& t);

}  // namespace reel::hyavatar
