// The i2v models' memory estimates count the CLIP vision tower where the rung puts it:
// on the GPU (bf16) with T5, on the CPU (fp32) in the rungs that move T5 there. Compared
// against the same model without CLIP, so the difference is exactly CLIP's weights.
#include <gtest/gtest.h>

#include "ladder.hpp"
#include "model_specs.hpp"

namespace reel::wan {
namespace {

int64_t clip_params_run(const ModelSpec& m) {  // every block but the last
  const std::string last = "visual.transformer." + std::to_string(m.clip.num_layers - 1) + ".";
  int64_t n = 0;
  for (const auto& [name, shape] : clip_shapes(m.clip)) {
    if (name.rfind(last, 0) == 0) continue;
    int64_t k = 1;
    for (int64_t d : shape) k *= d;
    n += k;
  }
  return n;
}

struct Case {
  const char* rung;
  int64_t device_bytes_per_param, host_bytes_per_param;  // where CLIP's weights are counted
};

class I2VEstimate : public ::testing::TestWithParam<Case> {};

TEST_P(I2VEstimate, ClipWeightsAreCountedWhereTheRungPutsThem) {
  const Case c = GetParam();
  const ModelSpec& i2v = *find_model("wan2.1-i2v-14b-480p");
  ModelSpec without = i2v;
  without.i2v = false;
  const Rung rung = parse_rung({{"name", c.rung}});
  const JobShape shape{i2v.steps, i2v.frames, i2v.width, i2v.height};
  const MemoryEstimate with_clip = estimate(i2v, shape, rung), no_clip = estimate(without, shape, rung);
  const int64_t p = clip_params_run(i2v);
  EXPECT_GT(p, int64_t{600} * 1000 * 1000) << "ViT-H/14 without its last block is ~0.6B parameters";
  EXPECT_EQ(with_clip.resident_device - no_clip.resident_device, p * c.device_bytes_per_param);
  EXPECT_EQ(with_clip.resident_host - no_clip.resident_host, p * c.host_bytes_per_param);
  EXPECT_GE(with_clip.device, no_clip.device + p * c.device_bytes_per_param);
  EXPECT_GE(with_clip.host, no_clip.host + p * c.host_bytes_per_param);
}

INSTANTIATE_TEST_SUITE_P(Rungs, I2VEstimate,
                         ::testing::Values(Case{"resident", 2, 0}, Case{"t5-cpu", 0, 4}, Case{"vae-cpu", 0, 4},
                                           Case{"cpu", 0, 4}),
                         [](const ::testing::TestParamInfo<Case>& i) {
                           std::string n = i.param.rung;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

TEST(I2VModels, DefaultsFollowTheReference) {
  const ModelSpec& p480 = *find_model("wan2.1-i2v-14b-480p");
  const ModelSpec& p720 = *find_model("wan2.1-i2v-14b-720p");
  for (const ModelSpec* m : {&p480, &p720}) {
    EXPECT_TRUE(m->i2v);
    EXPECT_EQ(m->steps, 40);
    EXPECT_EQ(m->frames, 81);
    EXPECT_DOUBLE_EQ(m->guide, 5.0);
    EXPECT_EQ(m->dit.in_dim, 36);
    EXPECT_EQ(m->dit.img_dim, 1280);
  }
  EXPECT_DOUBLE_EQ(p480.shift, 3.0);
  EXPECT_DOUBLE_EQ(p720.shift, 5.0);
  EXPECT_EQ(p480.max_area, 480 * 832);
  EXPECT_EQ(p720.max_area, 720 * 1280);
  EXPECT_TRUE(find_model("wan2.1-i2v-tiny")->random_weights);
}

}  // namespace
}  // namespace reel::wan
