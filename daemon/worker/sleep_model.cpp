#include "worker/sleep_model.hpp"

#include <chrono>
#include <fstream>
#include <thread>

namespace reel {

std::vector<std::string> run_sleep_model(const Job& job, RunContext& ctx) {
  // Params arrive validated with defaults filled in (ModelCatalog::validate).
  const double seconds = job.params.value("seconds", 1.0);
  const int64_t steps = std::max<int64_t>(1, job.params.value("steps", int64_t{10}));
  const int64_t fail_at = job.params.value("fail_at_step", int64_t{0});
  const auto step_time = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(seconds / static_cast<double>(steps)));
  const auto started = std::chrono::steady_clock::now();

  ctx.progress(0, steps, "sleeping");
  for (int64_t step = 1; step <= steps; ++step) {
    // Sleep in short slices so a cancel is noticed within ~50 ms, as a real model
    // would notice it between denoising steps.
    auto step_end = std::chrono::steady_clock::now() + step_time;
    while (std::chrono::steady_clock::now() < step_end) {
      if (ctx.cancelled()) throw ModelError("cancelled", "cancelled at step " + std::to_string(step));
      std::chrono::steady_clock::duration left = step_end - std::chrono::steady_clock::now();
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
    }
    if (step == fail_at)
      throw ModelError("internal", "sleep: failing at step " + std::to_string(step) + " as asked (fail_at_step)");
    ctx.progress(step, steps, "sleeping");
  }

  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::string out = ctx.output_dir() + "/result.json";
  std::ofstream f(out, std::ios::trunc);
  f << Json{{"model", "sleep"}, {"job", job.id}, {"params", job.params}, {"seconds_taken", took}}.dump(2) << "\n";
  if (!f.flush())
    throw ModelError("internal", "sleep: cannot write " + out + "; check free space in the output folder");
  return {out};
}

}  // namespace reel
