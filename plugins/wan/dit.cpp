// The Wan 2.1 DiT; see dit.hpp. The arithmetic follows wan/modules/model.py operation by
// operation (same order, same float64 islands) so float32 results differ from the
// reference only by summation order inside matmuls.
#include "dit.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include <nlohmann/json.hpp>
#include <torch/version.h>

namespace reel::wan {

using tensorio::WeightError;
using tensorio::Weights;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  return torch::linear(x, w, b);
}

// WanLayerNorm: LayerNorm over the last dim, affine only where the module has weights.
torch::Tensor layer_norm(const torch::Tensor& x, double eps, const torch::Tensor& w = {},
                         const torch::Tensor& b = {}) {
  return torch::layer_norm(x, {x.size(-1)}, w, b, eps);
}

// WanRMSNorm: x * rsqrt(mean(x^2) + eps) * weight (identity when qk_norm is off).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& w, double eps) {
  if (!w.defined()) return x;
  return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * w;
}

// rope_params: outer(arange(n), 1 / theta^(arange(0, dim, 2) / dim)) in float64, as unit
// complex numbers. Row i depends only on i, so computing just the rows a video needs gives
// the reference's 1024-row table's values.
torch::Tensor rope_params(int64_t n, int64_t dim, const torch::Device& dev, double theta = 10000.0) {
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64).device(dev);
  auto inv = 1.0 / torch::pow(theta, torch::arange(0, dim, 2, f64).div(static_cast<double>(dim)));
  auto freqs = torch::outer(torch::arange(n, f64), inv);
  return torch::polar(torch::ones_like(freqs), freqs);
}

// The per-token RoPE multipliers [F*H*W, 1, d/2]: the head dim's complex pairs split into
// frame / height / width parts of sizes c - 2*(c/3), c/3, c/3 (c = d/2), matching the
// reference's rope_params(d - 4*(d/6)), rope_params(2*(d/6)) x2 split.
torch::Tensor rope_freqs(const std::array<int64_t, 3>& grid, int64_t head_dim, const torch::Device& dev) {
  const int64_t c = head_dim / 2, cf = c - 2 * (c / 3), ch = c / 3;
  const int64_t f = grid[0], h = grid[1], w = grid[2];
  auto ff = rope_params(f, 2 * cf, dev).view({f, 1, 1, cf}).expand({f, h, w, cf});
  auto fh = rope_params(h, 2 * ch, dev).view({1, h, 1, ch}).expand({f, h, w, ch});
  auto fw = rope_params(w, 2 * ch, dev).view({1, 1, w, ch}).expand({f, h, w, ch});
  return torch::cat({ff, fh, fw}, -1).reshape({f * h * w, 1, c});
}

// rope_apply: x [B, L, H, d] float32 -> rotated in complex128, back to float32.
torch::Tensor rope_apply(const torch::Tensor& x, const torch::Tensor& freqs) {
  auto sizes = x.sizes().vec();
  auto xc = torch::view_as_complex(x.to(torch::kFloat64).reshape({sizes[0], sizes[1], sizes[2], -1, 2}));
  return torch::view_as_real(xc * freqs).reshape(sizes).to(torch::kFloat32);
}

// sinusoidal_embedding_1d: float64 [B, dim] = cat(cos, sin) of t * 10000^(-i/half).
torch::Tensor sinusoidal(int64_t dim, const torch::Tensor& t) {
  const int64_t half = dim / 2;
  auto pos = t.to(torch::kFloat64);
  auto k = torch::pow(10000.0, -torch::arange(half, pos.options()).div(static_cast<double>(half)));
  auto s = torch::outer(pos, k);
  return torch::cat({torch::cos(s), torch::sin(s)}, 1);
}

// [B, L, dim] -> [B, heads, L, head_dim]
torch::Tensor heads(const torch::Tensor& x, int64_t n) {
  return x.view({x.size(0), x.size(1), n, -1}).transpose(1, 2);
}
// [B, heads, L, head_dim] -> [B, L, dim]
torch::Tensor merge(const torch::Tensor& x) {
  return x.transpose(1, 2).reshape({x.size(0), x.size(2), -1});
}

