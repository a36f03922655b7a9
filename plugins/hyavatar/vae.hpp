// HunyuanVideo-Avatar's causal 3D VAE (hymm_sp/vae: AutoencoderKLCausal3D with
// EncoderCausal3D / DecoderCausal3D), evaluated as the reference evaluates it, including
// its spatial and temporal tiling.
//
// Structure (every size from vae/config.json): causal 3D convolutions (replicate padding,
// time padded on the past side only), GroupNorm + SiLU residual blocks, strided causal
// convolutions to downsample (time halved in the blocks the time_compression_ratio rule
// picks), nearest-neighbour upsampling that keeps the first frame's time step single, and
// one single-head self-attention over all T*H*W positions in each middle block. The
// encoder maps video [B, 3, 1+4k, 8h, 8w] to moments [B, 2*latent, 1+k, h, w] (after
// quant_conv); the decoder maps latent [B, latent, 1+k, h, w] to [B, 3, 1+4k, 8h, 8w].
//
// Latent scale: like vae.encode / vae.decode, latents here are UNSCALED. The pipeline
// multiplies encoder samples by config().scaling_factor and divides DiT latents by it
// before decode(); the caller does that.
//
// Tiling (VaeTiling): the reference's enable_tiling() behaviour, tile starts, in-place
// linear blends (blend_v, then blend_h, blend_t) and crops reproduced exactly; it changes
// the numbers (tiles see their own borders and attention only within the tile), so it
// is part of what the pipeline computes, not only a memory saving. The port decodes and
// blends one tile at a time and keeps only the tiles a later blend still reads.
// Memory: intermediates are released as soon as they are consumed, convolutions over
// large inputs pad and convolve a run of frames at a time (no whole padded copy), and
// the middle block's attention takes its queries in chunks (scores stay ~256 MiB).
//
// Invariants: weights float32 (upcast at load), on the CPU unless moved with to();
// inputs are 5-D [B, C, T, H, W]; evaluation runs under NoGradGuard.
// Thread-safety: a loaded HyVae is immutable; encode/decode may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "tensorio/weights.hpp"

namespace reel::hyavatar {

// AutoencoderKLCausal3D constructor arguments, read from vae/config.json (official keys).
// Keys the official config leaves out take the constructor's defaults.
struct VaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  std::vector<std::string> down_block_types;  // each "DownEncoderBlockCausal3D"
  std::vector<std::string> up_block_types;    // each "UpDecoderBlockCausal3D"
  std::vector<int64_t> block_out_channels;
  int64_t layers_per_block = 1;   // encoder resnets per block; decoder uses one more
  std::string act_fn = "silu";
  int64_t latent_channels = 4;
  int64_t norm_num_groups = 32;
  int64_t sample_size = 32;       // pixel tile edge for spatial tiling
  int64_t sample_tsize = 64;      // pixel tile length for temporal tiling
  double scaling_factor = 0.18215;
  int64_t spatial_compression_ratio = 8;
  int64_t time_compression_ratio = 4;  // 4 or 8 (the reference's two layouts)
  bool disable_causal_conv = false;
  bool mid_block_add_attention = true;
  bool mid_block_causal_attn = false;

  // Parses config.json; throws std::runtime_error naming the file for unreadable JSON,
  // std::invalid_argument for values the reference would reject (unknown block or
  // activation type, block lists not matching block_out_channels, ratio not 4/8).
  static VaeConfig from_json_file(const std::string& path);
};

// The reference's tiling switches and sizes (enable_tiling() turns both switches on).
// A memory ladder may pick smaller tiles; reference() gives the numbers the pipeline uses.
struct VaeTiling {
  bool spatial = false;                // use_spatial_tiling
  bool temporal = false;               // use_temporal_tiling
  int64_t tile_sample_min_size = 0;    // pixel tile edge (config sample_size)
  int64_t tile_latent_min_size = 0;    // latent tile edge (sample_size / 2^(blocks-1))
  int64_t tile_sample_min_tsize = 0;   // pixel frames per tile (config sample_tsize), +1 taken
  int64_t tile_latent_min_tsize = 0;   // latent frames per tile (sample_tsize / time ratio), +1 taken
  double tile_overlap_factor = 0.25;   // hard-coded in the reference constructor

  static VaeTiling none(const VaeConfig& c);       // sizes filled, both switches off
  static VaeTiling reference(const VaeConfig& c);  // vae.enable_tiling()
  // Throws std::invalid_argument when a switched-on tiling has sizes that give no
  // forward progress (stride 0) or an empty crop.
  void validate() const;
};

// DiagonalGaussianDistribution over the latent: moments split on channels.
struct VaePosterior {
  torch::Tensor mean;    // [B, latent, T, H, W]
  torch::Tensor logvar;  // clamped to [-30, 20] like the reference
  torch::Tensor std() const;  // exp(0.5 * logvar)
  // mean + std * noise (noise: standard normal of mean's shape, drawn by the caller:
  // LibTorch's generator is not Python's, so the caller owns the randomness).
  torch::Tensor sample(const torch::Tensor& noise) const;
  static VaePosterior from_moments(const torch::Tensor& moments);
};

// The official loader's key handling (hymm_sp/vae/__init__.py load_vae) applied to a
// torch.save'd checkpoint read with tensorio::load_pth: a {"state_dict": ...} wrapper is
// unwrapped (only its tensors kept) and every "vae." in a key is removed.
tensorio::Weights vae_checkpoint_weights(tensorio::TensorMap raw, const std::string& source);

class HyVae {
 public:
  // `root` holds vae/config.json and vae/pytorch_model.pt (the official layout); `root`
  // may also be that vae/ folder itself. The checkpoint may be a bare state_dict,
  // {"state_dict": ...}, and keys may carry a "vae." prefix (all as load_vae accepts).
  static HyVae load(const std::string& root);
  // Builds from already read weights (published key names, prefixes stripped).
  // Keys are checked strictly: one tensorio::WeightError names every missing,
  // mis-shaped and unexpected tensor and the checkpoint file.
  static HyVae load(const tensorio::Weights& w, const VaeConfig& config);

  // vae.encode(video).latent_dist: video [B, in, T, H, W] in [-1, 1].
  VaePosterior encode(const torch::Tensor& video, const VaeTiling& tiling) const;
  VaePosterior encode(const torch::Tensor& video) const;  // untiled
  // The encoder + quant_conv output [B, 2*latent, ...] (mean, then unclamped logvar).
  torch::Tensor encode_moments(const torch::Tensor& video, const VaeTiling& tiling) const;
  // vae.decode(z)[0]: unscaled latent [B, latent, T, h, w] -> raw video (not clamped).
  torch::Tensor decode(const torch::Tensor& latent, const VaeTiling& tiling) const;
  torch::Tensor decode(const torch::Tensor& latent) const;  // untiled

  // A copy with weights on `device`; inputs are moved there, outputs stay there.
  HyVae to(const torch::Device& device) const;
  torch::Device device() const;
  int64_t bytes() const;  // weight bytes

  const VaeConfig& config() const;

  struct Impl;  // the layers (vae_blocks.hpp)

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace reel::hyavatar
