// The Wan 2.1 text-to-video and image-to-video models reel offers, as data: their sizes, defaults and
// limits, the published key names and shapes of every weight (from the sizes), and the
// tiny model's fixed-seed random weights and byte-level tokenizer. Pure data and
// functions of it; ladder.hpp turns sizes into memory estimates, wan_plugin.cpp serves it.
// Thread-safety: models() is built once, immutable afterwards.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tensorio/weights.hpp"
#include "tokenizer.hpp"

namespace reel::wan {

using Shapes = std::vector<std::pair<std::string, std::vector<int64_t>>>;

// The reference's default negative prompt (wan/configs/shared_config.py sample_neg_prompt).
extern const char* const kDefaultNegativePrompt;
// The CLIP checkpoint's file name in an i2v model folder.
extern const char* const kClipCheckpoint;
// Wan 2.1's latent normalisation (wan/modules/vae.py, WanVAE.__init__ mean / std).
extern const std::vector<float> kVaeMean, kVaeStd;

struct DitDims {
  int64_t dim, ffn_dim, freq_dim, num_heads, num_layers, text_len, in_dim = 16, out_dim = 16;
  int64_t img_dim = 0;  // i2v: the CLIP token width img_emb takes (in_dim 36); 0 for t2v
};
// The CLIP vision tower (clip_encoder.hpp); num_layers counts the published blocks, the
// last of which is never run.
struct ClipDims {
  int64_t image_size, patch_size, dim, mlp_dim, num_heads, num_layers;
};
struct T5Dims {
  int64_t vocab, dim, dim_attn, dim_ffn, num_heads, num_layers, num_buckets;
};
struct VaeDims {
  int64_t dim, z_dim;
  std::vector<int64_t> dim_mult;
  int64_t num_res_blocks;
  std::vector<bool> temporal;
};

struct ModelSpec {
  std::string name, description;
  bool random_weights = false;     // the tiny model: weights from fixed seeds, no checkpoint
  std::string env_var, default_dir, repo;  // checkpoint folder: $env_var, else default_dir
  DitDims dit;
  T5Dims t5;
  VaeDims vae;
  bool i2v = false;  // image-to-video: a required "image" input, CLIP, output size from max_area
  ClipDims clip{};   // i2v only
  // Bytes per stored weight as the checkpoint publishes them (DiT fp32 in the official
  // releases, the T5 bf16); the VAE is always held in float32.
  int64_t dit_stored_bytes = 4, t5_stored_bytes = 2, clip_stored_bytes = 4;
  // defaults and ranges
  int64_t width, height, frames, steps;
  double shift, guide;
  std::string solver;
  int64_t max_side, max_frames;
  int64_t max_area = 0;  // i2v: the default pixel area (the output keeps the image's aspect)
};

const std::vector<ModelSpec>& models();
// Not offered: wan2.1-t2v-tiny widened to 512 (DiT 8 blocks, T5 4 blocks, vocab 32k, VAE
// dim 32) so that weights, not the runtime, dominate its memory; for tests and benches.
ModelSpec medium_random_model();
const ModelSpec* find_model(const std::string& name);  // nullptr when unknown

// Published key names and shapes (what the loaders require()).
Shapes dit_shapes(const DitDims& d, int64_t text_dim);
Shapes t5_shapes(const T5Dims& t);
Shapes vae_shapes(const VaeDims& v);  // WanVAE_: Encoder3d, conv1, conv2, Decoder3d
Shapes clip_shapes(const ClipDims& c);  // the vision tower's visual.* (the text tower is not needed)
int64_t count_params(const Shapes& s);

// Random weights with a fixed seed: biases 0, norm scales (gamma, norm*.weight) 1, every
// other tensor normal * 0.02, so activations stay finite.
tensorio::TensorMap random_weights(const Shapes& shapes, uint64_t seed);

// The tiny model's tokenizer: byte-level. The prompt is cleaned as the reference does
// (clean_prompt), then each UTF-8 byte b becomes id 2 + b % (vocab - 2) (0 = pad and
// 1 = eos are never produced by a byte), truncated to text_len - 1, then eos, then padded.
Tokens byte_tokens(const std::string& prompt, int64_t vocab, int64_t text_len);

}  // namespace reel::wan
