#include "dit.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace reel::hyavatar {

namespace {
std::string sizes_str(const torch::Tensor& t) {
  if (!t.defined()) return "(undefined)";
  std::ostringstream o;
  o << t.sizes();
  return o.str();
}
[[noreturn]] void bad_input(const std::string& what) { throw std::invalid_argument("HYAvatarDiT: " + what); }
}  // namespace

void HYAvatarDiTConfig::validate() const {
  auto fail = [](const std::string& m) { throw std::invalid_argument("HYAvatarDiT config: " + m); };
  if (hidden_size % num_heads) fail("hidden_size must be divisible by num_heads");
  int64_t sum = 0;
  for (auto d : rope_dim_list) sum += d;
  if (rope_dim_list.size() != 3 || sum != head_dim()) fail("rope_dim_list must have 3 entries summing to the head dim");
  if (text_projection != "single_refiner") fail("text_projection '" + text_projection + "' is not supported");
  if (mlp_act_type != "gelu_tanh") fail("mlp_act_type '" + mlp_act_type + "' is not supported");
  if (qk_norm && qk_norm_type != "rms") fail("qk_norm_type '" + qk_norm_type + "' is not supported");
  if (adapter_dim != hidden_size) fail("audio_adapter.dim must equal hidden_size");
  if (audio_proj.output_dim != hidden_size) fail("audio_proj.output_dim must equal hidden_size");
  for (auto i : double_stream_list)
    if (i < 0) fail("double_stream_list entries must be block indices");
}

HYAvatarDiTConfig read_hyavatar_dit_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read the DiT config " + path);
  HYAvatarDiTConfig c;
  try {
    auto j = nlohmann::json::parse(f);
    auto opt = [&](const nlohmann::json& o, const char* k, auto& v) {
      if (o.contains(k)) v = o.at(k).get<std::decay_t<decltype(v)>>();
    };
    if (j.contains("args")) {
      const auto& a = j.at("args");
      opt(a, "text_projection", c.text_projection);
      opt(a, "text_states_dim", c.text_states_dim);
      opt(a, "text_states_dim_2", c.text_states_dim_2);
      opt(a, "use_attention_mask", c.use_attention_mask);
    }
    opt(j, "patch_size", c.patch_size);
    opt(j, "in_channels", c.in_channels);
    c.out_channels = c.in_channels;
    if (j.contains("out_channels") && !j.at("out_channels").is_null()) opt(j, "out_channels", c.out_channels);
    opt(j, "hidden_size", c.hidden_size);
    opt(j, "mlp_width_ratio", c.mlp_width_ratio);
    opt(j, "mlp_act_type", c.mlp_act_type);
    opt(j, "num_heads", c.num_heads);
    opt(j, "depth_double_blocks", c.depth_double_blocks);
    opt(j, "depth_single_blocks", c.depth_single_blocks);
    opt(j, "rope_dim_list", c.rope_dim_list);
    opt(j, "qkv_bias", c.qkv_bias);
    opt(j, "qk_norm", c.qk_norm);
    opt(j, "qk_norm_type", c.qk_norm_type);
    opt(j, "guidance_embed", c.guidance_embed);
    opt(j, "rope_theta", c.rope_theta);
    if (j.contains("audio_proj")) {
      const auto& a = j.at("audio_proj");
      opt(a, "seq_len", c.audio_proj.seq_len);
      opt(a, "blocks", c.audio_proj.blocks);
      opt(a, "channels", c.audio_proj.channels);
      opt(a, "intermediate_dim", c.audio_proj.intermediate_dim);
      opt(a, "output_dim", c.audio_proj.output_dim);
      opt(a, "context_tokens", c.audio_proj.context_tokens);
    }
    if (j.contains("audio_adapter")) {
      const auto& a = j.at("audio_adapter");
      opt(a, "dim", c.adapter_dim);
      opt(a, "dim_head", c.adapter_dim_head);
      opt(a, "heads", c.adapter_heads);
    }
    opt(j, "double_stream_list", c.double_stream_list);
    opt(j, "single_stream_list", c.single_stream_list);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  return c;
}

std::string hyavatar_fp8_map_path(const std::string& pt_path) {
  const auto dot = pt_path.rfind(".pt");
  if (dot == std::string::npos || dot + 3 != pt_path.size())
    throw tensorio::WeightError(pt_path + ": an fp8 checkpoint must end in .pt (its scales are in <name>_map.pt)");
  return pt_path.substr(0, dot) + "_map.pt";
}

