// avatar_bench: hunyuan-avatar-tiny's whole pipeline on this machine's CPU, rung by rung,
// next to the ladder's estimate for the same job (results: docs/BENCHMARKS.md): each
// rung runs end to end in a forked child set up like a worker, and its peak RSS is printed
// beside estimate_avatar()'s host + device bytes (on a CPU device both are host memory)
// and the ratio. The time column is relative to the first rung measured
// in the same run. Weights are random (seeded): memory and speed do not depend on them.
//
//   avatar_bench [--seconds S] [--image-size PX] [--steps N]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "avatar_model.hpp"
#include "llava_image.hpp"
#include "process_memory.hpp"

namespace {

using namespace reel::hyavatar;
using Clock = std::chrono::steady_clock;

struct Job {
  double seconds = 4;
  int64_t image_size = 256;
  int64_t steps = 4;
};

std::vector<double> run_rung(const AvatarRung& rung, const AvatarShape& s, const Job& job) {
  return reel::wan::measure_in_child([&] {
    torch::NoGradGuard no_grad;
    const auto t0 = Clock::now();
    const AvatarSpec& spec = *find_avatar_model("hunyuan-avatar-tiny");
    AvatarParts parts = load_avatar(spec, avatar_placement(rung, torch::kCPU));
    AvatarRequest r;
    r.image = torch::randint(0, 255, {job.image_size, job.image_size, 3}, torch::kUInt8);
    r.waveform = torch::randn({static_cast<int64_t>(job.seconds * 16000)}) * 0.1;
    r.prompt = "a person talks";
    apply_avatar_shape(r, s, rung, spec);
    (void)generate_avatar(parts, r);
    return std::vector<double>{static_cast<double>(reel::wan::proc_status_kib("VmHWM:")) * 1024,
                               std::chrono::duration<double>(Clock::now() - t0).count()};
  });
}

}  // namespace

int main(int argc, char** argv) {
  Job job;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) job.seconds = std::stod(argv[++i]);
    else if (!std::strcmp(argv[i], "--image-size") && i + 1 < argc) job.image_size = std::stoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) job.steps = std::stoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: avatar_bench [--seconds S] [--image-size PX] [--steps N]\n");
      return 2;
    }
  }
  const AvatarSizes& z = avatar_sizes(*find_avatar_model("hunyuan-avatar-tiny"));
  std::printf("avatar_bench: hunyuan-avatar-tiny, %lld px portrait, %.1f s audio, %lld steps, CPU, %d threads\n",
              static_cast<long long>(job.image_size), job.seconds, static_cast<long long>(job.steps),
              torch::get_num_threads());
  std::printf("%-16s %7s %7s %6s %12s %13s %9s %9s\n", "rung", "side", "window", "steps", "peak RSS MiB",
              "estimate MiB", "est/peak", "time x");
  double base_seconds = 0;
  for (const auto& entry : avatar_ladder()) {
    const AvatarRung rung = parse_avatar_rung(entry);
    AvatarShape q;
    q.image_size = job.image_size;
    q.width = q.height = job.image_size;
    q.steps = job.steps;
    q.audio_seconds = job.seconds;
    AvatarShape s = effective_avatar_shape(q, rung);
    const auto [w, h] = reference_image_size(job.image_size, job.image_size, s.image_size);
    s.width = w;
    s.height = h;
    const AvatarEstimate e = estimate_avatar(z, s, rung);
    const std::vector<double> m = run_rung(rung, s, job);
    if (m.size() != 2) {
      std::printf("%-16s failed\n", rung.name.c_str());
      continue;
    }
    if (base_seconds == 0) base_seconds = m[1];
    const double est = static_cast<double>(e.host + e.device);
    std::printf("%-16s %7lld %7lld %6lld %12.0f %13.0f %9.2f %9.2f\n", rung.name.c_str(), static_cast<long long>(s.width),
                static_cast<long long>(s.window_frames), static_cast<long long>(s.steps), m[0] / 1048576.0,
                est / 1048576.0, est / m[0], m[1] / base_seconds);
  }
  return 0;
}
