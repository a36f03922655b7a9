#include "denoise_loop.hpp"

#include <stdexcept>
#include <string>

namespace reel::hyavatar {

namespace {

// On the indexed tensor's device: CUDA index_select and index_add_ take no CPU indices.
torch::Tensor indices(const std::vector<int>& v, const torch::Device& device) {
  return torch::tensor(std::vector<int64_t>(v.begin(), v.end()), torch::kInt64).to(device);
}
torch::Tensor both(const torch::Tensor& t) { return torch::cat({t, t}, 0); }

// The reference's step cache: per latent frame, the reference-image tokens, that
// frame's image tokens and the text tokens, as the last uncached step that covered the
// frame left them ([2, frames, tokens, hidden] each).
struct StepCache {
  torch::Tensor ref, img, txt;

  void store(const torch::Tensor& cache_out, const torch::Tensor& idx, int64_t img_len, int64_t frames_all) {
    const int64_t batch = cache_out.size(0), hidden = cache_out.size(2), window = idx.size(0);
    const int64_t ref_len = img_len / window;
    const int64_t txt_len = cache_out.size(1) - ref_len - img_len;
    if (!ref.defined()) {
      auto opts = cache_out.options();
      ref = torch::zeros({batch, frames_all, ref_len, hidden}, opts);
      img = torch::zeros({batch, frames_all, img_len / window, hidden}, opts);
      txt = torch::zeros({batch, frames_all, txt_len, hidden}, opts);
    }
    ref.index_put_({torch::indexing::Slice(), idx},
                   cache_out.slice(1, 0, ref_len).reshape({batch, 1, -1, hidden}).expand({batch, window, ref_len, hidden}));
    img.index_put_({torch::indexing::Slice(), idx},
                   cache_out.slice(1, ref_len, ref_len + img_len).reshape({batch, window, -1, hidden}));
    txt.index_put_({torch::indexing::Slice(), idx},
                   cache_out.slice(1, ref_len + img_len).unsqueeze(1).expand({batch, window, txt_len, hidden}));
  }

