#include "face_mask.hpp"

#include <algorithm>
#include <cmath>

namespace reel::hyavatar {

torch::Tensor face_mask_pixels(const std::optional<FaceBox>& box, int height, int width, double area) {
  const FaceBox b = box.value_or(FaceBox{0, 0, static_cast<double>(width), static_cast<double>(height)});
  // The reference's arithmetic, step by step: Python's // on floats is floor division.
  const double x2 = b.x + b.w, y2 = b.y + b.h;
  const double ww = (x2 - b.x) * area, hh = (y2 - b.y) * area;
  const double cx = std::floor((x2 + b.x) / 2), cy = std::floor((y2 + b.y) / 2);
  const double left = std::max(cx - std::floor(ww / 2), 0.0);
  const double top = std::max(cy - std::floor(hh / 2), 0.0);
  const double right = std::min(cx + std::floor(ww / 2), static_cast<double>(width));
  const double bottom = std::min(cy + std::floor(hh / 2), static_cast<double>(height));
  auto mask = torch::zeros({height, width}, torch::kFloat32);
  // int() truncates towards zero; the bounds are non-negative here.
  const int64_t r0 = static_cast<int64_t>(top), r1 = static_cast<int64_t>(bottom);
  const int64_t c0 = static_cast<int64_t>(left), c1 = static_cast<int64_t>(right);
  if (r1 > r0 && c1 > c0) mask.slice(0, r0, r1).slice(1, c0, c1).fill_(1.0);
  return mask;
}

torch::Tensor face_mask_latent(const torch::Tensor& pixels, int latent_height, int latent_width) {
  namespace F = torch::nn::functional;
  auto resized = F::interpolate(pixels.to(torch::kFloat32).unsqueeze(0).unsqueeze(0),
                                F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{latent_height, latent_width})
                                    .mode(torch::kBilinear)
                                    .align_corners(false));
  return resized.squeeze(0).squeeze(0);
}

}  // namespace reel::hyavatar
