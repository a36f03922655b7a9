// The HunyuanVideo-Avatar memory ladder and its estimates (formulas in docs/HYAVATAR.md).
//
// Placement rungs keep the output: `resident` (everything on the GPU), `encoders-cpu`
// (LLaVA, CLIP and Whisper on the CPU, dropped after encoding), `fp8` (DiT blocks kept as
// float8 e4m3 on the GPU, upcast one at a time), `block-swap` (every DiT block streamed
// from host memory as it runs), `cfg-split` (the two CFG halves one after the other),
// `vae-small-tiles` (VAE tiles of half the reference's edge), `cpu`. Then the seven
// quality tiers, best first (maximum, high, balanced, low, ultra-low, ultra-minimal,
// emergency), each capping the reference-image side, the window (video frames denoised
// together), the audio length and the steps, on the leanest GPU placement.
// Pure: no torch, no I/O. Thread-safety: avatar_ladder() is built once, immutable afterwards.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace reel::hyavatar {

struct AvatarRung {
  std::string name, kind;
  bool encoders_cpu = false, fp8 = false, streamed = false, cfg_split = false, small_tiles = false, cpu_only = false;
  // Quality caps; 0 = none.
  int64_t max_side = 0, max_window_frames = 0, max_steps = 0;
  double max_audio_seconds = 0;
  double relative_time = 1;
};

const nlohmann::json& avatar_ladder();
// Throws std::invalid_argument for a rung not in the ladder.
AvatarRung parse_avatar_rung(const nlohmann::json& rung);

// What a job asks for and what a rung makes of it.
struct AvatarShape {
  int64_t image_size = 704;      // reference-image short side (multiple of 64 after rounding)
  int64_t height = 704, width = 704;   // the reference image in pixels (multiples of 64)
  int64_t window_frames = 129;   // video frames per DiT call, 4n+1
  int64_t steps = 50;
  double audio_seconds = 0;      // the audio's length (the output's)
};
// Caps applied: image_size capped (the caller derives height and width from it as the
// reference does, llava_image.hpp), the window rounded down to 4n+1 (>= 5), steps and
// audio capped.
AvatarShape effective_avatar_shape(const AvatarShape& requested, const AvatarRung& rung);

// Parameter counts of the parts placement moves.
struct AvatarSizes {
  int64_t dit_shell = 0;         // embeddings, refiner, audio projection and adapters, final layer
  int64_t dit_block = 0;         // the largest block
  int64_t dit_blocks = 0;        // all blocks
  int64_t dit_hidden = 0, dit_heads = 0;
  int64_t llava = 0, clip = 0, whisper = 0, vae = 0;
  int64_t vae_width = 0;         // the VAE decoder's widest full-resolution channels
  int64_t vae_tile = 256, vae_tile_frames = 64;   // the reference's tiling (pixels, frames)
  int64_t audio_frame_values = 0;   // audio_prompts values per video frame (10 x blocks x channels)
  int64_t text_tokens = 256;
  int64_t dit_stored_bytes = 2, encoder_stored_bytes = 2;   // bf16 DiT, fp16 encoders as released
};

struct AvatarEstimate {
  int64_t device = 0, host = 0, resident_device = 0, resident_host = 0;
  double relative_time = 1;
};
AvatarEstimate estimate_avatar(const AvatarSizes& sizes, const AvatarShape& shape, const AvatarRung& rung);

// The host memory a worker uses before loading anything (LibTorch, FFmpeg, arenas).
constexpr int64_t kAvatarWorkerOverheadBytes = int64_t{768} << 20;
// Activation bytes per token and hidden channel of one CFG branch in a DiT block, float32
// compute (the research figure, ~10 GB per branch at 704x768 in bf16, is ~45).
constexpr int64_t kAvatarActivationBytes = 90;

}  // namespace reel::hyavatar