std::map<std::string, double> read_hyavatar_fp8_scales(const std::string& map_path) {
  auto scales = tensorio::load_weights(map_path);
  scales.strip_prefix("module.");
  std::map<std::string, double> out;
  for (const auto& [name, s] : scales.all()) {
    if (s.numel() != 1)
      throw tensorio::WeightError(map_path + ": the scale of " + name + " must be one number (per-tensor), got " +
                                  std::to_string(s.numel()));
    out[name + ".weight"] = s.to(torch::kFloat64).item<double>();
  }
  return out;
}

tensorio::Weights load_hyavatar_dit_weights(const std::string& pt_path, std::map<std::string, double>* fp8_scales) {
  auto w = tensorio::load_weights(pt_path);
  w.strip_prefix("module.");
  // The reference's convert_fp8_linear reads the scales from <file>_map.pt.
  if (fp8_scales) *fp8_scales = read_hyavatar_fp8_scales(hyavatar_fp8_map_path(pt_path));
  return w;
}

HYAvatarDiT HYAvatarDiT::load(const tensorio::Weights& w, HYAvatarDiTConfig cfg, bool load_blocks,
                              const std::map<std::string, double>& fp8_scales) {
  cfg.validate();
  CheckpointReader r(w, "HunyuanVideo-Avatar DiT", fp8_scales);
  HYAvatarDiT m;
  m.cfg_ = cfg;
  const int64_t D = cfg.hidden_size;
  const auto& p = cfg.patch_size;
  const std::vector<int64_t> conv{D, cfg.in_channels, p[0], p[1], p[2]};
  m.img_in_w_ = r.take("img_in.proj.weight", conv);
  m.img_in_b_ = r.take("img_in.proj.bias", {D});
  m.ref_in_w_ = r.take("ref_in.proj.weight", conv);
  m.ref_in_b_ = r.take("ref_in.proj.bias", {D});
  m.txt_in_ = TokenRefiner::load(r, "txt_in", cfg.text_states_dim, D, cfg.num_heads);
  m.time_in_ = DitTimestepEmbedder::load(r, "time_in", D);
  if (cfg.guidance_embed) m.guidance_in_ = DitTimestepEmbedder::load(r, "guidance_in", D);
  m.vector_in_ = DitMLPEmbedder::load(r, "vector_in", cfg.text_states_dim_2, D);
  m.motion_exp_ = DitTimestepEmbedder::load(r, "motion_exp", D / 4);
  m.motion_pose_ = DitTimestepEmbedder::load(r, "motion_pose", D / 4);
  m.fps_proj_ = DitTimestepEmbedder::load(r, "fps_proj", D);
  m.before_proj_ = DitLinear::load(r, "before_proj", D, D);
  m.audio_proj_ = AudioProj::load(r, cfg.audio_proj);
  for (int64_t j = 0; j < cfg.num_adapters(); ++j)
    m.adapters_.push_back(
        AudioAdapter::load(r, "audio_adapter_blocks." + std::to_string(j), cfg.adapter_dim, cfg.adapter_dim_head));
  for (size_t j = 0; j < cfg.double_stream_list.size(); ++j)
    m.double_adapter_[cfg.double_stream_list[j]] = static_cast<int64_t>(j);
  const auto dims = cfg.block_dims();
  for (int64_t i = 0; i < cfg.depth_double_blocks; ++i) {
    auto b = DoubleStreamBlock::load(r, dims, i, load_blocks);
    if (load_blocks) m.double_blocks_.push_back(std::move(b));
  }
  for (int64_t i = 0; i < cfg.depth_single_blocks; ++i) {
    auto b = SingleStreamBlock::load(r, dims, i, load_blocks);
    if (load_blocks) m.single_blocks_.push_back(std::move(b));
  }
  m.final_mod_ = DitLinear::load(r, "final_layer.adaLN_modulation.1", D, 2 * D);
  m.final_linear_ = DitLinear::load(r, "final_layer.linear", D, p[0] * p[1] * p[2] * cfg.out_channels);
  r.finish();
  return m;
}

HYAvatarDiT HYAvatarDiT::load_dir(const std::string& dir, bool load_blocks, bool fp8) {
  auto cfg = read_hyavatar_dit_config(dir + "/config.json");
  std::map<std::string, double> scales;
  const auto pt = dir + "/transformers/mp_rank_00_model_states" + (fp8 ? "_fp8.pt" : ".pt");
  auto w = load_hyavatar_dit_weights(pt, fp8 ? &scales : nullptr);
  return load(w, cfg, load_blocks, scales);
}

