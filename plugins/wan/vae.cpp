// The Wan 2.1 causal 3D VAE: loading (config inference, key names) and chunked evaluation
// with the per-layer causal cache. See vae.hpp for the contract.
//
// Tensors are kept batched ([1, C, T, H, W]) internally, as in the reference, so that the
// convolution calls see the same shapes as there.
#include "vae.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>

namespace reel::wan {

namespace F = torch::nn::functional;
using torch::Tensor;

namespace {

constexpr int64_t kCacheT = 2;  // CACHE_T: frames remembered per temporal convolution

// A convolution as stored. For CausalConv3d, `front` is the number of zero frames padded
// before the input (2 * padding_t in the reference), `ph`/`pw` the symmetric spatial
// padding; `slot` is its cache slot (-1: no temporal extent, never cached).
struct Conv {
  Tensor w, b;
  int64_t front = 0, ph = 0, pw = 0;
  int slot = -1;
};

// The per-call causal state: one entry per cached layer. `rep` marks the reference's 'Rep'
// state of an upsampling time_conv (first frame seen, nothing cached yet).
struct Cache {
  std::vector<Tensor> frames;
  std::vector<bool> rep;
  explicit Cache(int n) : frames(n), rep(n, false) {}
};

struct ResBlock {
  Tensor g0, g3;  // RMS norm gammas [C, 1, 1, 1]
  Conv c2, c6;    // residual.2, residual.6 (3x3x3 causal)
  Conv shortcut;  // 1x1x1, undefined w when in == out
};

struct AttnBlock {
  Tensor gamma;   // [C, 1, 1]
  Conv qkv, proj;  // 1x1 Conv2d
};

enum class ResampleMode { kUp2d, kUp3d, kDown2d, kDown3d };

struct Resample {
  ResampleMode mode;
  Conv conv;       // resample.1 (Conv2d 3x3)
  Conv time_conv;  // (3,1,1) causal conv, 3d modes only
  int slot = -1;   // its cache slot
};

struct Layer {
  enum Kind { kRes, kAttn, kResample } kind;
  ResBlock res;
  AttnBlock attn;
  Resample resample;
};

struct Coder {  // Encoder3d or Decoder3d
  Conv conv1;
  std::vector<Layer> stages;  // downsamples / upsamples
  std::vector<Layer> middle;  // res, attn, res
  Tensor head_gamma;
  Conv head_conv;
  int slots = 0;
};

// ---- building ----

class Builder {
 public:
  Builder(const tensorio::Weights& w, Coder& c) : w_(w), c_(c) {}

