// The causal 3D VAE's layers: loading by published key names and evaluation.
// Evaluation releases each intermediate as soon as the next one exists (tensors are
// moved, not copied, through the blocks), so a resnet holds at most its input, one
// activation and the convolution's output; large convolutions pad a run of frames at a
// time instead of copying the whole padded input (conv_forward).
#include "vae_blocks.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace reel::hyavatar::vae {

namespace {

// log2 of a power of two, as the reference's int(np.log2(ratio)).
int64_t log2_int(int64_t v) { return static_cast<int64_t>(std::floor(std::log2(static_cast<double>(v)))); }

}  // namespace

// ---- convolutions ----------------------------------------------------------------------

Conv load_conv(CheckpointReader& k, const std::string& prefix, int64_t in, int64_t out, int64_t kernel,
               std::array<int64_t, 3> stride, bool causal_conv_wrapper, bool causal) {
  Conv c;
  // CausalConv3d keeps its nn.Conv3d as `.conv`; quant_conv / post_quant_conv are bare.
  const std::string p = causal_conv_wrapper ? prefix + ".conv" : prefix;
  c.weight = k.take(p + ".weight", {out, in, kernel, kernel, kernel});
  c.bias = k.take(p + ".bias", {out});
  c.stride = stride;
  c.kernel = kernel;
  c.padded = causal_conv_wrapper;
  c.causal = causal;
  return c;
}

torch::Tensor conv_forward(const Conv& c, const torch::Tensor& x, int64_t chunk_bytes) {
  std::vector<int64_t> stride(c.stride.begin(), c.stride.end());
  if (!c.padded || c.kernel == 1) return torch::conv3d(x, c.weight, c.bias, stride);
  // F.pad(x, (k/2, k/2, k/2, k/2, k-1, 0), mode="replicate"): W, H, then T (past side only).
  const int64_t k = c.kernel, s = k / 2;
  const int64_t front = c.causal ? k - 1 : s, back = c.causal ? 0 : s;
  const int64_t T = x.size(2);
  const int64_t frame_bytes = x.size(0) * x.size(1) * (x.size(3) + 2 * s) * (x.size(4) + 2 * s) *
                              static_cast<int64_t>(x.element_size());
  if (chunk_bytes <= 0 || frame_bytes * (T + front + back) <= chunk_bytes)
    return torch::conv3d(torch::replication_pad3d(x, {s, s, s, s, front, back}), c.weight, c.bias, stride);

  const int64_t st = c.stride[0];
  const int64_t t_out = (T + front + back - k) / st + 1;
  // Output frames per chunk so that one padded slice stays within chunk_bytes.
  const int64_t per_chunk = std::max<int64_t>(1, (chunk_bytes / frame_bytes - k) / st + 1);
  torch::Tensor out;
  for (int64_t t0 = 0; t0 < t_out; t0 += per_chunk) {
    const int64_t t1 = std::min(t_out, t0 + per_chunk);
    // Output frame t reads padded frames [t*st, t*st + k - 1], i.e. input frames shifted
    // back by `front`; frames outside [0, T) are the replicated edge frames.
    const int64_t lo = t0 * st - front, hi = (t1 - 1) * st + k - 1 - front;  // inclusive
    const int64_t first = std::max<int64_t>(lo, 0), last = std::min<int64_t>(hi, T - 1);
    auto slice = torch::replication_pad3d(x.slice(2, first, last + 1),
                                          {s, s, s, s, first - lo, hi - last});
    auto y = torch::conv3d(slice, c.weight, c.bias, stride);
    if (!out.defined()) {
      auto shape = y.sizes().vec();
      shape[2] = t_out;
      out = torch::empty(shape, y.options());
    }
    out.narrow(2, t0, t1 - t0).copy_(y);
  }
  return out;
}

// ---- normalisation ---------------------------------------------------------------------

Norm load_norm(CheckpointReader& k, const std::string& prefix, int64_t channels, int64_t groups) {
  Norm n;
  n.weight = k.take(prefix + ".weight", {channels});
  n.bias = k.take(prefix + ".bias", {channels});
  n.groups = groups;
  return n;
}

torch::Tensor norm_silu(const Norm& n, const torch::Tensor& x) {
  auto h = torch::group_norm(x, n.groups, n.weight, n.bias, n.eps);
  torch::silu_(h);
  return h;
}

// ---- residual block --------------------------------------------------------------------

