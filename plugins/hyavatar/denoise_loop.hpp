// The Avatar sampling loop (HunyuanVideoAudioPipeline.__call__'s denoising part): every
// step runs the DiT once per window of latent frames with both CFG halves in one batch,
// combines them with the phase's guidance, takes the Euler step, rounds the window's
// latents to bf16 and averages frames that two windows covered; steps the reference
// caches reuse the tokens saved by the last uncached step. The schedules come from
// sampler_schedule.hpp; the DiT is passed in as a function, so this file knows the
// DiT's inputs and outputs but not its weights or placement (block swap, one CFG
// branch at a time and the like are the DiT runner's business).
// Thread-safety: denoise() is reentrant; the DiT function decides for itself.
#pragma once

#include <functional>

#include <torch/torch.h>

#include "sampler_schedule.hpp"

namespace reel::hyavatar {

// One CFG-batched DiT call: batch 2, [unconditional, conditional].
struct DitCall {
  torch::Tensor x;                 // [2, C, window frames, h, w]
  torch::Tensor t;                 // [2] timesteps
  torch::Tensor ref_latents;       // [2, C, Fr, h, w]
  torch::Tensor text_states;       // [2, L, D]
  torch::Tensor text_mask;         // [2, L]
  torch::Tensor text_states_2;     // [2, D2]
  torch::Tensor audio_prompts;     // [2, 4*window-3, ...] the window's audio features
  torch::Tensor face_mask;         // [2, 1, 1, h, w]
  torch::Tensor motion_exp, motion_pose, fps;   // batch 2
  // Cached step: the input of the last single-stream block restored from the cache
  // ([2, ref tokens + image tokens + text tokens, hidden]); undefined on full steps.
  torch::Tensor cache_in;
};
struct DitResult {
  torch::Tensor x;           // [2, C, window frames, h, w]: the predicted velocity
  torch::Tensor cache_out;   // full steps: the input of the last single-stream block
};
using DitFn = std::function<DitResult(const DitCall&)>;

// What the encoders and the reference image give the loop (batch 1 each).
struct AvatarConditions {
  torch::Tensor prompt_embeds, prompt_mask;                    // [1, L, D], [1, L]
  torch::Tensor negative_prompt_embeds, negative_prompt_mask;  // same shapes
  torch::Tensor prompt_embeds_2, negative_prompt_embeds_2;     // [1, D2]
  torch::Tensor ref_latents;        // [1, C, Fr, h, w], already scaled by the VAE's factor
  torch::Tensor audio_prompts;      // [1, n, ...]: n audio frames (padded to at least 4*W-3: 129)
  torch::Tensor uncond_audio_prompts;   // zeros shaped like one window's audio: [1, 4*W-3, ...]
  torch::Tensor face_mask;          // [1, 1, 1, h, w] on the latent grid
  torch::Tensor motion_exp, motion_pose, fps;   // [1, ...]
};

struct SamplerSettings {
  int steps = 50;
  double shift = 5.0;
  double cfg_scale = 7.5;
  bool step_cache = true;   // the reference's "deepcache"; false runs the DiT every step
  // Latent frames per DiT call (plan_windows' W). The reference's 33 by default; a
  // smaller window needs less memory per call (reel's memory ladder). The conditions'
  // uncond_audio_prompts must then have 4*window - 3 frames (uncond_audio_prompts(p, 4*W-3)).
  int window = kFramesPerWindow;
};

// Called after every step with the step index and the whole latent sequence.
using StepObserver = std::function<void(int step, const torch::Tensor& latents_all)>;

// `noise`: [1, C, plan.noise_frames, h, w] with plan = plan_windows(n, settings.window).
// Returns the final latents [1, C, plan.video_latent_frames, h, w] (not yet divided by the
// VAE's scaling factor). Throws std::invalid_argument for a wrongly shaped noise or
// unconditional audio, or a window below 2.
torch::Tensor denoise(const DitFn& dit, const AvatarConditions& conditions, const torch::Tensor& noise,
                      const SamplerSettings& settings, const StepObserver& on_step = {});

}  // namespace reel::hyavatar