DiTBlock::Attn load_attn(const Weights& w, const std::string& p, const DiTConfig& c, bool img, torch::Dtype dt) {
  const int64_t D = c.dim;
  DiTBlock::Attn a;
  a.q_w = w.require(p + "q.weight", {D, D}, dt);
  a.q_b = w.require(p + "q.bias", {D}, dt);
  a.k_w = w.require(p + "k.weight", {D, D}, dt);
  a.k_b = w.require(p + "k.bias", {D}, dt);
  a.v_w = w.require(p + "v.weight", {D, D}, dt);
  a.v_b = w.require(p + "v.bias", {D}, dt);
  a.o_w = w.require(p + "o.weight", {D, D}, dt);
  a.o_b = w.require(p + "o.bias", {D}, dt);
  if (c.qk_norm) {
    a.norm_q = w.require(p + "norm_q.weight", {D}, dt);
    a.norm_k = w.require(p + "norm_k.weight", {D}, dt);
  }
  if (img) {
    a.k_img_w = w.require(p + "k_img.weight", {D, D}, dt);
    a.k_img_b = w.require(p + "k_img.bias", {D}, dt);
    a.v_img_w = w.require(p + "v_img.weight", {D, D}, dt);
    a.v_img_b = w.require(p + "v_img.bias", {D}, dt);
    if (c.qk_norm) a.norm_k_img = w.require(p + "norm_k_img.weight", {D}, dt);
  }
  return a;
}

torch::Tensor moved(const torch::Tensor& t, const torch::Device& d) { return t.defined() ? t.to(d) : t; }

}  // namespace

// ---- attention ----

torch::Tensor dit_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
#if TORCH_VERSION_MAJOR >= 2
  // Same math, fused kernels (flash / memory-efficient) where the build has them.
  return at::scaled_dot_product_attention(q, k, v);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  const int64_t B = q.size(0), H = q.size(1), Lq = q.size(2), Lk = k.size(2);
  // Score rows per chunk so one chunk's [B, H, rows, Lk] float32 scores stay near 256 MiB
  // (the full matrix of a 480p 81-frame video would need ~50 GB). The softmax is done in
  // place on the scores, so a chunk costs one score matrix, not three.
  const int64_t budget = int64_t{256} << 20;
  const int64_t rows = std::max<int64_t>(1, budget / std::max<int64_t>(1, B * H * Lk * 4));
  auto kt = k.transpose(-2, -1);
  auto out = torch::empty({B, H, Lq, v.size(-1)}, v.options());
  for (int64_t s = 0; s < Lq; s += rows) {
    const int64_t n = std::min(rows, Lq - s);
    auto scores = torch::matmul(q.narrow(2, s, n), kt).mul_(scale);
    scores.sub_(std::get<0>(scores.max(-1, /*keepdim=*/true))).exp_();
    scores.div_(scores.sum(-1, /*keepdim=*/true));
    out.narrow(2, s, n).copy_(torch::matmul(scores, v));
  }
  return out;
#endif
}

// ---- config and weights ----

DiTConfig read_dit_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot read the DiT config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  auto get = [&](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) throw std::runtime_error(path + ": missing key '" + key + "'");
    return j.at(key);
  };
  DiTConfig c;
  try {
    c.model_type = get("model_type").get<std::string>();
    c.text_len = get("text_len").get<int64_t>();
    c.in_dim = get("in_dim").get<int64_t>();
    c.dim = get("dim").get<int64_t>();
    c.ffn_dim = get("ffn_dim").get<int64_t>();
    c.freq_dim = get("freq_dim").get<int64_t>();
    c.out_dim = get("out_dim").get<int64_t>();
    c.num_heads = get("num_heads").get<int64_t>();
    c.num_layers = get("num_layers").get<int64_t>();
    c.eps = get("eps").get<double>();
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(path + ": " + e.what());
  }
  if (c.model_type != "t2v" && c.model_type != "i2v")
    throw std::runtime_error(path + ": model_type '" + c.model_type + "' is not supported (t2v, i2v)");
  return c;
}

