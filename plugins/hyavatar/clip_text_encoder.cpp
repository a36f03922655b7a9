// CLIP's text tower; see clip_text_encoder.hpp. Operations follow transformers 4.45
// CLIPTextTransformer / CLIPEncoderLayer / CLIPAttention / CLIPMLP in the same order.
#include "clip_text_encoder.hpp"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "checkpoint_keys.hpp"

namespace reel::hyavatar {

namespace F = torch::nn::functional;
using tensorio::WeightError;

namespace {
const std::string kText = "text_model.";
const std::string kLayers = kText + "encoder.layers.";

torch::Tensor f32(const torch::Tensor& t) { return t.to(torch::kFloat32); }

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  return F::linear(x, f32(w), f32(b));
}

torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps) {
  return torch::layer_norm(x, {x.size(-1)}, f32(w), f32(b), eps);
}
}  // namespace

ClipTextConfig ClipTextConfig::from_json_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot read " + path + " (the CLIP text encoder's config.json)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": invalid JSON (" + std::string(e.what()) + ")");
  }
  const nlohmann::json& t = j.contains("text_config") ? j["text_config"] : j;
  // Keys a config leaves out take transformers' CLIPTextConfig defaults, as the
  // reference's from_pretrained does (note eos_token_id: 49407 by default, while the
  // official CLIP-L config states the legacy 2).
  auto get = [&](const char* key, auto fallback) {
    return t.contains(key) && !t[key].is_null() ? t[key].get<decltype(fallback)>() : fallback;
  };
  ClipTextConfig c;
  c.vocab_size = get("vocab_size", int64_t{49408});
  c.hidden_size = get("hidden_size", int64_t{512});
  c.intermediate_size = get("intermediate_size", int64_t{2048});
  c.num_layers = get("num_hidden_layers", int64_t{12});
  c.num_heads = get("num_attention_heads", int64_t{8});
  c.max_positions = get("max_position_embeddings", int64_t{77});
  c.layer_norm_eps = get("layer_norm_eps", 1e-5);
  c.hidden_act = get("hidden_act", std::string("quick_gelu"));
  c.eos_token_id = get("eos_token_id", int64_t{49407});
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu")
    throw std::runtime_error(path + ": hidden_act \"" + c.hidden_act + "\" is not supported (quick_gelu or gelu)");
  if (c.num_heads <= 0 || c.hidden_size % c.num_heads != 0)
    throw std::runtime_error(path + ": hidden_size " + std::to_string(c.hidden_size) + " is not divisible by " +
                             std::to_string(c.num_heads) + " attention heads");
  return c;
}

std::vector<torch::Tensor*> ClipTextEncoder::Layer::tensors() {
  return {&ln1_w, &ln1_b, &q_w, &q_b, &k_w, &k_b, &v_w, &v_b, &o_w, &o_b, &ln2_w, &ln2_b, &fc1_w, &fc1_b, &fc2_w, &fc2_b};
}

std::vector<torch::Tensor*> ClipTextEncoder::tensors() {
  std::vector<torch::Tensor*> all{&token_emb_, &pos_emb_, &final_ln_w_, &final_ln_b_};
  for (Layer& l : layers_)
    for (torch::Tensor* t : l.tensors()) all.push_back(t);
  return all;
}

ClipTextEncoder ClipTextEncoder::load(const ClipTextConfig& c, const tensorio::Weights& w, torch::Dtype dt) {
  const int64_t H = c.hidden_size, M = c.intermediate_size;
  std::vector<ExpectedTensor> expected{{kText + "embeddings.token_embedding.weight", {c.vocab_size, H}},
                                       {kText + "embeddings.position_embedding.weight", {c.max_positions, H}},
                                       {kText + "final_layer_norm.weight", {H}},
                                       {kText + "final_layer_norm.bias", {H}}};
  const std::pair<const char*, std::vector<int64_t>> layer_shapes[] = {
      {"layer_norm1.weight", {H}},         {"layer_norm1.bias", {H}},         {"self_attn.q_proj.weight", {H, H}},
      {"self_attn.q_proj.bias", {H}},      {"self_attn.k_proj.weight", {H, H}}, {"self_attn.k_proj.bias", {H}},
      {"self_attn.v_proj.weight", {H, H}}, {"self_attn.v_proj.bias", {H}},    {"self_attn.out_proj.weight", {H, H}},
      {"self_attn.out_proj.bias", {H}},    {"layer_norm2.weight", {H}},       {"layer_norm2.bias", {H}},
      {"mlp.fc1.weight", {M, H}},          {"mlp.fc1.bias", {M}},             {"mlp.fc2.weight", {H, M}},
      {"mlp.fc2.bias", {H}}};
  for (int64_t i = 0; i < c.num_layers; ++i)
    for (const auto& ls : layer_shapes) expected.push_back({kLayers + std::to_string(i) + "." + ls.first, ls.second});
  // The rest of a CLIPModel, and the position_ids buffer older exports carry.
  check_checkpoint_keys(w, expected,
                        {"vision_model.", "visual_projection.", "text_projection.", "logit_scale",
                         kText + "embeddings.position_ids"},
                        "CLIP text encoder");

  ClipTextEncoder e;
  e.cfg_ = c;
  e.token_emb_ = w.require(expected[0].name, expected[0].shape, dt);
  e.pos_emb_ = w.require(expected[1].name, expected[1].shape, dt);
  e.final_ln_w_ = w.require(expected[2].name, expected[2].shape, dt);
  e.final_ln_b_ = w.require(expected[3].name, expected[3].shape, dt);
  size_t k = 4;
  for (int64_t i = 0; i < c.num_layers; ++i) {
    Layer l;
    for (torch::Tensor* t : l.tensors()) {
      *t = w.require(expected[k].name, expected[k].shape, dt);
      ++k;
    }
    e.layers_.push_back(std::move(l));
  }
  return e;
}

