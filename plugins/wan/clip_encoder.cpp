// The CLIP vision tower of Wan 2.1 i2v; see clip_encoder.hpp. Operations follow
// wan/modules/clip.py (VisionTransformer, AttentionBlock, SelfAttention) in the same order.
#include "clip_encoder.hpp"

#include <cmath>
#include <string>

namespace reel::wan {

namespace F = torch::nn::functional;
using tensorio::WeightError;

namespace {
const std::string kPrefix = "visual.";
const std::string kBlocks = kPrefix + "transformer.";

torch::Tensor layer_norm(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b, double eps) {
  return torch::layer_norm(x, {x.size(-1)}, w.to(torch::kFloat32), b.to(torch::kFloat32), eps);
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  return torch::nn::functional::linear(x, w.to(torch::kFloat32), b.to(torch::kFloat32));
}
}  // namespace

std::vector<torch::Tensor*> ClipImageEncoder::Block::tensors() {
  return {&norm1_w, &norm1_b, &qkv_w, &qkv_b, &proj_w, &proj_b, &norm2_w, &norm2_b, &fc1_w, &fc1_b, &fc2_w, &fc2_b};
}

ClipImageEncoder::Block ClipImageEncoder::Block::to(const torch::Device& device, torch::Dtype dtype) const {
  Block b = *this;
  for (torch::Tensor* t : b.tensors()) *t = t->to(device, dtype);
  return b;
}

ClipImageEncoder ClipImageEncoder::load(const tensorio::Weights& w, int64_t num_heads, torch::Dtype weight_dtype) {
  ClipImageEncoder e;
  ClipVisionConfig& c = e.cfg_;

  // patch_embedding [dim, 3, P, P]; pos_embedding [1, 1 + (S/P)^2, dim].
  auto patch = w.shape_of(kPrefix + "patch_embedding.weight");
  if (patch.size() != 4 || patch[1] != 3 || patch[2] != patch[3])
    throw WeightError(w.source() + ": " + kPrefix + "patch_embedding.weight: expected [dim, 3, P, P]");
  c.dim = patch[0];
  c.patch_size = patch[2];
  auto pos = w.shape_of(kPrefix + "pos_embedding");
  if (pos.size() != 3 || pos[1] < 2)
    throw WeightError(w.source() + ": " + kPrefix + "pos_embedding: expected [1, 1 + patches, dim]");
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(pos[1] - 1))));
  if (grid * grid != pos[1] - 1)
    throw WeightError(w.source() + ": " + kPrefix + "pos_embedding: " + std::to_string(pos[1] - 1) +
                      " patches is not a square grid");
  c.image_size = grid * c.patch_size;
  while (w.has(kBlocks + std::to_string(c.num_layers) + ".norm1.weight")) ++c.num_layers;
  if (c.num_layers < 2)
    throw WeightError(w.source() + ": " + kBlocks + "N: the vision tower needs at least 2 blocks (the last is skipped), found " +
                      std::to_string(c.num_layers));
  c.mlp_dim = w.shape_of(kBlocks + "0.mlp.0.weight").at(0);
  c.num_heads = num_heads;
  if (num_heads <= 0 || c.dim % num_heads != 0)
    throw WeightError(w.source() + ": vision width " + std::to_string(c.dim) + " is not divisible by " +
                      std::to_string(num_heads) + " heads");

  const int64_t D = c.dim, M = c.mlp_dim, P = c.patch_size;
  const torch::Dtype dt = weight_dtype;
  e.patch_w_ = w.require(kPrefix + "patch_embedding.weight", {D, 3, P, P}, dt);
  e.cls_ = w.require(kPrefix + "cls_embedding", {1, 1, D}, dt);
  e.pos_ = w.require(kPrefix + "pos_embedding", {1, grid * grid + 1, D}, dt);
  e.pre_norm_w_ = w.require(kPrefix + "pre_norm.weight", {D}, dt);
  e.pre_norm_b_ = w.require(kPrefix + "pre_norm.bias", {D}, dt);
  for (int64_t i = 0; i + 1 < c.num_layers; ++i) {
    const std::string p = kBlocks + std::to_string(i) + ".";
    Block b;
    b.norm1_w = w.require(p + "norm1.weight", {D}, dt);
    b.norm1_b = w.require(p + "norm1.bias", {D}, dt);
    b.qkv_w = w.require(p + "attn.to_qkv.weight", {3 * D, D}, dt);
    b.qkv_b = w.require(p + "attn.to_qkv.bias", {3 * D}, dt);
    b.proj_w = w.require(p + "attn.proj.weight", {D, D}, dt);
    b.proj_b = w.require(p + "attn.proj.bias", {D}, dt);
    b.norm2_w = w.require(p + "norm2.weight", {D}, dt);
    b.norm2_b = w.require(p + "norm2.bias", {D}, dt);
    b.fc1_w = w.require(p + "mlp.0.weight", {M, D}, dt);
    b.fc1_b = w.require(p + "mlp.0.bias", {M}, dt);
    b.fc2_w = w.require(p + "mlp.2.weight", {D, M}, dt);
    b.fc2_b = w.require(p + "mlp.2.bias", {D}, dt);
    e.blocks_.push_back(std::move(b));
  }
  return e;
}

