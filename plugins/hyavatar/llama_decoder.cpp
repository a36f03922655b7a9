// LLaMA decoder; see llama_decoder.hpp. Operations follow transformers 4.45 LlamaModel,
// LlamaDecoderLayer, LlamaAttention (eager), LlamaMLP, LlamaRMSNorm and
// LlamaRotaryEmbedding in the same order.
#include "llama_decoder.hpp"

#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

namespace reel::hyavatar {

namespace F = torch::nn::functional;

namespace {
torch::Tensor f32(const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat32) : t; }

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  return b.defined() ? F::linear(x, f32(w), f32(b)) : F::linear(x, f32(w));
}

// LlamaRMSNorm: x * rsqrt(mean(x^2) + eps), then the weight.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  return f32(w) * (x * torch::rsqrt(x.pow(2).mean(-1, true) + eps));
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, h), x.slice(-1, 0, h)}, -1);
}
}  // namespace

LlamaConfig LlamaConfig::from_json(const nlohmann::json& j, const std::string& where) {
  // Keys a config leaves out take transformers' LlamaConfig defaults, as the reference's
  // from_pretrained does (LLaVA configs omit the values equal to them).
  if (j.contains("model_type") && j["model_type"] != "llama")
    throw std::runtime_error(where + ": model_type " + j["model_type"].dump() + " is not llama");
  auto get = [&](const char* key, auto fallback) {
    return j.contains(key) && !j[key].is_null() ? j[key].get<decltype(fallback)>() : fallback;
  };
  LlamaConfig c;
  c.vocab_size = get("vocab_size", int64_t{32000});
  c.hidden_size = get("hidden_size", int64_t{4096});
  c.intermediate_size = get("intermediate_size", int64_t{11008});
  c.num_layers = get("num_hidden_layers", int64_t{32});
  c.num_heads = get("num_attention_heads", int64_t{32});
  c.num_kv_heads = get("num_key_value_heads", c.num_heads);
  if (c.num_heads <= 0 || c.num_kv_heads <= 0 || c.num_heads % c.num_kv_heads != 0)
    throw std::runtime_error(where + ": num_attention_heads " + std::to_string(c.num_heads) +
                             " is not a multiple of num_key_value_heads " + std::to_string(c.num_kv_heads));
  c.head_dim = get("head_dim", c.num_heads > 0 ? c.hidden_size / c.num_heads : int64_t{0});
  if (c.head_dim % 2 != 0) throw std::runtime_error(where + ": head_dim must be even for rotary embedding");
  c.rms_norm_eps = get("rms_norm_eps", 1e-6);
  c.rope_theta = get("rope_theta", 10000.0);
  c.attention_bias = get("attention_bias", false);
  c.mlp_bias = get("mlp_bias", false);
  if (j.contains("rope_scaling") && !j["rope_scaling"].is_null())
    throw std::runtime_error(where + ": rope_scaling " + j["rope_scaling"].dump() +
                             " is not supported (LLaVA-LLaMA-3 8B uses none)");
  if (get("hidden_act", std::string("silu")) != "silu")
    throw std::runtime_error(where + ": hidden_act " + j["hidden_act"].dump() + " is not supported (silu)");
  if (get("pretraining_tp", int64_t{1}) != 1)
    throw std::runtime_error(where + ": pretraining_tp other than 1 is not supported");
  return c;
}

std::vector<ExpectedTensor> LlamaDecoder::expected_keys(const LlamaConfig& c, const std::string& p) {
  const int64_t H = c.hidden_size, M = c.intermediate_size, Q = c.num_heads * c.head_dim, KV = c.num_kv_heads * c.head_dim;
  std::vector<ExpectedTensor> e{{p + "embed_tokens.weight", {c.vocab_size, H}}, {p + "norm.weight", {H}}};
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    e.push_back({l + "input_layernorm.weight", {H}});
    e.push_back({l + "self_attn.q_proj.weight", {Q, H}});
    e.push_back({l + "self_attn.k_proj.weight", {KV, H}});
    e.push_back({l + "self_attn.v_proj.weight", {KV, H}});
    e.push_back({l + "self_attn.o_proj.weight", {H, Q}});
    if (c.attention_bias) {
      e.push_back({l + "self_attn.q_proj.bias", {Q}});
      e.push_back({l + "self_attn.k_proj.bias", {KV}});
      e.push_back({l + "self_attn.v_proj.bias", {KV}});
      e.push_back({l + "self_attn.o_proj.bias", {H}});
    }
    e.push_back({l + "post_attention_layernorm.weight", {H}});
    e.push_back({l + "mlp.gate_proj.weight", {M, H}});
    e.push_back({l + "mlp.up_proj.weight", {M, H}});
    e.push_back({l + "mlp.down_proj.weight", {H, M}});
    if (c.mlp_bias) {
      e.push_back({l + "mlp.gate_proj.bias", {M}});
      e.push_back({l + "mlp.up_proj.bias", {M}});
      e.push_back({l + "mlp.down_proj.bias", {H}});
    }
  }
  return e;
}