  Conv causal3d(const std::string& key, int64_t in, int64_t out, std::vector<int64_t> k,
                std::vector<int64_t> pad) {
    Conv c;
    c.w = w_.require(key + ".weight", {out, in, k[0], k[1], k[2]});
    c.b = w_.require(key + ".bias", {out});
    c.front = 2 * pad[0];
    c.ph = pad[1];
    c.pw = pad[2];
    if (c.front > 0) c.slot = c_.slots++;
    return c;
  }
  Conv conv2d(const std::string& key, int64_t in, int64_t out, int64_t k) {
    Conv c;
    c.w = w_.require(key + ".weight", {out, in, k, k});
    c.b = w_.require(key + ".bias", {out});
    return c;
  }
  Tensor gamma(const std::string& key, int64_t dim, bool images) {
    return images ? w_.require(key + ".gamma", {dim, 1, 1}) : w_.require(key + ".gamma", {dim, 1, 1, 1});
  }
  Layer res(const std::string& key, int64_t in, int64_t out) {
    Layer l;
    l.kind = Layer::kRes;
    // Slot order follows the reference's call order: residual.2, then residual.6.
    l.res.g0 = gamma(key + ".residual.0", in, false);
    l.res.c2 = causal3d(key + ".residual.2", in, out, {3, 3, 3}, {1, 1, 1});
    l.res.g3 = gamma(key + ".residual.3", out, false);
    l.res.c6 = causal3d(key + ".residual.6", out, out, {3, 3, 3}, {1, 1, 1});
    if (in != out) l.res.shortcut = causal3d(key + ".shortcut", in, out, {1, 1, 1}, {0, 0, 0});
    return l;
  }
  Layer attn(const std::string& key, int64_t dim) {
    Layer l;
    l.kind = Layer::kAttn;
    l.attn.gamma = gamma(key + ".norm", dim, true);
    l.attn.qkv = conv2d(key + ".to_qkv", dim, 3 * dim, 1);
    l.attn.proj = conv2d(key + ".proj", dim, dim, 1);
    return l;
  }
  Layer resample(const std::string& key, int64_t dim, ResampleMode mode) {
    Layer l;
    l.kind = Layer::kResample;
    Resample& r = l.resample;
    r.mode = mode;
    bool up = mode == ResampleMode::kUp2d || mode == ResampleMode::kUp3d;
    r.conv = conv2d(key + ".resample.1", dim, up ? dim / 2 : dim, 3);
    if (mode == ResampleMode::kUp3d) {
      // CausalConv3d(dim, 2 dim, (3, 1, 1), padding=(1, 0, 0)): two past frames.
      r.time_conv = causal3d(key + ".time_conv", dim, dim * 2, {3, 1, 1}, {1, 0, 0});
    } else if (mode == ResampleMode::kDown3d) {
      // padding 0, stride (2, 1, 1): the past frame comes from the cache instead.
      r.time_conv = causal3d(key + ".time_conv", dim, dim, {3, 1, 1}, {0, 0, 0});
    }
    // The Resample manages the cache itself (the 'Rep' state, the downsampling past frame).
    if (mode == ResampleMode::kUp3d || mode == ResampleMode::kDown3d)
      r.slot = r.time_conv.slot >= 0 ? r.time_conv.slot : c_.slots++;
    r.time_conv.slot = -1;
    return l;
  }