DoubleStreamBlock HYAvatarDiT::load_double_block(const tensorio::Weights& w, const HYAvatarDiTConfig& cfg, int64_t i,
                                                 const std::map<std::string, double>& fp8_scales) {
  CheckpointReader r(w, "HunyuanVideo-Avatar DiT", fp8_scales);
  auto b = DoubleStreamBlock::load(r, cfg.block_dims(), i);
  r.accept_prefix("");  // only this block's keys are checked here (the model load checks the rest)
  r.finish();
  return b;
}

SingleStreamBlock HYAvatarDiT::load_single_block(const tensorio::Weights& w, const HYAvatarDiTConfig& cfg, int64_t i,
                                                 const std::map<std::string, double>& fp8_scales) {
  CheckpointReader r(w, "HunyuanVideo-Avatar DiT", fp8_scales);
  auto b = SingleStreamBlock::load(r, cfg.block_dims(), i);
  r.accept_prefix("");
  r.finish();
  return b;
}

void HYAvatarDiT::check_inputs(const HYAvatarDiTInputs& in, bool need_all) const {
  const auto& c = cfg_;
  const auto& x = in.x;
  if (!x.defined() || x.dim() != 5 || x.size(1) != c.in_channels)
    bad_input("x must be [B, " + std::to_string(c.in_channels) + ", T, H, W], got " + sizes_str(x));
  for (int i = 0; i < 3; ++i)
    if (x.size(2 + i) % c.patch_size[i]) bad_input("x " + sizes_str(x) + " is not divisible by the patch size");
  const int64_t B = x.size(0);
  if (!in.t.defined() || in.t.numel() != B) bad_input("t must hold one timestep per sample, got " + sizes_str(in.t));
  if (!in.text_mask.defined() || in.text_mask.dim() != 2 || in.text_mask.size(0) != B)
    bad_input("text_mask must be [B, L], got " + sizes_str(in.text_mask));
  if (!in.text_states_2.defined() || in.text_states_2.dim() != 2 || in.text_states_2.size(0) != B ||
      in.text_states_2.size(1) != c.text_states_dim_2)
    bad_input("text_states_2 must be [B, " + std::to_string(c.text_states_dim_2) + "], got " +
              sizes_str(in.text_states_2));
  for (const auto* m : {&in.motion_exp, &in.motion_pose})
    if (!m->defined() || m->numel() != 4 * B) bad_input("motion_exp / motion_pose must be [B, 4], got " + sizes_str(*m));
  if (!in.fps.defined() || in.fps.numel() != B) bad_input("fps must be [B], got " + sizes_str(in.fps));
  if (c.guidance_embed && (!in.guidance.defined() || in.guidance.numel() != B))
    bad_input("this model is guidance-distilled and needs guidance [B], got " + sizes_str(in.guidance));
  const int64_t tokens = (x.size(2) / c.patch_size[0] + 1) * (x.size(3) / c.patch_size[1]) * (x.size(4) / c.patch_size[2]);
  for (const auto* f : {&in.freqs_cos, &in.freqs_sin})
    if (!f->defined() || f->dim() != 2 || f->size(0) != tokens || f->size(1) != c.head_dim())
      bad_input("freqs_cos / freqs_sin must be [" + std::to_string(tokens) + ", " + std::to_string(c.head_dim()) +
                "] (reference frame + video tokens, rope_tables), got " + sizes_str(*f));
  if (!need_all) return;
  if (!in.ref_latents.defined() || in.ref_latents.sizes() != x.sizes())
    bad_input("ref_latents must have x's shape " + sizes_str(x) + ", got " + sizes_str(in.ref_latents));
  if (!in.text_states.defined() || in.text_states.dim() != 3 || in.text_states.size(0) != B ||
      in.text_states.size(1) != in.text_mask.size(1) || in.text_states.size(2) != c.text_states_dim)
    bad_input("text_states must be [B, L, " + std::to_string(c.text_states_dim) + "] matching text_mask, got " +
              sizes_str(in.text_states));
  const int64_t T = x.size(2) / c.patch_size[0];
  if (!in.audio_prompts.defined() || in.audio_prompts.dim() != 5 || in.audio_prompts.size(0) != B ||
      in.audio_prompts.size(1) + 3 != 4 * T)
    bad_input("audio_prompts must be [B, 4T-3 = " + std::to_string(4 * T - 3) + ", seq_len, blocks, channels], got " +
              sizes_str(in.audio_prompts));
  const auto& fm = in.face_mask;
  if (!fm.defined() || fm.dim() != 5 || fm.size(0) != B || fm.size(1) != 1 || (fm.size(2) != 1 && fm.size(2) != x.size(2)))
    bad_input("face_mask must be [B, 1, 1 or T, H, W], got " + sizes_str(fm));
}

