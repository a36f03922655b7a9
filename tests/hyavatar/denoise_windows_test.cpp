// The sampling loop (plugins/hyavatar/denoise_loop.hpp) with a window shorter than the
// reference's 33 latent frames, driven by a toy DiT: no weights, so it runs in
// milliseconds and every value it returns is known. The toy checks what the loop hands it
// (shapes for W, the unconditional audio, which audio frames line up with which latent
// frames, the step cache's tokens) and predicts velocity -x, whose result after every step
// can be computed frame by frame (x * (1 + sigma - sigma_next), rounded to bf16 like the
// loop does), so the final latents check the windows' bookkeeping: every frame stepped
// exactly once per step, overlaps averaged, the kept frames cut at the end.
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "audio_windows.hpp"
#include "denoise_loop.hpp"

namespace reel::hyavatar {
namespace {

constexpr int64_t kChannels = 2, kHeight = 4, kWidth = 4;  // 2x2 patches: 4 tokens a frame
constexpr int64_t kTextTokens = 3, kHidden = 2;

// Audio windows whose every value is its frame's index + 1 (exact in float16 up to 2048),
// so the loop's choice of frames is visible in what the DiT receives.
torch::Tensor numbered_audio_windows(int64_t frames) {
  auto index = torch::arange(1, frames + 1, torch::kFloat32).view({1, frames, 1, 1, 1});
  return index.expand({1, frames, 2, 3, 2}).contiguous();
}

AvatarConditions toy_conditions(const torch::Tensor& audio_prompts, int window) {
  AvatarConditions c;
  c.prompt_embeds = torch::ones({1, kTextTokens, 4});
  c.prompt_mask = torch::ones({1, kTextTokens}, torch::kInt64);
  c.negative_prompt_embeds = torch::zeros({1, kTextTokens, 4});
  c.negative_prompt_mask = torch::ones({1, kTextTokens}, torch::kInt64);
  c.prompt_embeds_2 = torch::ones({1, 4});
  c.negative_prompt_embeds_2 = torch::zeros({1, 4});
  c.ref_latents = torch::zeros({1, kChannels, 1, kHeight, kWidth});
  c.audio_prompts = audio_prompts;
  c.uncond_audio_prompts = uncond_audio_prompts(audio_prompts, 4 * window - 3);
  c.face_mask = torch::ones({1, 1, 1, kHeight, kWidth});
  c.motion_exp = torch::ones({1, 1});
  c.motion_pose = torch::ones({1, 1});
  c.fps = torch::full({1}, 25.0);
  return c;
}

TEST(HyAvatarDenoiseWindows, FiveFrameWindowsOverLongAudio) {
  const int W = 5;
  const int64_t real_frames = 300;
  // predict()'s padding for a window of 5: at least 4*5 - 3 = 17 frames, else 5 more.
  const auto prompts = pad_audio_prompts(numbered_audio_windows(real_frames), 4 * W - 3);
  ASSERT_EQ(prompts.size(1), real_frames + kAudioPromptTailFrames);
  const AvatarConditions c = toy_conditions(prompts, W);
  const WindowPlan plan = plan_windows(static_cast<int>(prompts.size(1)), W);
  ASSERT_FALSE(plan.single_window);

  SamplerSettings s;
  s.steps = 18;   // both guidance phases, and steps 16-17 are cached steps
  s.window = W;
  const FlowSchedule schedule = flow_schedule(s.steps, s.shift);
  torch::manual_seed(7);
  const auto noise = torch::randn({1, kChannels, plan.noise_frames, kHeight, kWidth});

  // The toy DiT follows the schedule's windows in the loop's order to know which frames
  // each call should get.
  int step = 0, shift = 0, calls = 0, cached_calls = 0;
  size_t window_in_step = 0;
  std::vector<Window> windows = windows_at(plan, shift);
  const int64_t tokens = 4 /*ref*/ + W * 4 /*image*/ + kTextTokens;
  DitFn toy = [&](const DitCall& call) {
    EXPECT_EQ(call.x.sizes().vec(), (std::vector<int64_t>{2, kChannels, W, kHeight, kWidth}));
    EXPECT_EQ(call.audio_prompts.size(0), 2);
    EXPECT_EQ(call.audio_prompts.size(1), 4 * W - 3);
    EXPECT_EQ(call.audio_prompts[0].abs().sum().item<double>(), 0.0) << "the unconditional half is silent";
    const Window& w = windows.at(window_in_step);
    const auto cond = call.audio_prompts[1];
    for (int64_t k = 0; k < 4 * W - 3; ++k) {
      const int a = w.audio_frames[static_cast<size_t>(k)];
      const double expected = a < real_frames ? a + 1 : 0;   // past the real audio: silence
      EXPECT_EQ(cond[k].max().item<double>(), expected) << "call " << calls << ", audio frame " << k;
      EXPECT_EQ(cond[k].min().item<double>(), expected);
    }
    DitResult r;
    r.x = -call.x;
    if (call.cache_in.defined()) {
      ++cached_calls;
      EXPECT_TRUE(is_cached_step(step));
      EXPECT_EQ(call.cache_in.sizes().vec(), (std::vector<int64_t>{2, tokens, kHidden}));
    } else {
      EXPECT_FALSE(is_cached_step(step));
      r.cache_out = torch::randn({2, tokens, kHidden});
    }
    ++calls;
    if (++window_in_step == windows.size()) {   // the step's last window: the next step begins
      window_in_step = 0;
      ++step;
      shift = next_shift(plan, shift);
      windows = windows_at(plan, shift);
    }
    return r;
  };

  // Velocity -x makes every frame evolve on its own: x <- bf16(x + (-x) * (sigma' - sigma)).
  // Each frame gets the same value from every window covering it, so the average is exact.
  auto expected = noise.clone();
  std::vector<bool> step_exact;
  auto observe = [&](int i, const torch::Tensor& latents_all) {
    const float ds = schedule.sigmas[static_cast<size_t>(i) + 1] - schedule.sigmas[static_cast<size_t>(i)];
    expected = (expected + (-expected) * ds).to(torch::kBFloat16).to(torch::kFloat32);
    EXPECT_EQ(latents_all.size(2), plan.infer_length);
    step_exact.push_back(torch::equal(latents_all, expected));
  };
  const auto out = denoise(toy, c, noise, s, observe);

  EXPECT_EQ(out.sizes().vec(), (std::vector<int64_t>{1, kChannels, plan.video_latent_frames, kHeight, kWidth}));
  EXPECT_EQ(4 * (out.size(2) - 1) + 1, prompts.size(1) / 4 * 4 + 1);
  EXPECT_GE(4 * (out.size(2) - 1) + 1, real_frames) << "the video covers the real audio";
  const int64_t windows_per_step = (plan.infer_length + W - 1) / W;
  EXPECT_EQ(calls, s.steps * windows_per_step);
  EXPECT_EQ(cached_calls, 2 * windows_per_step);   // steps 16 and 17
  EXPECT_EQ(step_exact, std::vector<bool>(static_cast<size_t>(s.steps), true));
  EXPECT_TRUE(torch::equal(out, expected.slice(2, 0, plan.video_latent_frames)));
}

TEST(HyAvatarDenoiseWindows, WrongNoiseOrUnconditionalAudioIsNamed) {
  const int W = 5;
  const auto prompts = pad_audio_prompts(numbered_audio_windows(40), 4 * W - 3);
  AvatarConditions c = toy_conditions(prompts, W);
  SamplerSettings s;
  s.steps = 2;
  s.window = W;
  DitFn never = [](const DitCall&) -> DitResult { throw std::logic_error("the DiT must not run"); };
  const WindowPlan plan = plan_windows(static_cast<int>(prompts.size(1)), W);
  auto message = [&](const torch::Tensor& noise) -> std::string {
    try {
      denoise(never, c, noise, s);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  // Noise sized for the reference's 33-frame windows.
  const WindowPlan reference = plan_windows(static_cast<int>(prompts.size(1)));
  ASSERT_NE(reference.noise_frames, plan.noise_frames);
  std::string m = message(torch::zeros({1, kChannels, reference.noise_frames, kHeight, kWidth}));
  EXPECT_NE(m.find(std::to_string(plan.noise_frames)), std::string::npos) << m;
  EXPECT_NE(m.find("windows of 5 latent frames"), std::string::npos) << m;
  // The reference's 129-frame unconditional audio with 5-frame windows.
  c.uncond_audio_prompts = torch::zeros({1, kAudioPromptMinFrames, 2, 3, 2});
  m = message(torch::zeros({1, kChannels, plan.noise_frames, kHeight, kWidth}));
  EXPECT_NE(m.find("17 audio frames"), std::string::npos) << m;
  // A window below 2.
  s.window = 1;
  m = message(torch::zeros({1, kChannels, plan.noise_frames, kHeight, kWidth}));
  EXPECT_NE(m.find("at least 2 latent frames"), std::string::npos) << m;
}

}  // namespace
}  // namespace reel::hyavatar