  // Ref and text tokens from the window's FIRST frame's slot, image tokens per frame.
  torch::Tensor restore(const torch::Tensor& idx) const {
    const int64_t batch = img.size(0), hidden = img.size(3);
    const int64_t first = idx[0].item<int64_t>();
    auto ref_tokens = ref.select(1, first);
    auto img_tokens = img.index({torch::indexing::Slice(), idx}).reshape({batch, -1, hidden});
    auto txt_tokens = txt.select(1, first);
    return torch::cat({ref_tokens, img_tokens, txt_tokens}, 1);
  }
};

}  // namespace

torch::Tensor denoise(const DitFn& dit, const AvatarConditions& c, const torch::Tensor& noise,
                      const SamplerSettings& s, const StepObserver& on_step) {
  const int64_t audio_frames = c.audio_prompts.size(1);
  const WindowPlan plan = plan_windows(static_cast<int>(audio_frames), s.window);
  if (noise.dim() != 5 || noise.size(2) != plan.noise_frames)
    throw std::invalid_argument("the initial noise must be [1, C, " + std::to_string(plan.noise_frames) +
                                ", h, w] for " + std::to_string(audio_frames) + " audio frames and windows of " +
                                std::to_string(plan.window) + " latent frames, got " + c10::str(noise.sizes()));
  const int64_t window_audio = 4 * plan.window - 3;
  if (c.uncond_audio_prompts.dim() < 2 || c.uncond_audio_prompts.size(1) != window_audio)
    throw std::invalid_argument("the unconditional audio prompts must have one window's " +
                                std::to_string(window_audio) + " audio frames (4 * " + std::to_string(plan.window) +
                                " - 3; uncond_audio_prompts(prompts, " + std::to_string(window_audio) + ")), got " +
                                c10::str(c.uncond_audio_prompts.sizes()));
  const FlowSchedule schedule = flow_schedule(s.steps, s.shift);

  // Audio padded with silence so windows that run past the end (or wrap) read zeros:
  // (n/V + 1)*V + 4 frames with V = 4*(W-1), the reference's (n/128 + 1)*128 + 4.
  const int64_t stride = window_video_stride(plan.window);
  const int64_t pad_to = (audio_frames / stride + 1) * stride + 4;
  auto silence_shape = c.audio_prompts.sizes().vec();
  silence_shape[1] = pad_to - audio_frames;
  auto audio_all = torch::cat({c.audio_prompts, torch::zeros(silence_shape, c.audio_prompts.options())}, 1)
                       .slice(1, 0, plan.padded_audio_frames);
  auto latents_all = noise.slice(2, 0, plan.infer_length).clone();

  const auto ref_latents = both(c.ref_latents);
  const auto motion_exp = both(c.motion_exp), motion_pose = both(c.motion_pose), fps = both(c.fps);
  StepCache cache;
  int shift = 0;
  for (int i = 0; i < s.steps; ++i) {
    const Guidance g = guidance_at(i, s.steps, s.cfg_scale);
    const bool cached = s.step_cache && is_cached_step(i);
    auto pred = torch::zeros_like(latents_all);
    auto counter = torch::zeros({1, 1, plan.infer_length, 1, 1}, latents_all.options());
    const float sigma = schedule.sigmas[static_cast<size_t>(i)];
    const float sigma_next = schedule.sigmas[static_cast<size_t>(i) + 1];
    for (const Window& w : windows_at(plan, shift)) {
      const auto idx = indices(w.latent_frames, latents_all.device());
      auto latents = latents_all.index_select(2, idx);
      DitCall call;
      call.x = both(latents);
      call.t = torch::full({2}, schedule.timesteps[static_cast<size_t>(i)], torch::kFloat32);
      call.ref_latents = ref_latents;
      if (g.negative_prompt) {
        call.text_states = torch::cat({c.negative_prompt_embeds, c.prompt_embeds}, 0);
        call.text_mask = torch::cat({c.negative_prompt_mask, c.prompt_mask}, 0);
        call.text_states_2 = torch::cat({c.negative_prompt_embeds_2, c.prompt_embeds_2}, 0);
      } else {
        call.text_states = both(c.prompt_embeds);
        call.text_mask = both(c.prompt_mask);
        call.text_states_2 = both(c.prompt_embeds_2);
      }
      call.audio_prompts = torch::cat({c.uncond_audio_prompts, audio_all.index_select(1, indices(w.audio_frames, audio_all.device()))}, 0);
      call.face_mask = both(c.face_mask * g.face_mask_scale);
      call.motion_exp = motion_exp;
      call.motion_pose = motion_pose;
      call.fps = fps;
      const int64_t img_len = latents.size(2) * (latents.size(3) / 2) * (latents.size(4) / 2);
      if (cached) {
        if (!cache.ref.defined()) throw std::logic_error("a cached step before any uncached one");
        call.cache_in = cache.restore(idx);
      }
      DitResult r = dit(call);
      if (!cached) cache.store(r.cache_out, idx, img_len, plan.infer_length);
      auto halves = r.x.chunk(2, 0);
      auto velocity = halves[0] + g.scale * (halves[1] - halves[0]);
      auto stepped = (latents + velocity * (sigma_next - sigma)).to(torch::kBFloat16);
      // index_add_ sums repeated indices, as the reference's per-frame += does.
      pred.index_add_(2, idx, stepped.to(pred.scalar_type()));
      counter.index_add_(2, idx, torch::ones({1, 1, idx.size(0), 1, 1}, counter.options()));
    }
    latents_all = pred / counter;
    shift = next_shift(plan, shift);
    if (on_step) on_step(i, latents_all);
  }
  return latents_all.slice(2, 0, plan.video_latent_frames);
}

}  // namespace reel::hyavatar