Weights load_dit_weights(const std::string& path) {
  // load_weights marks float8 tensors so require() decodes them.
  Weights w = tensorio::load_weights(path);
  w.strip_prefix("model.diffusion_model.");
  // ComfyUI's scaled-fp8 files store "<module>.weight" in float8 and a per-module
  // "<module>.scale_weight": decode and scale those weights once here.
  bool scaled = false;
  for (const auto& kv : w.all()) scaled = scaled || ends_with(kv.first, ".scale_weight");
  if (!scaled) return w;
  tensorio::TensorMap m;
  for (const auto& [name, t] : w.all()) {
    if (ends_with(name, ".scale_weight") || name == "scaled_fp8") continue;
    const std::string scale = ends_with(name, ".weight") ? name.substr(0, name.size() - 7) + ".scale_weight" : "";
    if (!scale.empty() && w.has(scale))
      m.emplace(name, w.require(name) * w.require(scale).to(torch::kFloat64).item<double>());
    else
      m.emplace(name, w.require(name, {}, t.scalar_type() == torch::kUInt8 ? torch::kFloat32 : t.scalar_type()));
  }
  return Weights(std::move(m), w.source());
}

// ---- loading ----

DiTBlock WanDiT::load_block(const Weights& w, const DiTConfig& c, int64_t i, torch::Dtype dt) {
  const int64_t D = c.dim;
  const std::string p = "blocks." + std::to_string(i) + ".";
  DiTBlock b;
  b.index = i;
  b.modulation = w.require(p + "modulation", {1, 6, D}, dt);
  b.self_attn = load_attn(w, p + "self_attn.", c, false, dt);
  b.cross_attn = load_attn(w, p + "cross_attn.", c, c.i2v(), dt);
  if (c.cross_attn_norm) {
    b.norm3_w = w.require(p + "norm3.weight", {D}, dt);
    b.norm3_b = w.require(p + "norm3.bias", {D}, dt);
  }
  b.ffn0_w = w.require(p + "ffn.0.weight", {c.ffn_dim, D}, dt);
  b.ffn0_b = w.require(p + "ffn.0.bias", {c.ffn_dim}, dt);
  b.ffn2_w = w.require(p + "ffn.2.weight", {D, c.ffn_dim}, dt);
  b.ffn2_b = w.require(p + "ffn.2.bias", {D}, dt);
  return b;
}

WanDiT WanDiT::load(const Weights& w, DiTConfig c, bool load_blocks, torch::Dtype block_dtype) {
  const std::string& src = w.source();
  if (c.dim <= 0 || c.num_heads <= 0 || c.dim % c.num_heads != 0 || c.head_dim() % 2 != 0)
    throw WeightError(src + ": dim " + std::to_string(c.dim) + " must split into num_heads " +
                      std::to_string(c.num_heads) + " heads of even size");

  // What config.json leaves out, from the tensors (the reference's constructor defaults are
  // not trustworthy for other sizes).
  auto pshape = w.shape_of("patch_embedding.weight");
  if (pshape.size() != 5)
    throw WeightError(src + ": tensor 'patch_embedding.weight': expected [dim, in_dim, pt, ph, pw]");
  c.patch_size = {pshape[2], pshape[3], pshape[4]};
  auto tshape = w.shape_of("text_embedding.0.weight");
  if (tshape.size() != 2) throw WeightError(src + ": tensor 'text_embedding.0.weight': expected [dim, text_dim]");
  c.text_dim = tshape[1];
  c.qk_norm = w.has("blocks.0.self_attn.norm_q.weight");
  c.cross_attn_norm = w.has("blocks.0.norm3.weight");
  if (c.i2v()) {
    auto ishape = w.shape_of("img_emb.proj.0.weight");
    if (ishape.size() != 1) throw WeightError(src + ": tensor 'img_emb.proj.0.weight': expected [img_dim]");
    c.img_dim = ishape[0];
  }

  const int64_t D = c.dim;
  const int64_t P = c.patch_size[0] * c.patch_size[1] * c.patch_size[2];
  WanDiT m;
  m.patch_w_ = w.require("patch_embedding.weight", {D, c.in_dim, c.patch_size[0], c.patch_size[1], c.patch_size[2]});
  m.patch_b_ = w.require("patch_embedding.bias", {D});
  m.text0_w_ = w.require("text_embedding.0.weight", {D, c.text_dim});
  m.text0_b_ = w.require("text_embedding.0.bias", {D});
  m.text2_w_ = w.require("text_embedding.2.weight", {D, D});
  m.text2_b_ = w.require("text_embedding.2.bias", {D});
  m.time0_w_ = w.require("time_embedding.0.weight", {D, c.freq_dim});
  m.time0_b_ = w.require("time_embedding.0.bias", {D});
  m.time2_w_ = w.require("time_embedding.2.weight", {D, D});
  m.time2_b_ = w.require("time_embedding.2.bias", {D});
  m.proj_w_ = w.require("time_projection.1.weight", {6 * D, D});
  m.proj_b_ = w.require("time_projection.1.bias", {6 * D});
  m.head_w_ = w.require("head.head.weight", {P * c.out_dim, D});
  m.head_b_ = w.require("head.head.bias", {P * c.out_dim});
  m.head_mod_ = w.require("head.modulation", {1, 2, D});
  if (c.i2v()) {
    const int64_t I = c.img_dim;
    m.img0_w_ = w.require("img_emb.proj.0.weight", {I});
    m.img0_b_ = w.require("img_emb.proj.0.bias", {I});
    m.img1_w_ = w.require("img_emb.proj.1.weight", {I, I});
    m.img1_b_ = w.require("img_emb.proj.1.bias", {I});
    m.img3_w_ = w.require("img_emb.proj.3.weight", {D, I});
    m.img3_b_ = w.require("img_emb.proj.3.bias", {D});
    m.img4_w_ = w.require("img_emb.proj.4.weight", {D});
    m.img4_b_ = w.require("img_emb.proj.4.bias", {D});
  }
  m.cfg_ = c;
  if (load_blocks) {
    m.blocks_.reserve(c.num_layers);
    for (int64_t i = 0; i < c.num_layers; ++i) m.blocks_.push_back(load_block(w, c, i, block_dtype));
  }
  return m;
}