 private:
  const tensorio::Weights& w_;
  Coder& c_;
};

bool has_scale(const std::vector<double>& scales, double s) {
  return std::find(scales.begin(), scales.end(), s) != scales.end();
}

// Encoder3d(dim, 2 * z_dim, ...): layer order and slot order as in the reference.
Coder build_encoder(const tensorio::Weights& w, const VaeConfig& cfg) {
  Coder c;
  Builder b(w, c);
  std::vector<int64_t> dims{cfg.dim};
  for (int64_t m : cfg.dim_mult) dims.push_back(cfg.dim * m);
  c.conv1 = b.causal3d("encoder.conv1", 3, dims[0], {3, 3, 3}, {1, 1, 1});
  double scale = 1.0;
  int idx = 0;
  auto key = [&] { return "encoder.downsamples." + std::to_string(idx++); };
  size_t n = cfg.dim_mult.size();
  for (size_t i = 0; i < n; ++i) {
    int64_t in = dims[i], out = dims[i + 1];
    for (int64_t r = 0; r < cfg.num_res_blocks; ++r) {
      c.stages.push_back(b.res(key(), in, out));
      if (has_scale(cfg.attn_scales, scale)) c.stages.push_back(b.attn(key(), out));
      in = out;
    }
    if (i != n - 1) {
      auto mode = cfg.temperal_downsample.at(i) ? ResampleMode::kDown3d : ResampleMode::kDown2d;
      c.stages.push_back(b.resample(key(), out, mode));
      scale /= 2.0;
    }
  }
  int64_t out = dims.back();
  c.middle.push_back(b.res("encoder.middle.0", out, out));
  c.middle.push_back(b.attn("encoder.middle.1", out));
  c.middle.push_back(b.res("encoder.middle.2", out, out));
  c.head_gamma = b.gamma("encoder.head.0", out, false);
  c.head_conv = b.causal3d("encoder.head.2", out, 2 * cfg.z_dim, {3, 3, 3}, {1, 1, 1});
  return c;
}

// Decoder3d(dim, z_dim, ..., temperal_upsample = reversed(temperal_downsample)).
Coder build_decoder(const tensorio::Weights& w, const VaeConfig& cfg) {
  Coder c;
  Builder b(w, c);
  size_t n = cfg.dim_mult.size();
  std::vector<int64_t> dims{cfg.dim * cfg.dim_mult.back()};
  for (size_t i = n; i-- > 0;) dims.push_back(cfg.dim * cfg.dim_mult[i]);
  std::vector<bool> temperal_upsample(cfg.temperal_downsample.rbegin(), cfg.temperal_downsample.rend());
  double scale = 1.0 / std::pow(2.0, static_cast<double>(n) - 2.0);

  c.conv1 = b.causal3d("decoder.conv1", cfg.z_dim, dims[0], {3, 3, 3}, {1, 1, 1});
  c.middle.push_back(b.res("decoder.middle.0", dims[0], dims[0]));
  c.middle.push_back(b.attn("decoder.middle.1", dims[0]));
  c.middle.push_back(b.res("decoder.middle.2", dims[0], dims[0]));
  int idx = 0;
  auto key = [&] { return "decoder.upsamples." + std::to_string(idx++); };
  for (size_t i = 0; i < n; ++i) {
    int64_t in = dims[i], out = dims[i + 1];
    // The reference halves the input width of stages 1..3 (literally `i in (1, 2, 3)`),
    // because every upsampling Conv2d outputs dim // 2 channels.
    if (i == 1 || i == 2 || i == 3) in /= 2;
    for (int64_t r = 0; r < cfg.num_res_blocks + 1; ++r) {
      c.stages.push_back(b.res(key(), in, out));
      if (has_scale(cfg.attn_scales, scale)) c.stages.push_back(b.attn(key(), out));
      in = out;
    }
    if (i != n - 1) {
      auto mode = temperal_upsample.at(i) ? ResampleMode::kUp3d : ResampleMode::kUp2d;
      c.stages.push_back(b.resample(key(), out, mode));
      scale *= 2.0;
    }
  }
  int64_t out = dims.back();
  c.head_gamma = b.gamma("decoder.head.0", out, false);
  c.head_conv = b.causal3d("decoder.head.2", out, 3, {3, 3, 3}, {1, 1, 1});
  return c;
}

// ---- evaluation ----

// conv3d (no padding) with its working memory bounded. LibTorch's CPU conv3d unfolds the
// input (im2col): C_in·k³ values per output voxel, 16 GB for one 3x3x3 layer of the
// release decoder at 480x832, far more than the activations themselves. Computing the
// output one frame and a band of rows at a time keeps that buffer near kConvColumnsBudget;
// each output voxel still sums the same products, so results are unchanged.
constexpr int64_t kConvColumnsBudget = int64_t{16} << 20;

Tensor bounded_conv3d(const Tensor& x, const Tensor& w, const Tensor& b, const std::vector<int64_t>& stride) {
  const int64_t kt = w.size(2), kh = w.size(3), kw = w.size(4);
  const int64_t t_out = (x.size(2) - kt) / stride[0] + 1, h_out = (x.size(3) - kh) / stride[1] + 1;
  const int64_t w_out = (x.size(4) - kw) / stride[2] + 1;
  const int64_t row_bytes = x.size(0) * w.size(1) * kt * kh * kw * w_out * static_cast<int64_t>(x.element_size());
  if (!x.device().is_cpu() || row_bytes * h_out * t_out <= kConvColumnsBudget) return torch::conv3d(x, w, b, stride);
  const int64_t rows = std::max<int64_t>(1, kConvColumnsBudget / row_bytes);
  Tensor out = torch::empty({x.size(0), w.size(0), t_out, h_out, w_out}, x.options());
  for (int64_t t = 0; t < t_out; ++t) {
    for (int64_t h = 0; h < h_out; h += rows) {
      const int64_t n = std::min(rows, h_out - h);
      Tensor in = x.narrow(2, t * stride[0], kt).narrow(3, h * stride[1], (n - 1) * stride[1] + kh);
      out.narrow(2, t, 1).narrow(3, h, n).copy_(torch::conv3d(in, w, b, stride));
    }
  }
  return out;
}

// CausalConv3d.forward(x, cache): the cached frames replace that many of the front zeros.
Tensor causal_conv(const Conv& c, Tensor x, const Tensor& cached, std::vector<int64_t> stride = {1, 1, 1}) {
  int64_t front = c.front;
  if (cached.defined() && front > 0) {
    x = torch::cat({cached, x}, 2);
    front -= cached.size(2);
  }
  if (front > 0 || c.ph > 0 || c.pw > 0) x = torch::constant_pad_nd(x, {c.pw, c.pw, c.ph, c.ph, front, 0}, 0.0);
  return bounded_conv3d(x, c.w, c.b, stride);
}

// A causal conv inside a chunked pass: the reference's
//   cache_x = x[:, :, -CACHE_T:]; if it has < 2 frames and a cache exists, prepend the
//   cache's last frame; x = conv(x, cache); cache = cache_x.
Tensor cached_conv(const Conv& c, const Tensor& x, Cache& cache) {
  if (c.slot < 0) return causal_conv(c, x, Tensor());
  Tensor& slot = cache.frames[c.slot];
  int64_t t = x.size(2);
  Tensor next = x.slice(2, std::max<int64_t>(0, t - kCacheT), t);
  if (next.size(2) < 2 && slot.defined()) next = torch::cat({slot.slice(2, slot.size(2) - 1, slot.size(2)), next}, 2);
  Tensor y = causal_conv(c, x, slot);
  slot = next.clone();
  return y;
}

// RMS_norm: F.normalize over channels (dim 1), times sqrt(C), times gamma.
Tensor rms_norm(const Tensor& x, const Tensor& gamma) {
  double scale = std::sqrt(static_cast<double>(x.size(1)));
  return F::normalize(x, F::NormalizeFuncOptions().dim(1)) * scale * gamma;
}

Tensor res_block(const ResBlock& r, const Tensor& x, Cache& cache) {
  Tensor h = r.shortcut.w.defined() ? causal_conv(r.shortcut, x, Tensor()) : x;
  Tensor y = torch::silu(rms_norm(x, r.g0));
  y = cached_conv(r.c2, y, cache);
  y = torch::silu(rms_norm(y, r.g3));  // dropout: identity in eval
  y = cached_conv(r.c6, y, cache);
  return y + h;
}

// 'b c t h w -> (b t) c h w' and back.
Tensor to_frames(const Tensor& x) {
  return x.permute({0, 2, 1, 3, 4}).reshape({x.size(0) * x.size(2), x.size(1), x.size(3), x.size(4)});
}
Tensor from_frames(const Tensor& x, int64_t b, int64_t t) {
  return x.reshape({b, t, x.size(1), x.size(2), x.size(3)}).permute({0, 2, 1, 3, 4});
}

// Single-head self-attention over the H*W positions of each frame, exact softmax.
Tensor attn_block(const AttnBlock& a, const Tensor& x) {
  int64_t b = x.size(0), c = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  Tensor y = rms_norm(to_frames(x), a.gamma);
  Tensor qkv = torch::conv2d(y, a.qkv.w, a.qkv.b)
                   .reshape({b * t, 1, c * 3, h * w})
                   .permute({0, 1, 3, 2})
                   .contiguous();
  auto parts = qkv.chunk(3, -1);
  const Tensor &q = parts[0], &k = parts[1], &v = parts[2];
  double scale = 1.0 / std::sqrt(static_cast<double>(c));
  Tensor attn = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) * scale, -1);
  Tensor o = torch::matmul(attn, v);  // [bt, 1, hw, c]
  o = o.squeeze(1).permute({0, 2, 1}).reshape({b * t, c, h, w});
  o = torch::conv2d(o, a.proj.w, a.proj.b);
  return from_frames(o, b, t) + x;
}

