#include "reference_latents.hpp"

#include <stdexcept>

namespace reel::hyavatar {

namespace {
// One float16 operation as the reference's CPU/GPU kernels do it: computed wider, rounded.
torch::Tensor to_half_precision(const torch::Tensor& x) { return x.to(torch::kHalf).to(torch::kFloat32); }
}  // namespace

torch::Tensor vae_input_from_image(const torch::Tensor& rgb, int64_t frames) {
  if (rgb.dim() != 3 || rgb.size(2) != 3 || rgb.scalar_type() != torch::kUInt8)
    throw std::invalid_argument("the reference image must be uint8 [h, w, 3]");
  auto pixels = rgb.permute({2, 0, 1}).to(torch::kFloat32);          // exact in float16 too
  auto scaled = to_half_precision(to_half_precision(pixels / 127.5) - 1);
  return scaled.unsqueeze(0).unsqueeze(2).expand({1, 3, frames, rgb.size(0), rgb.size(1)}).contiguous();
}

ReferenceLatents reference_latents(const HyVae& vae, const torch::Tensor& rgb, const torch::Tensor& noise,
                                   int64_t frames) {
  ReferenceLatents out;
  out.posterior = vae.encode(vae_input_from_image(rgb, frames), VaeTiling::reference(vae.config()));
  if (noise.sizes() != out.posterior.mean.sizes())
    throw std::invalid_argument("the reference latents' noise must have the posterior's shape");
  out.latents = out.posterior.sample(noise) * vae.config().scaling_factor;
  return out;
}

}  // namespace reel::hyavatar