torch::Tensor HYAvatarDiT::vector_of(const HYAvatarDiTInputs& in) const {
  const int64_t B = in.x.size(0);
  auto vec = time_in_(in.t);
  vec = vec + motion_exp_(in.motion_exp.reshape({-1})).view({B, -1});
  vec = vec + motion_pose_(in.motion_pose.reshape({-1})).view({B, -1});
  vec = vec + fps_proj_(in.fps);
  vec = vec + vector_in_(in.text_states_2.to(torch::kFloat32));
  if (cfg_.guidance_embed) vec = vec + guidance_in_(in.guidance);
  return vec;
}

namespace {
// Conv3d with kernel = stride = patch, flattened to tokens [B, T'*H'*W', D] (t-h-w order).
torch::Tensor patch_embed(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                          const std::array<int64_t, 3>& p) {
  auto y = torch::conv3d(x.to(torch::kFloat32), w, b, {p[0], p[1], p[2]});
  return y.flatten(2).transpose(1, 2);
}
}  // namespace

HYAvatarDiTState HYAvatarDiT::embed(const HYAvatarDiTInputs& in) const {
  check_inputs(in, true);
  const auto& c = cfg_;
  const int64_t B = in.x.size(0), D = c.hidden_size;
  HYAvatarDiTState s;
  s.grid = {in.x.size(2) / c.patch_size[0], in.x.size(3) / c.patch_size[1], in.x.size(4) / c.patch_size[2]};
  const int64_t ot = s.grid[0];
  s.vec = vector_of(in);
  auto audio = audio_proj_.forward(in.audio_prompts);  // [B, F, ctx, D]
  auto pad = audio.slice(1, 0, 1).repeat({1, 3, 1, 1});
  s.audio = torch::cat({pad, audio}, 1).reshape({B, ot, -1, D});

  auto img = patch_embed(in.x, img_in_w_, img_in_b_, c.patch_size);
  auto ref = patch_embed(in.ref_latents, ref_in_w_, ref_in_b_, c.patch_size);
  auto ref_first = patch_embed(in.ref_latents.slice(2, 0, 1), img_in_w_, img_in_b_, c.patch_size);
  s.txt = txt_in_.forward(in.text_states, in.t, c.use_attention_mask ? in.text_mask : torch::Tensor());
  img = before_proj_(ref) + img;
  s.ref_len = ref_first.size(1);
  s.img = torch::cat({ref_first, img}, 1);

  auto fm = in.face_mask.to(torch::kFloat32);
  if (fm.size(2) == 1) fm = fm.repeat({1, 1, in.x.size(2), 1, 1});
  const std::vector<int64_t> grid_size{ot, s.grid[1], s.grid[2]};
  fm = torch::upsample_nearest3d(fm, c10::IntArrayRef(grid_size));
  s.face_mask = fm.reshape({B, -1, 1});

  s.txt_len = s.txt.size(1);
  s.seg = DitSegments::from_text_mask(in.text_mask, s.img.size(1));
  s.rope = {in.freqs_cos.to(torch::kFloat32), in.freqs_sin.to(torch::kFloat32)};
  return s;
}

void HYAvatarDiT::run_double_block(const DoubleStreamBlock& b, HYAvatarDiTState& s) const {
  b.forward(s.img, s.txt, s.vec, s.seg, s.rope);
  apply_audio_adapter(b.index, s);
}

void HYAvatarDiT::apply_audio_adapter(int64_t block_index, HYAvatarDiTState& s) const {
  auto it = double_adapter_.find(block_index);
  if (it == double_adapter_.end() || it->second >= static_cast<int64_t>(adapters_.size())) return;
  const int64_t B = s.img.size(0), D = cfg_.hidden_size;
  auto video = s.img.slice(1, s.ref_len);
  auto out = adapters_[it->second].forward(s.audio, video.reshape({B, s.grid[0], -1, D})).reshape({B, -1, D});
  // The reference adds zeros to the reference frame's tokens; adding nothing is the same.
  s.img = torch::cat({s.img.slice(1, 0, s.ref_len), video + out * s.face_mask}, 1);
}

void HYAvatarDiT::merge(HYAvatarDiTState& s) const { s.x = torch::cat({s.img, s.txt}, 1); }

void HYAvatarDiT::run_single_block(const SingleStreamBlock& b, HYAvatarDiTState& s) const {
  s.x = b.forward(s.x, s.vec, s.txt_len, s.seg, s.rope);
}

