// The sampler's schedules (plugins/hyavatar/sampler_schedule.hpp) against the reference
// run recorded in hyavatar-pipeline-tiny-a: per step its sigma, timestep, guidance,
// cache decision, shift and windows (golden.json `loop.schedule`), and the sigmas and
// timesteps tensors. The fixture has one window; several windows, wrap-around and the
// moving shift are checked against the rule golden.json states (`loop.window_rule`).
// Windows of other lengths (reel's extension) are checked by their properties over a
// table of window and audio lengths, by sizes worked by hand, and the default against
// the reference's own formulas with 33.
#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

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

// --- other window lengths (reel's extension; the reference always uses 33) ---

const std::vector<int> kWindows{2, 3, 5, 9, 17, 65};
const std::vector<int> kAudioLengths{1, 50, 129, 200, 400, 1000, 3000};

int python_mod(int i, int n) { return ((i % n) + n) % n; }

// Every window length and audio length: the windows of every step cover every sampled
// latent frame, read W latent frames and the 4*W - 3 audio frames that line up with them,
// and the kept latent frames are as long as the reference's 4k + 1 rounding of the audio.
TEST(HyAvatarScheduleWindows, EveryWindowLengthCoversTheAudio) {
  for (int W : kWindows) {
    for (int n : kAudioLengths) {
      SCOPED_TRACE("W " + std::to_string(W) + ", " + std::to_string(n) + " audio frames");
      const WindowPlan plan = plan_windows(n, W);
      EXPECT_EQ(plan.window, W);
      EXPECT_EQ(plan.audio_frames, n);
      // The video is the audio rounded down to 4k + 1 frames, 4x compressed in time.
      EXPECT_EQ(4 * (plan.video_latent_frames - 1) + 1, n / 4 * 4 + 1);
      EXPECT_LE(plan.video_latent_frames, plan.infer_length) << "every kept frame is sampled";
      EXPECT_LE(plan.infer_length, plan.noise_frames);
      // The noise is a whole number of window steps of W - 1 frames, plus one.
      EXPECT_EQ((plan.noise_frames - 1) % (W - 1), 0);
      // Single window exactly when one window holds everything sampled.
      EXPECT_EQ(plan.single_window, plan.infer_length == W);
      EXPECT_EQ(plan.single_window, plan.noise_frames == W || plan.video_latent_frames == W);
      // Audio frame 4j belongs to latent frame j, also after wrapping around.
      EXPECT_EQ(plan.padded_audio_frames, 4 * plan.infer_length);
      EXPECT_GE(plan.padded_audio_frames, 4 * (plan.video_latent_frames - 1) + 1);
      if (plan.single_window) {
        EXPECT_EQ(plan.shift_offset, 0);
      } else {
        EXPECT_GT(plan.shift_offset, 0) << "the seams between windows must move";
        EXPECT_LT(plan.shift_offset, W);
      }
      const size_t expected_windows = static_cast<size_t>((plan.infer_length + W - 1) / W);
      int shift = 0;
      for (int step = 0; step < W + 2; ++step) {
        SCOPED_TRACE("step " + std::to_string(step) + ", shift " + std::to_string(shift));
        ASSERT_GE(shift, 0);
        ASSERT_LT(shift, W);
        const auto windows = windows_at(plan, shift);
        ASSERT_EQ(windows.size(), expected_windows);
        for (size_t i = 0; i < windows.size(); ++i) {
          const Window& w = windows[i];
          EXPECT_EQ(w.index_start, static_cast<int>(i) * W);
          EXPECT_EQ(w.start, w.index_start - shift);
          ASSERT_EQ(w.latent_frames.size(), static_cast<size_t>(W));
          ASSERT_EQ(w.audio_frames.size(), static_cast<size_t>(4 * W - 3));
          for (int k = 0; k < W; ++k) EXPECT_EQ(w.latent_frames[k], python_mod(w.start + k, plan.infer_length));
          for (int k = 0; k < 4 * W - 3; ++k)
            ASSERT_EQ(w.audio_frames[k], python_mod(4 * w.start + k, plan.padded_audio_frames)) << "k " << k;
          for (int k = 0; k < W; ++k) EXPECT_EQ(w.audio_frames[4 * k], 4 * w.latent_frames[k]);
        }
        const auto cover = window_cover(plan, shift);
        ASSERT_EQ(cover.size(), static_cast<size_t>(plan.infer_length));
        EXPECT_GE(*std::min_element(cover.begin(), cover.end()), 1) << "a latent frame no window samples";
        EXPECT_EQ(std::accumulate(cover.begin(), cover.end(), 0), W * static_cast<int>(windows.size()));
        shift = next_shift(plan, shift);
      }
    }
  }
}

