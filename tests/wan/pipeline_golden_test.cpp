// The whole Wan 2.1 text-to-video run against the reference: prompt -> token ids ->
// UMT5 -> DiT denoising under classifier-free guidance with flow-matching UniPC ->
// VAE decode. Every step's latent is compared, so a divergence is caught where it starts.
// All sizes and hyper-parameters come from the fixture (golden.json, config.json, shapes).
#include <gtest/gtest.h>

#include "golden.hpp"
#include "pipeline.hpp"
#include "t5_encoder.hpp"
#include "tensorio/weights.hpp"
#include "tokenizer.hpp"
#include "vae.hpp"

namespace reel::wan {
namespace {

using reel::golden::close;

struct Fixture {
  std::string dir = reel::golden::fixture_dir("REEL_WAN21_GOLDEN", "wan21-tiny-a");
  nlohmann::json golden = reel::golden::read_json(dir + "/golden.json");
  nlohmann::json config = reel::golden::read_json(dir + "/checkpoint/config.json");
  tensorio::TensorMap expected = tensorio::load_safetensors(dir + "/golden/pipeline.safetensors");
};

using reel::golden::floats;
using reel::golden::Placement;

class WanPipelineGolden : public ::testing::TestWithParam<Placement> {};

TEST_P(WanPipelineGolden, TextToVideoMatchesTheReferenceStepByStep) {
  const Placement placement = GetParam();
  Fixture f;
  const auto& p = f.golden["pipeline"];
  const int64_t text_len = f.config["text_len"];

  T5Tokenizer tokenizer(f.dir + "/checkpoint/google/umt5-xxl/spiece.model", text_len);
  Tokens prompt = tokenizer.encode(p["prompt"]);
  Tokens negative = tokenizer.encode(p["negative_prompt"]);
  auto [ids, mask] = to_tensors(prompt);
  ASSERT_TRUE(torch::equal(ids, f.expected.at("ids"))) << "prompt token ids";
  ASSERT_TRUE(torch::equal(to_tensors(negative).first, f.expected.at("neg_ids"))) << "negative prompt token ids";

  tensorio::Weights t5_weights(tensorio::load_pth(f.dir + "/checkpoint/models_t5_umt5-xxl-enc-bf16.pth"),
                               "models_t5_umt5-xxl-enc-bf16.pth");
  T5Encoder t5 = T5Encoder::load(t5_weights, f.golden["t5"]["num_heads"].get<int64_t>());
  WanDiT loaded = WanDiT::load_dir(f.dir + "/checkpoint", true, placement.bf16_blocks ? torch::kBFloat16 : torch::kFloat32);
  const int64_t blocks = loaded.num_blocks();
  DiTRunner dit(std::move(loaded), torch::kCPU, placement.resident_blocks < 0 ? blocks : placement.resident_blocks);
  if (placement.resident_blocks >= 0) ASSERT_EQ(dit.streamed_blocks(), blocks - placement.resident_blocks);
  const double rtol = placement.rtol(), atol = placement.atol();
  WanVae vae = WanVae::load_file(f.dir + "/checkpoint/Wan2.1_VAE.pth", floats(f.golden["vae_mean"]),
                                 floats(f.golden["vae_std"]));

  torch::Tensor noise = f.expected.at("noise");
  auto shape = latent_shape(vae.config().z_dim, p["frames"], p["height"], p["width"], vae.temporal_factor(),
                            vae.spatial_factor());
  ASSERT_EQ(std::vector<int64_t>(noise.sizes().begin(), noise.sizes().end()), shape);

  DenoiseRequest req;
  req.noise = noise;
  req.context = t5.context(prompt);
  req.negative = t5.context(negative);
  req.steps = p["steps"];
  req.shift = p["shift"];
  req.guide_scale = p["guide_scale"];
  req.solver = p["sample_solver"];
  int64_t checked = 0;
  torch::Tensor latent = denoise(dit, req, [&](int64_t step, int64_t, const torch::Tensor& x) {
    std::string key = "latent_after_step_" + std::to_string(step - 1);
    EXPECT_TRUE(close(x, f.expected.at(key), rtol, atol)) << key;
    ++checked;
    return true;
  });
  EXPECT_EQ(checked, req.steps);

  torch::Tensor video = vae.decode(latent);
  EXPECT_TRUE(close(video, f.expected.at("video"), std::max(rtol, 1e-3), std::max(atol, 1e-3))) << "decoded video";
}

INSTANTIATE_TEST_SUITE_P(Placements, WanPipelineGolden, reel::golden::placements(), reel::golden::placement_name);

TEST(WanPipelineShapes, LatentShapeFollowsTheVaeFactors) {
  EXPECT_EQ(latent_shape(16, 81, 480, 832, 4, 8), (std::vector<int64_t>{16, 21, 60, 104}));
  EXPECT_THROW(latent_shape(16, 80, 480, 832, 4, 8), std::invalid_argument);
  EXPECT_THROW(latent_shape(16, 81, 481, 832, 4, 8), std::invalid_argument);
}

}  // namespace
}  // namespace reel::wan
