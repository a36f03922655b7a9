// From Whisper hidden states to the Avatar DiT's `audio_prompts`: one window of encoder
// frames per video frame (the reference's encode_audio, hymm_sp/data_kits/
// audio_preprocessor.py) and the padding predict() adds (sample_inference_audio.py).
//
// Whisper's encoder yields 50 frames a second, two per 25 fps video frame. Four all-zero
// frames are put in front (so a frame's window reaches 80 ms into the past), and video
// frame f takes the 10 encoder frames starting at 2 * f * step (step 1 at 25 fps, 2 at
// 12.5 fps: the only rates the reference accepts). At most 400 video frames are windowed.
// predict() then rounds to float16 and pads with zero frames: to 129 frames when there
// are at most 129, else by 5 more; the unconditional branch is all zeros, 129 frames.
//
// Pure functions; reentrant.
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace reel::hyavatar {

constexpr int64_t kAudioLeadingZeroFrames = 4;  // zero encoder frames prepended
constexpr int64_t kAudioWindowFrames = 10;      // encoder frames per video frame's window
constexpr int64_t kAudioMaxVideoFrames = 400;   // encode_audio's cap on num_frames
constexpr int64_t kAudioPromptMinFrames = 129;  // predict() pads shorter prompts to this
constexpr int64_t kAudioPromptTailFrames = 5;   // ... and longer ones by this many

// hidden [1, T, L+1, d] (WhisperEncoder::hidden_states) -> float32
// [1, min(num_frames, 400), 10, L+1, d]. `fps` must be 25 or 12.5; throws
// std::invalid_argument otherwise, when num_frames < 1, or when a window would run past
// the encoder's frames (the reference cannot stack such windows either).
torch::Tensor audio_windows(const torch::Tensor& hidden, double fps, int64_t num_frames);

// predict()'s padding of the windows: values rounded to float16 (the batch dtype) and
// returned as float32, [1, max(129, n + 5 if n > 129), 10, L+1, d] with zero frames after
// the n real ones.
torch::Tensor pad_audio_prompts(const torch::Tensor& windows);

// The unconditional branch's prompts: zeros shaped like the first 129 frames.
torch::Tensor uncond_audio_prompts(const torch::Tensor& prompts);

}  // namespace reel::hyavatar
