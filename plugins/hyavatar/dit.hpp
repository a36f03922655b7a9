// The HunyuanVideo-Avatar diffusion transformer (hymm_sp models_audio.py,
// HYVideoDiffusionTransformer with the Avatar additions), loaded from the official
// checkpoint layout (transformers/mp_rank_00_model_states.pt = {"module": state_dict}).
//
// One call (forward): vec = time_in(t) + motion_exp + motion_pose (TimestepEmbedders of
// width/4 on 4 ids each, concatenated) + fps_proj(fps) + vector_in(text_states_2)
// [+ guidance_in]; text -> txt_in (token refiner); video tokens = img_in(x) +
// before_proj(ref_in(ref_latents)), with img_in(ref_latents' frame 0) prepended (the
// reference frame, RoPE time -1); audio_proj(audio_prompts) padded at the front with 3
// copies of its first window gives 16 audio tokens per latent frame. Double blocks; after
// those listed in double_stream_list an audio adapter adds its output, times the face
// mask (nearest-resized to the token grid), to the video tokens (not the reference
// frame's). Then [img; txt] through the single blocks; the video tokens (reference frame
// dropped) through final_layer and unpatchify.
// Step cache (the reference's is_cache): forward() can hand back the tokens entering the
// last single block; forward_cached() reruns only that block (with the new vec) on them.
//
// The reference hard-codes its 3072 width in five places; this port uses the model's
// width everywhere. Keys are checked strictly at load (every missing, misshapen and
// unexpected key named), unlike the reference's strict=False.
// Invariants: float32 on the CPU; blocks may be held outside the model (release_blocks)
// and run one at a time through run_double_block / run_single_block.
// Thread-safety: a loaded HYAvatarDiT is immutable; calls may run concurrently on
// distinct states.
#pragma once

#include <array>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "audio_adapter.hpp"
#include "audio_proj.hpp"
#include "dit_blocks.hpp"
#include "dit_layers.hpp"
#include "rope.hpp"
#include "token_refiner.hpp"

namespace reel::hyavatar {

struct HYAvatarDiTConfig {
  // args.*
  std::string text_projection = "single_refiner";
  int64_t text_states_dim = 4096, text_states_dim_2 = 768;
  bool use_attention_mask = true;
  // constructor arguments (official HYVideo-T/2 values by default)
  std::array<int64_t, 3> patch_size{1, 2, 2};
  int64_t in_channels = 16, out_channels = 16, hidden_size = 3072, num_heads = 24;
  double mlp_width_ratio = 4.0;
  std::string mlp_act_type = "gelu_tanh";
  int64_t depth_double_blocks = 20, depth_single_blocks = 40;
  std::vector<int64_t> rope_dim_list{16, 56, 56};
  bool qkv_bias = true, qk_norm = true, guidance_embed = false;
  std::string qk_norm_type = "rms";
  double rope_theta = 256.0;
  AudioProjConfig audio_proj;  // official: 10, 5, 384, 1024, 3072, 4
  int64_t adapter_dim = 3072, adapter_dim_head = 1024, adapter_heads = 33;
  std::vector<int64_t> double_stream_list{1, 3, 5, 7, 9, 11, 13, 15, 17, 19};
  std::vector<int64_t> single_stream_list{};

  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t mlp_hidden() const { return static_cast<int64_t>(hidden_size * mlp_width_ratio); }
  int64_t num_adapters() const { return static_cast<int64_t>(double_stream_list.size() + single_stream_list.size()); }
  DitBlockDims block_dims() const { return {hidden_size, num_heads, mlp_hidden(), qkv_bias, qk_norm}; }
  // Throws std::invalid_argument for what this port does not implement or what cannot
  // be consistent (width not divisible by heads, rope dims not summing to the head dim).
  void validate() const;
};

// config.json (the fixture's layout: constructor arguments plus "args", "audio_proj",
// "audio_adapter", "double_stream_list", "single_stream_list", "rope_theta"); keys it
// lacks keep the official values. Throws std::runtime_error naming the file.
HYAvatarDiTConfig read_hyavatar_dit_config(const std::string& config_json_path);

// The call's tensors, named as the reference's forward arguments.
struct HYAvatarDiTInputs {
  torch::Tensor x;              // [B, C, T, H, W] noisy latent
  torch::Tensor t;              // [B] timestep (0..1000)
  torch::Tensor ref_latents;    // [B, C, T, H, W] reference image latent repeated over T
  torch::Tensor text_states;    // [B, L, text_states_dim]
  torch::Tensor text_mask;      // [B, L] 1 = valid
  torch::Tensor text_states_2;  // [B, text_states_dim_2]
  torch::Tensor freqs_cos, freqs_sin;  // [(T'+1)*H'*W', head_dim] (rope_tables)
  torch::Tensor motion_exp, motion_pose;  // [B, 4] ids
  torch::Tensor fps;            // [B]
  torch::Tensor audio_prompts;  // [B, 4T'-3, seq_len, blocks, channels]
  torch::Tensor face_mask;      // [B, 1, 1 or T, H, W]
  torch::Tensor guidance;       // [B], only for guidance_embed models
};

// What flows between the parts of a forward pass.
struct HYAvatarDiTState {
  torch::Tensor vec;        // [B, D] modulation vector
  torch::Tensor img;        // [B, ref_len + video tokens, D] (double-block stream)
  torch::Tensor txt;        // [B, L, D]
  torch::Tensor x;          // [B, img + L, D] (single-block stream, after merge())
  torch::Tensor audio;      // [B, T', tokens per frame, D]
  torch::Tensor face_mask;  // [B, video tokens, 1]
  RopeTables rope;
  DitSegments seg;
  int64_t ref_len = 0, txt_len = 0;
  std::array<int64_t, 3> grid{0, 0, 0};  // video tokens (T', H', W')
};

class HYAvatarDiT {
 public:
  // `fp8_scales`: checkpoint keys held as float8 e4m3 bytes (uint8) with their per-tensor
  // scale (see load_hyavatar_dit_weights). load_blocks=false checks the block keys but
  // keeps no block weights (blocks are then loaded one at a time with load_*_block).
  // Throws tensorio::WeightError naming every missing, misshapen or unexpected key.
  static HYAvatarDiT load(const tensorio::Weights& w, HYAvatarDiTConfig cfg, bool load_blocks = true,
                          const std::map<std::string, double>& fp8_scales = {});
  // checkpoint_dir/config.json + checkpoint_dir/transformers/mp_rank_00_model_states.pt
  // (fp8: mp_rank_00_model_states_fp8.pt with its _fp8_map.pt scales).
  static HYAvatarDiT load_dir(const std::string& checkpoint_dir, bool load_blocks = true, bool fp8 = false);
  static DoubleStreamBlock load_double_block(const tensorio::Weights& w, const HYAvatarDiTConfig& cfg, int64_t i,
                                             const std::map<std::string, double>& fp8_scales = {});
  static SingleStreamBlock load_single_block(const tensorio::Weights& w, const HYAvatarDiTConfig& cfg, int64_t i,
                                             const std::map<std::string, double>& fp8_scales = {});

