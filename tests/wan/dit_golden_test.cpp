// Golden tests for the Wan 2.1 DiT against wan21-tiny-a (env REEL_WAN21_GOLDEN) and, for
// the i2v additions, wan21-i2v-tiny-a (env REEL_WAN21_I2V_GOLDEN). Every size comes from
// the fixture: config.json, tensor shapes, golden.json's dit_io (seq_len).
//
// Tolerance: rtol 1e-4 / atol 1e-4. The port runs the reference's float32 ops in the same
// order (float64 where the reference uses float64), so the only differences are summation
// orders inside matmuls/convs: ~1e-6 here. A wrong formula gives errors of 1e-1 and more.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include "dit.hpp"
#include "dit_runner.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace {

using reel::golden::close;
using reel::wan::WanDiT;
namespace tio = reel::tensorio;
namespace fs = std::filesystem;

std::string fixture() { return reel::golden::fixture_dir("REEL_WAN21_GOLDEN", "wan21-tiny-a"); }
std::string i2v_fixture() { return reel::golden::fixture_dir("REEL_WAN21_I2V_GOLDEN", "wan21-i2v-tiny-a"); }
std::string ckpt_dir() { return fixture() + "/checkpoint"; }
std::string ckpt_file() { return ckpt_dir() + "/diffusion_pytorch_model.safetensors"; }

const WanDiT& model() {
  static const WanDiT m = WanDiT::load_dir(ckpt_dir());
  return m;
}

struct DitIO {
  torch::Tensor x, t, context, out;
  int64_t seq_len;
};
DitIO dit_io() {
  auto io = tio::load_safetensors(fixture() + "/golden/dit_io.safetensors");
  auto g = reel::golden::read_json(fixture() + "/golden.json");
  return {io.at("x"), io.at("t"), io.at("context"), io.at("out"), g.at("dit_io").at("seq_len").get<int64_t>()};
}

// Minimal safetensors writer (F32, BF16 or F16) for the checkpoint-variant tests.
void write_safetensors(const std::string& path, const tio::TensorMap& m, torch::Dtype dtype = torch::kFloat32) {
  const char* tag = dtype == torch::kBFloat16 ? "BF16" : dtype == torch::kHalf ? "F16" : "F32";
  nlohmann::json h = nlohmann::json::object();
  std::vector<torch::Tensor> data;
  int64_t off = 0;
  for (const auto& [name, t] : m) {
    auto c = t.to(dtype).contiguous();
    const int64_t n = c.numel() * static_cast<int64_t>(c.element_size());
    h[name] = {{"dtype", tag}, {"shape", c.sizes().vec()}, {"data_offsets", {off, off + n}}};
    off += n;
    data.push_back(c);
  }
  std::string hs = h.dump();
  while (hs.size() % 8) hs += ' ';
  std::ofstream f(path, std::ios::binary);
  const uint64_t hn = hs.size();
  f.write(reinterpret_cast<const char*>(&hn), 8);
  f.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  for (const auto& c : data) f.write(static_cast<const char*>(c.data_ptr()), c.numel() * static_cast<int64_t>(c.element_size()));
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& name)
      : path((fs::temp_directory_path() / ("reel_dit_" + std::to_string(::getpid()) + "_" + name)).string()) {}
  ~TempFile() { std::remove(path.c_str()); }
};

tio::TensorMap fixture_tensors() { return tio::load_safetensors(ckpt_file()); }

// ---- t2v ----

TEST(WanDiT, ConfigInferredFromWeights) {
  auto g = reel::golden::read_json(fixture() + "/golden.json").at("dit");
  const auto& c = model().config();
  // text_dim, patch_size, qk_norm, cross_attn_norm are not in config.json: inferred.
  EXPECT_EQ(c.text_dim, g.at("text_dim").get<int64_t>());
  EXPECT_EQ(std::vector<int64_t>(c.patch_size.begin(), c.patch_size.end()), g.at("patch_size").get<std::vector<int64_t>>());
  EXPECT_EQ(c.qk_norm, g.at("qk_norm").get<bool>());
  EXPECT_EQ(c.cross_attn_norm, g.at("cross_attn_norm").get<bool>());
  EXPECT_EQ(c.num_layers, g.at("num_layers").get<int64_t>());
  EXPECT_EQ(model().num_blocks(), c.num_layers);
}

