#include "dit_blocks.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <utility>

namespace reel::hyavatar {

DitSegments DitSegments::from_text_mask(const torch::Tensor& text_mask, int64_t img_len) {
  DitSegments s;
  auto lens = text_mask.to(torch::kInt64).sum(1).contiguous();
  s.total_len = img_len + text_mask.size(1);
  for (int64_t b = 0; b < lens.size(0); ++b) s.valid_len.push_back(img_len + lens[b].item<int64_t>());
  return s;
}

torch::Tensor DitSegments::cu_seqlens() const {
  const auto B = static_cast<int64_t>(valid_len.size());
  auto cu = torch::zeros({2 * B + 1}, torch::kInt32);
  for (int64_t b = 0; b < B; ++b) {
    cu[2 * b + 1] = b * total_len + valid_len[b];
    cu[2 * b + 2] = (b + 1) * total_len;
  }
  return cu;
}

namespace {
// Exact attention of q [Lq, H, D] over k/v [Lk, H, D] -> [Lq, H, D], in query chunks so
// the score matrix stays bounded for long videos.
torch::Tensor attend(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  const int64_t H = q.size(1), D = q.size(2), Lq = q.size(0), Lk = k.size(0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto kh = k.permute({1, 2, 0});  // [H, D, Lk]
  auto vh = v.transpose(0, 1);     // [H, Lk, D]
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 26) / std::max<int64_t>(1, H * Lk));
  std::vector<torch::Tensor> outs;
  for (int64_t s = 0; s < Lq; s += chunk) {
    auto qh = q.slice(0, s, std::min(Lq, s + chunk)).transpose(0, 1);  // [H, c, D]
    auto p = torch::softmax(torch::matmul(qh, kh) * scale, -1);
    outs.push_back(torch::matmul(p, vh).transpose(0, 1));
  }
  return outs.size() == 1 ? outs[0] : torch::cat(outs, 0);
}
}  // namespace

torch::Tensor dit_segment_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                    const DitSegments& seg) {
  const int64_t B = q.size(0), S = q.size(1), H = q.size(2), D = q.size(3);
  if (static_cast<int64_t>(seg.valid_len.size()) != B || seg.total_len != S) {
    std::ostringstream o;
    o << "dit_segment_attention: segments for " << seg.valid_len.size() << " samples of " << seg.total_len
      << " tokens, but q is " << q.sizes();
    throw std::invalid_argument(o.str());
  }
  auto out = torch::empty({B, S, H, D}, q.options());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t cut = seg.valid_len[b];
    using Span = std::pair<int64_t, int64_t>;
    for (auto [s0, s1] : {Span{0, cut}, Span{cut, S}}) {
      if (s1 <= s0) continue;
      out[b].slice(0, s0, s1).copy_(attend(q[b].slice(0, s0, s1), k[b].slice(0, s0, s1), v[b].slice(0, s0, s1)));
    }
  }
  return out.reshape({B, S, H * D});
}

namespace {
DoubleStreamBlock::Stream load_stream(CheckpointReader& r, const DitBlockDims& d, const std::string& p, bool m) {
  DoubleStreamBlock::Stream s;
  s.mod = DitLinear::load(r, p + "_mod.linear", d.hidden, 6 * d.hidden, true, m);
  s.qkv = DitLinear::load(r, p + "_attn_qkv", d.hidden, 3 * d.hidden, d.qkv_bias, m);
  s.proj = DitLinear::load(r, p + "_attn_proj", d.hidden, d.hidden, d.qkv_bias, m);
  s.fc1 = DitLinear::load(r, p + "_mlp.fc1", d.hidden, d.mlp_hidden, true, m);
  s.fc2 = DitLinear::load(r, p + "_mlp.fc2", d.mlp_hidden, d.hidden, true, m);
  if (d.qk_norm) {
    s.q_norm = r.take(p + "_attn_q_norm.weight", {d.head_dim()}, m);
    s.k_norm = r.take(p + "_attn_k_norm.weight", {d.head_dim()}, m);
  }
  return s;
}

// [B, L, 3D] -> q, k, v [B, L, H, hd] (the reference's "B L (K H D) -> K B L H D").
std::vector<torch::Tensor> split_qkv(const torch::Tensor& qkv, int64_t heads) {
  const int64_t B = qkv.size(0), L = qkv.size(1), hd = qkv.size(2) / (3 * heads);
  auto t = qkv.view({B, L, 3, heads, hd});
  return {t.select(2, 0), t.select(2, 1), t.select(2, 2)};
}

torch::Tensor qk_norm(const torch::Tensor& x, const torch::Tensor& w) {
  return w.defined() ? dit_rms_norm(x, w, 1e-6) : x;
}
}  // namespace

int64_t DoubleStreamBlock::Stream::bytes() const {
  return mod.bytes() + qkv.bytes() + proj.bytes() + fc1.bytes() + fc2.bytes() + dit_tensor_bytes(q_norm) +
         dit_tensor_bytes(k_norm);
}