  // The prediction [B, out_channels, T, H, W]. `cache_out`, when given, receives the
  // tokens entering the last single block (the reference's self.cache_out).
  torch::Tensor forward(const HYAvatarDiTInputs& in, torch::Tensor* cache_out = nullptr) const;
  // The reference's is_cache=True call: only the last single block, on `cache`.
  torch::Tensor forward_cached(const HYAvatarDiTInputs& in, const torch::Tensor& cache) const;
  // The same with the last single block passed in (for runners that hold the blocks).
  torch::Tensor forward_cached(const HYAvatarDiTInputs& in, const torch::Tensor& cache,
                               const SingleStreamBlock& last_single_block) const;

  // forward() in parts, for callers that stream the blocks themselves.
  HYAvatarDiTState embed(const HYAvatarDiTInputs& in) const;
  // The double block, then its audio adapter when the block is in double_stream_list.
  void run_double_block(const DoubleStreamBlock& b, HYAvatarDiTState& s) const;
  // Only the adapter step that follows double block `block_index` (no-op when none).
  void apply_audio_adapter(int64_t block_index, HYAvatarDiTState& s) const;
  void merge(HYAvatarDiTState& s) const;  // x = [img; txt]
  void run_single_block(const SingleStreamBlock& b, HYAvatarDiTState& s) const;
  torch::Tensor head(const HYAvatarDiTState& s) const;  // final layer + unpatchify

  // Intermediate values for debugging (module outputs by the reference's hook names).
  torch::Tensor audio_tokens(const torch::Tensor& audio_prompts) const { return audio_proj_.forward(audio_prompts); }

  const HYAvatarDiTConfig& config() const { return cfg_; }
  const std::vector<DoubleStreamBlock>& double_blocks() const { return double_blocks_; }
  const std::vector<SingleStreamBlock>& single_blocks() const { return single_blocks_; }
  const std::vector<AudioAdapter>& audio_adapters() const { return adapters_; }
  // Takes the blocks out (a block-swapping runner holds them itself).
  std::pair<std::vector<DoubleStreamBlock>, std::vector<SingleStreamBlock>> release_blocks();
  // Bytes of every weight held (blocks included while held).
  int64_t bytes() const;

 private:
  torch::Tensor vector_of(const HYAvatarDiTInputs& in) const;
  void check_inputs(const HYAvatarDiTInputs& in, bool need_all) const;

  HYAvatarDiTConfig cfg_;
  torch::Tensor img_in_w_, img_in_b_, ref_in_w_, ref_in_b_;  // Conv3d patch embeddings
  TokenRefiner txt_in_;
  DitTimestepEmbedder time_in_, guidance_in_, motion_exp_, motion_pose_, fps_proj_;
  DitMLPEmbedder vector_in_;
  DitLinear before_proj_;
  AudioProj audio_proj_;
  std::vector<AudioAdapter> adapters_;
  std::map<int64_t, int64_t> double_adapter_;  // double block index -> adapter index
  std::vector<DoubleStreamBlock> double_blocks_;
  std::vector<SingleStreamBlock> single_blocks_;
  DitLinear final_mod_, final_linear_;
};

// The checkpoint as Weights with "module." stripped. fp8 (the official
// mp_rank_00_model_states_fp8.pt): `fp8_scales` receives, per linear weight key of the
// blocks, the scale from the sibling *_map.pt ({"module": {"<linear name>": scale}}).
tensorio::Weights load_hyavatar_dit_weights(const std::string& pt_path,
                                            std::map<std::string, double>* fp8_scales = nullptr);
// The reference's fp8 scale file beside an fp8 checkpoint: "<name>.pt" -> "<name>_map.pt".
std::string hyavatar_fp8_map_path(const std::string& pt_path);
// Its scales ({"module": {"<linear module name>": scale}}) keyed by the weight they
// multiply ("<linear module name>.weight"). Throws tensorio::WeightError naming the file
// and the entry when a scale is not a single number.
std::map<std::string, double> read_hyavatar_fp8_scales(const std::string& map_path);

}  // namespace reel::hyavatar
