// t2v_bench: the Wan 2.1 components on this machine's CPU, against this machine's own
// fp32 matmul rate measured in the same run (2048^2 x 2048^2, the baseline).
//
//   DiT forward at three latent shapes, with the 1.3B model's sizes but --dit-layers
//     blocks (default 4 of 30: the time per block is what scales), its FLOP count
//     (WanDiT::flops) and the achieved fraction of the matmul rate;
//   UMT5-XXL encode of one 512-token prompt with --t5-layers of its 24 blocks (vocab cut
//     to 32k: the embedding lookup costs nothing), time per block and for 24;
//   VAE decode (the release's sizes) of a 5-frame 384x384 video, whole and tiled;
//   peak RSS per placement rung: each rung of the ladder run end to end in a forked child
//     on the CPU with a random-weight model (at 512 wide, 8 blocks), next to the rung's
//     estimate (host + device: on a CPU device both are host memory).
// Weights are random (seeded): speed and memory do not depend on their values.
//
//   t2v_bench [--dit-layers N] [--t5-layers N] [--quick] [--rungs-only]

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "dit.hpp"
#include "ladder.hpp"
#include "model_specs.hpp"
#include "process_memory.hpp"
#include "sampler.hpp"
#include "t2v_model.hpp"
#include "t5_encoder.hpp"
#include "vae.hpp"

