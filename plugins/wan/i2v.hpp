// What Wan 2.1 image-to-video adds around the shared sampling loop (pipeline.hpp), as the
// reference's WanI2V.generate computes it: the output size from max_area and the image's
// aspect, the first-frame mask, and the conditioning `y` = concat(mask, VAE-encode(the
// image resized to the output size, then frames - 1 black frames)). The CLIP tokens come
// from clip_encoder.hpp; both go into DenoiseRequest's clip_fea / y, for both guidance
// branches. Pure functions of their inputs (the VAE is only read); thread-safe.
#pragma once

#include <cstdint>

#include <torch/torch.h>

#include "vae.hpp"

namespace reel::wan {

struct I2VSize {
  int64_t lat_h = 0, lat_w = 0;  // latent rows and columns (multiples of the patch)
  int64_t height = 0, width = 0; // output pixels: lat * vae_stride
};
// lat_h = round(sqrt(max_area * h / w) // vae_stride // patch * patch), lat_w likewise with
// w / h (floor divisions on doubles, as the reference's numpy does). Throws
// std::invalid_argument when the result is empty (max_area too small for the aspect).
I2VSize i2v_size(int64_t image_height, int64_t image_width, int64_t max_area, int64_t vae_stride = 8,
                 int64_t patch = 2);

// [4, F_lat, lat_h, lat_w]: 1 for the first pixel frame (repeated 4x, then folded into the
// 4 channels), 0 elsewhere; F_lat = (frames - 1) / temporal_factor + 1.
torch::Tensor i2v_mask(int64_t frames, int64_t lat_h, int64_t lat_w, int64_t temporal_factor = 4);

// image [3, H, W] in [-1, 1] -> y [4 + z_dim, F_lat, lat_h, lat_w] float32 on the VAE's
// device: the mask, then the normalised latent of (image bicubic-resized to size.height x
// size.width, align_corners false; then frames - 1 zero frames).
torch::Tensor i2v_condition(const WanVae& vae, const torch::Tensor& image, int64_t frames, const I2VSize& size);

}  // namespace reel::wan
