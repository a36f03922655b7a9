// CLIP vision tower; see clip_vision.hpp. Operations follow transformers 4.45
// CLIPVisionEmbeddings, CLIPVisionTransformer and CLIPEncoderLayer in the same order.
#include "clip_vision.hpp"

#include <cmath>

#include <nlohmann/json.hpp>

namespace reel::hyavatar {

namespace F = torch::nn::functional;

namespace {
torch::Tensor f32(const torch::Tensor& t) { return t.to(torch::kFloat32); }
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  return F::linear(x, f32(w), f32(b));
}
torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps) {
  return torch::layer_norm(x, {x.size(-1)}, f32(w), f32(b), eps);
}
const char* const kLayerParts[] = {"layer_norm1.weight",      "layer_norm1.bias",      "self_attn.q_proj.weight",
                                   "self_attn.q_proj.bias",   "self_attn.k_proj.weight", "self_attn.k_proj.bias",
                                   "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.out_proj.weight",
                                   "self_attn.out_proj.bias", "layer_norm2.weight",    "layer_norm2.bias",
                                   "mlp.fc1.weight",          "mlp.fc1.bias",          "mlp.fc2.weight",
                                   "mlp.fc2.bias"};
std::vector<int64_t> layer_part_shape(const ClipVisionConfig& c, size_t i) {
  const int64_t H = c.hidden_size, M = c.intermediate_size;
  const std::vector<int64_t> shapes[] = {{H}, {H}, {H, H}, {H}, {H, H}, {H}, {H, H}, {H},
                                         {H, H}, {H}, {H}, {H}, {M, H}, {M}, {H, M}, {H}};
  return shapes[i];
}
}  // namespace

ClipVisionConfig ClipVisionConfig::from_json(const nlohmann::json& j, const std::string& where) {
  // Keys a config leaves out take transformers' CLIPVisionConfig defaults, as the
  // reference's from_pretrained does.
  if (j.contains("model_type") && j["model_type"] != "clip_vision_model")
    throw std::runtime_error(where + ": model_type " + j["model_type"].dump() + " is not clip_vision_model");
  auto get = [&](const char* key, auto fallback) {
    return j.contains(key) && !j[key].is_null() ? j[key].get<decltype(fallback)>() : fallback;
  };
  ClipVisionConfig c;
  c.hidden_size = get("hidden_size", int64_t{768});
  c.intermediate_size = get("intermediate_size", int64_t{3072});
  c.num_layers = get("num_hidden_layers", int64_t{12});
  c.num_heads = get("num_attention_heads", int64_t{12});
  c.image_size = get("image_size", int64_t{224});
  c.patch_size = get("patch_size", int64_t{32});
  c.num_channels = get("num_channels", int64_t{3});
  c.layer_norm_eps = get("layer_norm_eps", 1e-5);
  c.hidden_act = get("hidden_act", std::string("quick_gelu"));
  if (c.hidden_act != "quick_gelu" && c.hidden_act != "gelu")
    throw std::runtime_error(where + ": vision hidden_act \"" + c.hidden_act + "\" is not supported");
  if (c.num_heads <= 0 || c.hidden_size % c.num_heads != 0 || c.patch_size <= 0 || c.image_size % c.patch_size != 0)
    throw std::runtime_error(where + ": inconsistent vision sizes (heads, patch size or image size)");
  return c;
}

std::vector<ExpectedTensor> ClipVisionTower::expected_keys(const ClipVisionConfig& c, const std::string& p) {
  const int64_t H = c.hidden_size, P = c.patch_size;
  std::vector<ExpectedTensor> e{{p + "embeddings.class_embedding", {H}},
                                {p + "embeddings.patch_embedding.weight", {H, c.num_channels, P, P}},
                                {p + "embeddings.position_embedding.weight", {c.num_patches() + 1, H}},
                                {p + "pre_layrnorm.weight", {H}},
                                {p + "pre_layrnorm.bias", {H}},
                                {p + "post_layernorm.weight", {H}},
                                {p + "post_layernorm.bias", {H}}};
  for (int64_t i = 0; i < c.num_layers; ++i)
    for (size_t k = 0; k < std::size(kLayerParts); ++k)
      e.push_back({p + "encoder.layers." + std::to_string(i) + "." + kLayerParts[k], layer_part_shape(c, k)});
  return e;
}

std::vector<torch::Tensor*> ClipVisionTower::Layer::tensors() {
  return {&ln1_w, &ln1_b, &q_w, &q_b, &k_w, &k_b, &v_w, &v_b, &o_w, &o_b, &ln2_w, &ln2_b, &fc1_w, &fc1_b, &fc2_w, &fc2_b};
}

