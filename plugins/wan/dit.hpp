// The Wan 2.1 diffusion transformer (wan/modules/model.py, WanModel): Conv3d patch
// embedding; sinusoidal time embedding (float64, as the reference) -> time_embedding MLP ->
// time_projection to 6*dim modulation; text_embedding MLP over the context zero-padded to
// text_len; num_layers blocks (adaLN modulation, self-attention with RMS-normed q/k and
// 3-axis RoPE applied in float64, cross-attention over all text_len positions (norm3 when
// cross_attn_norm), GELU-tanh FFN); the modulated head; unpatchify.
//
// Config: config.json's keys (dim, ffn_dim, freq_dim, in_dim, out_dim, num_heads,
// num_layers, text_len, eps, model_type) plus what the official file leaves out, inferred
// from the weights: text_dim (text_embedding.0.weight), patch_size (patch_embedding.weight's
// kernel), qk_norm (norm_q present), cross_attn_norm (norm3 present), img_dim for i2v
// (img_emb.proj.0.weight). Weights keep the published key names; ComfyUI's
// "model.diffusion_model." prefix is stripped by load_dit_weights().
//
// i2v (model_type "i2v", in_dim 36): `y` is concatenated to x on channels, clip_fea goes
// through img_emb (MLPProj) and each block's cross-attention adds an attention over those
// image tokens (k_img, v_img, norm_k_img). The reference splits its concatenated
// [image, text] context at (total - 512) (T5_CONTEXT_TOKEN_NUMBER); embed() reproduces that
// split, which is the plain image/text boundary for the official text_len 512.
// flf2v and vace are not supported.
//
// Invariants: computation in the compute dtype (float32 unless set; bf16/fp16/fp8 blocks are
// upcast one at a time as they run, see DiTBlock), RoPE
// and the sinusoid in float64 exactly as the reference. Tokens beyond the video's own
// (the reference pads x to seq_len) are never computed: the reference masks them out of
// every attention and drops them before unpatchify, so they cannot change the output;
// seq_len is only checked (>= the token count) as the reference asserts.
// Thread-safety: a loaded WanDiT / DiTBlock is immutable; forward() and the per-block calls
// may run concurrently on distinct DiTState objects.
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "tensorio/weights.hpp"

namespace reel::wan {

struct DiTConfig {
  std::string model_type = "t2v";  // "t2v" or "i2v"
  std::array<int64_t, 3> patch_size{1, 2, 2};
  int64_t text_len = 0, in_dim = 0, dim = 0, ffn_dim = 0, freq_dim = 0, text_dim = 0, out_dim = 0;
  int64_t num_heads = 0, num_layers = 0;
  int64_t img_dim = 0;  // i2v: CLIP token width fed to img_emb; 0 for t2v
  bool qk_norm = true, cross_attn_norm = true;
  double eps = 1e-6;

  bool i2v() const { return model_type == "i2v"; }
  int64_t head_dim() const { return dim / num_heads; }
};

// config.json's keys; the inferred fields stay at their defaults until WanDiT::load fills
// them. Throws std::runtime_error naming the file and the key when one is missing.
DiTConfig read_dit_config(const std::string& config_json_path);

// A DiT checkpoint through tensorio::load_weights (.safetensors, sharded .index.json, or a
// torch.save archive). float8 tensors are decoded to float32 (times "<module>.scale_weight" when the file has one,
// as ComfyUI's scaled-fp8 files do); "model.diffusion_model." is stripped.
tensorio::Weights load_dit_weights(const std::string& path);

// One attention block's weights (blocks.<i>.*). Loadable on its own so a block-swapping
// runner can stream blocks through a device one at a time. Stored in any float dtype, or
// as float8 e4m3 bytes with a per-tensor scale (quantized_fp8): run_block() computes with
// a copy in the compute dtype on the activations' device (materialized()), made one block
// at a time, so only one block is ever upcast.
struct DiTBlock {
  struct Attn {
    torch::Tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
    torch::Tensor norm_q, norm_k;               // undefined without qk_norm
    torch::Tensor k_img_w, k_img_b, v_img_w, v_img_b, norm_k_img;  // i2v cross-attention only
  };
  int64_t index = -1;
  torch::Tensor modulation;                     // [1, 6, dim]
  Attn self_attn, cross_attn;
  torch::Tensor norm3_w, norm3_b;               // undefined without cross_attn_norm
  torch::Tensor ffn0_w, ffn0_b, ffn2_w, ffn2_b;
  // Scales of the tensors held as raw e4m3 bytes (uint8), by for_each() name.
  std::map<std::string, double> fp8_scales;