DoubleStreamBlock DoubleStreamBlock::load(CheckpointReader& r, const DitBlockDims& dims, int64_t index,
                                          bool materialize) {
  DoubleStreamBlock b;
  b.index = index;
  b.dims = dims;
  const auto p = "double_blocks." + std::to_string(index) + ".";
  b.img = load_stream(r, dims, p + "img", materialize);
  b.txt = load_stream(r, dims, p + "txt", materialize);
  return b;
}

void DoubleStreamBlock::forward(torch::Tensor& img_x, torch::Tensor& txt_x, const torch::Tensor& vec,
                                const DitSegments& seg, const RopeTables& rope) const {
  const int64_t H = dims.num_heads, Li = img_x.size(1);
  auto silu_vec = torch::silu(vec);
  auto im = img.mod(silu_vec).chunk(6, -1);
  auto tm = txt.mod(silu_vec).chunk(6, -1);

  auto iq = split_qkv(img.qkv(dit_modulate(dit_layer_norm(img_x, {}, {}, 1e-6), im[0], im[1])), H);
  auto img_q = apply_rope(qk_norm(iq[0], img.q_norm), rope.cos, rope.sin);
  auto img_k = apply_rope(qk_norm(iq[1], img.k_norm), rope.cos, rope.sin);
  auto tq = split_qkv(txt.qkv(dit_modulate(dit_layer_norm(txt_x, {}, {}, 1e-6), tm[0], tm[1])), H);
  auto txt_q = qk_norm(tq[0], txt.q_norm), txt_k = qk_norm(tq[1], txt.k_norm);

  auto attn = dit_segment_attention(torch::cat({img_q, txt_q}, 1), torch::cat({img_k, txt_k}, 1),
                                    torch::cat({iq[2], tq[2]}, 1), seg);
  auto img_attn = attn.slice(1, 0, Li), txt_attn = attn.slice(1, Li);

  img_x = img_x + img.proj(img_attn) * im[2].unsqueeze(1);
  img_x = img_x + img.fc2(dit_gelu_tanh(img.fc1(dit_modulate(dit_layer_norm(img_x, {}, {}, 1e-6), im[3], im[4])))) *
                      im[5].unsqueeze(1);
  txt_x = txt_x + txt.proj(txt_attn) * tm[2].unsqueeze(1);
  txt_x = txt_x + txt.fc2(dit_gelu_tanh(txt.fc1(dit_modulate(dit_layer_norm(txt_x, {}, {}, 1e-6), tm[3], tm[4])))) *
                      tm[5].unsqueeze(1);
}

SingleStreamBlock SingleStreamBlock::load(CheckpointReader& r, const DitBlockDims& dims, int64_t index,
                                          bool materialize) {
  SingleStreamBlock b;
  b.index = index;
  b.dims = dims;
  const auto p = "single_blocks." + std::to_string(index) + ".";
  const int64_t D = dims.hidden;
  b.mod = DitLinear::load(r, p + "modulation.linear", D, 3 * D, true, materialize);
  b.linear1 = DitLinear::load(r, p + "linear1", D, 3 * D + dims.mlp_hidden, true, materialize);
  b.linear2 = DitLinear::load(r, p + "linear2", D + dims.mlp_hidden, D, true, materialize);
  if (dims.qk_norm) {
    b.q_norm = r.take(p + "q_norm.weight", {dims.head_dim()}, materialize);
    b.k_norm = r.take(p + "k_norm.weight", {dims.head_dim()}, materialize);
  }
  return b;
}

torch::Tensor SingleStreamBlock::forward(const torch::Tensor& x, const torch::Tensor& vec, int64_t txt_len,
                                         const DitSegments& seg, const RopeTables& rope) const {
  const int64_t D = dims.hidden, L = x.size(1), Li = L - txt_len;
  auto m = mod(torch::silu(vec)).chunk(3, -1);
  auto h = linear1(dit_modulate(dit_layer_norm(x, {}, {}, 1e-6), m[0], m[1]));
  auto parts = h.split_with_sizes({3 * D, dims.mlp_hidden}, -1);
  auto qkv = split_qkv(parts[0], dims.num_heads);
  auto q = qk_norm(qkv[0], q_norm), k = qk_norm(qkv[1], k_norm);
  q = torch::cat({apply_rope(q.slice(1, 0, Li), rope.cos, rope.sin), q.slice(1, Li)}, 1);
  k = torch::cat({apply_rope(k.slice(1, 0, Li), rope.cos, rope.sin), k.slice(1, Li)}, 1);
  auto attn = dit_segment_attention(q, k, qkv[2], seg);
  auto out = linear2(torch::cat({attn, dit_gelu_tanh(parts[1])}, 2));
  return x + out * m[2].unsqueeze(1);
}

int64_t SingleStreamBlock::bytes() const {
  return mod.bytes() + linear1.bytes() + linear2.bytes() + dit_tensor_bytes(q_norm) + dit_tensor_bytes(k_norm);
}

}  // namespace reel::hyavatar