std::vector<torch::Tensor*> LlamaDecoder::Layer::tensors() {
  return {&in_norm, &q, &k, &v, &o, &q_b, &k_b, &v_b, &o_b, &post_norm, &gate, &up, &down, &gate_b, &up_b, &down_b};
}

std::vector<torch::Tensor*> LlamaDecoder::tensors() {
  std::vector<torch::Tensor*> all{&embed_, &norm_};
  for (Layer& l : layers_)
    for (torch::Tensor* t : l.tensors()) all.push_back(t);
  return all;
}

LlamaDecoder LlamaDecoder::load(const LlamaConfig& c, const tensorio::Weights& w, const std::string& p, torch::Dtype dt) {
  const int64_t H = c.hidden_size, M = c.intermediate_size, Q = c.num_heads * c.head_dim, KV = c.num_kv_heads * c.head_dim;
  LlamaDecoder d;
  d.cfg_ = c;
  d.embed_ = w.require(p + "embed_tokens.weight", {c.vocab_size, H}, dt);
  d.norm_ = w.require(p + "norm.weight", {H}, dt);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string l = p + "layers." + std::to_string(i) + ".";
    Layer x;
    x.in_norm = w.require(l + "input_layernorm.weight", {H}, dt);
    x.q = w.require(l + "self_attn.q_proj.weight", {Q, H}, dt);
    x.k = w.require(l + "self_attn.k_proj.weight", {KV, H}, dt);
    x.v = w.require(l + "self_attn.v_proj.weight", {KV, H}, dt);
    x.o = w.require(l + "self_attn.o_proj.weight", {H, Q}, dt);
    if (c.attention_bias) {
      x.q_b = w.require(l + "self_attn.q_proj.bias", {Q}, dt);
      x.k_b = w.require(l + "self_attn.k_proj.bias", {KV}, dt);
      x.v_b = w.require(l + "self_attn.v_proj.bias", {KV}, dt);
      x.o_b = w.require(l + "self_attn.o_proj.bias", {H}, dt);
    }
    x.post_norm = w.require(l + "post_attention_layernorm.weight", {H}, dt);
    x.gate = w.require(l + "mlp.gate_proj.weight", {M, H}, dt);
    x.up = w.require(l + "mlp.up_proj.weight", {M, H}, dt);
    x.down = w.require(l + "mlp.down_proj.weight", {H, M}, dt);
    if (c.mlp_bias) {
      x.gate_b = w.require(l + "mlp.gate_proj.bias", {M}, dt);
      x.up_b = w.require(l + "mlp.up_proj.bias", {M}, dt);
      x.down_b = w.require(l + "mlp.down_proj.bias", {H}, dt);
    }
    d.layers_.push_back(std::move(x));
  }
  return d;
}

LlamaDecoder LlamaDecoder::to(const torch::Device& device) const {
  LlamaDecoder d = *this;
  for (torch::Tensor* t : d.tensors())
    if (t->defined()) *t = t->to(device);
  return d;
}

int64_t LlamaDecoder::bytes() const {
  int64_t n = 0;
  for (torch::Tensor* t : const_cast<LlamaDecoder*>(this)->tensors())
    if (t->defined()) n += t->numel() * t->element_size();
  return n;
}

torch::Tensor LlamaDecoder::embed(const torch::Tensor& ids) const {
  torch::Tensor i = ids.to(device(), torch::kLong);
  if (i.numel() && (i.min().item<int64_t>() < 0 || i.max().item<int64_t>() >= cfg_.vocab_size))
    throw std::invalid_argument("LLaMA decoder: token id outside the vocabulary of " + std::to_string(cfg_.vocab_size));
  std::vector<int64_t> shape = i.sizes().vec();
  shape.push_back(cfg_.hidden_size);
  return embed_.index_select(0, i.flatten()).to(torch::kFloat32).view(shape);  // gather, then upcast
}

torch::Tensor LlamaDecoder::final_norm(const torch::Tensor& x) const { return rms_norm(x, norm_, cfg_.rms_norm_eps); }

