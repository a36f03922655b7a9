// The LLaMA decoder inside HunyuanVideo-Avatar's LLaVA-LLaMA-3 text encoder
// (ckpts/llava_llama_image: language_model.model.*), run as transformers 4.45's LlamaModel
// with output_hidden_states=True: token embedding; N pre-norm layers (RMSNorm ->
// self-attention with rotary position embedding on q and k, grouped-query attention
// (num_key_value_heads <= num_attention_heads), a causal mask plus the padding mask ->
// residual; RMSNorm -> down(silu(gate(x)) * up(x)) -> residual); the final RMSNorm.
// The hidden-state list follows transformers: [embeddings, after layer 1, ..., after layer
// N-1, final_norm(after layer N)]; the text encoder reads hidden_states[-3] (un-normed).
//
// Weights keep their published names under a prefix ("language_model.model." in a LLaVA
// checkpoint): embed_tokens.weight, layers.N.{input_layernorm,post_attention_layernorm}
// .weight, layers.N.self_attn.{q,k,v,o}_proj.weight, layers.N.mlp.{gate,up,down}_proj
// .weight, norm.weight. Every size comes from the config ("text_config" of a LLaVA
// config.json); rope_scaling is not supported (Llama-3 8B has none) and refused.
//
// Invariants: computation in float32 whatever the stored dtype (each weight upcast when
// used, so a bf16/fp16 checkpoint costs its stored size). Thread-safety: a loaded
// LlamaDecoder is immutable; its methods may run concurrently.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include "checkpoint_keys.hpp"
#include "tensorio/weights.hpp"

namespace reel::hyavatar {

struct LlamaConfig {
  int64_t vocab_size = 0, hidden_size = 0, intermediate_size = 0, num_layers = 0;
  int64_t num_heads = 0, num_kv_heads = 0, head_dim = 0;
  double rms_norm_eps = 1e-6, rope_theta = 10000.0;
  bool attention_bias = false, mlp_bias = false;

  // A LlamaConfig JSON object (LLaVA's "text_config"); `where` names it in errors.
  static LlamaConfig from_json(const nlohmann::json& j, const std::string& where);
};

class LlamaDecoder {
 public:
  // The decoder's keys under `prefix`, with their shapes (for the caller's strict check).
  static std::vector<ExpectedTensor> expected_keys(const LlamaConfig& c, const std::string& prefix);
  // Builds from `w` (keys assumed checked by the caller with expected_keys()).
  static LlamaDecoder load(const LlamaConfig& c, const tensorio::Weights& w, const std::string& prefix,
                           torch::Dtype weight_dtype = torch::kFloat32);
  LlamaDecoder to(const torch::Device& device) const;
  int64_t bytes() const;
  torch::Device device() const { return embed_.device(); }

  // ids [B, L] int64 -> embeddings [B, L, hidden] float32.
  torch::Tensor embed(const torch::Tensor& ids) const;
  // The hidden states 0..last_index of transformers' list (see the header comment;
  // last_index -1 = all N + 1; index N is the normed output). Only the layers needed are
  // run. inputs_embeds [B, L, hidden]; attention_mask [B, L] (0 = padding); position_ids
  // [B, L] int64. keep_all false returns only state last_index (a real 32-layer model's
  // intermediate states are ~15 MB each per branch).
  std::vector<torch::Tensor> hidden_states(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask,
                                           const torch::Tensor& position_ids, int64_t last_index = -1,
                                           bool keep_all = true) const;
  // The final RMSNorm alone (for apply_final_norm).
  torch::Tensor final_norm(const torch::Tensor& x) const;

  const LlamaConfig& config() const { return cfg_; }

 private:
  struct Layer {
    torch::Tensor in_norm, q, k, v, o, q_b, k_b, v_b, o_b, post_norm, gate, up, down, gate_b, up_b, down_b;
    std::vector<torch::Tensor*> tensors();
  };
  torch::Tensor run_layer(const Layer& l, const torch::Tensor& x, const torch::Tensor& mask, const torch::Tensor& cos,
                          const torch::Tensor& sin) const;
  std::vector<torch::Tensor*> tensors();

  LlamaConfig cfg_;
  torch::Tensor embed_, norm_;
  std::vector<Layer> layers_;
};

}  // namespace reel::hyavatar