torch::Tensor HYAvatarDiT::head(const HYAvatarDiTState& s) const {
  const auto& c = cfg_;
  auto img = s.x.slice(1, s.ref_len, s.x.size(1) - s.txt_len);
  auto m = final_mod_(torch::silu(s.vec)).chunk(2, 1);
  img = final_linear_(dit_modulate(dit_layer_norm(img, {}, {}, 1e-6), m[0], m[1]));
  const auto& p = c.patch_size;
  const int64_t B = img.size(0), C = c.out_channels;
  auto y = img.reshape({B, s.grid[0], s.grid[1], s.grid[2], C, p[0], p[1], p[2]});
  y = y.permute({0, 4, 1, 5, 2, 6, 3, 7});  // nthwcopq -> nctohpwq
  return y.reshape({B, C, s.grid[0] * p[0], s.grid[1] * p[1], s.grid[2] * p[2]});
}

torch::Tensor HYAvatarDiT::forward(const HYAvatarDiTInputs& in, torch::Tensor* cache_out) const {
  if (double_blocks_.size() != static_cast<size_t>(cfg_.depth_double_blocks) ||
      single_blocks_.size() != static_cast<size_t>(cfg_.depth_single_blocks))
    throw std::logic_error("HYAvatarDiT::forward needs the blocks loaded (load_blocks=true, not released)");
  auto s = embed(in);
  for (const auto& b : double_blocks_) run_double_block(b, s);
  merge(s);
  for (size_t i = 0; i < single_blocks_.size(); ++i) {
    if (cache_out && i + 1 == single_blocks_.size()) *cache_out = s.x;
    run_single_block(single_blocks_[i], s);
  }
  return head(s);
}

torch::Tensor HYAvatarDiT::forward_cached(const HYAvatarDiTInputs& in, const torch::Tensor& cache) const {
  if (single_blocks_.empty()) throw std::logic_error("HYAvatarDiT::forward_cached needs the single blocks loaded");
  return forward_cached(in, cache, single_blocks_.back());
}

torch::Tensor HYAvatarDiT::forward_cached(const HYAvatarDiTInputs& in, const torch::Tensor& cache,
                                          const SingleStreamBlock& last_single_block) const {
  check_inputs(in, false);
  const auto& c = cfg_;
  HYAvatarDiTState s;
  s.grid = {in.x.size(2) / c.patch_size[0], in.x.size(3) / c.patch_size[1], in.x.size(4) / c.patch_size[2]};
  s.ref_len = s.grid[1] * s.grid[2];
  s.txt_len = in.text_mask.size(1);
  const int64_t img_len = s.ref_len + s.grid[0] * s.grid[1] * s.grid[2];
  if (!cache.defined() || cache.dim() != 3 || cache.size(0) != in.x.size(0) || cache.size(1) != img_len + s.txt_len ||
      cache.size(2) != c.hidden_size)
    bad_input("the step cache must be [B, " + std::to_string(img_len + s.txt_len) + ", " +
              std::to_string(c.hidden_size) + "] (from forward(in, &cache) on the same shapes), got " + sizes_str(cache));
  s.vec = vector_of(in);
  s.seg = DitSegments::from_text_mask(in.text_mask, img_len);
  s.rope = {in.freqs_cos.to(torch::kFloat32), in.freqs_sin.to(torch::kFloat32)};
  s.x = cache;
  run_single_block(last_single_block, s);
  return head(s);
}

std::pair<std::vector<DoubleStreamBlock>, std::vector<SingleStreamBlock>> HYAvatarDiT::release_blocks() {
  std::pair<std::vector<DoubleStreamBlock>, std::vector<SingleStreamBlock>> out{std::move(double_blocks_),
                                                                                std::move(single_blocks_)};
  double_blocks_.clear();
  single_blocks_.clear();
  return out;
}

int64_t HYAvatarDiT::bytes() const {
  int64_t n = dit_tensor_bytes(img_in_w_) + dit_tensor_bytes(img_in_b_) + dit_tensor_bytes(ref_in_w_) +
              dit_tensor_bytes(ref_in_b_) + txt_in_.bytes() + time_in_.bytes() + guidance_in_.bytes() +
              motion_exp_.bytes() + motion_pose_.bytes() + fps_proj_.bytes() + vector_in_.bytes() +
              before_proj_.bytes() + audio_proj_.bytes() + final_mod_.bytes() + final_linear_.bytes();
  for (const auto& a : adapters_) n += a.bytes();
  for (const auto& b : double_blocks_) n += b.bytes();
  for (const auto& b : single_blocks_) n += b.bytes();
  return n;
}

}  // namespace reel::hyavatar
