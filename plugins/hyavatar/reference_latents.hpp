// The reference image's latents, as HunyuanVideoSampler.predict makes them: the prepared
// reference image (llava_image.hpp's ref_image) mapped to [-1, 1] in float16 arithmetic
// (pixel / 127.5 - 1, each operation rounded to float16 as the reference's fp16 tensors
// are), repeated over the 129 video frames of a window, VAE-encoded with the reference's
// tiling, the posterior sampled with the caller's noise, and scaled by the VAE's factor.
// The DiT takes them as `ref_latents`. Pure functions of their inputs; reentrant.
#pragma once

#include <torch/torch.h>

#include "vae.hpp"

namespace reel::hyavatar {

// The reference's window length in video frames (33 latent frames).
constexpr int64_t kReferenceVideoFrames = 129;

// rgb: uint8 [h, w, 3] -> float32 [1, 3, frames, h, w] holding float16-rounded values.
torch::Tensor vae_input_from_image(const torch::Tensor& rgb, int64_t frames = kReferenceVideoFrames);

struct ReferenceLatents {
  VaePosterior posterior;   // unscaled
  torch::Tensor latents;    // (mean + std * noise) * scaling_factor: [1, C, T, h/8, w/8]
};
// `noise`: standard normal shaped like the posterior's mean (the caller owns the
// randomness, so runs are reproducible from a seed).
ReferenceLatents reference_latents(const HyVae& vae, const torch::Tensor& rgb, const torch::Tensor& noise,
                                   int64_t frames = kReferenceVideoFrames);

}  // namespace reel::hyavatar
