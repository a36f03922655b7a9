// Golden tests for the HunyuanVideo-Avatar DiT against hyavatar-dit-tiny-a (env
// REEL_HYAVATAR_DIT_GOLDEN): one CFG-batched call (golden/dit_io), the step-cache call
// (golden/dit_cache_io), the per-block captures (golden/dit_intermediates), block
// streaming, strict key checking and the fp8 weight path. Every size comes from the
// fixture (config.json, golden.json, tensor shapes).
//
// Tolerance: rtol 1e-4 / atol 1e-4 on the outputs (O(1) values, max |out| ~4), 1e-4 on the
// intermediates. The port runs the reference's float32 ops in the same order; exact
// attention over the same segments replaces the fixture's exact attention, so only the
// summation order inside matmuls / softmax differs: ~1e-6 per op, a few 1e-6 after ten
// blocks. A wrong formula, mask or ordering gives errors of 1e-2 and more.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include "hyavatar/dit.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace {

namespace hy = reel::hyavatar;
namespace tio = reel::tensorio;
using reel::golden::close;

std::string fixture() { return reel::golden::fixture_dir("REEL_HYAVATAR_DIT_GOLDEN", "hyavatar-dit-tiny-a"); }
std::string ckpt_dir() { return fixture() + "/checkpoint"; }
std::string ckpt_file() { return ckpt_dir() + "/transformers/mp_rank_00_model_states.pt"; }

const hy::HYAvatarDiT& model() {
  static const hy::HYAvatarDiT m = hy::HYAvatarDiT::load_dir(ckpt_dir());
  return m;
}

const tio::TensorMap& io() {
  static const tio::TensorMap m = tio::load_safetensors(fixture() + "/golden/dit_io.safetensors");
  return m;
}
const tio::TensorMap& cache_io() {
  static const tio::TensorMap m = tio::load_safetensors(fixture() + "/golden/dit_cache_io.safetensors");
  return m;
}
const tio::TensorMap& inter() {
  static const tio::TensorMap m = tio::load_safetensors(fixture() + "/golden/dit_intermediates.safetensors");
  return m;
}

hy::HYAvatarDiTInputs inputs() {
  const auto& m = io();
  hy::HYAvatarDiTInputs in;
  in.x = m.at("x");
  in.t = m.at("t");
  in.ref_latents = m.at("ref_latents");
  in.text_states = m.at("text_states");
  in.text_mask = m.at("text_mask");
  in.text_states_2 = m.at("text_states_2");
  in.freqs_cos = m.at("freqs_cos");
  in.freqs_sin = m.at("freqs_sin");
  in.motion_exp = m.at("motion_exp");
  in.motion_pose = m.at("motion_pose");
  in.fps = m.at("fps");
  in.audio_prompts = m.at("audio_prompts");
  in.face_mask = m.at("face_mask");
  return in;
}

// Reports the max abs error (for the record) and checks the tolerance.
void expect_close(const char* name, const torch::Tensor& actual, const torch::Tensor& expected, double tol = 1e-4) {
  if (actual.sizes() == expected.sizes())
    std::cout << "[max abs err] " << name << " " << (actual - expected).abs().max().item<double>() << "\n";
  EXPECT_TRUE(close(actual, expected, tol, tol)) << name;
}

TEST(HyAvatarDiT, ConfigFromFixture) {
  const auto& c = model().config();
  auto g = reel::golden::read_json(fixture() + "/golden.json").at("model");
  EXPECT_EQ(c.hidden_size, g.at("hidden_size").get<int64_t>());
  EXPECT_EQ(c.depth_double_blocks, g.at("depth_double_blocks").get<int64_t>());
  EXPECT_EQ(c.audio_proj.output_dim, g.at("audio_proj").at("output_dim").get<int64_t>());
  EXPECT_EQ(c.adapter_dim_head, g.at("audio_adapter").at("dim_head").get<int64_t>());
  EXPECT_EQ(model().audio_adapters().size(),
            reel::golden::read_json(fixture() + "/golden.json")
                .at("fixed_in_reference_code")
                .at("n_audio_adapter_blocks")
                .get<size_t>());
  // bytes(): every float32 parameter of the checkpoint, counted once.
  auto n_params = reel::golden::read_json(fixture() + "/golden.json").at("checkpoint").at("n_params").get<int64_t>();
  EXPECT_EQ(model().bytes(), 4 * n_params);
}

