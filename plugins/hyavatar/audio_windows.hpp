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
// 129 = 4*33 - 3 is one sampling window's audio (33 latent frames, see
// sampler_schedule.hpp), so that the shortest audio still fills one window; the 5 extra
// frames make the video, which is n/4*4 + 1 frames long (a 4k + 1 length the VAE can
// decode), at least as long as the n real audio frames.
//
// reel's extensions, all defaulting to the reference's numbers: the 400-frame cap
// (16 s, well inside one 30-s Whisper chunk) can be lifted for long audio, whose hidden
// states come from WhisperEncoder::hidden_states_chunked; and a sampler running windows
// of W latent frames pads to, and takes unconditional prompts of, 4*W - 3 frames.
//
// Pure functions; reentrant.
#pragma once

#include <cstdint>

#include <torch/torch.h>

namespace reel::hyavatar {

constexpr int64_t kAudioLeadingZeroFrames = 4;  // zero encoder frames prepended
constexpr int64_t kAudioWindowFrames = 10;      // encoder frames per video frame's window
constexpr int64_t kAudioMaxVideoFrames = 400;   // encode_audio's cap on num_frames
constexpr int64_t kAudioPromptMinFrames = 129;  // predict() pads shorter prompts to this: 4*33 - 3
constexpr int64_t kAudioPromptTailFrames = 5;   // ... and longer ones by this many

// hidden [1, T, L+1, d] (WhisperEncoder::hidden_states, or hidden_states_chunked for
// audio past 30 s) -> float32 [1, min(num_frames, max_video_frames), 10, L+1, d].
// `fps` must be 25 or 12.5; throws std::invalid_argument otherwise, when num_frames or
// max_video_frames < 1, or when a window would run past the encoder's frames (the
// reference cannot stack such windows either; the message says how many frames fit).
torch::Tensor audio_windows(const torch::Tensor& hidden, double fps, int64_t num_frames,
                            int64_t max_video_frames = kAudioMaxVideoFrames);

// predict()'s padding of the windows: values rounded to float16 (the batch dtype) and
// returned as float32, [1, max(min_frames, n + 5 if n > min_frames), 10, L+1, d] with
// zero frames after the n real ones. min_frames is one window's audio, 4*W - 3 (the
// reference's 129 for W = 33); throws std::invalid_argument when it is below 1.
torch::Tensor pad_audio_prompts(const torch::Tensor& windows, int64_t min_frames = kAudioPromptMinFrames);

// The unconditional branch's prompts: zeros shaped like the first `frames` frames (one
// window's audio: 4*W - 3, the reference's 129). Throws std::invalid_argument when the
// prompts have fewer frames.
torch::Tensor uncond_audio_prompts(const torch::Tensor& prompts, int64_t frames = kAudioPromptMinFrames);

}  // namespace reel::hyavatar
