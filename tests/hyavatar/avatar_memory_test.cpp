// The Avatar ladder's memory estimate against the peak RSS a real run reaches on this CPU
// (hunyuan-avatar-tiny, whole pipeline: encoders, DiT, VAE decode). Each case runs in a
// forked child set up like a worker (so earlier cases' allocations do not count); the
// measured increase must be covered by the estimate minus the fixed worker overhead (which
// this process already carries), and the estimate may not exceed it by more than the stated
// margin, so both an under-estimate (OOM) and a padded one (jobs refused that would fit) fail.
#include <cstdio>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "hyavatar/avatar_model.hpp"
#include "hyavatar/llava_image.hpp"
#include "process_memory.hpp"

namespace reel::hyavatar {
namespace {

// Margin: measured <= estimate <= kOverFactor x measured + kSlack (the encoders' and the
// VAE's fixed terms are sized for the release and weigh more in a tiny model).
constexpr double kOverFactor = 2.0;
constexpr int64_t kSlack = int64_t{256} << 20;

struct Case {
  const char* rung;
  int64_t side;
  double seconds;
};

TEST(AvatarMemory, EstimatesCoverTheMeasuredPeak) {
  const AvatarSpec& spec = *find_avatar_model("hunyuan-avatar-tiny");
  const Case cases[] = {{"cpu", 192, 2.0}, {"balanced", 192, 2.0}, {"emergency", 192, 2.0}};
  for (const Case& c : cases) {
    const AvatarRung rung = parse_avatar_rung({{"name", c.rung}});
    AvatarShape q;
    q.image_size = q.width = q.height = c.side;
    q.steps = 2;
    q.audio_seconds = c.seconds;
    AvatarShape s = effective_avatar_shape(q, rung);
    const auto [w, h] = reference_image_size(c.side, c.side, s.image_size);
    s.width = w;
    s.height = h;
    const AvatarEstimate e = estimate_avatar(avatar_sizes(spec), s, rung);
    const int64_t estimate = e.host + e.device - kAvatarWorkerOverheadBytes;
    const std::vector<double> m = wan::measure_in_child([&] {
      torch::NoGradGuard no_grad;
      const int64_t base = wan::proc_status_kib("VmRSS:");
      AvatarParts parts = load_avatar(spec, avatar_placement(rung, torch::kCPU));
      AvatarRequest r;
      r.image = torch::randint(0, 255, {c.side, c.side, 3}, torch::kUInt8);
      r.waveform = torch::randn({static_cast<int64_t>(c.seconds * 16000)}) * 0.1;
      apply_avatar_shape(r, s, rung, spec);
      (void)generate_avatar(parts, r);
      return std::vector<double>{static_cast<double>(wan::proc_status_kib("VmHWM:") - base) * 1024};
    });
    ASSERT_EQ(m.size(), 1u) << c.rung << ": the run failed";
    const auto measured = static_cast<int64_t>(m[0]);
    std::printf("[ memory ] %-10s %lld px, window %lld, %.0f s: measured %.0f MiB, estimate %.0f MiB (%.2fx)\n", c.rung,
                static_cast<long long>(s.width), static_cast<long long>(s.window_frames), s.audio_seconds,
                measured / 1048576.0, estimate / 1048576.0, static_cast<double>(estimate) / measured);
    EXPECT_LE(measured, estimate) << c.rung << ": the estimate is short";
    EXPECT_LE(estimate, kOverFactor * measured + kSlack) << c.rung << ": the estimate is padded";
  }
}

}  // namespace
}  // namespace reel::hyavatar