std::vector<torch::Tensor*> ClipVisionTower::tensors() {
  std::vector<torch::Tensor*> all{&patch_w_, &class_emb_, &pos_emb_, &pre_ln_w_, &pre_ln_b_};
  for (Layer& l : layers_)
    for (torch::Tensor* t : l.tensors()) all.push_back(t);
  return all;
}

ClipVisionTower ClipVisionTower::load(const ClipVisionConfig& c, const tensorio::Weights& w, const std::string& p,
                                      int64_t feature_layer, torch::Dtype dt) {
  // hidden_states has num_layers + 1 entries; entry k is the output of the first k layers.
  const int64_t n_states = c.num_layers + 1;
  const int64_t k = feature_layer < 0 ? n_states + feature_layer : feature_layer;
  if (k < 0 || k >= n_states)
    throw std::runtime_error(w.source() + ": vision_feature_layer " + std::to_string(feature_layer) +
                             " is outside the tower's " + std::to_string(n_states) + " hidden states");
  const auto expected = expected_keys(c, p);
  auto get = [&](size_t i) { return w.require(expected[i].name, expected[i].shape, dt); };
  ClipVisionTower t;
  t.cfg_ = c;
  t.class_emb_ = get(0);
  t.patch_w_ = get(1);
  t.pos_emb_ = get(2);
  t.pre_ln_w_ = get(3);
  t.pre_ln_b_ = get(4);
  size_t idx = 7;
  for (int64_t i = 0; i < k; ++i) {
    Layer l;
    for (torch::Tensor* x : l.tensors()) *x = get(idx++);
    t.layers_.push_back(std::move(l));
  }
  return t;
}

ClipVisionTower ClipVisionTower::to(const torch::Device& device) const {
  ClipVisionTower t = *this;
  for (torch::Tensor* x : t.tensors()) *x = x->to(device);
  return t;
}

int64_t ClipVisionTower::bytes() const {
  int64_t n = 0;
  for (torch::Tensor* x : const_cast<ClipVisionTower*>(this)->tensors()) n += x->numel() * x->element_size();
  return n;
}

torch::Tensor ClipVisionTower::hidden_state(const torch::Tensor& pixel_values) const {
  const int64_t S = cfg_.image_size;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != cfg_.num_channels || pixel_values.size(2) != S ||
      pixel_values.size(3) != S)
    throw std::invalid_argument("CLIP vision tower: pixel_values must be [B, " + std::to_string(cfg_.num_channels) + ", " +
                                std::to_string(S) + ", " + std::to_string(S) + "]");
  torch::NoGradGuard no_grad;
  const int64_t B = pixel_values.size(0), H = cfg_.hidden_size, N = cfg_.num_heads, Dh = H / N;
  torch::Tensor x = F::conv2d(pixel_values.to(device(), torch::kFloat32), f32(patch_w_),
                              F::Conv2dFuncOptions().stride(cfg_.patch_size));
  x = x.flatten(2).transpose(1, 2);
  x = torch::cat({f32(class_emb_).view({1, 1, H}).expand({B, 1, H}), x}, 1) + f32(pos_emb_).unsqueeze(0);
  x = layer_norm(x, pre_ln_w_, pre_ln_b_, cfg_.layer_norm_eps);
  const int64_t L = x.size(1);
  for (const Layer& l : layers_) {
    torch::Tensor h = layer_norm(x, l.ln1_w, l.ln1_b, cfg_.layer_norm_eps);
    auto heads = [&](const torch::Tensor& t) { return t.view({B, L, N, Dh}).transpose(1, 2); };
    torch::Tensor q = heads(linear(h, l.q_w, l.q_b) * std::pow(static_cast<double>(Dh), -0.5));
    torch::Tensor k = heads(linear(h, l.k_w, l.k_b));
    torch::Tensor v = heads(linear(h, l.v_w, l.v_b));
    torch::Tensor o = torch::matmul(torch::softmax(torch::matmul(q, k.transpose(-2, -1)), -1), v);
    x = x + linear(o.transpose(1, 2).reshape({B, L, H}), l.o_w, l.o_b);
    h = linear(layer_norm(x, l.ln2_w, l.ln2_b, cfg_.layer_norm_eps), l.fc1_w, l.fc1_b);
    h = cfg_.hidden_act == "quick_gelu" ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);
    x = x + linear(h, l.fc2_w, l.fc2_b);
  }
  return x;
}

}  // namespace reel::hyavatar