Resnet load_resnet(CheckpointReader& k, const std::string& prefix, int64_t in, int64_t out, int64_t groups, bool causal) {
  Resnet r;
  r.norm1 = load_norm(k, prefix + ".norm1", in, groups);
  r.conv1 = load_conv(k, prefix + ".conv1", in, out, 3, {1, 1, 1}, true, causal);
  r.norm2 = load_norm(k, prefix + ".norm2", out, groups);
  r.conv2 = load_conv(k, prefix + ".conv2", out, out, 3, {1, 1, 1}, true, causal);
  r.has_shortcut = in != out;
  if (r.has_shortcut) r.shortcut = load_conv(k, prefix + ".conv_shortcut", in, out, 1, {1, 1, 1}, true, causal);
  return r;
}

torch::Tensor resnet_forward(const Resnet& r, torch::Tensor x) {
  auto h = conv_forward(r.conv1, norm_silu(r.norm1, x));
  h = conv_forward(r.conv2, norm_silu(r.norm2, h));  // dropout(p=0) is the identity
  if (r.has_shortcut) x = conv_forward(r.shortcut, x);
  h.add_(x);  // (input + hidden) / output_scale_factor, the factor being 1 everywhere here
  return h;
}

// ---- attention -------------------------------------------------------------------------

Attention load_attention(CheckpointReader& k, const std::string& prefix, int64_t channels, int64_t groups, bool causal) {
  Attention a;
  a.group_norm = load_norm(k, prefix + ".group_norm", channels, groups);
  a.q_w = k.take(prefix + ".to_q.weight", {channels, channels});
  a.q_b = k.take(prefix + ".to_q.bias", {channels});
  a.k_w = k.take(prefix + ".to_k.weight", {channels, channels});
  a.k_b = k.take(prefix + ".to_k.bias", {channels});
  a.v_w = k.take(prefix + ".to_v.weight", {channels, channels});
  a.v_b = k.take(prefix + ".to_v.bias", {channels});
  a.out_w = k.take(prefix + ".to_out.0.weight", {channels, channels});
  a.out_b = k.take(prefix + ".to_out.0.bias", {channels});
  a.causal = causal;
  return a;
}