ClipImageEncoder ClipImageEncoder::to(const torch::Device& device) const {
  ClipImageEncoder e = *this;
  for (torch::Tensor* t : {&e.patch_w_, &e.cls_, &e.pos_, &e.pre_norm_w_, &e.pre_norm_b_}) *t = t->to(device);
  for (Block& b : e.blocks_) b = b.to(device, b.qkv_w.scalar_type());
  return e;
}

int64_t ClipImageEncoder::bytes() const {
  int64_t n = 0;
  for (const torch::Tensor& t : {patch_w_, cls_, pos_, pre_norm_w_, pre_norm_b_}) n += t.numel() * t.element_size();
  for (Block b : blocks_)
    for (torch::Tensor* t : b.tensors()) n += t->numel() * t->element_size();
  return n;
}

torch::Tensor ClipImageEncoder::preprocess(const torch::Tensor& image) const {
  if (image.dim() != 3 || image.size(0) != 3)
    throw std::invalid_argument("CLIP image must be [3, H, W], got " + std::to_string(image.dim()) + " dimensions");
  const torch::Device device = patch_w_.device();
  torch::Tensor x = image.to(device, torch::kFloat32).unsqueeze(0);
  x = F::interpolate(x, F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{cfg_.image_size, cfg_.image_size})
                            .mode(torch::kBicubic)
                            .align_corners(false));
  x = x.mul(0.5).add(0.5);
  auto mean = torch::tensor(std::vector<float>(cfg_.mean.begin(), cfg_.mean.end())).to(device).view({1, 3, 1, 1});
  auto std = torch::tensor(std::vector<float>(cfg_.std.begin(), cfg_.std.end())).to(device).view({1, 3, 1, 1});
  return x.sub(mean).div(std);
}

torch::Tensor ClipImageEncoder::run_block(const Block& b, const torch::Tensor& x) const {
  const int64_t B = x.size(0), S = x.size(1), C = x.size(2), N = cfg_.num_heads, Dh = C / N;
  // SelfAttention: q, k, v = to_qkv(x).view(b, s, 3, n, d).unbind(2); softmax(q k^T / sqrt(d)) v.
  auto qkv = linear(layer_norm(x, b.norm1_w, b.norm1_b, cfg_.eps), b.qkv_w, b.qkv_b).view({B, S, 3, N, Dh});
  auto q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2), v = qkv.select(2, 2).transpose(1, 2);
  auto attn = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(Dh)), -1);
  auto o = torch::matmul(attn, v).transpose(1, 2).reshape({B, S, C});
  torch::Tensor h = x + linear(o, b.proj_w, b.proj_b);
  auto mlp = linear(torch::gelu(linear(layer_norm(h, b.norm2_w, b.norm2_b, cfg_.eps), b.fc1_w, b.fc1_b)), b.fc2_w, b.fc2_b);
  return h + mlp;
}

torch::Tensor ClipImageEncoder::encode(const torch::Tensor& image) const {
  torch::NoGradGuard no_grad;
  torch::Tensor x = preprocess(image);
  const int64_t B = x.size(0);
  x = F::conv2d(x, patch_w_.to(torch::kFloat32), F::Conv2dFuncOptions().stride(cfg_.patch_size));
  x = x.flatten(2).permute({0, 2, 1});
  x = torch::cat({cls_.to(torch::kFloat32).expand({B, -1, -1}), x}, 1);
  x = x + pos_.to(torch::kFloat32);
  x = layer_norm(x, pre_norm_w_, pre_norm_b_, cfg_.eps);
  for (const Block& b : blocks_) x = run_block(b, x);
  return x;
}

}  // namespace reel::wan
