// The HunyuanVideo-Avatar models reel offers and how their parts are loaded:
//   - hunyuan-avatar: the official release's ckpts/ folder (paths below), from
//     $REEL_HUNYUAN_AVATAR_DIR (the folder holding ckpts/, or ckpts/ itself);
//   - hunyuan-avatar-tiny: the same architecture at the golden fixtures' tiny sizes with
//     seeded random weights, a byte-level CLIP tokenizer, a word-level Llama stand-in and a
//     scripted face detector that reports one centred face: a smoke test of the whole path,
//     no download.
// Official layout (relative to ckpts/):
//   hunyuan-video-t2v-720p/transformers/mp_rank_00_model_states.pt  (and _fp8.pt + _fp8_map.pt)
//   hunyuan-video-t2v-720p/vae/{config.json, pytorch_model.pt}
//   llava_llama_image/{config.json, tokenizer.json, model*.safetensors[.index.json]}
//   text_encoder_2/{config.json, vocab.json, merges.txt, model.safetensors | pytorch_model.bin}
//   whisper-tiny/{config.json, preprocessor_config.json, model.safetensors}
//   det_align/detface.pt
// Thread-safety: the specs are immutable; load_avatar() builds independent parts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "avatar_ladder.hpp"
#include "avatar_pipeline.hpp"

namespace reel::hyavatar {

struct AvatarSpec {
  std::string name, description;
  bool random_weights = false;
  std::string env_var, default_dir, repo;
  int64_t image_size = 704;      // default reference-image short side
  int64_t max_image_size = 1024;
  int steps = 50;
};

const std::vector<AvatarSpec>& avatar_models();
const AvatarSpec* find_avatar_model(const std::string& name);  // nullptr when unknown

// The tiny model's component configurations.
struct TinyAvatarConfigs {
  HYAvatarDiTConfig dit;
  VaeConfig vae;
  LlavaConfig llava;
  ClipTextConfig clip;
  WhisperEncoderConfig whisper;
  WhisperFeatureConfig features;
};
TinyAvatarConfigs tiny_avatar_configs();

// The ckpts/ folder of a checkpoint model: $env_var (or its ckpts/ subfolder), else default_dir.
std::string avatar_ckpts_dir(const AvatarSpec& spec);
// The files of the official layout that are absent (relative names, "a (or b)" where either
// will do); empty when complete. Only stat() calls: cheap enough for planning.
std::vector<std::string> missing_avatar_files(const std::string& ckpts_dir);

// The parameter counts the ladder's estimates start from, from the loaders' own key lists
// at the model's configuration (the DiT, VAE and Whisper) and the release's published sizes
// (LLaVA-LLaMA-3-8B, CLIP-L's text tower). Computed once per model; cheap afterwards.
const AvatarSizes& avatar_sizes(const AvatarSpec& spec);

// The longest audio a job may have (reel encodes Whisper in 30 s chunks past the
// reference's 16 s), and the window's cost unit.
constexpr double kAvatarMaxAudioSeconds = 120.0;

struct AvatarPlacement {
  torch::Device device = torch::kCPU;
  bool encoders_on_device = true;   // false: LLaVA, CLIP and Whisper run on the CPU
  DitPlacement dit;
};

// What a rung places where, on `device` (cpu-only rungs: the CPU).
AvatarPlacement avatar_placement(const AvatarRung& rung, const torch::Device& device);
// A request's sizes from the rung's effective shape: side, steps, window (frames to latent
// frames), the frame cap from the audio seconds at 25 fps, and the VAE tile.
void apply_avatar_shape(AvatarRequest& request, const AvatarShape& shape, const AvatarRung& rung,
                        const AvatarSpec& spec);

// Loads the DiT, VAE and face detector (the encoders load per job). Throws
// tensorio::WeightError / std::runtime_error / FaceDetectorError naming the file.
AvatarParts load_avatar(const AvatarSpec& spec, const AvatarPlacement& placement);

}  // namespace reel::hyavatar
