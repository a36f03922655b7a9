// The whole Wan 2.1 image-to-video run against the reference (wan21-i2v-tiny-a, env
// REEL_WAN21_I2V_GOLDEN): output size from max_area and the image's aspect, the first-frame
// mask, the conditioning y (VAE-encoded first frame + black frames), the CLIP tokens, then
// denoising under classifier-free guidance (both branches get clip_fea and y) compared
// step by step, and the decoded video. Every size comes from the fixture.
#include <gtest/gtest.h>

#include "clip_encoder.hpp"
#include "golden.hpp"
#include "i2v.hpp"
#include "pipeline.hpp"
#include "t5_encoder.hpp"
#include "tensorio/weights.hpp"
#include "tokenizer.hpp"
#include "vae.hpp"

namespace reel::wan {
namespace {

using reel::golden::close;

struct Fixture {
  std::string dir = reel::golden::fixture_dir("REEL_WAN21_I2V_GOLDEN", "wan21-i2v-tiny-a");
  std::string ckpt = dir + "/checkpoint";
  nlohmann::json golden = reel::golden::read_json(dir + "/golden.json");
  nlohmann::json config = reel::golden::read_json(ckpt + "/config.json");
  tensorio::TensorMap expected = tensorio::load_safetensors(dir + "/golden/pipeline.safetensors");
};

using reel::golden::floats;
using reel::golden::Placement;

class WanI2VPipelineGolden : public ::testing::TestWithParam<Placement> {};

TEST_P(WanI2VPipelineGolden, ImageToVideoMatchesTheReferenceStepByStep) {
  const Placement placement = GetParam();
  Fixture f;
  const auto& p = f.golden["pipeline"];
  const int64_t frames = p["frames"];
  const torch::Tensor image = f.expected.at("image");

  const I2VSize size = i2v_size(image.size(1), image.size(2), p["max_area"].get<int64_t>());
  EXPECT_EQ(size.lat_h, p["lat_hw"][0].get<int64_t>());
  EXPECT_EQ(size.lat_w, p["lat_hw"][1].get<int64_t>());
  EXPECT_EQ(size.height, p["hw"][0].get<int64_t>());
  EXPECT_EQ(size.width, p["hw"][1].get<int64_t>());

  WanVae vae = WanVae::load_file(f.ckpt + "/Wan2.1_VAE.pth", floats(f.golden["vae_mean"]), floats(f.golden["vae_std"]));
  EXPECT_TRUE(torch::equal(i2v_mask(frames, size.lat_h, size.lat_w, vae.temporal_factor()), f.expected.at("msk")));
  torch::Tensor y = i2v_condition(vae, image, frames, size);
  ASSERT_TRUE(close(y, f.expected.at("y"), 1e-4, 1e-4)) << "conditioning y";

  const std::string clip_file = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth";
  ClipImageEncoder clip = ClipImageEncoder::load(tensorio::Weights(tensorio::load_pth(f.ckpt + "/" + clip_file), clip_file),
                                                 f.golden["clip"]["vision_heads"].get<int64_t>());
  torch::Tensor clip_fea = clip.encode(image);
  ASSERT_TRUE(close(clip_fea, f.expected.at("clip_fea"), 1e-4, 1e-4)) << "clip_fea";

  T5Tokenizer tokenizer(f.ckpt + "/google/umt5-xxl/spiece.model", f.config["text_len"].get<int64_t>());
  Tokens prompt = tokenizer.encode(p["prompt"]);
  Tokens negative = tokenizer.encode(p["negative_prompt"]);
  ASSERT_TRUE(torch::equal(to_tensors(prompt).first, f.expected.at("ids"))) << "prompt token ids";
  ASSERT_TRUE(torch::equal(to_tensors(negative).first, f.expected.at("neg_ids"))) << "negative prompt token ids";
  tensorio::Weights t5_weights(tensorio::load_pth(f.ckpt + "/models_t5_umt5-xxl-enc-bf16.pth"),
                               "models_t5_umt5-xxl-enc-bf16.pth");
  T5Encoder t5 = T5Encoder::load(t5_weights, f.golden["t5"]["num_heads"].get<int64_t>());

  WanDiT loaded = WanDiT::load_dir(f.ckpt, true, placement.bf16_blocks ? torch::kBFloat16 : torch::kFloat32);
  const int64_t blocks = loaded.num_blocks();
  DiTRunner dit(std::move(loaded), torch::kCPU, placement.resident_blocks < 0 ? blocks : placement.resident_blocks);
  const double rtol = placement.rtol(), atol = placement.atol();

  torch::Tensor noise = f.expected.at("noise");
  auto shape = latent_shape(vae.config().z_dim, frames, size.height, size.width, vae.temporal_factor(),
                            vae.spatial_factor());
  ASSERT_EQ(std::vector<int64_t>(noise.sizes().begin(), noise.sizes().end()), shape);
  EXPECT_EQ(sequence_length(dit.config(), shape), p["seq_len"].get<int64_t>());

  DenoiseRequest req;
  req.noise = noise;
  req.context = t5.context(prompt);
  req.negative = t5.context(negative);
  req.clip_fea = clip_fea;
  req.y = y;
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
  EXPECT_TRUE(close(vae.decode(latent), f.expected.at("video"), std::max(rtol, 1e-3), std::max(atol, 1e-3)))
      << "decoded video";
}

INSTANTIATE_TEST_SUITE_P(Placements, WanI2VPipelineGolden, reel::golden::placements(), reel::golden::placement_name);

TEST(WanI2VSize, FollowsTheReferenceFormula) {
  // 480p defaults: max_area 480*832 on a 16:9 landscape and a portrait image.
  I2VSize land = i2v_size(720, 1280, 480 * 832);
  EXPECT_EQ(land.height, 464);  // sqrt(399360 * 9/16) = 474.0 -> 59 // 2 * 2 = 58 -> 464
  EXPECT_EQ(land.width, 832);   // sqrt(399360 * 16/9) = 842.6 -> 105 // 2 * 2 = 104 -> 832
  I2VSize portrait = i2v_size(1280, 720, 480 * 832);
  EXPECT_EQ(portrait.height, land.width);
  EXPECT_EQ(portrait.width, land.height);
  EXPECT_THROW(i2v_size(100, 100, 10), std::invalid_argument);
}

}  // namespace
}  // namespace reel::wan