Tensor resample(const Resample& r, Tensor x, Cache& cache) {
  int64_t b = x.size(0), c = x.size(1);
  if (r.mode == ResampleMode::kUp3d) {
    Tensor& slot = cache.frames[r.slot];
    if (!slot.defined() && !cache.rep[r.slot]) {
      // First chunk: the reference marks the cache 'Rep' and leaves time untouched.
      cache.rep[r.slot] = true;
    } else {
      int64_t t = x.size(2);
      Tensor next = x.slice(2, std::max<int64_t>(0, t - kCacheT), t);
      bool rep = cache.rep[r.slot];
      if (next.size(2) < 2 && !rep) next = torch::cat({slot.slice(2, slot.size(2) - 1, slot.size(2)), next}, 2);
      if (next.size(2) < 2 && rep) next = torch::cat({torch::zeros_like(next), next}, 2);
      // After 'Rep' the time_conv starts afresh (zero padded): frame 0 is not in its past.
      x = causal_conv(r.time_conv, x, rep ? Tensor() : slot);
      slot = next.clone();
      cache.rep[r.slot] = false;
      // [b, 2c, t] -> [b, c, 2t]: output frame 2i from the first c channels, 2i+1 from the rest.
      x = x.reshape({b, 2, c, t, x.size(3), x.size(4)});
      x = torch::stack({x.select(1, 0), x.select(1, 1)}, 3).reshape({b, c, t * 2, x.size(4), x.size(5)});
    }
  }
  int64_t t = x.size(2);
  Tensor f = to_frames(x);
  if (r.mode == ResampleMode::kUp2d || r.mode == ResampleMode::kUp3d) {
    // nearest-exact at an integer factor of 2 picks the same source pixel as nearest.
    f = F::interpolate(f, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{f.size(2) * 2, f.size(3) * 2})
                              .mode(torch::kNearest));
    f = torch::conv2d(f, r.conv.w, r.conv.b, 1, 1);
  } else {
    f = torch::constant_pad_nd(f, {0, 1, 0, 1}, 0.0);  // ZeroPad2d((0, 1, 0, 1))
    f = torch::conv2d(f, r.conv.w, r.conv.b, 2);
  }
  x = from_frames(f, b, t);
  if (r.mode == ResampleMode::kDown3d) {
    Tensor& slot = cache.frames[r.slot];
    if (!slot.defined()) {
      // First chunk: frame 0 passes through; it becomes the past of the next chunk.
      slot = x.clone();
    } else {
      Tensor next = x.slice(2, x.size(2) - 1, x.size(2)).clone();
      x = causal_conv(r.time_conv, torch::cat({slot.slice(2, slot.size(2) - 1, slot.size(2)), x}, 2), Tensor(),
                      {2, 1, 1});
      slot = next;
    }
  }
  return x;
}

