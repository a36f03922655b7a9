// The pipeline's RoPE tables against hyavatar-dit-tiny-a (env REEL_HYAVATAR_DIT_GOLDEN):
// get_rotary_pos_embed's inputs and outputs are in golden/rope.safetensors, the patch
// size in checkpoint/config.json.
//
// Tolerance: atol 1e-6. Positions and frequencies are computed with the reference's
// float32 ops (pow, reciprocal, outer product, cos/sin), so only libm rounding of cos/sin
// can differ (~1e-7); a wrong axis order or interleaving is off by O(1).
#include <iostream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "hyavatar/rope.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace {

namespace hy = reel::hyavatar;
namespace tio = reel::tensorio;

std::string fixture() { return reel::golden::fixture_dir("REEL_HYAVATAR_DIT_GOLDEN", "hyavatar-dit-tiny-a"); }

int64_t scalar(const tio::TensorMap& m, const char* k) { return m.at(k).to(torch::kInt64).flatten()[0].item<int64_t>(); }
std::vector<int64_t> ints(const torch::Tensor& t) {
  auto c = t.to(torch::kInt64).contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(HyAvatarRope, GridSizesFromPixelSizes) {
  auto g = tio::load_safetensors(fixture() + "/golden/rope.safetensors");
  auto cfg = reel::golden::read_json(fixture() + "/checkpoint/config.json");
  auto patch = cfg.at("patch_size").get<std::array<int64_t, 3>>();
  auto sizes = hy::rope_grid_sizes(scalar(g, "video_length"), scalar(g, "height"), scalar(g, "width"), patch);
  EXPECT_EQ(std::vector<int64_t>(sizes.begin(), sizes.end()), ints(g.at("rope_sizes")));
  EXPECT_THROW(hy::rope_grid_sizes(scalar(g, "video_length"), 8 * 3, 8 * 4, {1, 2, 2}), std::invalid_argument);
}

TEST(HyAvatarRope, TablesMatchReference) {
  auto g = tio::load_safetensors(fixture() + "/golden/rope.safetensors");
  auto r = ints(g.at("rope_sizes"));
  const double theta = g.at("theta").to(torch::kFloat64).item<double>();
  auto tables = hy::rope_tables({r[0], r[1], r[2]}, ints(g.at("rope_dim_list")), theta, scalar(g, "concat_bias"));
  std::cout << "[max abs err] freqs_cos " << (tables.cos - g.at("freqs_cos")).abs().max().item<double>()
            << ", freqs_sin " << (tables.sin - g.at("freqs_sin")).abs().max().item<double>() << "\n";
  EXPECT_TRUE(reel::golden::close(tables.cos, g.at("freqs_cos"), 0, 1e-6));
  EXPECT_TRUE(reel::golden::close(tables.sin, g.at("freqs_sin"), 0, 1e-6));
  // The reference frame's rows come first, at time position `bias`: they differ from frame 0's.
  const int64_t hw = r[1] * r[2];
  EXPECT_FALSE(torch::allclose(tables.sin.slice(0, 0, hw), tables.sin.slice(0, hw, 2 * hw)));
}

TEST(HyAvatarRope, RotatesPairs) {
  // One pair rotated by a quarter turn: (x0, x1) -> (-x1, x0).
  auto x = torch::tensor({1.0f, 2.0f}).view({1, 1, 1, 2});
  auto cos = torch::zeros({1, 2}), sin = torch::ones({1, 2});
  auto y = hy::apply_rope(x, cos, sin);
  EXPECT_FLOAT_EQ(y.flatten()[0].item<float>(), -2.0f);
  EXPECT_FLOAT_EQ(y.flatten()[1].item<float>(), 1.0f);
}

}  // namespace