WanDiT WanDiT::load_dir(const std::string& dir, bool load_blocks, torch::Dtype block_dtype) {
  auto cfg = read_dit_config(dir + "/config.json");
  std::string path = dir + "/diffusion_pytorch_model.safetensors";
  if (!std::ifstream(path) && std::ifstream(path + ".index.json")) path += ".index.json";
  return load(load_dit_weights(path), cfg, load_blocks, block_dtype);
}

DiTBlock DiTBlock::to(const torch::Device& d, bool non_blocking) const {
  DiTBlock b = *this;
  b.for_each([&](const char*, torch::Tensor& t) { t = t.to(d, non_blocking); });
  return b;
}

DiTBlock DiTBlock::materialized(const torch::Device& d, torch::Dtype dtype) const {
  DiTBlock b = *this;
  b.fp8_scales.clear();
  b.for_each([&](const char* name, torch::Tensor& t) {
    auto f8 = fp8_scales.find(name);
    if (f8 != fp8_scales.end()) t = tensorio::dequantize_fp8_e4m3(t.to(d), f8->second).to(dtype);
    else t = t.to(d, dtype);
  });
  return b;
}

DiTBlock DiTBlock::quantized_fp8() const {
  DiTBlock b = *this;
  b.for_each([&](const char* name, torch::Tensor& t) {
    if (t.dim() != 2 || b.fp8_scales.count(name)) return;
    auto q = tensorio::quantize_fp8_e4m3(t);
    t = q.bytes.to(t.device());
    b.fp8_scales[name] = q.scale;
  });
  return b;
}

DiTBlock DiTBlock::pinned() const {
  DiTBlock b = *this;
  const bool can_pin = torch::cuda::is_available();
  b.for_each([&](const char*, torch::Tensor& t) { t = can_pin ? t.to(torch::kCPU).pin_memory() : t.to(torch::kCPU); });
  return b;
}

int64_t DiTBlock::bytes() const {
  int64_t n = 0;
  DiTBlock(*this).for_each([&](const char*, torch::Tensor& t) { n += t.numel() * static_cast<int64_t>(t.element_size()); });
  return n;
}

DiTState DiTState::to(const torch::Device& d) const {
  DiTState s = *this;
  s.x = moved(x, d), s.e = moved(e, d), s.e0 = moved(e0, d), s.context = moved(context, d);
  s.context_img = moved(context_img, d), s.freqs = moved(freqs, d);
  return s;
}