Tensor run_layer(const Layer& l, const Tensor& x, Cache& cache) {
  switch (l.kind) {
    case Layer::kRes: return res_block(l.res, x, cache);
    case Layer::kAttn: return attn_block(l.attn, x);
    case Layer::kResample: return resample(l.resample, x, cache);
  }
  throw std::logic_error("unreachable");
}

// Encoder3d.forward / Decoder3d.forward on one chunk (they differ only in stage order).
Tensor run_coder(const Coder& c, Tensor x, Cache& cache, bool stages_first) {
  x = cached_conv(c.conv1, x, cache);
  auto run = [&](const std::vector<Layer>& ls) {
    for (const Layer& l : ls) x = run_layer(l, x, cache);
  };
  if (stages_first) {
    run(c.stages);
    run(c.middle);
  } else {
    run(c.middle);
    run(c.stages);
  }
  x = torch::silu(rms_norm(x, c.head_gamma));
  return cached_conv(c.head_conv, x, cache);
}

std::string idx_key(const std::string& prefix, int i, const std::string& rest) {
  return prefix + std::to_string(i) + rest;
}

}  // namespace

struct WanVae::Impl {
  VaeConfig cfg;
  Coder encoder, decoder;
  Conv conv1, conv2;    // 1x1x1 causal convs around the latent
  Tensor mean, inv_std;  // [1, z, 1, 1, 1]; inv_std = 1 / std in float32, as the reference

