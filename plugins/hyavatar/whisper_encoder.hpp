// The Whisper audio encoder of HunyuanVideo-Avatar's audio condition, as the reference's
// encode_audio runs it: `WhisperModel.encoder(mel, output_hidden_states=True)` (Hugging
// Face transformers 4.45.1, eager attention) with EVERY hidden state kept and stacked:
//   conv1 (k3, p1) -> GELU -> conv2 (k3, stride 2, p1) -> GELU -> + embed_positions
//   -> hidden state 0; each pre-norm layer (self-attention, GELU MLP) -> hidden state i;
//   the LAST state has the encoder's final layer_norm applied, the others do not.
//
// Weights keep the published key names of the whisper-tiny folder's model.safetensors:
// `model.encoder.*` (a WhisperForConditionalGeneration checkpoint, as released) or
// `encoder.*` (a bare WhisperModel). The decoder (`*decoder.*`) and the LM head
// (`proj_out.weight`) in the same file are deliberately ignored: only the encoder runs.
// Every other key is checked strictly: load() names all missing and unexpected encoder
// tensors, and any tensor of the wrong shape. Sizes come from config.json.
//
// Audio past 30 s (reel's extension; the reference encodes only the first chunk and caps
// the video at 16 s): hidden_states_chunked() encodes each 30-s chunk of the mel on its
// own, exactly as hidden_states() encodes the first, and concatenates the chunks' hidden
// states in time. Whisper has no context across chunks, so a chunk's states are the same
// whether it is encoded alone or as part of a longer audio.
//
// Invariants: float32 weights and computation (bf16/fp16 checkpoints are upcast); each
// encoder call sees exactly num_mel_bins x (2 * max_source_positions) frames, as the HF
// encoder insists. Thread-safety: a loaded WhisperEncoder is immutable; hidden_states()
// and hidden_states_chunked() may run concurrently.
#pragma once

#include <string>
#include <vector>

#include <torch/torch.h>

#include "checkpoint_keys.hpp"
#include "tensorio/weights.hpp"

namespace reel::hyavatar {

// The encoder part of the whisper-tiny folder's config.json.
struct WhisperEncoderConfig {
  int64_t d_model = 0, encoder_layers = 0, encoder_attention_heads = 0, encoder_ffn_dim = 0;
  int64_t num_mel_bins = 0, max_source_positions = 0;
  std::string activation_function = "gelu";  // only "gelu" (exact, erf) is supported
  double layer_norm_eps = 1e-5;              // nn.LayerNorm's default; Whisper's config has no key
  // Reads the file; throws std::runtime_error naming it and the missing / invalid key.
  static WhisperEncoderConfig from_json(const std::string& path);
  int64_t input_frames() const { return 2 * max_source_positions; }  // conv2 halves the frames
};

class WhisperEncoder {
 public:
  // Builds the encoder from `w` (see the header comment for the key rules); throws
  // tensorio::WeightError naming the file and every missing / unexpected tensor.
  static WhisperEncoder load(const tensorio::Weights& w, const WhisperEncoderConfig& cfg);
  // The folder holding config.json and model.safetensors.
  static WhisperEncoder load_dir(const std::string& dir);
  // The tensors load() reads, in a bare WhisperModel's layout ("encoder.*").
  static std::vector<ExpectedTensor> expected_keys(const WhisperEncoderConfig& cfg);

  // mel float32 [num_mel_bins, input_frames()] (or with a leading batch of 1) ->
  // float32 [1, max_source_positions, encoder_layers + 1, d_model]: every hidden state,
  // stacked on dim 2 as the reference's torch.stack(hidden_states, dim=2).
  torch::Tensor hidden_states(const torch::Tensor& mel) const;
  // mel float32 [num_mel_bins, input_frames() * chunks] (or with a leading batch of 1),
  // chunks >= 1, as whisper_audio_features returns it -> float32
  // [1, max_source_positions * chunks, encoder_layers + 1, d_model]: each chunk's
  // hidden_states(), concatenated on dim 1. One chunk gives hidden_states() itself.
  // Throws std::invalid_argument when the frames are not a positive multiple of
  // input_frames().
  torch::Tensor hidden_states_chunked(const torch::Tensor& mel) const;

  const WhisperEncoderConfig& config() const { return cfg_; }
  torch::Device device() const { return conv1_w_.device(); }

 private:
  struct Layer {
    torch::Tensor attn_norm_w, attn_norm_b, q_w, q_b, k_w, v_w, v_b, out_w, out_b;
    torch::Tensor mlp_norm_w, mlp_norm_b, fc1_w, fc1_b, fc2_w, fc2_b;
  };
  torch::Tensor run_layer(const Layer& l, const torch::Tensor& x) const;

  WhisperEncoderConfig cfg_;
  torch::Tensor conv1_w_, conv1_b_, conv2_w_, conv2_b_, positions_, final_norm_w_, final_norm_b_;
  std::vector<Layer> layers_;
};

}  // namespace reel::hyavatar
