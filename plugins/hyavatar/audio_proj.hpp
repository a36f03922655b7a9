// The Avatar DiT's audio projection (hymm_sp AudioProjNet2, key prefix "audio_proj."):
// each latent-rate window of whisper features [seq_len, blocks, channels] is flattened,
// passed through Linear-ReLU-Linear-ReLU-Linear and split into context_tokens tokens of
// output_dim (the DiT width), each LayerNorm'ed (eps 1e-5, affine).
// Invariants: float32 weights; shapes fixed by AudioProjConfig at load.
// Thread-safety: immutable after load; forward() may run concurrently.
#pragma once

#include <string>

#include <torch/torch.h>

#include "dit_layers.hpp"

namespace reel::hyavatar {

struct AudioProjConfig {
  int64_t seq_len = 10, blocks = 5, channels = 384, intermediate_dim = 1024, output_dim = 3072, context_tokens = 4;
  int64_t input_dim() const { return seq_len * blocks * channels; }
};

struct AudioProj {
  AudioProjConfig cfg;
  DitLinear proj1, proj2, proj3;
  torch::Tensor norm_w, norm_b;

  static AudioProj load(CheckpointReader& r, const AudioProjConfig& cfg, const std::string& prefix = "audio_proj");
  // audio_prompts [B, F, seq_len, blocks, channels] -> [B, F, context_tokens, output_dim].
  // Throws std::invalid_argument on another shape.
  torch::Tensor forward(const torch::Tensor& audio_prompts) const;
  int64_t bytes() const;
};

}  // namespace reel::hyavatar
