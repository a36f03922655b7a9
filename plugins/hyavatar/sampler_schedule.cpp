#include "sampler_schedule.hpp"

#include <stdexcept>
#include <string>

#include <torch/torch.h>

namespace reel::hyavatar {

FlowSchedule flow_schedule(int steps, double shift) {
  if (steps < 1) throw std::invalid_argument("steps must be at least 1, not " + std::to_string(steps));
  if (!(shift > 0)) throw std::invalid_argument("the flow shift must be positive");
  // torch's own linspace and float32 arithmetic, so the sigmas are the reference's bits.
  auto s = torch::linspace(1.0, 0.0, steps + 1, torch::kFloat32);
  s = (shift * s) / (1 + (shift - 1) * s);
  FlowSchedule out;
  out.sigmas.assign(s.data_ptr<float>(), s.data_ptr<float>() + steps + 1);
  auto t = s.slice(0, 0, steps) * 1000;
  out.timesteps.assign(t.data_ptr<float>(), t.data_ptr<float>() + steps);
  return out;
}

Guidance guidance_at(int step, int steps, double cfg_scale) {
  Guidance g;
  const double remaining = 1.0 - static_cast<double>(step) / steps;
  if (step < kSecondGuidancePhase) {
    g.phase = 1;
    g.scale = remaining * (cfg_scale - 2) + 2;
    g.negative_prompt = true;
    g.face_mask_scale = 0.6;
  } else {
    g.phase = 2;
    g.scale = remaining * (6.5 - 3.5) + 3.5;
    g.negative_prompt = false;
    g.face_mask_scale = 1.0;
  }
  return g;
}

bool is_cached_step(int step) {
  if (step >= 50) return true;
  if (step <= 15 || step >= 40) return false;
  return step % 5 != 0;
}

WindowPlan plan_windows(int audio_frames, int window) {
  if (audio_frames < 1) throw std::invalid_argument("the audio must have at least one frame");
  if (window < 2)
    throw std::invalid_argument("a sampling window must have at least 2 latent frames, not " + std::to_string(window));
  const int stride = window_video_stride(window);  // 128 for the reference's 33
  WindowPlan p;
  p.window = window;
  p.audio_frames = audio_frames;
  p.video_latent_frames = ((audio_frames / 4 * 4 + 1) - 1) / 4 + 1;
  p.noise_frames = (audio_frames / stride + 1) * (window - 1) + 1;
  p.infer_length = p.noise_frames;
  p.padded_audio_frames = (audio_frames / stride + 1) * stride + 4;
  // 10 is the reference's; a window too short to move by 10 moves by 10 % W, or by 1.
  p.shift_offset = kReferenceShiftOffset % window != 0 ? kReferenceShiftOffset % window : 1;
  if (p.video_latent_frames == window || p.infer_length == window) {
    p.single_window = true;
    p.infer_length = window;
    p.shift_offset = 0;
    p.padded_audio_frames = 4 * window;
  }
  return p;
}

namespace {
int wrap(int i, int n) { return ((i % n) + n) % n; }   // Python's %: never negative
}  // namespace

std::vector<Window> windows_at(const WindowPlan& plan, int shift) {
  std::vector<Window> out;
  const int W = plan.window;
  for (int index_start = 0; index_start < plan.infer_length; index_start += W) {
    Window w;
    w.index_start = index_start;
    w.start = index_start - shift;
    for (int k = 0; k < W; ++k) w.latent_frames.push_back(wrap(w.start + k, plan.infer_length));
    for (int a = w.start * 4; a < (w.start + W) * 4 - 3; ++a)
      w.audio_frames.push_back(wrap(a, plan.padded_audio_frames));
    out.push_back(std::move(w));
  }
  return out;
}

int next_shift(const WindowPlan& plan, int shift) { return (shift + plan.shift_offset) % plan.window; }

std::vector<int> window_cover(const WindowPlan& plan, int shift) {
  std::vector<int> cover(static_cast<size_t>(plan.infer_length), 0);
  for (const auto& w : windows_at(plan, shift))
    for (int f : w.latent_frames) ++cover[static_cast<size_t>(f)];
  return cover;
}

}  // namespace reel::hyavatar
