// The layers of the HunyuanVideo-Avatar causal 3D VAE (hymm_sp/vae/unet_causal_3d_blocks.py
// and vae.py), internal to vae*.cpp: plain structs of float32 tensors addressed by their
// published key names at load time, and free functions that evaluate them. Loading goes
// through a CheckpointReader (checkpoint_keys.hpp), so HyVae::load reports every missing,
// mis-shaped or unexpected key at once.
// Thread-safety: the structs are immutable after loading; the functions keep no state.
#pragma once

#include <array>
#include <set>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "checkpoint_keys.hpp"
#include "tensorio/weights.hpp"
#include "vae.hpp"

namespace reel::hyavatar::vae {

// CausalConv3d (or a plain nn.Conv3d when `padded` is false, as for quant_conv):
// replicate padding of k/2 on H and W and k-1 past frames on T (or k/2 each side when
// the reference's disable_causal is set).
struct Conv {
  torch::Tensor weight, bias;
  std::array<int64_t, 3> stride{1, 1, 1};
  int64_t kernel = 1;
  bool padded = true;
  bool causal = true;
};
Conv load_conv(CheckpointReader& k, const std::string& prefix, int64_t in, int64_t out, int64_t kernel,
               std::array<int64_t, 3> stride, bool causal_conv_wrapper, bool causal);
// Inputs whose padded copy would exceed `chunk_bytes` are convolved a run of output
// frames at a time, each from its own padded slice, so no padded copy of the whole
// input exists (the output is the same up to float rounding: every output frame sees
// the same padded inputs). 0 disables the chunking.
constexpr int64_t kConvChunkBytes = int64_t{256} << 20;
torch::Tensor conv_forward(const Conv& c, const torch::Tensor& x, int64_t chunk_bytes = kConvChunkBytes);

struct Norm {
  torch::Tensor weight, bias;
  int64_t groups = 32;
  double eps = 1e-6;
};
Norm load_norm(CheckpointReader& k, const std::string& prefix, int64_t channels, int64_t groups);
// GroupNorm then SiLU (every use in this VAE is followed by the activation except the
// attention's).
torch::Tensor norm_silu(const Norm& n, const torch::Tensor& x);

struct Resnet {
  Norm norm1, norm2;
  Conv conv1, conv2;
  bool has_shortcut = false;
  Conv shortcut;
};
Resnet load_resnet(CheckpointReader& k, const std::string& prefix, int64_t in, int64_t out, int64_t groups, bool causal);
torch::Tensor resnet_forward(const Resnet& r, torch::Tensor x);

// diffusers Attention (_from_deprecated_attn_block, one head of width C, residual).
struct Attention {
  Norm group_norm;
  torch::Tensor q_w, q_b, k_w, k_b, v_w, v_b, out_w, out_b;
  bool causal = false;  // mid_block_causal_attn: frame-causal mask
};
Attention load_attention(CheckpointReader& k, const std::string& prefix, int64_t channels, int64_t groups, bool causal);
torch::Tensor attention_forward(const Attention& a, torch::Tensor x);

struct MidBlock {
  std::vector<Resnet> resnets;        // resnets[0], then one after each attention
  std::vector<Attention> attentions;  // empty when mid_block_add_attention is false
};
MidBlock load_mid_block(CheckpointReader& k, const std::string& prefix, const VaeConfig& c);
torch::Tensor mid_block_forward(const MidBlock& m, torch::Tensor x);

struct Stage {  // DownEncoderBlockCausal3D / UpDecoderBlockCausal3D
  std::vector<Resnet> resnets;
  bool has_resample = false;
  Conv resample;                           // downsampler (strided) or the conv after upsampling
  std::array<int64_t, 3> up_factor{1, 1, 1};  // decoder: nearest factors (T, H, W)
};

struct Encoder {
  Conv conv_in;
  std::vector<Stage> down_blocks;
  MidBlock mid;
  Norm norm_out;
  Conv conv_out;
};
struct Decoder {
  Conv conv_in;
  MidBlock mid;
  std::vector<Stage> up_blocks;
  Norm norm_out;
  Conv conv_out;
};
Encoder load_encoder(CheckpointReader& k, const VaeConfig& c);
Decoder load_decoder(CheckpointReader& k, const VaeConfig& c);
torch::Tensor encoder_forward(const Encoder& e, const torch::Tensor& x);
torch::Tensor decoder_forward(const Decoder& d, const torch::Tensor& z);

// In-place linear cross-fades of the reference (blend_v: dim -2, blend_h: dim -1,
// blend_t: dim -3): b's first e entries along `dim` become a's last e * (1 - k/e) +
// b's * k/e, e = min(extent, a.size(dim), b.size(dim)).
void blend_into(const torch::Tensor& a, torch::Tensor& b, int64_t dim, int64_t extent);

}  // namespace reel::hyavatar::vae

namespace reel::hyavatar {

struct HyVae::Impl {
  VaeConfig config;
  vae::Encoder encoder;
  vae::Decoder decoder;
  vae::Conv quant_conv, post_quant_conv;

  torch::Tensor encode_untiled(const torch::Tensor& x) const;  // encoder + quant_conv
  torch::Tensor decode_untiled(const torch::Tensor& z) const;  // post_quant_conv + decoder
  torch::Tensor spatial_tiled_encode(const torch::Tensor& x, const VaeTiling& t) const;
  torch::Tensor spatial_tiled_decode(const torch::Tensor& z, const VaeTiling& t) const;
  torch::Tensor temporal_tiled_encode(const torch::Tensor& x, const VaeTiling& t) const;
  torch::Tensor temporal_tiled_decode(const torch::Tensor& z, const VaeTiling& t) const;
  std::vector<torch::Tensor> parameters() const;
};

}  // namespace reel::hyavatar
