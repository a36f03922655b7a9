// Where the face is, for the Avatar DiT's face-masked audio attention: a face box
// (from the detector, face_detector.hpp) becomes a 0/1 mask over the reference image,
// enlarged around its centre as the reference's get_facemask does (area 3.0 in
// inference), then bilinearly resized to the latent grid the DiT sees.
// Pure functions; reentrant.
#pragma once

#include <optional>

#include <torch/torch.h>

namespace reel::hyavatar {

// A box in image pixels: top-left corner and size (x, y, w, h), as the detector reports.
struct FaceBox {
  double x = 0, y = 0, w = 0, h = 0;
};

constexpr double kFaceMaskArea = 3.0;   // the reference's inference setting

// The mask over a height x width image, float32 [height, width] of 0 and 1: the box
// scaled by `area` about its centre (the reference's floor divisions and int()
// truncations kept), clipped to the image. No box (no face found): the whole image,
// as the reference falls back to.
torch::Tensor face_mask_pixels(const std::optional<FaceBox>& box, int height, int width, double area = kFaceMaskArea);

// The pixel mask bilinearly resized (align_corners false) to the latent grid:
// float32 [latent_height, latent_width].
torch::Tensor face_mask_latent(const torch::Tensor& pixels, int latent_height, int latent_width);

}  // namespace reel::hyavatar
