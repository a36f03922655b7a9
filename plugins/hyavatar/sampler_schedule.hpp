// The HunyuanVideo-Avatar sampler's schedules, as the reference pipeline
// (HunyuanVideoAudioPipeline.__call__) computes them: flow-matching sigmas with shift,
// the two guidance phases, the steps whose DiT call is replaced by the step cache, and
// the 33-latent-frame windows that cover long audio with wrap-around and a shift that
// moves every step. Pure functions of sizes and step indices; the tensor work that
// uses them lives in the pipeline. Thread-safety: all functions are reentrant.
#pragma once

#include <vector>

namespace reel::hyavatar {

// Flow matching, Euler, reversed (FlowMatchDiscreteScheduler as the reference sets it):
// sigmas = linspace(1, 0, steps + 1) in float32, warped to shift*s / (1 + (shift-1)*s);
// timesteps = sigmas[:-1] * 1000. A step moves x to x + v * (sigmas[i+1] - sigmas[i]),
// and every window takes the full step from sigmas[i] (the reference resets its step
// index before each window).
struct FlowSchedule {
  std::vector<float> sigmas;     // steps + 1, from 1 down to 0
  std::vector<float> timesteps;  // steps
};
FlowSchedule flow_schedule(int steps, double shift);

// Classifier-free guidance. Steps before kSecondGuidancePhase: the unconditional half
// gets the negative prompt, silent audio and the face mask scaled by 0.6, and the scale
// falls linearly from cfg_scale towards 2. From then on both halves get the POSITIVE
// prompt (only the audio differs), the full face mask, and the scale falls from 6.5
// towards 3.5 whatever cfg_scale is. noise = uncond + scale * (cond - uncond).
constexpr int kSecondGuidancePhase = 10;
struct Guidance {
  int phase = 1;                 // 1 or 2
  double scale = 0;
  bool negative_prompt = true;   // whether the unconditional half gets the negative prompt
  double face_mask_scale = 0.6;
};
Guidance guidance_at(int step, int steps, double cfg_scale);

// The step cache ("deepcache"): on a cached step the DiT runs only its embeddings, the
// last single-stream block and the final layer, restoring the other tokens from the
// last uncached step. The reference lists the uncached steps by absolute index
// (0-15, every 5th up to 40, 41-49), whatever the step count; so do we (a step past
// 49, which no rung uses, would be cached as in the reference).
bool is_cached_step(int step);

// Windows over the latent frames. For n audio frames (one per video frame at 25 fps):
constexpr int kFramesPerWindow = 33;   // latent frames per DiT call
struct WindowPlan {
  int audio_frames = 0;         // n
  int video_latent_frames = 0;  // latent frames kept at the end: ((n/4*4 + 1) - 1)/4 + 1
  int noise_frames = 0;         // latent frames of the initial noise: (n/128 + 1)*32 + 1
  int infer_length = 0;         // latent frames sampled: noise_frames, or 33 (single window: the
                                // noise's first 33)
  int padded_audio_frames = 0;  // audio prompts padded with silence: (n/128 + 1)*128 + 4, or 132
  int shift_offset = 10;        // added to the shift after every step; 0 in single-window mode
  bool single_window = false;   // video_latent_frames or infer_length is 33
};
// Throws std::invalid_argument for n < 1.
WindowPlan plan_windows(int audio_frames);

struct Window {
  int index_start = 0;             // the loop's value: 0, 33, 66, ... < infer_length
  int start = 0;                   // index_start - shift: where the window begins (may be negative)
  std::vector<int> latent_frames;  // kFramesPerWindow indices, modulo infer_length
  std::vector<int> audio_frames;   // 4*kFramesPerWindow - 3 indices, modulo padded_audio_frames
};
// The windows of one step with the given shift, in the order the reference runs them.
// A latent frame covered by two windows is averaged after the step (window_cover).
std::vector<Window> windows_at(const WindowPlan& plan, int shift);
int next_shift(const WindowPlan& plan, int shift);
// How many windows cover each latent frame this step (the reference's `counter`).
std::vector<int> window_cover(const WindowPlan& plan, int shift);

}  // namespace reel::hyavatar
