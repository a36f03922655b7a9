// The sampler's schedules (plugins/hyavatar/sampler_schedule.hpp) against the reference
// run recorded in hyavatar-pipeline-tiny-a: per step its sigma, timestep, guidance,
// cache decision, shift and windows (golden.json `loop.schedule`), and the sigmas and
// timesteps tensors. The fixture has one window; several windows, wrap-around and the
// moving shift are checked against the rule golden.json states (`loop.window_rule`).
#include <numeric>

#include "sampler_schedule.hpp"
#include "tensorio/weights.hpp"
#include "wan/golden.hpp"

namespace reel::hyavatar {
namespace {

using nlohmann::json;

std::string fixture() { return golden::fixture_dir("REEL_HYAVATAR_PIPELINE_GOLDEN", "hyavatar-pipeline-tiny-a"); }

struct Reference {
  json g = golden::read_json(fixture() + "/golden.json");
  int steps = g["pipeline_call"]["num_inference_steps"].get<int>();
  double shift = g["pipeline_call"]["scheduler"]["shift"].get<double>();
  double cfg = g["pipeline_call"]["guidance_scale"].get<double>();
  int audio_frames = g["sizes"]["audio_prompts_frames"].get<int>();
};

TEST(HyAvatarSchedule, SigmasAndTimestepsAreTheReferenceBits) {
  Reference r;
  auto tensors = tensorio::load_safetensors(fixture() + "/golden/pipeline.safetensors");
  FlowSchedule s = flow_schedule(r.steps, r.shift);
  auto sigmas = torch::tensor(s.sigmas), timesteps = torch::tensor(s.timesteps);
  // Same float32 operations as the reference: equal bit for bit.
  EXPECT_TRUE(torch::equal(sigmas, tensors.at("sigmas"))) << sigmas - tensors.at("sigmas");
  EXPECT_TRUE(torch::equal(timesteps, tensors.at("timesteps"))) << timesteps - tensors.at("timesteps");
}

TEST(HyAvatarSchedule, EveryStepMatchesTheRecordedLoop) {
  Reference r;
  FlowSchedule s = flow_schedule(r.steps, r.shift);
  WindowPlan plan = plan_windows(r.audio_frames);
  const auto& loop = r.g["loop"];
  ASSERT_EQ(loop["schedule"].size(), static_cast<size_t>(r.steps));
  EXPECT_EQ(loop["frames_per_batch"].get<int>(), kFramesPerWindow);
  EXPECT_EQ(loop["shift_offset"].get<int>(), plan.shift_offset);
  std::vector<int> uncached, cached;
  int shift = 0;
  for (const auto& rec : loop["schedule"]) {
    const int i = rec["step"].get<int>();
    SCOPED_TRACE("step " + std::to_string(i));
    EXPECT_EQ(s.timesteps[i], rec["t"].get<float>());
    EXPECT_EQ(s.sigmas[i], rec["sigma"].get<float>());
    EXPECT_EQ(s.sigmas[i + 1], rec["sigma_next"].get<float>());
    Guidance g = guidance_at(i, r.steps, r.cfg);
    EXPECT_NEAR(g.scale, rec["guidance_scale"].get<double>(), 1e-12);
    EXPECT_EQ(g.phase, rec["phase"].get<int>());
    EXPECT_EQ(is_cached_step(i) ? "cached" : "uncached", rec["deepcache"].get<std::string>());
    (is_cached_step(i) ? cached : uncached).push_back(i);
    EXPECT_EQ(shift, rec["shift"].get<int>());
    auto windows = windows_at(plan, shift);
    ASSERT_EQ(windows.size(), rec["windows"].size());
    for (size_t w = 0; w < windows.size(); ++w) {
      const auto& rw = rec["windows"][w];
      EXPECT_EQ(windows[w].index_start, rw["index_start"].get<int>());
      EXPECT_EQ(windows[w].latent_frames, rw["latent_frames"].get<std::vector<int>>());
      ASSERT_EQ(static_cast<int>(windows[w].audio_frames.size()), rw["audio_count"].get<int>());
      EXPECT_EQ(windows[w].audio_frames.front(), rw["audio_first"].get<int>());
      EXPECT_EQ(windows[w].audio_frames.back(), rw["audio_last"].get<int>());
    }
    std::vector<int> averaged;
    auto cover = window_cover(plan, shift);
    for (size_t f = 0; f < cover.size(); ++f)
      if (cover[f] == 2) averaged.push_back(static_cast<int>(f));
    EXPECT_EQ(averaged, rec["frames_averaged_over_2_windows"].get<std::vector<int>>());
    shift = next_shift(plan, shift);
  }
  EXPECT_EQ(uncached, loop["deepcache"]["no_cache_steps"].get<std::vector<int>>());
  EXPECT_EQ(cached, loop["deepcache"]["cached_steps"].get<std::vector<int>>());
}

TEST(HyAvatarSchedule, SizesMatchTheRecordedRun) {
  Reference r;
  const auto& sizes = r.g["sizes"];
  WindowPlan plan = plan_windows(r.audio_frames);
  EXPECT_EQ(plan.noise_frames, sizes["infer_length"].get<int>());
  EXPECT_EQ(plan.infer_length, sizes["latents_all_frames"].get<int>());
  EXPECT_EQ(plan.video_latent_frames, sizes["video_length_latent"].get<int>());
  EXPECT_EQ(plan.single_window, sizes["single_window_mode"].get<bool>());
  EXPECT_EQ(static_cast<int>(windows_at(plan, 0).size()), sizes["windows_per_step"].get<int>());
  auto tensors = tensorio::load_safetensors(fixture() + "/golden/pipeline.safetensors");
  EXPECT_EQ(tensors.at("initial_noise").size(2), plan.noise_frames);
  EXPECT_EQ(tensors.at("final_latents").size(2), plan.video_latent_frames);
}

// Long audio: 300 frames (12 s) -> 97 latent frames in three windows of 33, so two
// frames are covered twice, and the windows move by 10 frames every step.
TEST(HyAvatarSchedule, LongAudioWindowsWrapAroundAndShift) {
  WindowPlan plan = plan_windows(300);
  EXPECT_FALSE(plan.single_window);
  EXPECT_EQ(plan.noise_frames, 97);
  EXPECT_EQ(plan.infer_length, 97);
  EXPECT_EQ(plan.video_latent_frames, 76);   // ((300/4*4+1)-1)/4+1
  EXPECT_EQ(plan.padded_audio_frames, 388);
  int shift = 0;
  std::vector<int> shifts;
  for (int step = 0; step < 5; ++step) {
    shifts.push_back(shift);
    auto windows = windows_at(plan, shift);
    ASSERT_EQ(windows.size(), 3u);
    auto cover = window_cover(plan, shift);
    EXPECT_EQ(std::accumulate(cover.begin(), cover.end(), 0), 3 * kFramesPerWindow);
    EXPECT_EQ(*std::min_element(cover.begin(), cover.end()), 1) << "every frame is sampled";
    EXPECT_EQ(std::count(cover.begin(), cover.end(), 2), 2);
    for (const auto& w : windows) {
      EXPECT_EQ(w.start, w.index_start - shift);
      for (int k = 0; k < kFramesPerWindow; ++k) {
        // Python's modulo: a window that starts before 0 takes the last frames.
        EXPECT_EQ(w.latent_frames[k], ((w.start + k) % 97 + 97) % 97);
        // Audio frame 4*j .. lines up with latent frame j (4x temporal compression).
        EXPECT_EQ(w.audio_frames[4 * k], ((4 * (w.start + k)) % 388 + 388) % 388);
      }
      EXPECT_EQ(w.audio_frames.size(), static_cast<size_t>(4 * kFramesPerWindow - 3));
    }
    shift = next_shift(plan, shift);
  }
  EXPECT_EQ(shifts, (std::vector<int>{0, 10, 20, 30, 7}));
  EXPECT_THROW(plan_windows(0), std::invalid_argument);
}

TEST(HyAvatarSchedule, GuidancePhases) {
  // Phase 1 uses the negative prompt and a softened face mask; phase 2 does not, and
  // ignores the requested scale.
  Guidance first = guidance_at(0, 30, 9.0), last1 = guidance_at(kSecondGuidancePhase - 1, 30, 9.0),
           second = guidance_at(kSecondGuidancePhase, 30, 9.0);
  EXPECT_DOUBLE_EQ(first.scale, 9.0);
  EXPECT_TRUE(first.negative_prompt);
  EXPECT_DOUBLE_EQ(first.face_mask_scale, 0.6);
  EXPECT_DOUBLE_EQ(last1.scale, (1 - 9.0 / 30) * 7.0 + 2);
  EXPECT_FALSE(second.negative_prompt);
  EXPECT_DOUBLE_EQ(second.face_mask_scale, 1.0);
  EXPECT_DOUBLE_EQ(second.scale, guidance_at(kSecondGuidancePhase, 30, 1.5).scale);
}

}  // namespace
}  // namespace reel::hyavatar
