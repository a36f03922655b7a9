// UMT5 encoder (Wan 2.1's text encoder); see t5_encoder.hpp. The arithmetic follows
// wan/modules/t5.py operation by operation (same op order and dtypes) so float32 results
// differ from the reference only by summation order inside matmuls.
#include "t5_encoder.hpp"

#include <cmath>
#include <limits>
#include <set>

namespace reel::wan {

using tensorio::WeightError;

std::pair<torch::Tensor, torch::Tensor> to_tensors(const Tokens& tokens) {
  const auto n = static_cast<int64_t>(tokens.ids.size());
  auto ids = torch::tensor(tokens.ids, torch::kInt64).view({1, n});
  auto mask = torch::tensor(tokens.mask, torch::kInt64).view({1, n});
  return {ids, mask};
}

T5Encoder T5Encoder::load(const tensorio::Weights& w, int64_t num_heads, torch::Dtype weight_dtype) {
  T5Encoder e;
  T5Config& c = e.cfg_;

  // Sizes from shapes: embedding [vocab, dim], q [dim_attn, dim], fc1 [dim_ffn, dim].
  auto emb_shape = w.shape_of("token_embedding.weight");
  if (emb_shape.size() != 2)
    throw WeightError(w.source() + ": token_embedding.weight: expected 2 dimensions [vocab, dim]");
  c.vocab = emb_shape[0];
  c.dim = emb_shape[1];

  // Blocks are numbered 0..N-1; count the distinct indices in the key names.
  std::set<int64_t> indices;
  const std::string prefix = "blocks.";
  for (const auto& kv : w.all()) {
    const std::string& key = kv.first;
    if (key.compare(0, prefix.size(), prefix) != 0) continue;
    size_t dot = key.find('.', prefix.size());
    if (dot == std::string::npos || dot == prefix.size()) continue;
    const std::string num = key.substr(prefix.size(), dot - prefix.size());
    if (num.find_first_not_of("0123456789") != std::string::npos) continue;
    indices.insert(std::stoll(num));
  }
  // A gap in the numbering surfaces below as a missing tensor of the absent block.
  c.num_layers = indices.empty() ? 0 : *indices.rbegin() + 1;
  if (c.num_layers == 0) (void)w.require("blocks.0.norm1.weight");  // throws, naming file and tensor

  c.dim_attn = w.shape_of("blocks.0.attn.q.weight").at(0);
  c.dim_ffn = w.shape_of("blocks.0.ffn.fc1.weight").at(0);
  c.shared_pos = w.has("pos_embedding.embedding.weight");
  const std::string pos0 = c.shared_pos ? "pos_embedding.embedding.weight" : "blocks.0.pos_embedding.embedding.weight";
  auto pos_shape = w.shape_of(pos0);
  if (pos_shape.size() != 2) throw WeightError(w.source() + ": " + pos0 + ": expected [num_buckets, num_heads]");
  c.num_buckets = pos_shape[0];
  // The position table is [num_buckets, num_heads]: num_heads <= 0 takes it from there;
  // a given one is checked against it by require() below.
  c.num_heads = num_heads > 0 ? num_heads : pos_shape[1];
  if (c.dim_attn % c.num_heads != 0)
    throw WeightError(w.source() + ": blocks.0.attn.q.weight: dim_attn " + std::to_string(c.dim_attn) +
                      " is not divisible by num_heads " + std::to_string(c.num_heads));

  const int64_t D = c.dim, A = c.dim_attn, F = c.dim_ffn, H = c.num_heads, NB = c.num_buckets;
  const torch::Dtype dt = weight_dtype;
  e.embedding_ = w.require("token_embedding.weight", {c.vocab, D}, dt);
  if (c.shared_pos) e.shared_pos_ = w.require("pos_embedding.embedding.weight", {NB, H}, dt);
  // weight_dtype bf16 keeps the 5.7B umt5-xxl at ~11 GB instead of ~23 GB in fp32;
  // forward() upcasts one block at a time.
  e.blocks_.reserve(c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    Block b;
    b.norm1 = w.require(p + "norm1.weight", {D}, dt);
    b.q = w.require(p + "attn.q.weight", {A, D}, dt);
    b.k = w.require(p + "attn.k.weight", {A, D}, dt);
    b.v = w.require(p + "attn.v.weight", {A, D}, dt);
    b.o = w.require(p + "attn.o.weight", {D, A}, dt);
    b.norm2 = w.require(p + "norm2.weight", {D}, dt);
    b.gate = w.require(p + "ffn.gate.0.weight", {F, D}, dt);
    b.fc1 = w.require(p + "ffn.fc1.weight", {F, D}, dt);
    b.fc2 = w.require(p + "ffn.fc2.weight", {D, F}, dt);
    if (!c.shared_pos) b.pos = w.require(p + "pos_embedding.embedding.weight", {NB, H}, dt);
    e.blocks_.push_back(std::move(b));
  }
  e.norm_ = w.require("norm.weight", {D}, dt);
  return e;
}

// T5LayerNorm: x * rsqrt(mean(x^2) + eps) * weight (RMS norm, no mean, no bias).
torch::Tensor T5Encoder::rms_norm(const torch::Tensor& x, const torch::Tensor& w) const {
  return w * (x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + cfg_.eps));
}