TEST(WanDiT, MatchesGolden) {
  auto io = dit_io();
  // The fixture's context is shorter than text_len: the padding path is exercised.
  ASSERT_LT(io.context.size(0), model().config().text_len);
  auto out = model().forward(io.x, io.t, io.context, io.seq_len);
  auto r = close(out, io.out, 1e-4, 1e-4);
  std::cout << "dit_io: " << r.message() << std::endl;
  EXPECT_TRUE(r);
}

TEST(WanDiT, BatchedMatchesSingle) {
  auto io = dit_io();
  auto single = model().forward(io.x, io.t, io.context, io.seq_len);
  auto batched = model().forward(torch::stack({io.x, io.x}), torch::cat({io.t, io.t}),
                                 torch::stack({io.context, io.context}), io.seq_len);
  ASSERT_EQ(batched.size(0), 2);
  EXPECT_TRUE(close(batched[0], single, 1e-5, 1e-5));
  EXPECT_TRUE(close(batched[1], io.out, 1e-4, 1e-4));
}

TEST(WanDiT, StreamedBlocksMatchForward) {
  auto io = dit_io();
  const auto w = reel::wan::load_dit_weights(ckpt_file());
  auto cfg = reel::wan::read_dit_config(ckpt_dir() + "/config.json");
  auto shell = WanDiT::load(w, cfg, /*load_blocks=*/false);
  EXPECT_TRUE(shell.blocks().empty());
  EXPECT_THROW(shell.forward(io.x, io.t, io.context, io.seq_len), std::logic_error);

  auto s = shell.embed(io.x, io.t, io.context, io.seq_len);
  for (int64_t i = 0; i < shell.num_blocks(); ++i) {
    auto b = WanDiT::load_block(w, shell.config(), i);
    EXPECT_GT(b.bytes(), 0);
    shell.run_block(b, s);
  }
  auto streamed = shell.head(s);
  auto whole = model().forward(io.x, io.t, io.context, io.seq_len);
  EXPECT_TRUE(torch::equal(streamed, whole));

  // The same through the loaded model's own per-block API.
  auto s2 = model().embed(io.x, io.t, io.context, io.seq_len);
  for (int64_t i = 0; i < model().num_blocks(); ++i) model().run_block(i, s2);
  EXPECT_TRUE(torch::equal(model().head(s2), whole));
}

// The block-swapping runner computes exactly what forward() does, whatever the split
// between resident and streamed blocks (streamed blocks are prefetched on a helper thread).
TEST(WanDiTRunner, EverySplitMatchesForward) {
  auto io = dit_io();
  const auto whole = model().forward(io.x, io.t, io.context, io.seq_len);
  for (int64_t resident = 0; resident <= model().num_blocks(); ++resident) {
    reel::wan::DiTRunner runner(WanDiT(model()), torch::kCPU, resident);
    EXPECT_EQ(runner.resident_blocks(), resident);
    EXPECT_EQ(runner.streamed_blocks(), model().num_blocks() - resident);
    EXPECT_TRUE(torch::equal(runner.forward(io.x, io.t, io.context, io.seq_len), whole)) << resident << " resident";
    // forward_pair runs both passes block by block: each equals its own forward().
    auto negative = torch::zeros_like(io.context);
    auto [cond, uncond] = runner.forward_pair(io.x, io.t, io.context, negative, io.seq_len);
    EXPECT_TRUE(torch::equal(cond, whole));
    EXPECT_TRUE(torch::equal(uncond, model().forward(io.x, io.t, negative, io.seq_len)));
  }
}