torch::Tensor LlamaDecoder::run_layer(const Layer& l, const torch::Tensor& x, const torch::Tensor& mask,
                                      const torch::Tensor& cos, const torch::Tensor& sin) const {
  const int64_t B = x.size(0), L = x.size(1), N = cfg_.num_heads, K = cfg_.num_kv_heads, D = cfg_.head_dim;
  torch::Tensor h = rms_norm(x, l.in_norm, cfg_.rms_norm_eps);
  torch::Tensor q = linear(h, l.q, l.q_b).view({B, L, N, D}).transpose(1, 2);
  torch::Tensor k = linear(h, l.k, l.k_b).view({B, L, K, D}).transpose(1, 2);
  torch::Tensor v = linear(h, l.v, l.v_b).view({B, L, K, D}).transpose(1, 2);
  q = q * cos + rotate_half(q) * sin;
  k = k * cos + rotate_half(k) * sin;
  // repeat_kv: query head n reads key/value head n / (N / K).
  const int64_t rep = N / K;
  if (rep > 1) {
    k = k.unsqueeze(2).expand({B, K, rep, L, D}).reshape({B, N, L, D});
    v = v.unsqueeze(2).expand({B, K, rep, L, D}).reshape({B, N, L, D});
  }
  torch::Tensor scores = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(D)) + mask;
  torch::Tensor o = torch::matmul(torch::softmax(scores, -1), v).transpose(1, 2).reshape({B, L, N * D});
  torch::Tensor r = x + linear(o, l.o, l.o_b);
  h = rms_norm(r, l.post_norm, cfg_.rms_norm_eps);
  return r + linear(F::silu(linear(h, l.gate, l.gate_b)) * linear(h, l.up, l.up_b), l.down, l.down_b);
}

std::vector<torch::Tensor> LlamaDecoder::hidden_states(const torch::Tensor& inputs_embeds,
                                                       const torch::Tensor& attention_mask,
                                                       const torch::Tensor& position_ids, int64_t last_index,
                                                       bool keep_all) const {
  const int64_t N = cfg_.num_layers;
  if (last_index < 0) last_index = N;
  if (last_index > N)
    throw std::invalid_argument("LLaMA decoder: hidden state " + std::to_string(last_index) + " requested, the model has " +
                                std::to_string(N + 1));
  if (inputs_embeds.dim() != 3 || inputs_embeds.size(2) != cfg_.hidden_size)
    throw std::invalid_argument("LLaMA decoder: inputs_embeds must be [B, L, " + std::to_string(cfg_.hidden_size) + "]");
  const int64_t B = inputs_embeds.size(0), L = inputs_embeds.size(1);
  if (attention_mask.sizes() != torch::IntArrayRef({B, L}) || position_ids.sizes() != torch::IntArrayRef({B, L}))
    throw std::invalid_argument("LLaMA decoder: attention_mask and position_ids must be [B, L] like inputs_embeds");
  torch::NoGradGuard no_grad;
  const torch::Device dev = device();
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(dev);

  // Causal mask plus key padding, additive. transformers fills with finfo.min; -inf gives
  // the same softmax because no query row is fully masked (each sees itself or an
  // earlier unmasked token whenever the sequence starts unmasked).
  const float neg_inf = -std::numeric_limits<float>::infinity();
  torch::Tensor mask = torch::full({L, L}, neg_inf, opts).triu(1).view({1, 1, L, L}) +
                       torch::zeros({B, 1, 1, L}, opts).masked_fill(attention_mask.to(dev).view({B, 1, 1, L}) == 0, neg_inf);
  // transformers' eager path turns a fully masked row into uniform attention over
  // finfo.min scores; keep rows finite the same way instead of producing NaN.
  mask = mask.clamp_min(std::numeric_limits<float>::lowest());

  // Rotary tables: inv_freq = theta^(-2i/d); angles = position * inv_freq, duplicated.
  torch::Tensor inv_freq =
      1.0 / torch::pow(cfg_.rope_theta, torch::arange(0, cfg_.head_dim, 2, torch::TensorOptions().dtype(torch::kLong))
                                            .to(torch::kFloat32) /
                                            static_cast<double>(cfg_.head_dim));
  torch::Tensor angles = position_ids.to(dev, torch::kFloat32).unsqueeze(-1) * inv_freq.to(dev).view({1, 1, -1});
  torch::Tensor emb = torch::cat({angles, angles}, -1);
  torch::Tensor cos = emb.cos().unsqueeze(1), sin = emb.sin().unsqueeze(1);  // [B, 1, L, D]

  std::vector<torch::Tensor> states;
  torch::Tensor x = inputs_embeds.to(dev, torch::kFloat32);
  if (keep_all) states.push_back(x);
  for (int64_t i = 0; i < last_index; ++i) {
    x = run_layer(layers_[i], x, mask, cos, sin);
    if (i + 1 == N) x = final_norm(x);
    if (keep_all) states.push_back(x);
  }
  if (!keep_all) states.push_back(x);
  return states;
}

}  // namespace reel::hyavatar
