// The Whisper encoder with every hidden state kept; see whisper_encoder.hpp.
#include "whisper_encoder.hpp"

#include "checkpoint_keys.hpp"

#include <cmath>
#include <fstream>
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace reel::hyavatar {
namespace {

int64_t positive(const nlohmann::json& j, const char* key, const std::string& path) {
  if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() <= 0)
    throw std::runtime_error(path + ": \"" + key + "\" must be a positive integer");
  return j[key].get<int64_t>();
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// Every encoder tensor the config implies, by its name under "encoder.", with its shape.
std::map<std::string, std::vector<int64_t>> expected_tensors(const WhisperEncoderConfig& c) {
  const int64_t d = c.d_model, f = c.encoder_ffn_dim;
  std::map<std::string, std::vector<int64_t>> e{
      {"conv1.weight", {d, c.num_mel_bins, 3}}, {"conv1.bias", {d}},
      {"conv2.weight", {d, d, 3}},              {"conv2.bias", {d}},
      {"embed_positions.weight", {c.max_source_positions, d}},
      {"layer_norm.weight", {d}},               {"layer_norm.bias", {d}},
  };
  for (int64_t i = 0; i < c.encoder_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    for (const char* proj : {"q_proj", "v_proj", "out_proj"}) {
      e[p + "self_attn." + proj + ".weight"] = {d, d};
      e[p + "self_attn." + proj + ".bias"] = {d};
    }
    e[p + "self_attn.k_proj.weight"] = {d, d};  // Whisper's key projection has no bias
    for (const char* norm : {"self_attn_layer_norm", "final_layer_norm"}) {
      e[p + norm + ".weight"] = {d};
      e[p + norm + ".bias"] = {d};
    }
    e[p + "fc1.weight"] = {f, d};
    e[p + "fc1.bias"] = {f};
    e[p + "fc2.weight"] = {d, f};
    e[p + "fc2.bias"] = {d};
  }
  return e;
}

torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps) {
  return torch::layer_norm(x, {x.size(-1)}, w, b, eps);
}

}  // namespace

WhisperEncoderConfig WhisperEncoderConfig::from_json(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot read the Whisper config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not valid JSON: " + e.what());
  }
  WhisperEncoderConfig c;
  c.d_model = positive(j, "d_model", path);
  c.encoder_layers = positive(j, "encoder_layers", path);
  c.encoder_attention_heads = positive(j, "encoder_attention_heads", path);
  c.encoder_ffn_dim = positive(j, "encoder_ffn_dim", path);
  c.num_mel_bins = positive(j, "num_mel_bins", path);
  c.max_source_positions = positive(j, "max_source_positions", path);
  if (j.contains("activation_function")) c.activation_function = j["activation_function"].get<std::string>();
  if (c.activation_function != "gelu")
    throw std::runtime_error(path + ": activation_function \"" + c.activation_function +
                             "\" is not supported (Whisper uses \"gelu\")");
  if (c.d_model % c.encoder_attention_heads != 0)
    throw std::runtime_error(path + ": d_model " + std::to_string(c.d_model) + " is not divisible by " +
                             std::to_string(c.encoder_attention_heads) + " encoder_attention_heads");
  return c;
}

WhisperEncoder WhisperEncoder::load(const tensorio::Weights& w, const WhisperEncoderConfig& cfg) {
  // A released checkpoint is WhisperForConditionalGeneration ("model.encoder.*"); a
  // WhisperModel saved on its own has no "model." prefix.
  bool wrapped = false, bare = false;
  for (const auto& kv : w.all()) {
    wrapped |= starts_with(kv.first, "model.encoder.");
    bare |= starts_with(kv.first, "encoder.");
  }
  if (!wrapped && !bare)
    throw tensorio::WeightError(w.source() + ": no Whisper encoder tensors (expected model.encoder.* or encoder.*)");
  const std::string prefix = wrapped ? "model." : "";
  const std::string enc = prefix + "encoder.";

  const auto expected = expected_tensors(cfg);
  CheckpointReader keys(w, "Whisper encoder (config.json: d_model " + std::to_string(cfg.d_model) + ", " +
                               std::to_string(cfg.encoder_layers) + " layers)");
  for (const auto& [name, shape] : expected) keys.take(enc + name, shape, /*materialize=*/false);
  keys.accept_prefix(prefix + "decoder.");   // the decoder and LM head are skipped on purpose
  keys.accept_prefix("proj_out.weight");
  keys.finish();

  WhisperEncoder e;
  e.cfg_ = cfg;
  auto get = [&](const std::string& name) { return w.require(enc + name, expected.at(name)).contiguous(); };
  e.conv1_w_ = get("conv1.weight");
  e.conv1_b_ = get("conv1.bias");
  e.conv2_w_ = get("conv2.weight");
  e.conv2_b_ = get("conv2.bias");
  e.positions_ = get("embed_positions.weight");
  e.final_norm_w_ = get("layer_norm.weight");
  e.final_norm_b_ = get("layer_norm.bias");
  for (int64_t i = 0; i < cfg.encoder_layers; ++i) {
    const std::string p = "layers." + std::to_string(i) + ".";
    Layer l;
    l.attn_norm_w = get(p + "self_attn_layer_norm.weight");
    l.attn_norm_b = get(p + "self_attn_layer_norm.bias");
    l.q_w = get(p + "self_attn.q_proj.weight");
    l.q_b = get(p + "self_attn.q_proj.bias");
    l.k_w = get(p + "self_attn.k_proj.weight");
    l.v_w = get(p + "self_attn.v_proj.weight");
    l.v_b = get(p + "self_attn.v_proj.bias");
    l.out_w = get(p + "self_attn.out_proj.weight");
    l.out_b = get(p + "self_attn.out_proj.bias");
    l.mlp_norm_w = get(p + "final_layer_norm.weight");
    l.mlp_norm_b = get(p + "final_layer_norm.bias");
    l.fc1_w = get(p + "fc1.weight");
    l.fc1_b = get(p + "fc1.bias");
    l.fc2_w = get(p + "fc2.weight");
    l.fc2_b = get(p + "fc2.bias");
    e.layers_.push_back(std::move(l));
  }
  return e;
}

