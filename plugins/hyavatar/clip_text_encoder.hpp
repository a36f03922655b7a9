// HunyuanVideo-Avatar's second text encoder: the text tower of CLIP-L
// (ckpts/text_encoder_2, a full CLIPModel; the reference loads it with
// CLIPTextModel.from_pretrained and uses outputs["pooler_output"] as the DiT's
// text_states_2 -- no template, no crop, no hidden-state skip).
//
// The tower: token + position embeddings; pre-norm transformer layers (LayerNorm ->
// self-attention with a causal mask AND the tokenizer's padding mask -> residual;
// LayerNorm -> fc1 -> activation (quick_gelu for CLIP-L) -> fc2 -> residual); the final
// LayerNorm. Pooling follows transformers 4.45: with the config's eos_token_id == 2 (the
// official, legacy value) the row at argmax(input_ids) is taken -- the first EOS, since
// EOS is the largest id; with any other eos_token_id, the first position holding it.
//
// Weights keep their published names (text_model.embeddings.token_embedding.weight, ...,
// text_model.encoder.layers.N.{layer_norm1,self_attn.{q,k,v,out}_proj,layer_norm2,
// mlp.fc1,mlp.fc2}.*, text_model.final_layer_norm.*). Every size comes from config.json
// ("text_config" of a CLIPModel, or the top level of a CLIPTextModel config). Keys are
// checked strictly: a missing or unexpected text_model.* key is an error; the rest of a
// CLIPModel (vision_model.*, visual_projection, text_projection, logit_scale) is skipped.
//
// Invariants: computation in float32 whatever the stored dtype (upcast per use).
// Thread-safety: a loaded ClipTextEncoder is immutable; encode() may run concurrently.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "clip_tokenizer.hpp"
#include "tensorio/weights.hpp"

namespace reel::hyavatar {

struct ClipTextConfig {
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_layers = 0, num_heads = 0;
  int64_t max_positions = 0;
  double layer_norm_eps = 1e-5;
  std::string hidden_act;     // "quick_gelu" or "gelu"
  int64_t eos_token_id = 2;   // selects the pooling rule, see the header comment

  // config.json of a CLIPModel (reads "text_config") or of a CLIPTextModel. Throws
  // std::runtime_error naming the file and the key when one is missing or invalid.
  static ClipTextConfig from_json_file(const std::string& path);
};

struct ClipTextOutput {
  torch::Tensor last_hidden_state;  // [B, L, hidden] after the final LayerNorm
  torch::Tensor pooled;             // [B, hidden]: text_states_2 for the DiT
};

class ClipTextEncoder {
 public:
  // Checks the keys strictly (see the header comment), then builds the tower; throws
  // tensorio::WeightError naming the file and every offending key.
  static ClipTextEncoder load(const ClipTextConfig& config, const tensorio::Weights& w,
                              torch::Dtype weight_dtype = torch::kFloat32);
  // ckpts/text_encoder_2: config.json + model.safetensors (or another file
  // tensorio::load_weights reads, named by `weights_file`).
  static ClipTextEncoder load_dir(const std::string& dir, const std::string& weights_file = "model.safetensors",
                                  torch::Dtype weight_dtype = torch::kFloat32);

  ClipTextEncoder to(const torch::Device& device) const;  // weights keep their dtype
  int64_t bytes() const;                                  // stored weight bytes
  torch::Device device() const { return token_emb_.device(); }

  // input_ids, attention_mask: [B, L] int64 (L <= max_positions). Results on the
  // encoder's device, float32.
  ClipTextOutput encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) const;
  ClipTextOutput encode(const ClipTokens& tokens) const;

  const ClipTextConfig& config() const { return cfg_; }

 private:
  struct Layer {
    torch::Tensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
    std::vector<torch::Tensor*> tensors();
  };
  torch::Tensor run_layer(const Layer& l, const torch::Tensor& x, const torch::Tensor& additive_mask) const;
  std::vector<torch::Tensor*> tensors();

  ClipTextConfig cfg_;
  torch::Tensor token_emb_, pos_emb_, final_ln_w_, final_ln_b_;
  std::vector<Layer> layers_;
};

}  // namespace reel::hyavatar