WanDiT WanDiT::to(const torch::Device& d, bool keep_blocks) const {
  WanDiT m = *this;
  for (auto* t : {&m.patch_w_, &m.patch_b_, &m.text0_w_, &m.text0_b_, &m.text2_w_, &m.text2_b_, &m.time0_w_,
                  &m.time0_b_, &m.time2_w_, &m.time2_b_, &m.proj_w_, &m.proj_b_, &m.head_w_, &m.head_b_,
                  &m.head_mod_, &m.img0_w_, &m.img0_b_, &m.img1_w_, &m.img1_b_, &m.img3_w_, &m.img3_b_,
                  &m.img4_w_, &m.img4_b_})
    *t = moved(*t, d);
  if (!keep_blocks) m.blocks_.clear();
  for (auto& b : m.blocks_) b = b.to(d);
  return m;
}

// ---- evaluation ----

DiTState WanDiT::embed(const torch::Tensor& x_in, const torch::Tensor& t_in, const torch::Tensor& ctx_in,
                       int64_t seq_len, const torch::Tensor& clip_in, const torch::Tensor& y_in) const {
  torch::NoGradGuard no_grad;
  const DiTConfig& c = cfg_;
  DiTState s;
  s.batched = x_in.dim() == 5;
  if (!s.batched && x_in.dim() != 4) throw std::invalid_argument("WanDiT: x must be [C, F, H, W] or [B, C, F, H, W]");
  auto x = (s.batched ? x_in : x_in.unsqueeze(0)).to(torch::kFloat32);
  const int64_t B = x.size(0);
  auto context = (s.batched ? ctx_in : ctx_in.unsqueeze(0)).to(torch::kFloat32);
  auto t = t_in.reshape({-1});
  if (t.size(0) != B) throw std::invalid_argument("WanDiT: t must have one timestep per sample");
  if (context.dim() != 3 || context.size(0) != B || context.size(2) != c.text_dim)
    throw std::invalid_argument("WanDiT: context must be [L, text_dim=" + std::to_string(c.text_dim) + "]");
  if (context.size(1) > c.text_len)
    throw std::invalid_argument("WanDiT: context has " + std::to_string(context.size(1)) + " tokens, text_len is " +
                                std::to_string(c.text_len));
  if (c.i2v()) {
    if (!clip_in.defined() || !y_in.defined()) throw std::invalid_argument("WanDiT: i2v needs clip_fea and y");
    x = torch::cat({x, (s.batched ? y_in : y_in.unsqueeze(0)).to(torch::kFloat32)}, 1);
  } else if (y_in.defined()) {
    x = torch::cat({x, (s.batched ? y_in : y_in.unsqueeze(0)).to(torch::kFloat32)}, 1);
  }
  if (x.size(1) != c.in_dim)
    throw std::invalid_argument("WanDiT: input has " + std::to_string(x.size(1)) + " channels, in_dim is " +
                                std::to_string(c.in_dim));
  for (int a = 0; a < 3; ++a)
    if (x.size(2 + a) % c.patch_size[a] != 0)
      throw std::invalid_argument("WanDiT: frame/height/width must be multiples of the patch size");

  // Patch embedding: Conv3d with stride = kernel, then tokens in (f, h, w) order.
  auto p = torch::conv3d(x, patch_w_, patch_b_, {c.patch_size[0], c.patch_size[1], c.patch_size[2]});
  s.grid = {p.size(2), p.size(3), p.size(4)};
  s.x = p.flatten(2).transpose(1, 2).contiguous();
  const int64_t L = s.x.size(1);
  if (L > seq_len)
    throw std::invalid_argument("WanDiT: " + std::to_string(L) + " video tokens exceed seq_len " +
                                std::to_string(seq_len));

  // Time: float64 sinusoid, then float32 MLPs.
  auto sinus = sinusoidal(c.freq_dim, t.to(x.device())).to(torch::kFloat32);
  s.e = linear(torch::silu(linear(sinus, time0_w_, time0_b_)), time2_w_, time2_b_);
  s.e0 = linear(torch::silu(s.e), proj_w_, proj_b_).unflatten(1, {6, c.dim});

  // Text: zero-pad to text_len BEFORE the embedding (the padded rows become the MLP's
  // bias response, and all text_len rows are attended to).
  if (context.size(1) < c.text_len)
    context = torch::cat({context, context.new_zeros({B, c.text_len - context.size(1), c.text_dim})}, 1);
  s.context = linear(torch::gelu(linear(context, text0_w_, text0_b_), "tanh"), text2_w_, text2_b_);

  if (c.i2v()) {
    // MLPProj: LayerNorm (torch default eps 1e-5), Linear, exact GELU, Linear, LayerNorm.
    auto ci = clip_in.to(torch::kFloat32);
    if (ci.dim() == 2) ci = ci.unsqueeze(0);
    auto h = torch::layer_norm(ci, {c.img_dim}, img0_w_, img0_b_, 1e-5);
    h = linear(torch::gelu(linear(h, img1_w_, img1_b_)), img3_w_, img3_b_);
    auto img = torch::layer_norm(h, {c.dim}, img4_w_, img4_b_, 1e-5);
    // The reference concatenates [image tokens, text tokens] and WanI2VCrossAttention
    // splits them again at (total - T5_CONTEXT_TOKEN_NUMBER), a hard-coded 512, with
    // Python slice semantics. For the official text_len of 512 that is exactly the
    // concatenation boundary; for other text_len it is not (with fewer than 512 tokens
    // in all, the image part is empty and the text attention sees every token).
    // Reproduce the split, so any text_len gives the reference's numbers.
    constexpr int64_t kT5ContextTokens = 512;
    auto full = torch::cat({img, s.context}, 1);
    const int64_t total = full.size(1);
    int64_t n_img = total - kT5ContextTokens;
    if (n_img < 0) n_img = std::max<int64_t>(0, total + n_img);
    s.context_img = full.narrow(1, 0, n_img);
    s.context = full.narrow(1, n_img, total - n_img);
  }

  s.freqs = rope_freqs(s.grid, c.head_dim(), x.device());
  return s;
}

