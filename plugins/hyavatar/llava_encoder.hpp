// HunyuanVideo-Avatar's first text encoder: LLaVA-LLaMA-3 (ckpts/llava_llama_image,
// transformers 4.45 LlavaForConditionalGeneration) fed with the prompt in the reference's
// video template plus the reference image, as the reference's TextEncoder.encode and the
// pipeline's prompt encoding run it:
//   1. text = template.format(prompt) + "\nThe person looks like<image>", tokenised
//      (BOS first) and right-padded/truncated to max_length = text_len + crop_start
//      (pad_llava_tokens; the ids come from a LlamaTokenizer, see llama_tokenizer.hpp);
//   2. the image (pixel_values [B, 3, 336, 336], see llava_image.hpp) through the CLIP
//      vision tower; hidden_states[vision_feature_layer] without the class token
//      ("default" strategy) -> projector linear_1 -> GELU -> linear_2: image features
//      [B, image_seq_length, hidden];
//   3. transformers' "legacy" merge (fewer <image> tokens than image_seq_length): each
//      <image> token is replaced in place by its image's features (the sequence grows by
//      image_seq_length - 1 per image), <pad> embeddings are zeroed, the mask is the
//      tokenizer's at text positions and 1 at image positions, position_ids =
//      cumsum(mask) - 1 with 1 at masked positions;
//   4. the LLaMA decoder; hidden = hidden_states[-(hidden_state_skip_layer + 1)]
//      (optionally final-normed);
//   5. text_states = hidden[:, crop_start:]; text_mask = cat(tokenizer mask,
//      image_seq_length - 1 ones)[:, crop_start:] -- the pipeline's mask, which does NOT
//      line up with the merged content (it is 1 on the first n_valid - crop_start
//      positions and the last image_seq_length - 1). Reproduced as is: the DiT was
//      trained with it.
//
// Keys checked strictly: vision_tower.vision_model.*, multi_modal_projector.*,
// language_model.model.* all expected; language_model.lm_head.weight is allowed and not
// loaded (no logits are computed). Every size from config.json.
//
// Invariants: float32 computation whatever the stored dtype. Thread-safety: a loaded
// LlavaEncoder is immutable; its methods may run concurrently.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "clip_vision.hpp"
#include "llama_decoder.hpp"
#include "llama_tokenizer.hpp"
#include "tensorio/weights.hpp"

namespace reel::hyavatar {

struct LlavaConfig {
  ClipVisionConfig vision;
  LlamaConfig text;
  int64_t image_token_index = 0, pad_token_id = 0, image_seq_length = 0, vision_feature_layer = -2;
  std::string vision_feature_select_strategy;  // "default" (drop the class token) or "full"
  std::string projector_hidden_act;            // "gelu"

  static LlavaConfig from_json_file(const std::string& path);
};

// ---- prompt and tokens ---------------------------------------------------------------

// The reference's "li-dit-encode-video" template and the Avatar suffix.
struct LlavaPromptTemplate {
  std::string text;    // holds one "{}" where the prompt goes
  std::string suffix;  // appended after the formatted template
  int64_t crop_start = 0;  // template tokens (BOS included) cut from the hidden states

  static LlavaPromptTemplate avatar_video();
  std::string build(const std::string& prompt) const;  // text with the prompt, then suffix
};

// ---- the model -----------------------------------------------------------------------

struct LlavaMerged {
  torch::Tensor inputs_embeds;   // [B, L + images * (image_seq_length - 1), hidden]
  torch::Tensor attention_mask;  // same length, int64
  torch::Tensor position_ids;    // same length, int64
};

struct LlavaOutput {
  torch::Tensor text_states;  // [B, merged length - crop_start, hidden] float32
  torch::Tensor text_mask;    // [B, merged length - crop_start] int64
};

// What encode() computed on the way, for tests and debugging.
struct LlavaTrace {
  torch::Tensor vision_selected_features, image_features;
  LlavaMerged merged;
  std::vector<torch::Tensor> hidden_states;  // 0 .. the one used
};

struct LlavaEncodeOptions {
  int64_t crop_start = 0;
  int64_t hidden_state_skip_layer = 2;  // the reference's setting
  bool apply_final_norm = false;
};

class LlavaEncoder {
 public:
  // Checks keys strictly, then loads; throws tensorio::WeightError naming every
  // offending key, std::runtime_error for a config problem.
  static LlavaEncoder load(const LlavaConfig& c, const tensorio::Weights& w, torch::Dtype weight_dtype = torch::kFloat32);
  // ckpts/llava_llama_image: config.json + model.safetensors.index.json (sharded) or
  // model.safetensors. weight_dtype is the storage dtype kept in memory: pass the
  // checkpoint's own (fp16 for the release, ~16 GB) to keep the tensors mapped from the
  // files without a copy; compute is float32 either way.
  static LlavaEncoder load_dir(const std::string& dir, torch::Dtype weight_dtype = torch::kFloat32);

  LlavaEncoder to(const torch::Device& device) const;
  int64_t bytes() const;
  torch::Device device() const { return decoder_.device(); }

  // pixel_values [B, 3, S, S] -> the vision hidden state LLaVA selects, class token
  // dropped per the strategy: [B, patches, vision hidden].
  torch::Tensor vision_selected_features(const torch::Tensor& pixel_values) const;
  torch::Tensor project(const torch::Tensor& selected) const;  // -> [B, patches, hidden]
  // Step 3: input_ids/attention_mask [B, L]; image_features [images, P, hidden], one
  // image per <image> token in reading order. Throws std::invalid_argument when the
  // counts differ (e.g. truncation cut the <image> token off).
  LlavaMerged merge(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                    const torch::Tensor& image_features) const;
  // Steps 2-5 for tokenised text and pixels.
  LlavaOutput encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                     const torch::Tensor& pixel_values, const LlavaEncodeOptions& options,
                     LlavaTrace* trace = nullptr) const;

  const LlavaConfig& config() const { return cfg_; }
  const LlamaDecoder& decoder() const { return decoder_; }

 private:
  LlavaConfig cfg_;
  ClipVisionTower vision_;
  torch::Tensor proj1_w_, proj1_b_, proj2_w_, proj2_b_;
  LlamaDecoder decoder_;
};

}  // namespace reel::hyavatar