// T5RelativeEmbedding(bidirectional=True).forward: [1, heads, lq, lk].
torch::Tensor T5Encoder::position_bias(const torch::Tensor& table, int64_t lq, int64_t lk) const {
  auto opts = torch::TensorOptions().dtype(torch::kInt64).device(table.device());
  auto rel = torch::arange(lk, opts).unsqueeze(0) - torch::arange(lq, opts).unsqueeze(1);
  // Half the buckets for keys after the query, half for keys at or before it.
  const int64_t nb = cfg_.num_buckets / 2;
  auto buckets = (rel > 0).to(torch::kInt64) * nb;
  rel = rel.abs();
  // Exact buckets for small distances, log-spaced ones up to max_dist beyond. The float
  // ops mirror the reference's (float32 log, truncating .long()) so buckets agree exactly.
  const int64_t max_exact = nb / 2;
  auto large = max_exact + (torch::log(rel.to(torch::kFloat32) / max_exact) /
                            std::log(static_cast<double>(cfg_.max_dist) / max_exact) * (nb - max_exact))
                               .to(torch::kInt64);
  large = torch::min(large, torch::full_like(large, nb - 1));
  buckets = buckets + torch::where(rel < max_exact, rel, large);
  auto emb = torch::embedding(table, buckets);  // [lq, lk, heads]
  return emb.permute({2, 0, 1}).unsqueeze(0).contiguous();
}

namespace {

// The reference's GELU module: the tanh approximation, written out as it is there.
torch::Tensor gelu_tanh(const torch::Tensor& x) {
  return 0.5 * x * (1.0 + torch::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * torch::pow(x, 3.0))));
}

}  // namespace

torch::Tensor T5Encoder::forward(const torch::Tensor& ids_in, const torch::Tensor& mask_in) const {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(ids_in.dim() == 2, "T5Encoder: ids must be [B, L], got ", ids_in.sizes());
  auto ids = ids_in.to(torch::kInt64);
  const int64_t B = ids.size(0), L = ids.size(1), H = cfg_.num_heads, C = cfg_.dim_attn / H;

  // Padding mask as the reference applies it: key positions with mask 0 get the lowest
  // float as their bias (replacing the position bias), in every block; queries at padded
  // positions are still computed, so padded output rows are not zero.
  torch::Tensor key_mask;
  if (mask_in.defined()) {
    TORCH_CHECK(mask_in.dim() == 2 && mask_in.size(0) == B && mask_in.size(1) == L,
                "T5Encoder: mask must be [B, L] like ids, got ", mask_in.sizes());
    key_mask = (mask_in == 0).view({B, 1, 1, L});
  }

  const torch::Device dev = embedding_.device();
  ids = ids.to(dev);
  if (key_mask.defined()) key_mask = key_mask.to(dev);
  auto x = torch::embedding(embedding_, ids).to(torch::kFloat32);  // [B, L, dim]
  torch::Tensor shared_bias;
  if (cfg_.shared_pos) shared_bias = position_bias(shared_pos_.to(torch::kFloat32), L, L);

  // nn.Linear(bias=False) layers are torch::linear without bias, as the reference calls them.
  for (const Block& stored : blocks_) {
    const Block b = stored.to(dev, torch::kFloat32);  // no copy when already float32
    auto pos = cfg_.shared_pos ? shared_bias : position_bias(b.pos, L, L);
    auto bias = torch::zeros({B, H, L, L}, x.options()) + pos;
    if (key_mask.defined()) bias.masked_fill_(key_mask, std::numeric_limits<float>::lowest());

    auto h = rms_norm(x, b.norm1);
    auto q = torch::linear(h, b.q).view({B, L, H, C}).permute({0, 2, 1, 3});  // [B, H, L, C]
    auto k = torch::linear(h, b.k).view({B, L, H, C}).permute({0, 2, 3, 1});  // [B, H, C, L]
    auto v = torch::linear(h, b.v).view({B, L, H, C}).permute({0, 2, 1, 3});  // [B, H, L, C]
    // T5 does not scale the logits by 1/sqrt(head_dim).
    auto attn = torch::softmax(torch::matmul(q, k) + bias, -1);
    auto a = torch::matmul(attn, v).permute({0, 2, 1, 3}).reshape({B, L, H * C});
    x = x + torch::linear(a, b.o);

    h = rms_norm(x, b.norm2);
    x = x + torch::linear(torch::linear(h, b.fc1) * gelu_tanh(torch::linear(h, b.gate)), b.fc2);
  }
  return rms_norm(x, norm_.to(torch::kFloat32));
}

T5Encoder::Block T5Encoder::Block::to(const torch::Device& d, torch::Dtype dtype) const {
  Block b = *this;
  for (auto* t : {&b.norm1, &b.q, &b.k, &b.v, &b.o, &b.norm2, &b.gate, &b.fc1, &b.fc2, &b.pos})
    if (t->defined()) *t = t->to(d, dtype);
  return b;
}

T5Encoder T5Encoder::to(const torch::Device& d) const {
  T5Encoder e = *this;
  for (auto* t : {&e.embedding_, &e.norm_, &e.shared_pos_})
    if (t->defined()) *t = t->to(d);
  for (Block& b : e.blocks_) b = b.to(d, b.q.scalar_type());
  return e;
}

int64_t T5Encoder::bytes() const {
  int64_t n = 0;
  auto add = [&](const torch::Tensor& t) { n += t.defined() ? t.numel() * static_cast<int64_t>(t.element_size()) : 0; };
  add(embedding_), add(norm_), add(shared_pos_);
  for (const Block& b : blocks_)
    for (const auto* t : {&b.norm1, &b.q, &b.k, &b.v, &b.o, &b.norm2, &b.gate, &b.fc1, &b.fc2, &b.pos}) add(*t);
  return n;
}

torch::Tensor T5Encoder::context(const Tokens& tokens) const {
  auto [ids, mask] = to_tensors(tokens);
  return forward(ids, mask)[0].slice(0, 0, tokens.seq_len);
}

}  // namespace reel::wan