  // normalised latent [z, F, H, W] -> conv2(denormalised) [1, z, F, H, W]
  Tensor decoder_input(const Tensor& latent) const {
    if (latent.dim() != 4 || latent.size(0) != cfg.z_dim)
      throw std::invalid_argument("WanVae::decode: expected a latent [" + std::to_string(cfg.z_dim) +
                                  ", F, H, W]");
    Tensor z = latent.to(mean.device(), torch::kFloat32).unsqueeze(0);
    z = z / inv_std + mean;
    return causal_conv(conv2, z, Tensor());
  }
  // One latent frame [1, z, 1, h, w] -> its video frames (1 for the first, 4 after).
  Tensor decode_frame(const Tensor& x, Cache& cache) const { return run_coder(decoder, x, cache, false); }

  // f(tensor&) for every weight.
  template <class F>
  void for_each(F&& f) {
    auto conv = [&](Conv& c) {
      for (Tensor* t : {&c.w, &c.b})
        if (t->defined()) f(*t);
    };
    auto coder = [&](Coder& c) {
      conv(c.conv1);
      for (auto* layers : {&c.stages, &c.middle}) {
        for (Layer& l : *layers) {
          if (l.res.g0.defined()) f(l.res.g0);
          if (l.res.g3.defined()) f(l.res.g3);
          conv(l.res.c2), conv(l.res.c6), conv(l.res.shortcut);
          if (l.attn.gamma.defined()) f(l.attn.gamma);
          conv(l.attn.qkv), conv(l.attn.proj);
          conv(l.resample.conv), conv(l.resample.time_conv);
        }
      }
      if (c.head_gamma.defined()) f(c.head_gamma);
      conv(c.head_conv);
    };
    coder(encoder), coder(decoder);
    conv(conv1), conv(conv2);
    f(mean), f(inv_std);
  }
};

WanVae WanVae::to(const torch::Device& device) const {
  auto moved = std::make_shared<Impl>(*impl_);
  moved->for_each([&](Tensor& t) { t = t.to(device); });
  WanVae v = *this;
  v.impl_ = std::move(moved);
  return v;
}

int64_t WanVae::bytes() const {
  int64_t n = 0;
  Impl copy = *impl_;
  copy.for_each([&](Tensor& t) { n += t.numel() * static_cast<int64_t>(t.element_size()); });
  return n;
}

torch::Device WanVae::device() const { return impl_->mean.device(); }

VaeConfig WanVae::infer_config(const tensorio::Weights& w) {
  VaeConfig cfg;
  cfg.dim = w.shape_of("encoder.conv1.weight").at(0);
  cfg.z_dim = w.shape_of("conv2.weight").at(0);
  // Walk encoder.downsamples.N: residual blocks (+ attention) per stage, a Resample between
  // stages; the stage width is the last residual block's output width.
  const std::string p = "encoder.downsamples.";
  int64_t res_in_stage = 0, stage = 0, width = cfg.dim;
  bool attn_in_stage = false;
  auto close_stage = [&] {
    if (res_in_stage == 0) throw tensorio::WeightError(w.source() + ": encoder stage " + std::to_string(stage) +
                                                       " has no residual block");
    if (stage == 0) cfg.num_res_blocks = res_in_stage;
    if (res_in_stage != cfg.num_res_blocks)
      throw tensorio::WeightError(w.source() + ": encoder stages have different residual block counts");
    if (width % cfg.dim != 0)
      throw tensorio::WeightError(w.source() + ": encoder stage width is not a multiple of dim");
    cfg.dim_mult.push_back(width / cfg.dim);
    if (attn_in_stage) cfg.attn_scales.push_back(1.0 / std::pow(2.0, static_cast<double>(stage)));
    res_in_stage = 0;
    attn_in_stage = false;
    ++stage;
  };
  for (int i = 0;; ++i) {
    if (w.has(idx_key(p, i, ".residual.0.gamma"))) {
      width = w.shape_of(idx_key(p, i, ".residual.6.weight")).at(0);
      ++res_in_stage;
    } else if (w.has(idx_key(p, i, ".to_qkv.weight"))) {
      attn_in_stage = true;
    } else if (w.has(idx_key(p, i, ".resample.1.weight"))) {
      cfg.temperal_downsample.push_back(w.has(idx_key(p, i, ".time_conv.weight")));
      close_stage();
    } else {
      break;
    }
  }
  close_stage();
  return cfg;
}