// How far the windows move each step. 10 (the reference's) wherever it is shorter than the
// window; shorter windows move by 10 % W, or by 1 where that is 0, so they still move.
TEST(HyAvatarScheduleWindows, ShiftOffsetForShortWindows) {
  const std::vector<std::pair<int, int>> offsets{{2, 1}, {3, 1}, {4, 2}, {5, 1}, {7, 3}, {9, 1},
                                                 {10, 1}, {11, 10}, {17, 10}, {33, 10}, {65, 10}};
  for (const auto& [W, offset] : offsets) {
    SCOPED_TRACE("W " + std::to_string(W));
    const WindowPlan plan = plan_windows(3000, W);
    ASSERT_FALSE(plan.single_window);
    EXPECT_EQ(plan.shift_offset, offset);
    std::vector<int> shifts{0};
    for (int step = 0; step < 3; ++step) shifts.push_back(next_shift(plan, shifts.back()));
    EXPECT_EQ(shifts, (std::vector<int>{0, offset % W, 2 * offset % W, 3 * offset % W}));
  }
  // W = 5: the seams visit every position of the window in turn.
  const WindowPlan five = plan_windows(300, 5);
  std::vector<int> shifts{0};
  for (int step = 0; step < 5; ++step) shifts.push_back(next_shift(five, shifts.back()));
  EXPECT_EQ(shifts, (std::vector<int>{0, 1, 2, 3, 4, 0}));
}

// The sizes for a few window lengths worked by hand from the reference's formulas.
TEST(HyAvatarScheduleWindows, SizesWorkedByHand) {
  // W = 5: V = 16 video frames per window step. 300 frames: 300/16 = 18 -> noise 19*4+1 =
  // 77 latent frames, audio padded to 19*16+4 = 308; 76 latent frames kept.
  WindowPlan p = plan_windows(300, 5);
  EXPECT_EQ(p.noise_frames, 77);
  EXPECT_EQ(p.infer_length, 77);
  EXPECT_EQ(p.padded_audio_frames, 308);
  EXPECT_EQ(p.video_latent_frames, 76);
  EXPECT_EQ(windows_at(p, 0).size(), 16u);   // ceil(77 / 5)
  // W = 2: V = 4. 17 frames -> noise 5*1+1 = 6, audio 24; 5 kept.
  p = plan_windows(17, 2);
  EXPECT_EQ(p.noise_frames, 6);
  EXPECT_EQ(p.padded_audio_frames, 24);
  EXPECT_EQ(p.video_latent_frames, 5);
  EXPECT_FALSE(p.single_window);
  // W = 5, 17 audio frames (one window's 4*5 - 3): video_latent_frames == W -> single window,
  // audio cut to 4*W = 20 (the reference's 132 for 33).
  p = plan_windows(17, 5);
  EXPECT_TRUE(p.single_window);
  EXPECT_EQ(p.noise_frames, 9);  // 17/16 = 1 -> 2*4+1
  EXPECT_EQ(p.infer_length, 5);
  EXPECT_EQ(p.padded_audio_frames, 20);
  EXPECT_EQ(p.shift_offset, 0);
  // W = 65: V = 256. 3000 frames -> 3000/256 = 11 -> noise 12*64+1 = 769, audio 12*256+4.
  p = plan_windows(3000, 65);
  EXPECT_EQ(p.noise_frames, 769);
  EXPECT_EQ(p.padded_audio_frames, 3076);
  EXPECT_EQ(p.video_latent_frames, 751);  // 3000 = 4*750 -> 3001 video frames
}

// The default window is the reference's: the plan is its formulas with 33, 32, 128, 132.
TEST(HyAvatarScheduleWindows, DefaultWindowIsTheReferences) {
  for (int n : {1, 50, 125, 128, 129, 130, 131, 132, 200, 255, 256, 400, 1000, 3000}) {
    SCOPED_TRACE(std::to_string(n) + " audio frames");
    const WindowPlan d = plan_windows(n), p = plan_windows(n, 33);
    EXPECT_EQ(d.window, 33);
    const int video_length = ((n / 4 * 4 + 1) - 1) / 4 + 1;
    const int infer = (n / 128 + 1) * 32 + 1;
    const bool single = video_length == 33 || infer == 33;
    for (const WindowPlan& q : {d, p}) {
      EXPECT_EQ(q.video_latent_frames, video_length);
      EXPECT_EQ(q.noise_frames, infer);
      EXPECT_EQ(q.single_window, single);
      EXPECT_EQ(q.infer_length, single ? 33 : infer);
      EXPECT_EQ(q.padded_audio_frames, single ? 132 : (n / 128 + 1) * 128 + 4);
      EXPECT_EQ(q.shift_offset, single ? 0 : 10);
    }
    int shift = 0;
    for (int step = 0; step < 6; ++step) {
      const auto a = windows_at(d, shift), b = windows_at(p, shift);
      ASSERT_EQ(a.size(), b.size());
      for (size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].latent_frames, b[i].latent_frames);
        EXPECT_EQ(a[i].audio_frames, b[i].audio_frames);
      }
      EXPECT_EQ(next_shift(d, shift), single ? shift : (shift + 10) % 33);
      shift = next_shift(d, shift);
    }
  }
}

TEST(HyAvatarScheduleWindows, WindowBelowTwoIsRefused) {
  for (int W : {1, 0, -3}) {
    try {
      plan_windows(100, W);
      ADD_FAILURE() << "W " << W << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("at least 2 latent frames"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(plan_windows(100, 2));
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