namespace {

using namespace reel::wan;
namespace tensorio = reel::tensorio;
using Clock = std::chrono::steady_clock;

// Best of `repeats` runs (after one warm-up), in seconds.
double best_time(int repeats, const std::function<void()>& f) {
  f();
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

double matmul_gflops() {
  torch::manual_seed(0);
  auto a = torch::randn({2048, 2048}), b = torch::randn({2048, 2048});
  const double s = best_time(3, [&] { (void)torch::mm(a, b); });
  return 2.0 * 2048 * 2048 * 2048 / s / 1e9;
}

DiTConfig dit_config(const ModelSpec& spec, int64_t layers) {
  DiTConfig c;
  c.dim = spec.dit.dim, c.ffn_dim = spec.dit.ffn_dim, c.freq_dim = spec.dit.freq_dim;
  c.in_dim = spec.dit.in_dim, c.out_dim = spec.dit.out_dim, c.num_heads = spec.dit.num_heads;
  c.num_layers = layers, c.text_len = spec.dit.text_len;
  return c;
}

void bench_dit(const ModelSpec& spec, int64_t layers, double gflops, bool quick) {
  DitDims dims = spec.dit;
  dims.num_layers = layers;
  tensorio::Weights w(random_weights(dit_shapes(dims, spec.t5.dim), 1), "bench:dit");
  WanDiT dit = WanDiT::load(w, dit_config(spec, layers));
  std::printf("\nDiT forward (%s sizes, %lld of %lld blocks, fp32, batch 1)\n", spec.name.c_str(),
              static_cast<long long>(layers), static_cast<long long>(spec.dit.num_layers));
  std::printf("%-26s %8s %10s %9s %9s %11s\n", "latent [C,F,H,W] (video)", "tokens", "GFLOP", "seconds", "GFLOP/s",
              "of matmul");
  const std::vector<std::vector<int64_t>> shapes = {{16, 2, 32, 32}, {16, 1, 60, 104}, {16, 3, 60, 104}};
  for (const auto& shape : shapes) {
    if (quick && shape[1] > 1) continue;
    torch::Tensor x = torch::randn(shape), t = torch::full({1}, 500.0), ctx = torch::randn({spec.dit.text_len, spec.t5.dim});
    const int64_t tokens = shape[1] * (shape[2] / 2) * (shape[3] / 2);
    const double flop = dit.flops(shape);
    const double s = best_time(1, [&] { (void)dit.forward(x, t, ctx, tokens); });
    char label[64];
    std::snprintf(label, sizeof label, "[16,%lld,%lld,%lld] (%lldx%lld, %lldf)", static_cast<long long>(shape[1]),
                  static_cast<long long>(shape[2]), static_cast<long long>(shape[3]),
                  static_cast<long long>(shape[3] * 8), static_cast<long long>(shape[2] * 8),
                  static_cast<long long>(4 * (shape[1] - 1) + 1));
    std::printf("%-26s %8lld %10.1f %9.2f %9.1f %10.0f%%\n", label, static_cast<long long>(tokens), flop / 1e9, s,
                flop / s / 1e9, 100.0 * flop / s / 1e9 / gflops);
  }
}

void bench_t5(const ModelSpec& spec, int64_t layers) {
  T5Dims dims = spec.t5;
  dims.vocab = 32000, dims.num_layers = layers;
  tensorio::Weights w(random_weights(t5_shapes(dims), 2), "bench:t5");
  T5Encoder t5 = T5Encoder::load(w, dims.num_heads);
  auto ids = torch::randint(2, dims.vocab, {1, spec.dit.text_len}, torch::kInt64);
  auto mask = torch::ones({1, spec.dit.text_len}, torch::kInt64);
  const double s = best_time(1, [&] { (void)t5.forward(ids, mask); });
  std::printf("\nUMT5-XXL encode (%lld tokens, %lld of %lld blocks, fp32): %.2f s, %.2f s per block, ~%.1f s for %lld\n",
              static_cast<long long>(spec.dit.text_len), static_cast<long long>(layers),
              static_cast<long long>(spec.t5.num_layers), s, s / layers, s / layers * spec.t5.num_layers,
              static_cast<long long>(spec.t5.num_layers));
}

void bench_vae(const ModelSpec& spec) {
  tensorio::Weights w(random_weights(vae_shapes(spec.vae), 3), "bench:vae");
  WanVae vae = WanVae::load(w, kVaeMean, kVaeStd);
  torch::Tensor z = torch::randn({16, 2, 48, 48});
  const double whole = best_time(1, [&] { (void)vae.decode(z); });
  const double tiled = best_time(1, [&] { (void)vae.decode_tiled(z, kVaeTile, kVaeTileOverlap); });
  std::printf("\nVAE decode (release sizes, latent [16,2,48,48] -> 5 frames 384x384, fp32): whole %.2f s, "
              "tiled (%lld, overlap %lld) %.2f s (%.2fx)\n",
              whole, static_cast<long long>(kVaeTile), static_cast<long long>(kVaeTileOverlap), tiled, tiled / whole);
}

// Peak RSS (bytes) of a whole run at `rung` in a fresh child set up like a worker; -1 on failure.
int64_t rung_peak(const ModelSpec& spec, const Rung& rung, const JobShape& s, double* seconds) {
  const std::vector<double> r = measure_in_child([&] {
    torch::NoGradGuard no_grad;
    auto t0 = Clock::now();
    T2VModel m = T2VModel::load(spec, rung, "cpu", "");
    DenoiseRequest req;
    auto ls = latent_shape(spec.vae.z_dim, s.frames, s.height, s.width, 4, 8);
    req.noise = NoiseSource(1).normal(ls[0], ls[1], ls[2], ls[3]);
    req.context = m.encode("a benchmark");
    req.negative = m.encode("");
    req.steps = s.steps;
    (void)m.decode(m.denoise(req));
    return std::vector<double>{static_cast<double>(proc_status_kib("VmHWM:")) * 1024,
                               std::chrono::duration<double>(Clock::now() - t0).count()};
  });
  if (r.size() != 2) return -1;
  *seconds = r[1];
  return static_cast<int64_t>(r[0]);
}

void bench_rungs(bool quick) {
  const ModelSpec m = medium_random_model();
  const JobShape requested{quick ? int64_t{2} : int64_t{4}, 9, 256, 256};
  std::printf("\nPeak RSS per rung (%s model: DiT 512x8 blocks, T5 512x4, VAE dim 32; job %lldx%lld, %lld frames, "
              "%lld steps; run on the CPU, fresh process each)\n",
              m.name.c_str(), static_cast<long long>(requested.width), static_cast<long long>(requested.height),
              static_cast<long long>(requested.frames), static_cast<long long>(requested.steps));
  std::printf("%-12s %12s %16s %9s\n", "rung", "peak RSS MiB", "estimate MiB", "seconds");
  for (const auto& entry : ladder()) {
    const Rung r = parse_rung(entry);
    const JobShape s = effective_shape(requested, r);
    const MemoryEstimate e = estimate(m, s, r);
    double seconds = 0;
    const int64_t peak = rung_peak(m, r, s, &seconds);
    std::printf("%-12s %12.0f %16.0f %9.2f\n", r.name.c_str(), peak / 1048576.0, (e.host + e.device) / 1048576.0,
                seconds);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int64_t dit_layers = 4, t5_layers = 2;
  bool quick = false, rungs_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--dit-layers") && i + 1 < argc) dit_layers = std::stoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--t5-layers") && i + 1 < argc) t5_layers = std::stoll(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--rungs-only")) rungs_only = true;
    else {
      std::fprintf(stderr, "usage: t2v_bench [--dit-layers N] [--t5-layers N] [--quick] [--rungs-only]\n");
      return 2;
    }
  }
  torch::NoGradGuard no_grad;
  std::printf("t2v_bench: %d intra-op threads\n", torch::get_num_threads());
  // The rungs first: each runs in a child forked from this process, whose peak RSS
  // starts from this process's RSS at the fork, so nothing large may have run yet.
  bench_rungs(quick);
  if (rungs_only) return 0;
  const double gflops = matmul_gflops();
  std::printf("\nbaseline: fp32 matmul 2048^2: %.1f GFLOP/s\n", gflops);
  const ModelSpec& small = *find_model("wan2.1-t2v-1.3b");
  bench_dit(small, dit_layers, gflops, quick);
  bench_t5(small, t5_layers);
  if (!quick) bench_vae(small);
  return 0;
}