WanVae WanVae::load(const tensorio::Weights& w, const std::vector<float>& mean, const std::vector<float>& std) {
  torch::NoGradGuard no_grad;
  auto impl = std::make_shared<Impl>();
  impl->cfg = infer_config(w);
  const VaeConfig& cfg = impl->cfg;
  if (static_cast<int64_t>(mean.size()) != cfg.z_dim || static_cast<int64_t>(std.size()) != cfg.z_dim)
    throw std::invalid_argument("WanVae::load: mean/std need z_dim = " + std::to_string(cfg.z_dim) + " entries");
  impl->encoder = build_encoder(w, cfg);
  impl->decoder = build_decoder(w, cfg);
  Coder unused;
  Builder b(w, unused);
  impl->conv1 = b.causal3d("conv1", 2 * cfg.z_dim, 2 * cfg.z_dim, {1, 1, 1}, {0, 0, 0});
  impl->conv2 = b.causal3d("conv2", cfg.z_dim, cfg.z_dim, {1, 1, 1}, {0, 0, 0});
  impl->mean = torch::tensor(mean, torch::kFloat32).view({1, cfg.z_dim, 1, 1, 1});
  impl->inv_std = (1.0 / torch::tensor(std, torch::kFloat32)).view({1, cfg.z_dim, 1, 1, 1});
  WanVae v;
  v.impl_ = std::move(impl);
  return v;
}

WanVae WanVae::load_file(const std::string& pth_path, const std::vector<float>& mean,
                         const std::vector<float>& std) {
  return load(tensorio::Weights(tensorio::load_pth(pth_path), pth_path), mean, std);
}

const VaeConfig& WanVae::config() const { return impl_->cfg; }

int64_t WanVae::spatial_factor() const { return int64_t{1} << (impl_->cfg.dim_mult.size() - 1); }

int64_t WanVae::temporal_factor() const {
  const auto& t = impl_->cfg.temperal_downsample;
  return int64_t{1} << std::count(t.begin(), t.end(), true);
}

torch::Tensor WanVae::encode(const torch::Tensor& video) const {
  torch::NoGradGuard no_grad;
  const Impl& m = *impl_;
  if (video.dim() != 4 || video.size(0) != 3)
    throw std::invalid_argument("WanVae::encode: expected a video [3, T, H, W]");
  Tensor x = video.to(m.mean.device(), torch::kFloat32).unsqueeze(0);
  Cache cache(m.encoder.slots);
  int64_t t = x.size(2);
  // The reference's chunking: frame 0 alone, then chunks of 4 frames.
  std::vector<Tensor> outs;
  for (int64_t i = 0; i < 1 + (t - 1) / 4; ++i) {
    Tensor chunk = i == 0 ? x.slice(2, 0, 1) : x.slice(2, 1 + 4 * (i - 1), 1 + 4 * i);
    outs.push_back(run_coder(m.encoder, chunk, cache, true));
  }
  Tensor mu = causal_conv(m.conv1, torch::cat(outs, 2), Tensor()).chunk(2, 1)[0];
  mu = (mu - m.mean) * m.inv_std;
  return mu.squeeze(0);
}

torch::Tensor WanVae::decode(const torch::Tensor& latent) const {
  torch::NoGradGuard no_grad;
  const Impl& m = *impl_;
  Tensor x = m.decoder_input(latent);
  Cache cache(m.decoder.slots);
  std::vector<Tensor> outs;
  for (int64_t i = 0; i < x.size(2); ++i) outs.push_back(m.decode_frame(x.slice(2, i, i + 1), cache));
  return torch::cat(outs, 2).clamp_(-1, 1).squeeze(0);
}

