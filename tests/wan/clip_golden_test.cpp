// The CLIP image encoder of Wan 2.1 i2v against the reference (wan21-i2v-tiny-a, env
// REEL_WAN21_I2V_GOLDEN): preprocessing and the vision tower up to its penultimate block.
// Sizes come from the checkpoint's shapes; the head count and the normalisation from
// golden.json.
#include <gtest/gtest.h>

#include "clip_encoder.hpp"
#include "golden.hpp"
#include "tensorio/weights.hpp"

namespace reel::wan {
namespace {

using reel::golden::close;

const char kClipFile[] = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth";

struct Fixture {
  std::string dir = reel::golden::fixture_dir("REEL_WAN21_I2V_GOLDEN", "wan21-i2v-tiny-a");
  nlohmann::json golden = reel::golden::read_json(dir + "/golden.json");
  tensorio::TensorMap io = tensorio::load_safetensors(dir + "/golden/clip_io.safetensors");
  tensorio::Weights weights{tensorio::load_pth(dir + "/checkpoint/" + kClipFile), kClipFile};
};

TEST(WanClipGolden, VisionTowerMatchesTheReference) {
  Fixture f;
  const auto& g = f.golden["clip"];
  ClipImageEncoder clip = ClipImageEncoder::load(f.weights, g["vision_heads"].get<int64_t>());
  EXPECT_EQ(clip.config().image_size, g["image_size"].get<int64_t>());
  EXPECT_EQ(clip.config().patch_size, g["patch_size"].get<int64_t>());
  EXPECT_EQ(clip.config().dim, g["vision_dim"].get<int64_t>());
  EXPECT_EQ(clip.config().num_layers, g["vision_layers"].get<int64_t>());
  for (int i = 0; i < 3; ++i) {
    EXPECT_FLOAT_EQ(clip.config().mean[i], f.golden["clip_norm"]["mean"][i].get<float>());
    EXPECT_FLOAT_EQ(clip.config().std[i], f.golden["clip_norm"]["std"][i].get<float>());
  }
  EXPECT_TRUE(close(clip.encode(f.io.at("image")), f.io.at("out"), 1e-4, 1e-4));
}

TEST(WanClipGolden, HalfPrecisionStorageStaysClose) {
  Fixture f;
  ClipImageEncoder clip = ClipImageEncoder::load(f.weights, f.golden["clip"]["vision_heads"].get<int64_t>(), torch::kBFloat16);
  EXPECT_TRUE(close(clip.encode(f.io.at("image")), f.io.at("out"), 5e-2, 5e-2));
}

TEST(WanClipGolden, MissingTensorNamesTheFileAndTensor) {
  Fixture f;
  tensorio::TensorMap m = f.weights.all();
  m.erase("visual.transformer.0.attn.proj.bias");
  try {
    ClipImageEncoder::load(tensorio::Weights(m, kClipFile), 4);
    FAIL() << "expected a WeightError";
  } catch (const tensorio::WeightError& e) {
    EXPECT_NE(std::string(e.what()).find("visual.transformer.0.attn.proj.bias"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(kClipFile), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace reel::wan