// bf16 storage (upcast per block) and fp8 e4m3 storage (per-tensor scale, decoded per
// block) stay near the reference: the error is the storage rounding, bounded relative to
// the output's scale, and fp8 stores the linear weights in a quarter of fp32's bytes.
TEST(WanDiTRunner, Bf16AndFp8StorageStayCloseToTheReference) {
  auto io = dit_io();
  const auto w = reel::wan::load_dit_weights(ckpt_file());
  auto cfg = reel::wan::read_dit_config(ckpt_dir() + "/config.json");
  const double scale = io.out.abs().max().item<double>();

  reel::wan::DiTRunner bf16(WanDiT::load(w, cfg, true, torch::kBFloat16), torch::kCPU, 1);
  auto out16 = bf16.forward(io.x, io.t, io.context, io.seq_len);
  const double err16 = (out16 - io.out).abs().max().item<double>() / scale;
  EXPECT_LT(err16, 2e-2);
  EXPECT_GT(err16, 0.0) << "bf16 storage should round something";

  reel::wan::DiTRunner fp8(WanDiT::load(w, cfg), torch::kCPU, 1, /*fp8_blocks=*/true);
  auto out8 = fp8.forward(io.x, io.t, io.context, io.seq_len);
  const double err8 = (out8 - io.out).abs().max().item<double>() / scale;
  EXPECT_LT(err8, 1.5e-1);
  EXPECT_GT(err8, err16) << "fp8 keeps 3 mantissa bits, bf16 8";

  const auto& b = model().blocks()[0];
  auto q = b.quantized_fp8();
  EXPECT_EQ(q.self_attn.q_w.scalar_type(), torch::kUInt8);
  EXPECT_EQ(q.ffn0_b.scalar_type(), torch::kFloat32) << "vectors stay as they are";
  EXPECT_EQ(q.fp8_scales.count("ffn.0.weight"), 1u);
  EXPECT_LT(q.bytes(), b.bytes() / 3);
  auto back = q.materialized(torch::kCPU, torch::kFloat32);
  EXPECT_TRUE(back.fp8_scales.empty());
  EXPECT_TRUE(torch::allclose(back.ffn0_w, b.ffn0_w, 0.07, b.ffn0_w.abs().max().item<double>() / 448 * 8));
}

// bf16 and fp16 checkpoints load and run kept in their stored dtype (upcast per block).
TEST(WanDiT, Bf16AndFp16CheckpointsRunInTheirStoredDtype) {
  auto io = dit_io();
  const double scale = io.out.abs().max().item<double>();
  for (torch::Dtype dtype : {torch::kBFloat16, torch::kHalf}) {
    TempFile f(dtype == torch::kHalf ? "f16.safetensors" : "bf16.safetensors");
    write_safetensors(f.path, fixture_tensors(), dtype);
    auto w = reel::wan::load_dit_weights(f.path);
    auto m = WanDiT::load(w, reel::wan::read_dit_config(ckpt_dir() + "/config.json"), true, dtype);
    EXPECT_EQ(m.blocks()[0].ffn0_w.scalar_type(), dtype) << "blocks stay as stored";
    const double err = (m.forward(io.x, io.t, io.context, io.seq_len) - io.out).abs().max().item<double>() / scale;
    EXPECT_LT(err, dtype == torch::kHalf ? 5e-3 : 2e-2) << c10::toString(dtype);
  }
}

TEST(WanDiT, AcceptsComfyUIPrefix) {
  auto io = dit_io();
  tio::TensorMap prefixed;
  for (const auto& [k, v] : fixture_tensors()) prefixed.emplace("model.diffusion_model." + k, v);
  TempFile f("comfy.safetensors");
  write_safetensors(f.path, prefixed);
  auto m = WanDiT::load(reel::wan::load_dit_weights(f.path), reel::wan::read_dit_config(ckpt_dir() + "/config.json"));
  EXPECT_TRUE(close(m.forward(io.x, io.t, io.context, io.seq_len), io.out, 1e-4, 1e-4));
}

