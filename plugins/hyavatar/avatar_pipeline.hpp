// The HunyuanVideo-Avatar pipeline assembled: a portrait and a voice in, frames out, as
// the reference's sample_batch.py -> HunyuanVideoSampler.predict ->
// HunyuanVideoAudioPipeline run it:
//
//   waveform -> Whisper log-mel -> encoder hidden states -> per-frame windows -> audio_prompts
//   image -> reference image (multiple of 64) + LLaVA pixels -> face box -> face mask
//   prompt -> LLaVA (with the image) and CLIP, positive and negative
//   reference image -> VAE -> ref_latents;  seed -> noise
//   denoise (windows, CFG, step cache) -> VAE decode -> uint8 frames cut to the audio
//
// Every stage is a checked component (docs/HYAVATAR.md); this file only chains them. The
// encoders are loaded for a job through EncoderLoader and dropped once the prompt and the
// audio are encoded, so the 8B LLaVA never sits beside the DiT. Reel's additions, all off
// at the reference's settings: a window other than 33 latent frames, audio past 16 s
// (Whisper in 30 s chunks), smaller VAE tiles, a frame cap.
// Thread-safety: generate() uses `parts` exclusively; one job at a time per AvatarParts.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <torch/torch.h>

#include "audio_features.hpp"
#include "clip_text_encoder.hpp"
#include "clip_tokenizer.hpp"
#include "dit_runner.hpp"
#include "face_detector.hpp"
#include "llama_tokenizer.hpp"
#include "llava_encoder.hpp"
#include "vae.hpp"
#include "whisper_encoder.hpp"

namespace reel::hyavatar {

// The reference's fixed prompt prefix (sample_batch.py) and default negative prompt.
extern const char* const kAvatarPromptPrefix;
extern const char* const kAvatarNegativePrompt;
constexpr double kAvatarFps = 25.0;            // output frame rate (the reference's)
constexpr int64_t kAvatarSampleRate = 16000;   // Whisper's input rate
constexpr int64_t kAvatarMotionExp = 30, kAvatarMotionPose = 25;   // the reference's defaults

// What a job needs only while encoding.
struct AvatarEncoders {
  std::unique_ptr<LlavaEncoder> llava;
  std::unique_ptr<LlamaTokenizer> llama_tokenizer;
  std::unique_ptr<ClipTextEncoder> clip;
  std::unique_ptr<ClipTokenizer> clip_tokenizer;
  std::unique_ptr<WhisperEncoder> whisper;
  WhisperFeatureConfig features;
};
// Loads the encoders onto `device` (throws tensorio::WeightError / std::runtime_error for
// a missing or corrupt checkpoint).
using EncoderLoader = std::function<AvatarEncoders(const torch::Device& device)>;

// The model between jobs.
struct AvatarParts {
  EncoderLoader load_encoders;
  torch::Device encoder_device = torch::kCPU;
  std::unique_ptr<DitRunner> dit;
  std::unique_ptr<HyVae> vae;          // on the DiT's device
  std::unique_ptr<FaceDetector> face_detector;
  int64_t text_len = 256;              // LLaVA prompt tokens after the template's crop
};

struct AvatarRequest {
  torch::Tensor image;      // uint8 [h, w, 3] as decoded
  torch::Tensor waveform;   // float32 [n] mono at kAvatarSampleRate
  std::string prompt;       // without kAvatarPromptPrefix (added here, as the reference does)
  std::string negative_prompt = kAvatarNegativePrompt;
  int64_t image_size = 704;   // the reference image's short side, before rounding to 64
  int steps = 50;
  double cfg_scale = 7.5, shift = 5.0;
  bool step_cache = true;
  int window = 33;            // latent frames per DiT call (the reference: 33 = 129 video frames)
  int64_t max_frames = 400;   // video frames kept at most (the reference: 400 = 16 s)
  int64_t vae_tile = 0;       // 0: the reference's tiling; else the spatial tile edge in pixels
  uint64_t seed = 0;
  // Tests: the reference's own random draws (else drawn from `seed`).
  torch::Tensor initial_noise, ref_noise;
};

struct AvatarVideo {
  torch::Tensor frames;       // uint8 [T, H, W, 3], T = the audio's video frames (after the cap)
  int64_t audio_frames = 0;   // video frames the whole audio covers at 25 fps
  bool audio_cut = false;     // the audio was longer than max_frames
};

// Called with a stage ("encode", "denoise", "decode") and its progress; may throw to stop.
using AvatarProgress = std::function<void(const std::string& stage, int64_t step, int64_t total)>;

// Throws std::invalid_argument for a request the model cannot take (empty audio, image
// too small), FaceDetectorError, or whatever a component throws.
AvatarVideo generate_avatar(AvatarParts& parts, const AvatarRequest& request, const AvatarProgress& progress = {});

}  // namespace reel::hyavatar