TEST(HyAvatarDiT, DitIo) {
  torch::NoGradGuard ng;
  torch::Tensor cache;
  auto out = model().forward(inputs(), &cache);
  expect_close("dit_io.out", out, io().at("out"));
  expect_close("dit_cache_io.cache_out", cache, cache_io().at("cache_out"));
}

TEST(HyAvatarDiT, DitCacheIo) {
  torch::NoGradGuard ng;
  auto in = inputs();
  in.t = cache_io().at("t_cached");
  // From the reference's cache and from the port's own.
  expect_close("dit_cache_io.out_cached", model().forward_cached(in, cache_io().at("cache_out")),
               cache_io().at("out_cached"));
  torch::Tensor cache;
  model().forward(inputs(), &cache);
  expect_close("dit_cache_io.out_cached (own cache)", model().forward_cached(in, cache), cache_io().at("out_cached"));
  EXPECT_THROW(model().forward_cached(in, cache.slice(1, 1)), std::invalid_argument);
}

TEST(HyAvatarDiT, Intermediates) {
  torch::NoGradGuard ng;
  const auto& m = model();
  const auto& g = inter();
  auto in = inputs();
  expect_close("audio_proj.out", m.audio_tokens(in.audio_prompts), g.at("audio_proj.out"));
  auto s = m.embed(in);
  expect_close("final_layer.in_vec", s.vec, g.at("final_layer.in_vec"));
  expect_close("txt_in.out", s.txt, g.at("txt_in.out"));
  expect_close("double_blocks.0.in_img", s.img, g.at("double_blocks.0.in_img"));
  expect_close("double_blocks.0.in_txt", s.txt, g.at("double_blocks.0.in_txt"));
  EXPECT_TRUE(torch::equal(s.seg.cu_seqlens(), g.at("double_blocks.0.cu_seqlens").to(torch::kInt32)));
  const auto& list = m.config().double_stream_list;
  int64_t adapter = 0;
  for (const auto& b : m.double_blocks()) {
    b.forward(s.img, s.txt, s.vec, s.seg, s.rope);
    const auto p = "double_blocks." + std::to_string(b.index);
    expect_close((p + ".out_img").c_str(), s.img, g.at(p + ".out_img"));
    expect_close((p + ".out_txt").c_str(), s.txt, g.at(p + ".out_txt"));
    if (std::find(list.begin(), list.end(), b.index) == list.end()) continue;
    const auto a = "audio_adapter_blocks." + std::to_string(adapter);
    const int64_t B = s.img.size(0), D = m.config().hidden_size;
    auto video = s.img.slice(1, s.ref_len).reshape({B, s.grid[0], -1, D});
    expect_close((a + ".in_audio").c_str(), s.audio, g.at(a + ".in_audio"));
    expect_close((a + ".in_img").c_str(), video, g.at(a + ".in_img"));
    expect_close((a + ".out").c_str(), m.audio_adapters()[adapter].forward(s.audio, video), g.at(a + ".out"));
    m.apply_audio_adapter(b.index, s);
    ++adapter;
  }
  EXPECT_TRUE(g.count("audio_adapter_blocks." + std::to_string(adapter) + ".out") == 0)
      << "the fixture captured more adapters than the port ran";
  m.merge(s);
  for (const auto& b : m.single_blocks()) {
    m.run_single_block(b, s);
    const auto p = "single_blocks." + std::to_string(b.index) + ".out";
    expect_close(p.c_str(), s.x, g.at(p));
  }
  expect_close("final_layer.in_img", s.x.slice(1, s.ref_len, s.x.size(1) - s.txt_len), g.at("final_layer.in_img"));
  expect_close("dit_io.out (in parts)", m.head(s), io().at("out"));
}

