#include "pipeline.hpp"

#include <memory>
#include <stdexcept>

namespace reel::wan {

std::vector<int64_t> latent_shape(int64_t z_dim, int64_t frames, int64_t height, int64_t width,
                                  int64_t temporal_factor, int64_t spatial_factor) {
  if (frames < 1 || (frames - 1) % temporal_factor != 0)
    throw std::invalid_argument("frames must be " + std::to_string(temporal_factor) + "n+1, got " +
                                std::to_string(frames));
  if (height % spatial_factor != 0 || width % spatial_factor != 0)
    throw std::invalid_argument("width and height must be multiples of " + std::to_string(spatial_factor));
  return {z_dim, (frames - 1) / temporal_factor + 1, height / spatial_factor, width / spatial_factor};
}

int64_t sequence_length(const DiTConfig& cfg, const std::vector<int64_t>& s) {
  // The reference rounds up: ceil(H*W / (ph*pw) * F / pf).
  const int64_t pf = cfg.patch_size[0], ph = cfg.patch_size[1], pw = cfg.patch_size[2];
  return ((s[1] + pf - 1) / pf) * ((s[2] + ph - 1) / ph) * ((s[3] + pw - 1) / pw);
}

torch::Tensor denoise(DiTRunner& dit, const DenoiseRequest& r, const StepHook& hook) {
  torch::NoGradGuard no_grad;
  std::unique_ptr<FlowSampler> sampler;
  if (r.solver == "unipc") sampler = std::make_unique<FlowUniPCSampler>();
  else if (r.solver == "euler") sampler = std::make_unique<FlowEulerSampler>();
  else throw std::invalid_argument("unknown sampler '" + r.solver + "' (unipc or euler)");
  sampler->set_timesteps(r.steps, r.shift);

  std::vector<int64_t> shape(r.noise.sizes().begin(), r.noise.sizes().end());
  const int64_t seq_len = sequence_length(dit.config(), shape);
  torch::Tensor latent = r.noise.to(dit.device(), torch::kFloat32);
  const auto& timesteps = sampler->timesteps();
  const int64_t n = timesteps.size(0);
  for (int64_t i = 0; i < n; ++i) {
    torch::Tensor t = timesteps[i].reshape({1}).to(dit.device(), torch::kFloat32);
    auto [cond, uncond] = dit.forward_pair(latent, t, r.context, r.negative, seq_len, r.clip_fea, r.y);
    latent = sampler->step(cfg_combine(cond, uncond, r.guide_scale), i, latent);
    if (hook && !hook(i + 1, n, latent)) throw std::runtime_error("cancelled");
  }
  return latent;
}

}  // namespace reel::wan
