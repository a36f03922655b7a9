// The Wan 2.1 causal 3D VAE (wan/modules/vae.py: WanVAE_ with Encoder3d / Decoder3d),
// as the reference's WanVAE wrapper runs it: encode() returns the normalised posterior
// mean, decode() takes a normalised latent and returns a video clamped to [-1, 1].
//
// Structure (all sizes inferred from the checkpoint's tensor shapes, see infer_config):
// causal 3D convolutions (time padded on the past side only), RMS norms over channels,
// residual blocks, single-head spatial self-attention per frame, and Resample blocks that
// halve/double H and W and, where temperal_downsample says so, halve/double time with a
// (3,1,1) "time_conv". The encoder reduces time 1+4k -> 1+k and space by 8; the decoder
// inverts that: [z_dim, F, H, W] -> [3, 1+4(F-1), 8H, 8W].
//
// Like the reference, both directions run chunk by chunk with a per-layer causal cache of
// the last CACHE_T = 2 input frames of every temporal convolution (encode: the first frame,
// then chunks of 4 frames; decode: one latent frame at a time). The time-resampling layers
// treat the first frame specially (it passes through without time_conv), so the chunking
// is part of the model's definition and is reproduced exactly, not just as a memory saving.
//
// Latent normalisation: encode returns (mu - mean) * (1 / std), decode first computes
// z / (1 / std) + mean, with the same float32 reciprocal as the reference. mean/std are not
// in the checkpoint: the reference hard-codes a 16-entry table for Wan 2.1 in its WanVAE
// class (wan/modules/vae.py), so the caller passes them to load() (golden.json's
// vae_mean / vae_std hold the same values).
//
// Invariants: float32 (weights stored in other float types are upcast at load), on the CPU
// unless moved with to();
// inputs are unbatched ([C, T, H, W]); evaluation runs under NoGradGuard.
// Thread-safety: a loaded WanVae is immutable; encode/decode/decode_tiled keep their
// caches on the stack and may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "tensorio/weights.hpp"

namespace reel::wan {

// The WanVAE_ constructor arguments (reference spelling kept for temperal_downsample).
struct VaeConfig {
  int64_t dim = 0;                        // base channel width (96 in the release)
  int64_t z_dim = 0;                      // latent channels (16)
  std::vector<int64_t> dim_mult;          // per-stage width multipliers ([1, 2, 4, 4])
  int64_t num_res_blocks = 0;             // residual blocks per encoder stage (decoder: +1)
  std::vector<double> attn_scales;        // spatial scales (1, 1/2, ...) with attention blocks
  std::vector<bool> temperal_downsample;  // per encoder resample: also halve time ([F, T, T])
};

class WanVae {
 public:
  // Reads the torch.save'd state_dict at `pth_path` (tensorio::load_pth) and calls load().
  static WanVae load_file(const std::string& pth_path, const std::vector<float>& mean,
                          const std::vector<float>& std);
  // Builds the VAE from `w` (published key names: encoder.*, conv1.*, conv2.*, decoder.*).
  // mean/std: the latent normalisation tables (z_dim entries each), see above. Throws
  // tensorio::WeightError naming the file and tensor when one is missing or mis-shaped,
  // std::invalid_argument when mean/std do not have z_dim entries.
  static WanVae load(const tensorio::Weights& w, const std::vector<float>& mean,
                     const std::vector<float>& std);
  // The constructor arguments, from key presence and tensor shapes alone.
  static VaeConfig infer_config(const tensorio::Weights& w);

  // video [3, T, H, W] in [-1, 1] -> normalised latent mean [z_dim, 1 + (T-1)/4, H/8, W/8]
  // (for the release's three spatial and two temporal halvings).
  torch::Tensor encode(const torch::Tensor& video) const;
  // normalised latent [z_dim, F, H, W] -> video [3, 1 + 4(F-1), 8H, 8W], clamped to [-1, 1].
  torch::Tensor decode(const torch::Tensor& latent) const;
  // decode() in spatial tiles of `tile` x `tile` latent pixels, neighbours overlapping by
  // `overlap` latent pixels (0 <= overlap < tile); the last tile of a row/column is moved
  // back to end at the border, so every tile has the full size (or the whole axis when it
  // is shorter). Each tile keeps its own temporal causal cache and is decoded frame by frame
  // like decode(); outputs are cross-faded linearly over the overlaps (normalised weights)
  // and clamped afterwards. With one tile covering the latent the result equals decode()
  // exactly. Tiling changes results slightly: the convolutions see zero padding at tile
  // borders, and the attention in the middle block sees only the tile.
  torch::Tensor decode_tiled(const torch::Tensor& latent, int64_t tile, int64_t overlap) const;

  // A copy with its weights on `device`; encode/decode then run there (inputs are moved
  // to it, outputs stay on it).
  WanVae to(const torch::Device& device) const;
  torch::Device device() const;
  int64_t bytes() const;  // weight bytes

  const VaeConfig& config() const;
  int64_t spatial_factor() const;   // 2^(len(dim_mult) - 1): 8 for the release
  int64_t temporal_factor() const;  // 2^(number of temporal halvings): 4 for the release

  struct Impl;  // the layers (vae.cpp)

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace reel::wan
