// Text-to-video with Wan 2.1, as the reference's WanT2V.generate does it: encode the
// prompt and the negative prompt with UMT5, denoise the latent noise with the DiT under
// classifier-free guidance (uncond + g * (cond - uncond)) stepping a flow-matching
// sampler, then decode with the VAE. Components are loaded by the caller (so rungs can
// place each one where they like); this file only sequences them.
// Not thread-safe: one generation at a time per set of components.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <torch/torch.h>

#include "dit_runner.hpp"
#include "sampler.hpp"

namespace reel::wan {

struct DenoiseRequest {
  torch::Tensor noise;          // [z_dim, F_lat, H_lat, W_lat] float32: the starting latent
  torch::Tensor context;        // [L, text_dim]: the prompt's T5 output rows
  torch::Tensor negative;       // [L', text_dim]: the negative prompt's
  // i2v only (undefined for t2v), given to both guidance branches: the CLIP image tokens
  // [1, L_img, img_dim] and the conditioning y [4 + z_dim, F_lat, H_lat, W_lat] (i2v.hpp).
  torch::Tensor clip_fea, y;
  int64_t steps = 50;
  double shift = 5.0;
  double guide_scale = 5.0;
  std::string solver = "unipc"; // "unipc" or "euler"
};

// Called after every step with the latent; return false to stop (cancellation).
using StepHook = std::function<bool(int64_t step, int64_t total, const torch::Tensor& latent)>;

// The latent shape the reference uses for a video of this size: 1 + (frames - 1) / 4
// latent frames of (height / 8) x (width / 8), with the VAE's factors.
std::vector<int64_t> latent_shape(int64_t z_dim, int64_t frames, int64_t height, int64_t width,
                                  int64_t temporal_factor, int64_t spatial_factor);
// The DiT's sequence length for a latent shape (tokens after patching).
int64_t sequence_length(const DiTConfig& cfg, const std::vector<int64_t>& latent_shape);

// Runs the sampling loop on the runner's device; returns the final latent (float32, on that
// device). Throws std::runtime_error("cancelled") when the hook returns false.
torch::Tensor denoise(DiTRunner& dit, const DenoiseRequest& request, const StepHook& hook = {});

}  // namespace reel::wan
