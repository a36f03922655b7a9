// The reference image as HunyuanVideo-Avatar's data loader (get_batch_data) prepares it:
//   1. reference_image_size(): scale = image_size / min(w, h); each side
//      round(side * scale / 64) * 64 (Python's round: half to even); at image_size 704
//      (the release setting) sides whose product exceeds 704 x 1216 are recomputed with
//      scale = sqrt(704 * 1216 / (w * h)). (The reference defines that long-side limit
//      only for 704; at other sizes no re-scaling is done.)
//   2. the RGB image LANCZOS-resized to that size with Pillow (ref_image_vae: uint8 HWC,
//      also the VAE's reference frame);
//   3. for LLaVA: that uint8 image Pillow-BILINEAR-resized to 336 x 336 (torchvision's
//      Resize on a PIL image), /255, normalised with CLIP's mean/std, rounded to float16
//      (the batch stores pixel_value_ref_llava as float16).
// pil_resize() reproduces Pillow 9's 8-bit resampling exactly: separable filters whose
// support grows with the downscale factor, coefficients normalised per output pixel and
// quantised to 22 fractional bits, horizontal pass then vertical pass, each rounded and
// clamped to uint8.
// Pure functions; reentrant.
#pragma once

#include <cstdint>
#include <utility>

#include <torch/torch.h>

namespace reel::hyavatar {

enum class PilFilter { kBilinear, kLanczos };

// image: uint8 [H, W, C] -> uint8 [out_h, out_w, C].
torch::Tensor pil_resize(const torch::Tensor& image, int64_t out_w, int64_t out_h, PilFilter filter);

// (width, height) of the reference image for an input of width w and height h.
std::pair<int64_t, int64_t> reference_image_size(int64_t w, int64_t h, int64_t image_size);

struct LlavaImageInputs {
  torch::Tensor ref_image;     // uint8 [h, w, 3], LANCZOS-resized
  torch::Tensor pixel_values;  // float16 [1, 3, S, S], S = the vision tower's image_size
};

// rgb: uint8 [H, W, 3] as read from the file.
LlavaImageInputs prepare_llava_image(const torch::Tensor& rgb, int64_t image_size, int64_t llava_size = 336);

}  // namespace reel::hyavatar
