// One of the Avatar DiT's audio cross-attention adapters (hymm_sp PerceiverAttentionCA,
// keys "audio_adapter_blocks.<j>."): per latent frame, the frame's image tokens attend to
// that frame's audio tokens. Both inputs are LayerNorm'ed (eps 1e-5, affine), then one
// single-head attention of width dim_head (the reference's `heads` is unused), q and k
// each scaled by dim_head^-1/4, softmax in float32, and to_out back to the model width.
// The caller (HYAvatarDiT) multiplies the result by the face mask and adds it to the
// video tokens after the double blocks listed in double_stream_list.
// Thread-safety: immutable after load; forward() may run concurrently.
#pragma once

#include <string>

#include <torch/torch.h>

#include "dit_layers.hpp"

namespace reel::hyavatar {

struct AudioAdapter {
  int64_t dim = 0, dim_head = 0;
  torch::Tensor norm1_w, norm1_b, norm2_w, norm2_b;
  DitLinear to_q, to_kv, to_out;  // no biases

  static AudioAdapter load(CheckpointReader& r, const std::string& prefix, int64_t dim, int64_t dim_head);
  // audio [B, T, A, dim], img [B, T, N, dim] -> [B, T, N, dim] (before mask and residual).
  torch::Tensor forward(const torch::Tensor& audio, const torch::Tensor& img) const;
  int64_t bytes() const;
};

}  // namespace reel::hyavatar