void WanDiT::run_block(int64_t i, DiTState& s) const {
  if (i < 0 || i >= static_cast<int64_t>(blocks_.size()))
    throw std::out_of_range("WanDiT::run_block: block " + std::to_string(i) + " is not loaded (" +
                            std::to_string(blocks_.size()) + " loaded)");
  run_block(blocks_[i], s);
}

void WanDiT::run_block(const DiTBlock& stored, DiTState& s) const {
  torch::NoGradGuard no_grad;
  // A no-op (no copy) for a block already on the device in the compute dtype.
  const DiTBlock b = stored.materialized(s.x.device(), compute_dtype_);
  const DiTConfig& c = cfg_;
  const int64_t n = c.num_heads;
  auto e = (b.modulation + s.e0).chunk(6, 1);  // each [B, 1, dim]
  auto& x = s.x;

  // Self-attention on the modulated norm1(x), RoPE on q and k.
  {
    const auto& a = b.self_attn;
    auto h = layer_norm(x, c.eps) * (1 + e[1]) + e[0];
    const int64_t B = h.size(0), L = h.size(1);
    auto q = rms_norm(linear(h, a.q_w, a.q_b), a.norm_q, c.eps).view({B, L, n, -1});
    auto k = rms_norm(linear(h, a.k_w, a.k_b), a.norm_k, c.eps).view({B, L, n, -1});
    auto v = linear(h, a.v_w, a.v_b).view({B, L, n, -1});
    q = rope_apply(q, s.freqs).transpose(1, 2);
    k = rope_apply(k, s.freqs).transpose(1, 2);
    auto y = linear(merge(dit_attention(q, k, v.transpose(1, 2))), a.o_w, a.o_b);
    x = x + y * e[2];
  }
  // Cross-attention over every text_len context row (no mask), plus the image tokens for i2v.
  {
    const auto& a = b.cross_attn;
    auto h = c.cross_attn_norm ? layer_norm(x, c.eps, b.norm3_w, b.norm3_b) : x;
    auto q = heads(rms_norm(linear(h, a.q_w, a.q_b), a.norm_q, c.eps), n);
    auto k = heads(rms_norm(linear(s.context, a.k_w, a.k_b), a.norm_k, c.eps), n);
    auto v = heads(linear(s.context, a.v_w, a.v_b), n);
    auto o = merge(dit_attention(q, k, v));
    // An empty image part (see embed()) adds nothing: softmax over no keys, zero output.
    if (a.k_img_w.defined() && s.context_img.defined() && s.context_img.size(1) > 0) {
      auto ki = heads(rms_norm(linear(s.context_img, a.k_img_w, a.k_img_b), a.norm_k_img, c.eps), n);
      auto vi = heads(linear(s.context_img, a.v_img_w, a.v_img_b), n);
      // The reference adds the image attention after the text one: x + img_x.
      o = o + merge(dit_attention(q, ki, vi));
    }
    x = x + linear(o, a.o_w, a.o_b);
  }
  // FFN on the modulated norm2(x).
  {
    auto h = layer_norm(x, c.eps) * (1 + e[4]) + e[3];
    auto y = linear(torch::gelu(linear(h, b.ffn0_w, b.ffn0_b), "tanh"), b.ffn2_w, b.ffn2_b);
    x = x + y * e[5];
  }
}