TEST(HyAvatarDiT, StreamedBlocksGiveTheSameOutput) {
  torch::NoGradGuard ng;
  auto w = hy::load_hyavatar_dit_weights(ckpt_file());
  auto cfg = hy::read_hyavatar_dit_config(ckpt_dir() + "/config.json");
  auto light = hy::HYAvatarDiT::load(w, cfg, /*load_blocks=*/false);
  EXPECT_TRUE(light.double_blocks().empty());
  EXPECT_LT(light.bytes(), model().bytes());
  auto s = light.embed(inputs());
  for (int64_t i = 0; i < cfg.depth_double_blocks; ++i) {
    auto b = hy::HYAvatarDiT::load_double_block(w, cfg, i);  // one block held at a time
    EXPECT_GT(b.bytes(), 0);
    light.run_double_block(b, s);
  }
  light.merge(s);
  for (int64_t i = 0; i < cfg.depth_single_blocks; ++i) light.run_single_block(hy::HYAvatarDiT::load_single_block(w, cfg, i), s);
  expect_close("dit_io.out (streamed blocks)", light.head(s), io().at("out"));
  EXPECT_THROW(light.forward(inputs()), std::logic_error);
}

TEST(HyAvatarDiT, MissingAndUnexpectedKeysAreNamed) {
  auto w = hy::load_hyavatar_dit_weights(ckpt_file());
  auto cfg = hy::read_hyavatar_dit_config(ckpt_dir() + "/config.json");
  auto tensors = w.all();
  const std::string gone = "double_blocks.1.img_attn_k_norm.weight", extra = "double_blocks.1.img_attn_extra.weight";
  tensors.erase(gone);
  tensors[extra] = torch::zeros({3});
  tensors["single_blocks.0.linear2.bias"] = torch::zeros({cfg.hidden_size + 1});
  tio::Weights bad(tensors, "edited-checkpoint.pt");
  try {
    hy::HYAvatarDiT::load(bad, cfg);
    FAIL() << "a checkpoint with a missing and an unexpected key loaded";
  } catch (const tio::WeightError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("edited-checkpoint.pt"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 missing keys: " + gone), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 unexpected keys: " + extra), std::string::npos) << msg;
    EXPECT_NE(msg.find("single_blocks.0.linear2.bias is [" + std::to_string(cfg.hidden_size + 1)), std::string::npos)
        << msg;
  }
  // The streaming (no blocks) load checks block keys too.
  EXPECT_THROW(hy::HYAvatarDiT::load(bad, cfg, false), tio::WeightError);
}

TEST(HyAvatarDiT, Fp8BlockLinearsDecodeWithTheirScales) {
  // The reference's fp8 checkpoints hold the blocks' linear weights as e4m3 bytes with a
  // per-tensor scale. A checkpoint quantized here must give exactly what the model gives
  // with the decoded (bytes * scale) weights in float32.
  torch::NoGradGuard ng;
  auto w = hy::load_hyavatar_dit_weights(ckpt_file());
  auto cfg = hy::read_hyavatar_dit_config(ckpt_dir() + "/config.json");
  tio::TensorMap raw = w.all(), decoded = w.all();
  std::map<std::string, double> scales;
  for (const auto& [name, t] : w.all()) {
    const bool block = name.rfind("double_blocks.", 0) == 0 || name.rfind("single_blocks.", 0) == 0;
    if (!block || t.dim() != 2 || name.size() < 7 || name.substr(name.size() - 7) != ".weight") continue;
    auto q = tio::quantize_fp8_e4m3(t.to(torch::kFloat32));
    raw[name] = q.bytes;
    decoded[name] = tio::dequantize_fp8_e4m3(q.bytes, q.scale);
    scales[name] = q.scale;
  }
  ASSERT_FALSE(scales.empty());
  auto fp8 = hy::HYAvatarDiT::load(tio::Weights(raw, "fp8.pt"), cfg, true, scales);
  auto f32 = hy::HYAvatarDiT::load(tio::Weights(decoded, "decoded.pt"), cfg);
  auto a = fp8.forward(inputs()), b = f32.forward(inputs());
  EXPECT_TRUE(torch::equal(a, b));
  // Quantization changes the weights, so the output moves away from the float32 one.
  EXPECT_GT((a - io().at("out")).abs().max().item<double>(), 1e-4);
}