torch::Tensor attention_forward(const Attention& a, torch::Tensor x) {
  const auto sizes = x.sizes().vec();
  const int64_t B = sizes[0], C = sizes[1], T = sizes[2], HW = sizes[3] * sizes[4], N = T * HW;
  torch::Tensor q, k, v;
  {
    // "b c f h w -> b (f h w) c", then group_norm over channels: the statistics are the
    // same whether taken on [B, C, N] or on the 5-D tensor.
    auto tokens = torch::group_norm(x, a.group_norm.groups, a.group_norm.weight, a.group_norm.bias,
                                    a.group_norm.eps)
                      .reshape({B, C, N})
                      .transpose(1, 2);
    q = torch::linear(tokens, a.q_w, a.q_b);
    k = torch::linear(tokens, a.k_w, a.k_b);
    v = torch::linear(tokens, a.v_w, a.v_b);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(C));  // one head of width C
  auto kt = k.transpose(1, 2);
  auto out = torch::empty({B, N, C}, q.options());
  // Queries in chunks so the score matrix stays near 256 MiB: rows are independent, so
  // chunking changes no number. At the release's tile sizes N reaches 17 * 32 * 32.
  const int64_t rows = std::max<int64_t>(1, (int64_t{256} << 20) / (4 * std::max<int64_t>(N, 1) * B));
  for (int64_t s = 0; s < N; s += rows) {
    const int64_t n = std::min(rows, N - s);
    auto scores = torch::matmul(q.narrow(1, s, n), kt).mul_(scale);
    if (a.causal) {
      // prepare_causal_attention_mask: query i sees keys up to the end of its frame.
      auto qi = torch::arange(s, s + n, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
      auto kj = torch::arange(N, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
      auto hidden = kj.unsqueeze(0) >= ((qi.div(HW, "floor") + 1) * HW).unsqueeze(1);
      scores.masked_fill_(hidden.unsqueeze(0), -std::numeric_limits<float>::infinity());
    }
    out.narrow(1, s, n).copy_(torch::matmul(torch::softmax(scores, -1), v));
  }
  q.reset();
  k.reset();
  kt.reset();
  v.reset();
  auto o = torch::linear(out, a.out_w, a.out_b);
  out.reset();
  // residual_connection, rescale_output_factor 1, "b (f h w) c -> b c f h w"
  auto y = o.transpose(1, 2).reshape(sizes);
  y.add_(x);
  return y;
}

// ---- middle block ------------------------------------------------------------------------

MidBlock load_mid_block(CheckpointReader& k, const std::string& prefix, const VaeConfig& c) {
  MidBlock m;
  const int64_t ch = c.block_out_channels.back();
  // UNetMidBlockCausal3D(num_layers=1): resnets.0, [attentions.0], resnets.1
  m.resnets.push_back(load_resnet(k, prefix + ".resnets.0", ch, ch, c.norm_num_groups, !c.disable_causal_conv));
  if (c.mid_block_add_attention)
    m.attentions.push_back(
        load_attention(k, prefix + ".attentions.0", ch, c.norm_num_groups, c.mid_block_causal_attn));
  m.resnets.push_back(load_resnet(k, prefix + ".resnets.1", ch, ch, c.norm_num_groups, !c.disable_causal_conv));
  return m;
}

torch::Tensor mid_block_forward(const MidBlock& m, torch::Tensor x) {
  x = resnet_forward(m.resnets[0], std::move(x));
  for (size_t i = 1; i < m.resnets.size(); ++i) {
    if (i - 1 < m.attentions.size()) x = attention_forward(m.attentions[i - 1], std::move(x));
    x = resnet_forward(m.resnets[i], std::move(x));
  }
  return x;
}

// ---- encoder / decoder -------------------------------------------------------------------

namespace {

// The reference's choice of which blocks resample space and time (vae.py), per ratio.
struct Resampling {
  bool spatial = false, temporal = false;
};

Resampling encoder_resampling(const VaeConfig& c, int64_t i) {
  const int64_t n = static_cast<int64_t>(c.block_out_channels.size());
  const int64_t ns = log2_int(c.spatial_compression_ratio), nt = log2_int(c.time_compression_ratio);
  const bool final_block = i == n - 1;
  if (c.time_compression_ratio == 4) return {i < ns, i >= n - 1 - nt && !final_block};
  return {i < ns, i < nt};  // ratio 8 (from_json_file rejects others)
}

Resampling decoder_resampling(const VaeConfig& c, int64_t i) {
  const int64_t n = static_cast<int64_t>(c.block_out_channels.size());
  const int64_t ns = log2_int(c.spatial_compression_ratio), nt = log2_int(c.time_compression_ratio);
  const bool final_block = i == n - 1;
  if (c.time_compression_ratio == 4) return {i < ns, i >= n - 1 - nt && !final_block};
  return {i >= n - ns, i >= n - nt};
}

// Nearest-neighbour repetition by integer factors, written into `dst` (F.interpolate
// mode="nearest" with integer scale factors copies each element factor times).
void repeat_nearest_into(const torch::Tensor& src, torch::Tensor dst, int64_t ft, int64_t fh, int64_t fw) {
  const int64_t B = src.size(0), C = src.size(1), T = src.size(2), H = src.size(3), W = src.size(4);
  dst.view({B, C, T, ft, H, fh, W, fw})
      .copy_(src.reshape({B, C, T, 1, H, 1, W, 1}).expand({B, C, T, ft, H, fh, W, fw}));
}

// UpsampleCausal3D.forward (interpolate=True): the first frame is upsampled in space
// only, the rest by the full (T, H, W) factors, so time goes T -> 1 + ft * (T - 1).
torch::Tensor upsample_causal(const torch::Tensor& x, std::array<int64_t, 3> f, bool causal) {
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4);
  const auto [ft, fh, fw] = f;
  if (!causal) {
    auto out = torch::empty({B, C, T * ft, H * fh, W * fw}, x.options());
    repeat_nearest_into(x, out, ft, fh, fw);
    return out;
  }
  auto out = torch::empty({B, C, 1 + ft * (T - 1), H * fh, W * fw}, x.options());
  repeat_nearest_into(x.narrow(2, 0, 1), out.narrow(2, 0, 1), 1, fh, fw);
  if (T > 1) repeat_nearest_into(x.narrow(2, 1, T - 1), out.narrow(2, 1, ft * (T - 1)), ft, fh, fw);
  return out;
}

}  // namespace

Encoder load_encoder(CheckpointReader& k, const VaeConfig& c) {
  Encoder e;
  const bool causal = !c.disable_causal_conv;
  const auto& bo = c.block_out_channels;
  e.conv_in = load_conv(k, "encoder.conv_in", c.in_channels, bo[0], 3, {1, 1, 1}, true, causal);
  for (size_t i = 0; i < bo.size(); ++i) {
    const std::string p = "encoder.down_blocks." + std::to_string(i);
    const int64_t in = i == 0 ? bo[0] : bo[i - 1], out = bo[i];
    Stage s;
    for (int64_t j = 0; j < c.layers_per_block; ++j)
      s.resnets.push_back(
          load_resnet(k, p + ".resnets." + std::to_string(j), j == 0 ? in : out, out, c.norm_num_groups, causal));
    const auto r = encoder_resampling(c, static_cast<int64_t>(i));
    s.has_resample = r.spatial || r.temporal;
    if (s.has_resample)
      s.resample = load_conv(k, p + ".downsamplers.0.conv", out, out, 3,
                             {r.temporal ? 2 : 1, r.spatial ? 2 : 1, r.spatial ? 2 : 1}, true, causal);
    e.down_blocks.push_back(std::move(s));
  }
  e.mid = load_mid_block(k, "encoder.mid_block", c);
  e.norm_out = load_norm(k, "encoder.conv_norm_out", bo.back(), c.norm_num_groups);
  e.conv_out = load_conv(k, "encoder.conv_out", bo.back(), 2 * c.latent_channels, 3, {1, 1, 1}, true, causal);
  return e;
}

Decoder load_decoder(CheckpointReader& k, const VaeConfig& c) {
  Decoder d;
  const bool causal = !c.disable_causal_conv;
  std::vector<int64_t> rev(c.block_out_channels.rbegin(), c.block_out_channels.rend());
  d.conv_in = load_conv(k, "decoder.conv_in", c.latent_channels, rev[0], 3, {1, 1, 1}, true, causal);
  d.mid = load_mid_block(k, "decoder.mid_block", c);
  int64_t out = rev[0];
  for (size_t i = 0; i < rev.size(); ++i) {
    const std::string p = "decoder.up_blocks." + std::to_string(i);
    const int64_t in = out;
    out = rev[i];
    Stage s;
    for (int64_t j = 0; j < c.layers_per_block + 1; ++j)
      s.resnets.push_back(
          load_resnet(k, p + ".resnets." + std::to_string(j), j == 0 ? in : out, out, c.norm_num_groups, causal));
    const auto r = decoder_resampling(c, static_cast<int64_t>(i));
    s.has_resample = r.spatial || r.temporal;
    if (s.has_resample) {
      s.resample = load_conv(k, p + ".upsamplers.0.conv", out, out, 3, {1, 1, 1}, true, causal);
      s.up_factor = {r.temporal ? 2 : 1, r.spatial ? 2 : 1, r.spatial ? 2 : 1};
    }
    d.up_blocks.push_back(std::move(s));
  }
  d.norm_out = load_norm(k, "decoder.conv_norm_out", rev.back(), c.norm_num_groups);
  d.conv_out = load_conv(k, "decoder.conv_out", rev.back(), c.out_channels, 3, {1, 1, 1}, true, causal);
  return d;
}

torch::Tensor encoder_forward(const Encoder& e, const torch::Tensor& x) {
  auto h = conv_forward(e.conv_in, x);
  for (const auto& s : e.down_blocks) {
    for (const auto& r : s.resnets) h = resnet_forward(r, std::move(h));
    if (s.has_resample) h = conv_forward(s.resample, h);
  }
  h = mid_block_forward(e.mid, std::move(h));
  h = norm_silu(e.norm_out, h);
  return conv_forward(e.conv_out, h);
}

torch::Tensor decoder_forward(const Decoder& d, const torch::Tensor& z) {
  auto h = conv_forward(d.conv_in, z);
  h = mid_block_forward(d.mid, std::move(h));
  for (const auto& s : d.up_blocks) {
    for (const auto& r : s.resnets) h = resnet_forward(r, std::move(h));
    if (s.has_resample) {
      h = upsample_causal(h, s.up_factor, d.conv_in.causal);
      h = conv_forward(s.resample, h);
    }
  }
  h = norm_silu(d.norm_out, h);
  return conv_forward(d.conv_out, h);
}

// ---- blending ----------------------------------------------------------------------------

void blend_into(const torch::Tensor& a, torch::Tensor& b, int64_t dim, int64_t extent) {
  const int64_t e = std::min({extent, a.size(dim), b.size(dim)});
  if (e <= 0) return;
  std::vector<int64_t> view(static_cast<size_t>(b.dim()), 1);
  view[static_cast<size_t>(dim)] = e;
  // torch.arange(e, dtype=a.dtype) / e, in the tensors' dtype like the reference.
  auto w = (torch::arange(e, a.options()) / e).view(view);
  auto b_region = b.narrow(dim, 0, e);
  b_region.copy_(a.narrow(dim, a.size(dim) - e, e) * (1 - w) + b_region * w);
}

}  // namespace reel::hyavatar::vae