ClipTextEncoder ClipTextEncoder::load_dir(const std::string& dir, const std::string& weights_file, torch::Dtype dt) {
  return load(ClipTextConfig::from_json_file(dir + "/config.json"), tensorio::load_weights(dir + "/" + weights_file), dt);
}

ClipTextEncoder ClipTextEncoder::to(const torch::Device& device) const {
  ClipTextEncoder e = *this;
  for (torch::Tensor* t : e.tensors()) *t = t->to(device);
  return e;
}

int64_t ClipTextEncoder::bytes() const {
  int64_t n = 0;
  for (torch::Tensor* t : const_cast<ClipTextEncoder*>(this)->tensors()) n += t->numel() * t->element_size();
  return n;
}

torch::Tensor ClipTextEncoder::run_layer(const Layer& l, const torch::Tensor& x, const torch::Tensor& additive_mask) const {
  const int64_t B = x.size(0), L = x.size(1), H = cfg_.hidden_size, N = cfg_.num_heads, Dh = H / N;
  torch::Tensor h = layer_norm(x, l.ln1_w, l.ln1_b, cfg_.layer_norm_eps);
  // CLIPAttention scales the queries before the product.
  auto heads = [&](const torch::Tensor& t) { return t.view({B, L, N, Dh}).transpose(1, 2); };
  torch::Tensor q = heads(linear(h, l.q_w, l.q_b) * std::pow(static_cast<double>(Dh), -0.5));
  torch::Tensor k = heads(linear(h, l.k_w, l.k_b));
  torch::Tensor v = heads(linear(h, l.v_w, l.v_b));
  torch::Tensor attn = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) + additive_mask, -1);
  torch::Tensor o = torch::matmul(attn, v).transpose(1, 2).reshape({B, L, H});
  torch::Tensor r = x + linear(o, l.o_w, l.o_b);
  h = linear(layer_norm(r, l.ln2_w, l.ln2_b, cfg_.layer_norm_eps), l.fc1_w, l.fc1_b);
  h = cfg_.hidden_act == "quick_gelu" ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);
  return r + linear(h, l.fc2_w, l.fc2_b);
}

ClipTextOutput ClipTextEncoder::encode(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) const {
  if (input_ids.dim() != 2 || attention_mask.sizes() != input_ids.sizes())
    throw std::invalid_argument("CLIP text encoder: input_ids and attention_mask must both be [B, L]");
  const int64_t B = input_ids.size(0), L = input_ids.size(1);
  if (L > cfg_.max_positions)
    throw std::invalid_argument("CLIP text encoder: " + std::to_string(L) + " tokens exceed max_position_embeddings " +
                                std::to_string(cfg_.max_positions));
  torch::NoGradGuard no_grad;
  const torch::Device dev = device();
  torch::Tensor ids = input_ids.to(dev, torch::kLong);
  if (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= cfg_.vocab_size)
    throw std::invalid_argument("CLIP text encoder: token id outside the vocabulary of " + std::to_string(cfg_.vocab_size));

  torch::Tensor x = f32(token_emb_.index_select(0, ids.flatten())).view({B, L, -1}) + f32(pos_emb_.slice(0, 0, L));
  // Causal mask plus padding mask over keys, both additive. transformers adds finfo.min;
  // -inf gives the same softmax since every row keeps its (unmasked) first token.
  const float neg_inf = -std::numeric_limits<float>::infinity();
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(dev);
  torch::Tensor causal = torch::full({L, L}, neg_inf, opts).triu(1);
  torch::Tensor pad = torch::zeros({B, 1, 1, L}, opts).masked_fill(attention_mask.to(dev).view({B, 1, 1, L}) == 0, neg_inf);
  torch::Tensor mask = causal.view({1, 1, L, L}) + pad;
  for (const Layer& l : layers_) x = run_layer(l, x, mask);
  x = layer_norm(x, final_ln_w_, final_ln_b_, cfg_.layer_norm_eps);

  torch::Tensor where = cfg_.eos_token_id == 2 ? ids.to(torch::kInt).argmax(-1)
                                                : (ids == cfg_.eos_token_id).to(torch::kInt).argmax(-1);
  torch::Tensor pooled = x.index({torch::arange(B, torch::TensorOptions().dtype(torch::kLong).device(dev)), where});
  return {x, pooled};
}

ClipTextOutput ClipTextEncoder::encode(const ClipTokens& tokens) const {
  const auto n = static_cast<int64_t>(tokens.ids.size());
  torch::Tensor ids = torch::tensor(tokens.ids, torch::kLong).view({1, n});
  torch::Tensor mask = torch::tensor(tokens.mask, torch::kLong).view({1, n});
  return encode(ids, mask);
}

}  // namespace reel::hyavatar