namespace {

// Tile starts along one axis: every `tile - overlap`, the last moved back to end at `size`.
std::vector<int64_t> tile_starts(int64_t size, int64_t tile, int64_t overlap) {
  if (tile >= size) return {0};
  std::vector<int64_t> s;
  for (int64_t p = 0;; p += tile - overlap) {
    if (p + tile >= size) {
      s.push_back(size - tile);
      break;
    }
    s.push_back(p);
  }
  return s;
}

// Blend weights of tile k along one axis, in output pixels: 1 inside, rising linearly over
// the part shared with the previous tile, falling over the part shared with the next one.
// Strictly positive, so the normalised sum is defined everywhere.
Tensor axis_weights(const std::vector<int64_t>& starts, size_t k, int64_t len, int64_t factor) {
  int64_t n = len * factor;
  std::vector<float> w(n, 1.0f);
  if (k > 0) {
    int64_t ov = (starts[k - 1] + len - starts[k]) * factor;
    for (int64_t j = 0; j < ov; ++j) w[j] = std::min(w[j], static_cast<float>(j + 1) / (ov + 1));
  }
  if (k + 1 < starts.size()) {
    int64_t ov = (starts[k] + len - starts[k + 1]) * factor;
    for (int64_t j = 0; j < ov; ++j) w[n - 1 - j] = std::min(w[n - 1 - j], static_cast<float>(j + 1) / (ov + 1));
  }
  return torch::tensor(w, torch::kFloat32);
}

}  // namespace

torch::Tensor WanVae::decode_tiled(const torch::Tensor& latent, int64_t tile, int64_t overlap) const {
  torch::NoGradGuard no_grad;
  const Impl& m = *impl_;
  if (tile <= 0 || overlap < 0 || overlap >= tile)
    throw std::invalid_argument("WanVae::decode_tiled: need tile > 0 and 0 <= overlap < tile");
  // conv2 and the normalisation are pointwise: applying them before tiling is exact.
  Tensor x = m.decoder_input(latent);
  int64_t frames = x.size(2), h = x.size(3), w = x.size(4), s = spatial_factor();
  auto hs = tile_starts(h, tile, overlap), ws = tile_starts(w, tile, overlap);
  int64_t th = std::min(tile, h), tw = std::min(tile, w);

  struct Tile {
    int64_t h0, w0;
    Tensor weight;  // [th*s, tw*s]
    Cache cache;
  };
  std::vector<Tile> tiles;
  Tensor wsum = torch::zeros({h * s, w * s}, x.options());
  for (size_t i = 0; i < hs.size(); ++i) {
    for (size_t j = 0; j < ws.size(); ++j) {
      Tensor wt = torch::outer(axis_weights(hs, i, th, s), axis_weights(ws, j, tw, s)).to(x.device());
      wsum.slice(0, hs[i] * s, (hs[i] + th) * s).slice(1, ws[j] * s, (ws[j] + tw) * s).add_(wt);
      tiles.push_back({hs[i], ws[j], wt, Cache(m.decoder.slots)});
    }
  }
  // Frame by frame, every tile advancing its own causal cache, as decode() does.
  std::vector<Tensor> outs;
  for (int64_t f = 0; f < frames; ++f) {
    Tensor acc;
    for (Tile& t : tiles) {
      Tensor in = x.slice(2, f, f + 1).slice(3, t.h0, t.h0 + th).slice(4, t.w0, t.w0 + tw);
      Tensor y = m.decode_frame(in, t.cache);  // [1, 3, n, th*s, tw*s]
      if (!acc.defined()) acc = torch::zeros({1, y.size(1), y.size(2), h * s, w * s}, y.options());
      acc.slice(3, t.h0 * s, (t.h0 + th) * s).slice(4, t.w0 * s, (t.w0 + tw) * s).add_(y * t.weight);
    }
    outs.push_back(acc / wsum);
  }
  return torch::cat(outs, 2).clamp_(-1, 1).squeeze(0);
}

}  // namespace reel::wan