std::vector<ExpectedTensor> WhisperEncoder::expected_keys(const WhisperEncoderConfig& cfg) {
  std::vector<ExpectedTensor> keys;
  for (const auto& [name, shape] : expected_tensors(cfg)) keys.push_back({"encoder." + name, shape});
  return keys;
}

WhisperEncoder WhisperEncoder::load_dir(const std::string& dir) {
  return load(tensorio::load_weights(dir + "/model.safetensors"), WhisperEncoderConfig::from_json(dir + "/config.json"));
}

torch::Tensor WhisperEncoder::run_layer(const Layer& l, const torch::Tensor& x) const {
  const int64_t t = x.size(1), d = cfg_.d_model, heads = cfg_.encoder_attention_heads, hd = d / heads;
  const double scaling = std::pow(static_cast<double>(hd), -0.5);
  auto h = layer_norm(x, l.attn_norm_w, l.attn_norm_b, cfg_.layer_norm_eps);
  // [1, t, d] -> [1, heads, t, hd]; the query is scaled before the product, as HF does.
  auto split = [&](const torch::Tensor& y) { return y.view({1, t, heads, hd}).transpose(1, 2); };
  const auto q = split(torch::linear(h, l.q_w, l.q_b) * scaling);
  const auto k = split(torch::linear(h, l.k_w));
  const auto v = split(torch::linear(h, l.v_w, l.v_b));
  const auto probs = torch::softmax(q.matmul(k.transpose(-1, -2)), -1);
  const auto attn = probs.matmul(v).transpose(1, 2).reshape({1, t, d});
  auto y = x + torch::linear(attn, l.out_w, l.out_b);
  h = layer_norm(y, l.mlp_norm_w, l.mlp_norm_b, cfg_.layer_norm_eps);
  return y + torch::linear(torch::gelu(torch::linear(h, l.fc1_w, l.fc1_b)), l.fc2_w, l.fc2_b);
}

torch::Tensor WhisperEncoder::hidden_states(const torch::Tensor& mel) const {
  auto x = mel.dim() == 2 ? mel.unsqueeze(0) : mel;
  if (x.dim() != 3 || x.size(0) != 1 || x.size(1) != cfg_.num_mel_bins || x.size(2) != cfg_.input_frames())
    throw std::invalid_argument("WhisperEncoder: expected mel features [" + std::to_string(cfg_.num_mel_bins) + ", " +
                                std::to_string(cfg_.input_frames()) + "] (one 30 s chunk), got " +
                                c10::str(mel.sizes()));
  x = x.to(torch::kFloat32);
  x = torch::gelu(torch::conv1d(x, conv1_w_, conv1_b_, /*stride=*/1, /*padding=*/1));
  x = torch::gelu(torch::conv1d(x, conv2_w_, conv2_b_, /*stride=*/2, /*padding=*/1));
  x = x.permute({0, 2, 1}) + positions_;
  std::vector<torch::Tensor> states{x};
  for (const auto& l : layers_) {
    x = run_layer(l, x);
    states.push_back(x);
  }
  states.back() = layer_norm(x, final_norm_w_, final_norm_b_, cfg_.layer_norm_eps);
  return torch::stack(states, 2);
}

torch::Tensor WhisperEncoder::hidden_states_chunked(const torch::Tensor& mel) const {
  const auto x = mel.dim() == 3 && mel.size(0) == 1 ? mel.squeeze(0) : mel;
  const int64_t chunk = cfg_.input_frames();
  if (x.dim() != 2 || x.size(0) != cfg_.num_mel_bins || x.size(1) < chunk || x.size(1) % chunk != 0)
    throw std::invalid_argument("WhisperEncoder: expected mel features [" + std::to_string(cfg_.num_mel_bins) +
                                ", " + std::to_string(chunk) + " * chunks] (whole 30 s chunks, as "
                                "whisper_audio_features returns them), got " + c10::str(mel.sizes()));
  std::vector<torch::Tensor> chunks;
  for (int64_t start = 0; start < x.size(1); start += chunk) chunks.push_back(hidden_states(x.slice(1, start, start + chunk)));
  return torch::cat(chunks, 1);
}

}  // namespace reel::hyavatar
