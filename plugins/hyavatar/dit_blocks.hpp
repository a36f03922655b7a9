// The HunyuanVideo-Avatar DiT's transformer blocks (hymm_sp models_audio.py):
// DoubleStreamBlock ("double_blocks.<i>.": separate img / txt weights, joint attention)
// and SingleStreamBlock ("single_blocks.<i>.": fused qkv+MLP linear over [img; txt]), with
// their adaLN modulation (ModulateDiT: SiLU then Linear to 6 / 3 chunks of the width),
// RMS qk-norm (eps 1e-6), RoPE on the image tokens only, GELU-tanh MLP.
//
// Attention is exact float32 softmax attention over the reference's cu_seqlens segments
// (DitSegments): per sample, the image tokens plus that sample's valid text tokens form
// one segment, and the padded text positions form a second segment that only attends to
// itself. Padded positions therefore never influence valid ones, but their values are
// still computed (they appear in the step cache).
// Each block is loadable and runnable on its own, so a block-swapping runner can stream
// blocks one at a time.
// Thread-safety: blocks are immutable after load; forward() may run concurrently.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "dit_layers.hpp"
#include "rope.hpp"

namespace reel::hyavatar {

struct DitBlockDims {
  int64_t hidden = 0, num_heads = 0, mlp_hidden = 0;
  bool qkv_bias = true, qk_norm = true;
  int64_t head_dim() const { return hidden / num_heads; }
};

// The attention segments of a [B, total_len] token batch: sample b's first segment is
// [0, valid_len[b]), the rest [valid_len[b], total_len) is the second.
struct DitSegments {
  std::vector<int64_t> valid_len;
  int64_t total_len = 0;
  // From the text mask [B, L] (1 = valid) and the image token count, as get_cu_seqlens.
  static DitSegments from_text_mask(const torch::Tensor& text_mask, int64_t img_len);
  // The reference's cu_seqlens (int32 [2B+1]) over the flattened batch.
  torch::Tensor cu_seqlens() const;
};

// q, k, v [B, S, H, D] -> [B, S, H*D]: softmax(q k^T / sqrt(D)) v within each segment.
torch::Tensor dit_segment_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const DitSegments& seg);

struct DoubleStreamBlock {
  struct Stream {
    DitLinear mod, qkv, proj, fc1, fc2;
    torch::Tensor q_norm, k_norm;  // RMSNorm weights (undefined without qk_norm)
    int64_t bytes() const;
  };
  int64_t index = -1;
  DitBlockDims dims;
  Stream img, txt;

  // materialize=false checks the keys and shapes only (the block is streamed later).
  static DoubleStreamBlock load(CheckpointReader& r, const DitBlockDims& dims, int64_t index, bool materialize = true);
  // img [B, Li, D] (RoPE rows = Li), txt [B, Lt, D], vec [B, D]; updated in place.
  void forward(torch::Tensor& img, torch::Tensor& txt, const torch::Tensor& vec, const DitSegments& seg,
               const RopeTables& rope) const;
  int64_t bytes() const { return img.bytes() + txt.bytes(); }
};

struct SingleStreamBlock {
  int64_t index = -1;
  DitBlockDims dims;
  DitLinear mod, linear1, linear2;
  torch::Tensor q_norm, k_norm;

  static SingleStreamBlock load(CheckpointReader& r, const DitBlockDims& dims, int64_t index, bool materialize = true);
  // x [B, Li + txt_len, D] -> same; RoPE on the first Li tokens.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& vec, int64_t txt_len, const DitSegments& seg,
                        const RopeTables& rope) const;
  int64_t bytes() const;
};

}  // namespace reel::hyavatar