  // f(name, tensor&) for every defined tensor; names are the published key suffixes
  // ("self_attn.q.weight", "ffn.0.bias", ...).
  template <class F>
  void for_each(F&& f);

  DiTBlock to(const torch::Device& device, bool non_blocking = false) const;  // same dtypes
  // On `device` in `dtype`, float8 tensors decoded: what run_block() computes with.
  DiTBlock materialized(const torch::Device& device, torch::Dtype dtype) const;
  // The linear weights (2-D) as e4m3 bytes with per-tensor scales; the rest unchanged.
  DiTBlock quantized_fp8() const;
  DiTBlock pinned() const;  // page-locked host copy (CUDA builds only; else a plain copy)
  int64_t bytes() const;    // stored bytes (for the block-swap budget)
};

template <class F>
void DiTBlock::for_each(F&& f) {
  auto visit = [&](const char* name, torch::Tensor& t) {
    if (t.defined()) f(name, t);
  };
  visit("modulation", modulation);
  for (auto* a : {&self_attn, &cross_attn}) {
    const bool self = a == &self_attn;
    visit(self ? "self_attn.q.weight" : "cross_attn.q.weight", a->q_w);
    visit(self ? "self_attn.q.bias" : "cross_attn.q.bias", a->q_b);
    visit(self ? "self_attn.k.weight" : "cross_attn.k.weight", a->k_w);
    visit(self ? "self_attn.k.bias" : "cross_attn.k.bias", a->k_b);
    visit(self ? "self_attn.v.weight" : "cross_attn.v.weight", a->v_w);
    visit(self ? "self_attn.v.bias" : "cross_attn.v.bias", a->v_b);
    visit(self ? "self_attn.o.weight" : "cross_attn.o.weight", a->o_w);
    visit(self ? "self_attn.o.bias" : "cross_attn.o.bias", a->o_b);
    visit(self ? "self_attn.norm_q.weight" : "cross_attn.norm_q.weight", a->norm_q);
    visit(self ? "self_attn.norm_k.weight" : "cross_attn.norm_k.weight", a->norm_k);
    visit("cross_attn.k_img.weight", a->k_img_w);
    visit("cross_attn.k_img.bias", a->k_img_b);
    visit("cross_attn.v_img.weight", a->v_img_w);
    visit("cross_attn.v_img.bias", a->v_img_b);
    visit("cross_attn.norm_k_img.weight", a->norm_k_img);
  }
  visit("norm3.weight", norm3_w);
  visit("norm3.bias", norm3_b);
  visit("ffn.0.weight", ffn0_w);
  visit("ffn.0.bias", ffn0_b);
  visit("ffn.2.weight", ffn2_w);
  visit("ffn.2.bias", ffn2_b);
}

// What flows between the blocks (batch B; B = 1 from forward()).
struct DiTState {
  torch::Tensor x;            // [B, L, dim] video tokens, L = F*H*W patches
  torch::Tensor e;            // [B, dim] time embedding (the head's modulation input)
  torch::Tensor e0;           // [B, 6, dim] the blocks' modulation input
  torch::Tensor context;      // [B, text_len, dim] embedded text (i2v: the text part of the split)
  torch::Tensor context_img;  // i2v: [B, L_img, dim] the image part (may be empty), else undefined
  torch::Tensor freqs;        // [L, 1, head_dim/2] complex128 RoPE multipliers
  std::array<int64_t, 3> grid{0, 0, 0};  // (F, H, W) in patches
  bool batched = false;       // whether the inputs had a batch dimension

