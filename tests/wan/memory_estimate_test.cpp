// The ladder's host-memory estimate against the peak RSS a real run reaches on this CPU.
// Each case runs in a forked child (so earlier cases' allocations and the allocator's
// cached arenas do not count), resets the peak (/proc/self/clear_refs), loads a
// random-weight model, and runs encode -> denoise -> decode. The measured increase must
// be covered by the estimate minus the fixed worker overhead (which this process already
// carries), and the estimate may not exceed it by more than the stated margin, so both
// an under-estimate (OOM) and a wildly padded one (jobs refused that would fit) fail.

#include <cstdio>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "ladder.hpp"
#include "model_specs.hpp"
#include "sampler.hpp"
#include "t2v_model.hpp"
#include "process_memory.hpp"

namespace reel::wan {
namespace {


// Margin: measured <= estimate <= kOverFactor x measured + kSlack.
constexpr double kOverFactor = 2.0;
constexpr int64_t kSlack = int64_t{96} << 20;

// Runs one job in a child; returns the child's peak RSS increase in bytes (-1 on failure)
// and prints the peak after each stage (load, encode, denoise, decode), to show where
// an estimate goes wrong.
int64_t measured_increase(const ModelSpec& spec, const Rung& rung, const JobShape& shape) {
  const std::vector<double> r = measure_in_child([&] {
    torch::NoGradGuard no_grad;
    const int64_t base = proc_status_kib("VmRSS:");
    auto mib = [&] { return (proc_status_kib("VmHWM:") - base) / 1024.0; };
    T2VModel m = T2VModel::load(spec, rung, "cpu", "");
    const double loaded = mib();
    DenoiseRequest req;
    auto ls = latent_shape(spec.vae.z_dim, shape.frames, shape.height, shape.width, 4, 8);
    req.noise = NoiseSource(1).normal(ls[0], ls[1], ls[2], ls[3]);
    req.context = m.encode("a memory test");
    req.negative = m.encode("");
    req.steps = shape.steps;
    if (spec.i2v) {  // a 4:3 image at the job's size: CLIP tokens and the conditioning VAE encode
      torch::Tensor image = torch::rand({3, shape.height * 3 / 4, shape.height}) * 2 - 1;
      req.clip_fea = m.encode_image(image);
      req.y = m.condition(image, shape.frames, I2VSize{shape.height / 8, shape.width / 8, shape.height, shape.width});
    }
    const double encoded = mib();
    torch::Tensor latent = m.denoise(req);
    const double denoised = mib();
    torch::Tensor video = m.decode(latent);
    torch::Tensor rgb = ((video + 1) * 127.5).round().clamp(0, 255).to(torch::kUInt8).contiguous();
    const double decoded = mib();
    std::printf("[ memory ] peak after load %.1f, encode %.1f, denoise %.1f, decode %.1f MiB\n", loaded, encoded,
                denoised, decoded);
    std::fflush(stdout);
    return std::vector<double>{decoded * 1048576.0};
  });
  return r.empty() ? -1 : static_cast<int64_t>(r[0]);
}

// The i2v version: DiT with in_dim 36 and img_emb, and a CLIP tower big enough to count.
ModelSpec medium_i2v_model() {
  ModelSpec m = medium_random_model();
  m.name = "memory-test-medium-i2v";
  m.i2v = true;
  m.clip = {224, 14, 512, 2048, 8, 6};
  m.dit.in_dim = 36, m.dit.img_dim = m.clip.dim;
  m.max_area = 128 * 128;
  return m;
}

void check_case(const ModelSpec& spec, const JobShape& shape) {
  const Rung rung = parse_rung({{"name", "cpu"}});
  const int64_t estimate = wan::estimate(spec, shape, rung).host - kWorkerOverheadBytes;
  const int64_t measured = measured_increase(spec, rung, shape);
  ASSERT_GT(measured, 0) << "the child run failed (see stderr)";
  std::printf("[ memory ] %s %lldx%lldx%lld, %lld steps: estimate %.1f MiB, measured %.1f MiB (%.2fx)\n",
              spec.name.c_str(), static_cast<long long>(shape.width), static_cast<long long>(shape.height),
              static_cast<long long>(shape.frames), static_cast<long long>(shape.steps), estimate / 1048576.0,
              measured / 1048576.0, static_cast<double>(estimate) / measured);
  EXPECT_GE(estimate, measured) << "under-estimate: the scheduler would admit a job that does not fit";
  EXPECT_LE(estimate, kOverFactor * measured + kSlack) << "over-estimate beyond the stated margin";
}

TEST(MemoryEstimate, WeightDominatedRunIsCovered) {
  check_case(medium_random_model(), {2, 5, 128, 128});
}

TEST(MemoryEstimate, ActivationDominatedRunIsCovered) {
  check_case(*find_model("wan2.1-t2v-tiny"), {2, 17, 384, 384});
}

TEST(MemoryEstimate, ImageToVideoRunsAreCovered) {
  check_case(medium_i2v_model(), {2, 5, 128, 128});
  check_case(*find_model("wan2.1-i2v-tiny"), {2, 17, 384, 384});
}

}  // namespace
}  // namespace reel::wan
