// Image-to-video conditioning; see i2v.hpp. Follows wan/image2video.py (WanI2V.generate).
#include "i2v.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace reel::wan {

namespace F = torch::nn::functional;

I2VSize i2v_size(int64_t image_height, int64_t image_width, int64_t max_area, int64_t vae_stride, int64_t patch) {
  if (image_height <= 0 || image_width <= 0 || max_area <= 0)
    throw std::invalid_argument("image size and max_area must be positive");
  const double aspect = static_cast<double>(image_height) / static_cast<double>(image_width);
  auto latent = [&](double side) {
    return static_cast<int64_t>(std::round(std::floor(std::floor(side / vae_stride) / patch) * patch));
  };
  I2VSize s;
  s.lat_h = latent(std::sqrt(static_cast<double>(max_area) * aspect));
  s.lat_w = latent(std::sqrt(static_cast<double>(max_area) / aspect));
  if (s.lat_h <= 0 || s.lat_w <= 0)
    throw std::invalid_argument("max_area " + std::to_string(max_area) + " is too small for a " +
                                std::to_string(image_width) + "x" + std::to_string(image_height) +
                                " image: raise max_area");
  s.height = s.lat_h * vae_stride;
  s.width = s.lat_w * vae_stride;
  return s;
}

torch::Tensor i2v_mask(int64_t frames, int64_t lat_h, int64_t lat_w, int64_t temporal_factor) {
  auto msk = torch::ones({1, frames, lat_h, lat_w});
  msk.slice(1, 1).zero_();
  msk = torch::cat({msk.slice(1, 0, 1).repeat_interleave(temporal_factor, 1), msk.slice(1, 1)}, 1);
  msk = msk.view({1, msk.size(1) / temporal_factor, temporal_factor, lat_h, lat_w});
  return msk.transpose(1, 2)[0].contiguous();
}

torch::Tensor i2v_condition(const WanVae& vae, const torch::Tensor& image, int64_t frames, const I2VSize& size) {
  torch::NoGradGuard no_grad;
  if (image.dim() != 3 || image.size(0) != 3)
    throw std::invalid_argument("i2v image must be [3, H, W], got " + std::to_string(image.dim()) + " dimensions");
  // The reference resizes on the CPU in float32.
  torch::Tensor first = F::interpolate(image.to(torch::kCPU, torch::kFloat32).unsqueeze(0),
                                       F::InterpolateFuncOptions()
                                           .size(std::vector<int64_t>{size.height, size.width})
                                           .mode(torch::kBicubic)
                                           .align_corners(false));
  torch::Tensor video = torch::cat({first.transpose(0, 1), torch::zeros({3, frames - 1, size.height, size.width})}, 1);
  torch::Tensor latent = vae.encode(video);
  torch::Tensor msk = i2v_mask(frames, size.lat_h, size.lat_w, vae.temporal_factor()).to(latent.device());
  return torch::cat({msk, latent.to(torch::kFloat32)}, 0);
}

}  // namespace reel::wan
