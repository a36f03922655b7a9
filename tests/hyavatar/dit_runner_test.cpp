// DitRunner (plugins/hyavatar/dit_runner.hpp): every placement a ladder rung asks for
// computes the same prediction as the DiT with all its blocks resident — streamed blocks
// and one CFG half at a time exactly, fp8 block storage within float8's rounding — on
// full and on step-cached calls. Runs on the CPU with hunyuan-avatar-tiny's seeded weights.
#include <gtest/gtest.h>

#include "hyavatar/avatar_model.hpp"
#include "hyavatar/dit_runner.hpp"
#include "hyavatar/random_weights.hpp"
#include "hyavatar/rope.hpp"

namespace reel::hyavatar {
namespace {

struct Fixture {
  HYAvatarDiTConfig cfg = tiny_avatar_configs().dit;
  tensorio::Weights weights = seeded_weights(
      keys_read_by([&](const tensorio::Weights& w) { HYAvatarDiT::load(w, cfg); }), 1, "tiny DiT");
  RopeTables rope;
  DitCall call;

  Fixture() {
    torch::manual_seed(5);
    const int64_t T = 2, h = 8, w = 8, L = 20;
    call.x = torch::randn({2, 16, T, h, w});
    call.t = torch::tensor({900.0f, 900.0f});
    call.ref_latents = torch::randn({2, 16, T, h, w});
    call.text_states = torch::randn({2, L, cfg.text_states_dim});
    call.text_mask = torch::ones({2, L}, torch::kInt64);
    call.text_mask.index_put_({0, torch::indexing::Slice(15)}, 0);   // the halves differ
    call.text_states_2 = torch::randn({2, cfg.text_states_dim_2});
    call.audio_prompts = torch::randn({2, 4 * T - 3, cfg.audio_proj.seq_len, cfg.audio_proj.blocks, cfg.audio_proj.channels});
    call.face_mask = torch::rand({2, 1, 1, h, w}).round();
    call.motion_exp = torch::full({2, 4}, 30, torch::kInt64);
    call.motion_pose = torch::full({2, 4}, 25, torch::kInt64);
    call.fps = torch::full({2}, 25.0f);
    rope = rope_tables(rope_grid_sizes(4 * T - 3, 8 * h, 8 * w, cfg.patch_size), cfg.rope_dim_list, cfg.rope_theta);
  }

  DitResult run(const DitPlacement& p, const torch::Tensor& cache_in = {}) const {
    DitRunner runner(weights, cfg, torch::kCPU, p);
    DitCall c = call;
    c.cache_in = cache_in;
    return runner.call(c, rope);
  }
};

DitPlacement placement(DitPlacement::Blocks blocks, int64_t resident = 0, bool cfg_split = false) {
  DitPlacement p;
  p.blocks = blocks;
  p.resident_blocks = resident;
  p.cfg_split = cfg_split;
  return p;
}

TEST(DitRunner, EveryPlacementPredictsWhatTheResidentDitPredicts) {
  Fixture f;
  const DitResult base = f.run(placement(DitPlacement::Blocks::resident));
  ASSERT_TRUE(base.cache_out.defined());
  ASSERT_EQ(base.x.sizes(), f.call.x.sizes());
  for (int64_t resident : {0, 3, 6}) {
    const DitResult r = f.run(placement(DitPlacement::Blocks::streamed, resident));
    EXPECT_TRUE(torch::equal(r.x, base.x)) << resident << " resident blocks";
    EXPECT_TRUE(torch::equal(r.cache_out, base.cache_out)) << resident << " resident blocks";
  }
  // One CFG half at a time: the same numbers up to float32 summation order in batched matmuls.
  const DitResult split = f.run(placement(DitPlacement::Blocks::streamed, 0, true));
  EXPECT_TRUE(torch::allclose(split.x, base.x, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(split.cache_out, base.cache_out, 1e-5, 1e-5));
  // fp8 blocks: each weight rounded to 3 mantissa bits (relative error <= 2^-4), so the
  // prediction moves a little, and far less than its own size.
  const DitResult fp8 = f.run(placement(DitPlacement::Blocks::fp8));
  const double err = (fp8.x - base.x).norm().item<double>() / base.x.norm().item<double>();
  std::printf("fp8 blocks: relative error of the prediction %.2e\n", err);
  EXPECT_GT(err, 0.0) << "fp8 storage must actually round the blocks";
  EXPECT_LT(err, 0.1);
}

TEST(DitRunner, CachedStepsMatchAcrossPlacements) {
  Fixture f;
  const DitResult full = f.run(placement(DitPlacement::Blocks::resident));
  const DitResult base = f.run(placement(DitPlacement::Blocks::resident), full.cache_out);
  EXPECT_FALSE(base.cache_out.defined()) << "a cached step writes no cache";
  const DitResult streamed = f.run(placement(DitPlacement::Blocks::streamed, 1), full.cache_out);
  EXPECT_TRUE(torch::equal(streamed.x, base.x));
  const DitResult split = f.run(placement(DitPlacement::Blocks::streamed, 0, true), full.cache_out);
  EXPECT_TRUE(torch::allclose(split.x, base.x, 1e-5, 1e-5));
}

TEST(DitRunner, StreamedBlocksLeaveTheDeviceAndWaitInHostMemory) {
  Fixture f;
  DitRunner resident(f.weights, f.cfg, torch::kCPU, placement(DitPlacement::Blocks::resident));
  DitRunner streamed(f.weights, f.cfg, torch::kCPU, placement(DitPlacement::Blocks::streamed, 0));
  DitRunner fp8(f.weights, f.cfg, torch::kCPU, placement(DitPlacement::Blocks::fp8));
  EXPECT_EQ(resident.host_bytes(), 0);
  EXPECT_GT(streamed.host_bytes(), 0);
  EXPECT_EQ(streamed.device_bytes() + streamed.host_bytes(), resident.device_bytes());
  // float8 blocks: the matrices at one byte a weight instead of four.
  EXPECT_LT(fp8.device_bytes(), resident.device_bytes() - streamed.host_bytes() / 2);
}

}  // namespace
}  // namespace reel::hyavatar
