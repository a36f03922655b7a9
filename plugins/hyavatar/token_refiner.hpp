// The DiT's text input stage (hymm_sp SingleTokenRefiner, keys "txt_in."): the llava text
// states are embedded (input_embedder) and refined by `depth` (2) self-attention blocks
// (IndividualTokenRefinerBlock: affine LayerNorm eps 1e-6, qkv with bias, no qk-norm,
// SiLU MLP of ratio 4) gated by c = t_embedder(t) + c_embedder(masked mean of the text
// states). Attention mask: query i may see key j when both are valid text tokens; key 0 is
// always visible (so padded rows have no empty softmax), exactly the reference's mask.
// Thread-safety: immutable after load; forward() may run concurrently.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "dit_layers.hpp"

namespace reel::hyavatar {

struct TokenRefinerBlock {
  torch::Tensor norm1_w, norm1_b, norm2_w, norm2_b;
  DitLinear qkv, proj, fc1, fc2, ada;  // ada: adaLN_modulation.1 -> (gate_msa, gate_mlp)
};

struct TokenRefiner {
  int64_t in_dim = 0, hidden = 0, num_heads = 0;
  DitLinear input_embedder;
  DitTimestepEmbedder t_embedder;
  DitLinear c_linear_1, c_linear_2;  // c_embedder (TextProjection, SiLU)
  std::vector<TokenRefinerBlock> blocks;

  static TokenRefiner load(CheckpointReader& r, const std::string& prefix, int64_t in_dim, int64_t hidden,
                           int64_t num_heads, int64_t depth = 2, double mlp_ratio = 4.0);
  // text [B, L, in_dim], t [B], mask [B, L] (int/bool, 1 = valid; undefined = all valid)
  // -> [B, L, hidden].
  torch::Tensor forward(const torch::Tensor& text, const torch::Tensor& t, const torch::Tensor& mask) const;
  int64_t bytes() const;
};

}  // namespace reel::hyavatar