// A torch.save archive of {"module": {name: float32 tensor}} (pickle protocol 2, written
// opcode by opcode as torch.save does), for the fp8 scale file.
void write_scale_map(const std::string& path, const std::vector<std::pair<std::string, std::vector<float>>>& scales) {
  std::string b = "\x80\x02}(";
  auto str = [&](const std::string& v) {
    b += 'X';
    const auto n = static_cast<uint32_t>(v.size());
    for (int i = 0; i < 4; ++i) b += static_cast<char>((n >> (8 * i)) & 0xFF);
    b += v;
  };
  auto small = [&](size_t v) { b += 'K'; b += static_cast<char>(v); };
  str("module");
  b += "}(";
  caffe2::serialize::PyTorchStreamWriter w(path);
  std::vector<std::string> data;
  for (size_t i = 0; i < scales.size(); ++i) {
    const auto& v = scales[i].second;
    str(scales[i].first);
    b += "ctorch._utils\n_rebuild_tensor_v2\n((";
    str("storage");
    b += "ctorch\nFloatStorage\n";
    str(std::to_string(i));
    str("cpu");
    small(v.size());
    b += "tQ";
    small(0);
    b += '(';
    if (v.size() != 1) small(v.size());  // a scalar has size () and stride ()
    b += "t(";
    if (v.size() != 1) small(1);
    b += "t\x89" "ccollections\nOrderedDict\n)RtR";  // NEWFALSE, OrderedDict()
    data.emplace_back(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
  b += "uu.";
  w.writeRecord("data.pkl", b.data(), b.size());
  for (size_t i = 0; i < data.size(); ++i) w.writeRecord("data/" + std::to_string(i), data[i].data(), data[i].size());
  w.writeEndOfFile();
}

TEST(HyAvatarDiT, Fp8ScaleMapFile) {
  EXPECT_EQ(hy::hyavatar_fp8_map_path("t/mp_rank_00_model_states_fp8.pt"), "t/mp_rank_00_model_states_fp8_map.pt");
  EXPECT_THROW(hy::hyavatar_fp8_map_path("t/model.safetensors"), tio::WeightError);
  const auto dir = std::filesystem::temp_directory_path() / ("hyavatar_fp8_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const auto good = (dir / "good_map.pt").string(), bad = (dir / "bad_map.pt").string();
  write_scale_map(good, {{"double_blocks.0.img_attn_qkv", {0.25f}}, {"single_blocks.1.linear1", {2.0f}}});
  auto scales = hy::read_hyavatar_fp8_scales(good);
  EXPECT_EQ(scales.size(), 2u);
  EXPECT_DOUBLE_EQ(scales.at("double_blocks.0.img_attn_qkv.weight"), 0.25);
  EXPECT_DOUBLE_EQ(scales.at("single_blocks.1.linear1.weight"), 2.0);
  write_scale_map(bad, {{"double_blocks.0.img_mlp.fc1", {1.0f, 2.0f}}});
  try {
    hy::read_hyavatar_fp8_scales(bad);
    ADD_FAILURE() << "a per-channel scale was accepted";
  } catch (const tio::WeightError& e) {
    EXPECT_NE(std::string(e.what()).find("double_blocks.0.img_mlp.fc1"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

TEST(HyAvatarDiT, BadInputsAreNamed) {
  auto in = inputs();
  in.audio_prompts = in.audio_prompts.slice(1, 1);
  EXPECT_THROW(model().forward(in), std::invalid_argument);
  in = inputs();
  in.freqs_cos = in.freqs_cos.slice(0, 1);
  EXPECT_THROW(model().forward(in), std::invalid_argument);
}

}  // namespace
