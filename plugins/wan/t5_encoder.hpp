// The UMT5 text encoder as Wan 2.1 runs it (wan/modules/t5.py, T5Encoder built by
// umt5_xxl(encoder_only=True)): token embedding; per block an RMS norm (T5LayerNorm, no
// mean subtraction), self-attention WITHOUT 1/sqrt(head_dim) scaling plus a relative
// position bias (bidirectional buckets, max_dist 128) and the padding mask, residual; RMS
// norm, gated-GELU (tanh approximation) feed-forward, residual; a final RMS norm.
//
// Weights keep the published key names of models_t5_umt5-xxl-enc-bf16.pth
// (token_embedding.weight, blocks.N.{norm1,attn.{q,k,v,o},norm2,ffn.{gate.0,fc1,fc2},
// pos_embedding.embedding}.weight, norm.weight). Sizes come from the tensor shapes; the
// head count cannot be inferred from shapes and is a load() argument (64 for umt5-xxl).
// UMT5 has one relative-position table per block (shared_pos=False); a checkpoint with a
// single top-level pos_embedding.embedding.weight (shared_pos=True, original T5) is also
// accepted.
//
// Invariants: computation in float32 (weights stored in bf16/fp16 are upcast one block at a
// time as forward() reaches them). The output
// keeps every text_len row, padded ones included, as the reference does; the padded rows are
// not zero and the pipeline uses only the first seq_len rows (see T5Encoder::context()).
// Thread-safety: a loaded T5Encoder is immutable; forward() may run concurrently.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "tensorio/weights.hpp"
#include "tokenizer.hpp"

namespace reel::wan {

struct T5Config {
  int64_t vocab = 0, dim = 0, dim_attn = 0, dim_ffn = 0;
  int64_t num_heads = 0, num_layers = 0, num_buckets = 0;
  bool shared_pos = false;
  int64_t max_dist = 128;  // T5RelativeEmbedding's default, not stored in the checkpoint
  double eps = 1e-6;       // T5LayerNorm's default
};

// ids and mask as [1, text_len] int64 tensors.
std::pair<torch::Tensor, torch::Tensor> to_tensors(const Tokens& tokens);

class T5Encoder {
 public:
  // Builds the encoder from `w`; throws tensorio::WeightError naming the file and tensor
  // when one is missing or has an unexpected shape.
  // The weights are stored in `weight_dtype` (the checkpoint's bf16 keeps RAM at one copy
  // of the file); forward() computes in float32, upcasting one block at a time.
  static T5Encoder load(const tensorio::Weights& w, int64_t num_heads,
                        torch::Dtype weight_dtype = torch::kFloat32);
  T5Encoder to(const torch::Device& device) const;  // weights keep their dtype
  int64_t bytes() const;                            // stored weight bytes

  // ids, mask: [B, L] integer -> [B, L, dim] float32 on the encoder's device. mask may be
  // undefined (no padding).
  torch::Tensor forward(const torch::Tensor& ids, const torch::Tensor& mask) const;
  // The pipeline's context: forward() rows [0, seq_len) -> [seq_len, dim].
  torch::Tensor context(const Tokens& tokens) const;

  const T5Config& config() const { return cfg_; }

 private:
  struct Block {
    torch::Tensor norm1, q, k, v, o, norm2, gate, fc1, fc2, pos;  // pos: [num_buckets, heads] or undefined
    Block to(const torch::Device& device, torch::Dtype dtype) const;
  };
  torch::Tensor position_bias(const torch::Tensor& table, int64_t lq, int64_t lk) const;
  torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w) const;

  T5Config cfg_;
  torch::Tensor embedding_, norm_, shared_pos_;
  std::vector<Block> blocks_;
};

}  // namespace reel::wan