torch::Tensor WanDiT::head(const DiTState& s) const {
  torch::NoGradGuard no_grad;
  const DiTConfig& c = cfg_;
  auto e = (head_mod_ + s.e.unsqueeze(1)).chunk(2, 1);
  auto u = linear(layer_norm(s.x, c.eps) * (1 + e[1]) + e[0], head_w_, head_b_);
  // unpatchify: [B, f*h*w, p*q*r*C] -> [B, C, f*p, h*q, w*r] ('fhwpqrc->cfphqwr').
  const int64_t B = u.size(0), f = s.grid[0], h = s.grid[1], w = s.grid[2];
  const int64_t pt = c.patch_size[0], ph = c.patch_size[1], pw = c.patch_size[2];
  u = u.view({B, f, h, w, pt, ph, pw, c.out_dim}).permute({0, 7, 1, 4, 2, 5, 3, 6});
  u = u.reshape({B, c.out_dim, f * pt, h * ph, w * pw});
  return s.batched ? u : u.squeeze(0);
}

torch::Tensor WanDiT::forward(const torch::Tensor& x, const torch::Tensor& t, const torch::Tensor& context,
                              int64_t seq_len, const torch::Tensor& clip_fea, const torch::Tensor& y) const {
  torch::NoGradGuard no_grad;
  if (static_cast<int64_t>(blocks_.size()) != cfg_.num_layers)
    throw std::logic_error("WanDiT::forward: loaded without blocks; run them with run_block()");
  DiTState s = embed(x, t, context, seq_len, clip_fea, y);
  for (const auto& b : blocks_) run_block(b, s);
  return head(s);
}

double WanDiT::flops(const DiTConfig& c, const std::vector<int64_t>& shape, int64_t img_tokens) {
  if (shape.size() != 4) throw std::invalid_argument("WanDiT::flops: latent shape must be [C, F, H, W]");
  const double P = static_cast<double>(c.patch_size[0] * c.patch_size[1] * c.patch_size[2]);
  const double L = static_cast<double>((shape[1] / c.patch_size[0]) * (shape[2] / c.patch_size[1]) *
                                       (shape[3] / c.patch_size[2]));
  const double D = static_cast<double>(c.dim), Fd = static_cast<double>(c.ffn_dim);
  const double T = static_cast<double>(c.text_len), I = static_cast<double>(img_tokens);
  double f = 2 * L * D * c.in_dim * P;                                       // patch embedding
  f += 2 * T * D * (c.text_dim + D);                                         // text embedding
  f += 2 * D * (c.freq_dim + D + 6 * D);                                     // time MLPs
  if (c.i2v()) f += 2 * I * (c.img_dim * c.img_dim + c.img_dim * D);         // img_emb
  double block = 2 * L * 4 * D * D + 4 * L * L * D;                          // self-attn: qkvo, QK^T + PV
  block += 2 * L * 2 * D * D + 2 * T * 2 * D * D + 4 * L * T * D;            // cross-attn
  if (c.i2v()) block += 2 * I * 2 * D * D + 4 * L * I * D;                   // image cross-attn
  block += 2 * L * 2 * D * Fd;                                               // ffn
  f += c.num_layers * block;
  f += 2 * L * D * c.out_dim * P;                                            // head
  return f;
}

}  // namespace reel::wan