TEST(WanDiT, WrongShapeNamesFileAndTensor) {
  auto m = fixture_tensors();
  const std::string bad = "blocks.1.cross_attn.k.weight";
  auto shape = m.at(bad).sizes().vec();
  shape.back() -= 1;
  m[bad] = torch::zeros(shape);
  TempFile f("wrong_shape.safetensors");
  write_safetensors(f.path, m);
  auto cfg = reel::wan::read_dit_config(ckpt_dir() + "/config.json");
  try {
    WanDiT::load(reel::wan::load_dit_weights(f.path), cfg);
    FAIL() << "a wrong-shaped tensor was accepted";
  } catch (const tio::WeightError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(f.path), std::string::npos) << msg;
    EXPECT_NE(msg.find(bad), std::string::npos) << msg;
  }
}

TEST(WanDiT, MissingTensorNamesFileAndTensor) {
  auto m = fixture_tensors();
  const std::string gone = "head.modulation";
  m.erase(gone);
  TempFile f("missing.safetensors");
  write_safetensors(f.path, m);
  auto cfg = reel::wan::read_dit_config(ckpt_dir() + "/config.json");
  try {
    WanDiT::load(reel::wan::load_dit_weights(f.path), cfg);
    FAIL() << "a missing tensor was accepted";
  } catch (const tio::WeightError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(f.path), std::string::npos) << msg;
    EXPECT_NE(msg.find(gone), std::string::npos) << msg;
  }
}

TEST(WanDiT, RejectsBadInputs) {
  auto io = dit_io();
  const int64_t tokens = io.x.size(1) / model().config().patch_size[0] * (io.x.size(2) / model().config().patch_size[1]) *
                         (io.x.size(3) / model().config().patch_size[2]);
  EXPECT_THROW(model().forward(io.x, io.t, io.context, tokens - 1), std::invalid_argument);
  auto long_ctx = torch::zeros({model().config().text_len + 1, io.context.size(1)});
  EXPECT_THROW(model().forward(io.x, io.t, long_ctx, io.seq_len), std::invalid_argument);
  // A larger seq_len only pads in the reference (masked, then dropped): same output.
  EXPECT_TRUE(torch::equal(model().forward(io.x, io.t, io.context, io.seq_len + 16),
                           model().forward(io.x, io.t, io.context, io.seq_len)));
}

TEST(WanDiT, FlopsEstimate) {
  auto io = dit_io();
  auto shape = io.x.sizes().vec();
  const double f1 = model().flops(shape);
  EXPECT_GT(f1, 0);
  // Doubling the frames more than doubles the cost (attention is quadratic in tokens).
  auto shape2 = shape;
  shape2[1] *= 2;
  EXPECT_GT(model().flops(shape2), 2 * f1 - model().flops({shape[0], 0, shape[2], shape[3]}));
  std::cout << "flops(" << io.x.sizes() << ") = " << f1 << std::endl;
}

// ---- i2v: the same blocks plus img_emb and the image cross-attention ----

TEST(WanDiTI2V, MatchesGolden) {
  const std::string dir = i2v_fixture();
  if (!fs::exists(dir + "/golden/dit_io.safetensors")) GTEST_SKIP() << "no i2v fixture at " << dir;
  auto m = WanDiT::load_dir(dir + "/checkpoint");
  ASSERT_TRUE(m.config().i2v());
  auto io = tio::load_safetensors(dir + "/golden/dit_io.safetensors");
  const auto& c = m.config();
  // dit_io carries no seq_len: the reference's is the video's own token count.
  const int64_t seq_len = io.at("x").size(1) / c.patch_size[0] * (io.at("x").size(2) / c.patch_size[1]) *
                          (io.at("x").size(3) / c.patch_size[2]);
  auto out = m.forward(io.at("x"), io.at("t"), io.at("context"), seq_len, io.at("clip_fea"), io.at("y"));
  auto r = close(out, io.at("out"), 1e-4, 1e-4);
  std::cout << "i2v dit_io: " << r.message() << std::endl;
  EXPECT_TRUE(r);
}

}  // namespace
