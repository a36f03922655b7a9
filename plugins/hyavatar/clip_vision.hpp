// The CLIP vision tower inside HunyuanVideo-Avatar's LLaVA encoder
// (ckpts/llava_llama_image: vision_tower.vision_model.*), run as transformers 4.45's
// CLIPVisionModel with output_hidden_states=True: a patch convolution (no bias), the class
// embedding in front, position embeddings, pre_layrnorm (sic), then pre-norm layers
// (LayerNorm -> self-attention -> residual; LayerNorm -> fc1 -> quick_gelu -> fc2 ->
// residual). LLaVA reads hidden_states[vision_feature_layer] (-2: the output of the
// second-to-last layer; post_layernorm is never applied) and, with the "default"
// strategy, drops the class token.
//
// Only the layers that feature layer needs are kept in memory; the later layers and
// post_layernorm must still be present in the checkpoint (strict key check by the
// caller with expected_keys()). Sizes come from the config ("vision_config").
//
// Invariants: float32 computation whatever the stored dtype. Thread-safety: a loaded
// ClipVisionTower is immutable; features() may run concurrently.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include "checkpoint_keys.hpp"
#include "tensorio/weights.hpp"

namespace reel::hyavatar {

struct ClipVisionConfig {
  int64_t hidden_size = 0, intermediate_size = 0, num_layers = 0, num_heads = 0;
  int64_t image_size = 0, patch_size = 0, num_channels = 3;
  double layer_norm_eps = 1e-5;
  std::string hidden_act;  // "quick_gelu" or "gelu"

  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
  static ClipVisionConfig from_json(const nlohmann::json& j, const std::string& where);
};

class ClipVisionTower {
 public:
  static std::vector<ExpectedTensor> expected_keys(const ClipVisionConfig& c, const std::string& prefix);
  // feature_layer indexes transformers' hidden-state list [embeddings, layer 1 .. layer N]
  // (negative from the end); only layers up to it are loaded.
  static ClipVisionTower load(const ClipVisionConfig& c, const tensorio::Weights& w, const std::string& prefix,
                              int64_t feature_layer, torch::Dtype weight_dtype = torch::kFloat32);
  ClipVisionTower to(const torch::Device& device) const;
  int64_t bytes() const;
  torch::Device device() const { return patch_w_.device(); }

  // pixel_values [B, 3, S, S] (any float dtype; widened to float32) -> the selected
  // hidden state [B, 1 + patches, hidden] (class token first).
  torch::Tensor hidden_state(const torch::Tensor& pixel_values) const;

  const ClipVisionConfig& config() const { return cfg_; }

 private:
  struct Layer {
    torch::Tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
    std::vector<torch::Tensor*> tensors();
  };
  std::vector<torch::Tensor*> tensors();

  ClipVisionConfig cfg_;
  torch::Tensor patch_w_, class_emb_, pos_emb_, pre_ln_w_, pre_ln_b_;
  std::vector<Layer> layers_;  // the layers the feature layer needs
};

}  // namespace reel::hyavatar
