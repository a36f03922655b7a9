// The HunyuanVideo-Avatar sampler's schedules, as the reference pipeline
// (HunyuanVideoAudioPipeline.__call__) computes them: flow-matching sigmas with shift,
// the two guidance phases, the steps whose DiT call is replaced by the step cache, and
// the windows of latent frames (33 in the reference, any W >= 2 in reel) that cover long
// audio with wrap-around and a shift that moves every step. Pure functions of sizes and step indices; the tensor work that
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

// Windows over the latent frames. The reference always denoises W = 33 latent frames
// (129 video frames) per DiT call; reel's memory ladder may ask for another W >= 2, and
// every size below is the reference's formula with its constants written in W:
//   V = 4*(W-1) video frames per window step       (reference: 128)
//   noise_frames = (n/V + 1)*(W-1) + 1             (reference: (n/128 + 1)*32 + 1)
//   padded audio = (n/V + 1)*V + 4 = 4*noise_frames, or 4*W in single-window mode
//                                                  (reference: (n/128 + 1)*128 + 4, or 132)
//   single window when video_latent_frames == W or noise_frames == W (reference: 33)
//   shift' = (shift + shift_offset) % W            (reference: (shift + 10) % 33)
// With W = 33 these are the reference's numbers bit for bit (sampler_schedule_test checks
// them against the recorded run). The padded audio is always 4 * infer_length, so a
// window's audio frame 4*j stays aligned with its latent frame j even when both wrap.
// The reference moves the windows by 10 latent frames a step so that the seams between
// windows do not stay in place. A window of W <= 10 cannot move by 10; reel then moves it
// by 10 % W, or by 1 where that is 0 (W = 2, 5, 10), so the seams still travel.
constexpr int kFramesPerWindow = 33;   // the reference's latent frames per DiT call
constexpr int kReferenceShiftOffset = 10;
// Video frames one window step advances by: 4*(W-1) (128 for the reference's 33).
constexpr int window_video_stride(int window) { return 4 * (window - 1); }
struct WindowPlan {
  int window = kFramesPerWindow;  // W: latent frames per DiT call
  int audio_frames = 0;           // n
  int video_latent_frames = 0;    // latent frames kept at the end: ((n/4*4 + 1) - 1)/4 + 1
  int noise_frames = 0;           // latent frames of the initial noise: (n/V + 1)*(W-1) + 1
  int infer_length = 0;           // latent frames sampled: noise_frames, or W (single window: the
                                  // noise's first W)
  int padded_audio_frames = 0;    // audio prompts padded with silence: (n/V + 1)*V + 4, or 4*W
  int shift_offset = kReferenceShiftOffset;  // added to the shift after every step (10 for
                                  // W > 10, see above); 0 in single-window mode
  bool single_window = false;     // video_latent_frames or noise_frames is W
};
// Throws std::invalid_argument for n < 1 or W < 2 (a window of one latent frame has no
// 4*(W-1) video frames to advance by).
WindowPlan plan_windows(int audio_frames, int window = kFramesPerWindow);

struct Window {
  int index_start = 0;             // the loop's value: 0, W, 2W, ... < infer_length
  int start = 0;                   // index_start - shift: where the window begins (may be negative)
  std::vector<int> latent_frames;  // W indices, modulo infer_length
  std::vector<int> audio_frames;   // 4*W - 3 indices (4*start .. 4*(start+W) - 4), modulo
                                   // padded_audio_frames
};
// The windows of one step with the given shift, in the order the reference runs them.
// A latent frame covered by two windows is averaged after the step (window_cover).
std::vector<Window> windows_at(const WindowPlan& plan, int shift);
int next_shift(const WindowPlan& plan, int shift);
// How many windows cover each latent frame this step (the reference's `counter`).
std::vector<int> window_cover(const WindowPlan& plan, int shift);

}  // namespace reel::hyavatar
