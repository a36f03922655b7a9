// Per-video-frame windows of Whisper hidden states; see audio_windows.hpp.
#include "audio_windows.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace reel::hyavatar {

torch::Tensor audio_windows(const torch::Tensor& hidden, double fps, int64_t num_frames, int64_t max_video_frames) {
  if (hidden.dim() != 4 || hidden.size(0) != 1)
    throw std::invalid_argument("audio_windows: expected Whisper hidden states [1, T, L+1, d], got " +
                                c10::str(hidden.sizes()));
  int64_t step;
  if (fps == 25.0)
    step = 1;
  else if (fps == 12.5)
    step = 2;
  else
    throw std::invalid_argument("audio_windows: fps must be 25 or 12.5 (the reference's encode_audio knows no "
                                "other rate), got " + std::to_string(fps));
  if (num_frames < 1) throw std::invalid_argument("audio_windows: num_frames must be positive");
  if (max_video_frames < 1) throw std::invalid_argument("audio_windows: max_video_frames must be positive");
  num_frames = std::min(num_frames, max_video_frames);

  auto lead = torch::zeros_like(hidden.slice(1, 0, kAudioLeadingZeroFrames));
  const auto frames = torch::cat({lead, hidden.to(torch::kFloat32)}, 1);
  const int64_t last_start = 2 * (num_frames - 1) * step;
  if (last_start + kAudioWindowFrames > frames.size(1))
    throw std::invalid_argument("audio_windows: " + std::to_string(num_frames) + " video frames at " +
                                std::to_string(fps) + " fps need encoder frames up to " +
                                std::to_string(last_start + kAudioWindowFrames) + ", only " +
                                std::to_string(frames.size(1)) + " exist (" + std::to_string(hidden.size(1)) +
                                " encoder frames and " + std::to_string(kAudioLeadingZeroFrames) +
                                " leading zeros); at most " +
                                std::to_string(std::max<int64_t>(0, (frames.size(1) - kAudioWindowFrames) / (2 * step) + 1)) +
                                " video frames fit");
  std::vector<torch::Tensor> windows;
  windows.reserve(static_cast<size_t>(num_frames));
  for (int64_t f = 0; f < num_frames; ++f) {
    const int64_t start = 2 * f * step;
    windows.push_back(frames.slice(1, start, start + kAudioWindowFrames));
  }
  return torch::stack(windows, 1);
}

torch::Tensor pad_audio_prompts(const torch::Tensor& windows, int64_t min_frames) {
  if (windows.dim() != 5 || windows.size(0) != 1)
    throw std::invalid_argument("pad_audio_prompts: expected windows [1, F, 10, L+1, d], got " +
                                c10::str(windows.sizes()));
  if (min_frames < 1)
    throw std::invalid_argument("pad_audio_prompts: min_frames must be positive (one window's 4*W - 3 frames), got " +
                                std::to_string(min_frames));
  const int64_t n = windows.size(1);
  const int64_t total = n <= min_frames ? min_frames : n + kAudioPromptTailFrames;
  auto out = torch::zeros({1, total, windows.size(2), windows.size(3), windows.size(4)}, torch::kFloat32);
  out.slice(1, 0, n).copy_(windows.to(torch::kHalf).to(torch::kFloat32));
  return out;
}

torch::Tensor uncond_audio_prompts(const torch::Tensor& prompts, int64_t frames) {
  if (prompts.dim() < 2 || frames < 1 || prompts.size(1) < frames)
    throw std::invalid_argument("uncond_audio_prompts: wanted " + std::to_string(frames) +
                                " frames of prompts " + c10::str(prompts.sizes()) +
                                " (pad them with pad_audio_prompts(windows, " + std::to_string(frames) + ") first)");
  return torch::zeros_like(prompts.slice(1, 0, frames));
}

}  // namespace reel::hyavatar