  DiTState to(const torch::Device& device) const;
};

class WanDiT {
 public:
  // Builds the model from `w`; `cfg` carries config.json's fields, the inferred ones are
  // filled here. Throws tensorio::WeightError naming the file and tensor when one is
  // missing or has the wrong shape. load_blocks=false keeps only the embeddings and the
  // head (the blocks are then streamed with load_block()).
  // The blocks are stored in `block_dtype` (float32 by default; a bf16 checkpoint loaded
  // with kBFloat16 keeps half the bytes and is upcast one block at a time by run_block);
  // the embeddings and the head, which are small, are stored in the compute dtype.
  static WanDiT load(const tensorio::Weights& w, DiTConfig cfg, bool load_blocks = true,
                     torch::Dtype block_dtype = torch::kFloat32);
  // checkpoint_dir/config.json + diffusion_pytorch_model.safetensors (or its .index.json).
  static WanDiT load_dir(const std::string& checkpoint_dir, bool load_blocks = true,
                         torch::Dtype block_dtype = torch::kFloat32);
  static DiTBlock load_block(const tensorio::Weights& w, const DiTConfig& cfg, int64_t i,
                             torch::Dtype dtype = torch::kFloat32);

  // x [C_in, F, H, W] (t2v: C_in = in_dim; i2v: in_dim - y's channels), t [1] (timestep,
  // 0..1000), context [L <= text_len, text_dim] -> [out_dim, F, H, W] float32.
  // i2v also takes clip_fea [1, L_img, img_dim] and y [in_dim - C, F, H, W].
  // Batched inputs (x [B,C,F,H,W], t [B], context [B,L,text_dim], clip_fea [B,..], y [B,..])
  // give [B, out_dim, F, H, W].
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context,
                        int64_t seq_len, const torch::Tensor& clip_fea = {}, const torch::Tensor& y = {}) const;

  // forward() in three parts, for callers that run the blocks themselves.
  DiTState embed(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context, int64_t seq_len,
                 const torch::Tensor& clip_fea = {}, const torch::Tensor& y = {}) const;
  int64_t num_blocks() const { return cfg_.num_layers; }
  void run_block(int64_t i, DiTState& s) const;  // needs load_blocks=true
  void run_block(const DiTBlock& b, DiTState& s) const;
  torch::Tensor head(const DiTState& s) const;   // head + unpatchify

  const DiTConfig& config() const { return cfg_; }
  const std::vector<DiTBlock>& blocks() const { return blocks_; }
  // Takes the blocks out (a block-swapping runner holds them itself); num_blocks() stays.
  std::vector<DiTBlock> release_blocks() { return std::move(blocks_); }
  // The embeddings and head (and the blocks, with keep_blocks) on `device`. The compute
  // dtype is the dtype blocks are materialized in: float32 (CPU) or bfloat16 (CUDA, where
  // the caller enables bf16 autocast as the reference does).
  WanDiT to(const torch::Device& device, bool keep_blocks = true) const;
  void set_compute_dtype(torch::Dtype dtype) { compute_dtype_ = dtype; }
  torch::Dtype compute_dtype() const { return compute_dtype_; }

  // Multiply-add FLOPs (2 per MAC) of one forward() for a latent [C, F, H, W] (batch 1):
  // every linear/conv plus attention's two matmuls; norms, RoPE and softmax left out.
  static double flops(const DiTConfig& cfg, const std::vector<int64_t>& latent_shape, int64_t img_tokens = 0);
  double flops(const std::vector<int64_t>& latent_shape, int64_t img_tokens = 0) const {
    return flops(cfg_, latent_shape, img_tokens);
  }

 private:
  DiTConfig cfg_;
  torch::Dtype compute_dtype_ = torch::kFloat32;
  torch::Tensor patch_w_, patch_b_;
  torch::Tensor text0_w_, text0_b_, text2_w_, text2_b_;
  torch::Tensor time0_w_, time0_b_, time2_w_, time2_b_, proj_w_, proj_b_;
  torch::Tensor head_w_, head_b_, head_mod_;
  // i2v img_emb.proj: LayerNorm, Linear, GELU, Linear, LayerNorm.
  torch::Tensor img0_w_, img0_b_, img1_w_, img1_b_, img3_w_, img3_b_, img4_w_, img4_b_;
  std::vector<DiTBlock> blocks_;
};

// Exact softmax attention, q [B, H, Lq, d], k/v [B, H, Lk, d] -> [B, H, Lq, d], scale
// 1/sqrt(d), no mask. Computed in query chunks so the score matrix stays bounded.
torch::Tensor dit_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

}  // namespace reel::wan
