// The built-in diagnostic model `sleep` on the plugin SDK: the same parameters as
// sleep_model_info() and the same behaviour as daemon/worker/sleep_model.cpp.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "builtin/builtin_plugins.hpp"
#include "sdk/reel_plugin.hpp"

namespace {

using reel::sdk::json;
namespace sdk = reel::sdk;

class SleepModel : public sdk::Model {
 public:
  json run(const json& job, const json& rung, const sdk::RunDirs& dirs, sdk::Host& host) override {
    // Params arrive validated with defaults filled in (ModelCatalog::validate).
    const double seconds = sdk::param<double>(job, "seconds", 1.0);
    const int64_t steps = std::max<int64_t>(1, sdk::param<int64_t>(job, "steps", 10));
    const int64_t fail_at = sdk::param<int64_t>(job, "fail_at_step", 0);
    using clock = std::chrono::steady_clock;
    const auto step_time = std::chrono::duration_cast<clock::duration>(
        std::chrono::duration<double>(seconds / static_cast<double>(steps)));
    const auto started = clock::now();

    host.progress(0, steps, "sleeping");
    for (int64_t step = 1; step <= steps; ++step) {
      // Sleep in short slices so a cancel is noticed within ~50 ms, as a real model
      // would notice it between denoising steps.
      auto step_end = clock::now() + step_time;
      while (clock::now() < step_end) {
        host.check_cancelled("at step " + std::to_string(step));
        clock::duration left = step_end - clock::now();
        std::this_thread::sleep_for(std::min<clock::duration>(left, std::chrono::milliseconds(50)));
      }
      if (step == fail_at)
        throw sdk::InternalError("sleep: failing at step " + std::to_string(step) + " as asked (fail_at_step)");
      host.progress(step, steps, "sleeping");
    }

    double took = std::chrono::duration<double>(clock::now() - started).count();
    std::string out = dirs.output_dir + "/result.json";
    std::ofstream f(out, std::ios::trunc);
    f << json{{"model", "sleep"}, {"job", job.value("id", "")}, {"params", job.value("params", json::object())},
              {"seconds_taken", took}}
             .dump(2)
      << "\n";
    if (!f.flush())
      throw sdk::InternalError("sleep: cannot write " + out + "; check free space in the output folder");
    return {{"outputs", {out}}, {"info", {{"seconds_taken", took}, {"steps", steps}}}};
  }
};

class SleepPlugin : public sdk::Plugin {
 public:
  json describe() override {
    return json::parse(R"({"models": [{
      "name": "sleep",
      "description": "Diagnostic model: sleeps in steps, reporting progress; for testing the job path",
      "params": [
        {"name": "seconds", "type": "number", "min": 0, "max": 86400, "default": 1,
         "help": "total time to sleep, in seconds"},
        {"name": "steps", "type": "integer", "min": 1, "max": 100000, "default": 10,
         "help": "progress steps the sleep is divided into"},
        {"name": "fail_at_step", "type": "integer", "min": 0, "max": 100000, "default": 0,
         "help": "fail the job when this step is reached (1-based), to exercise failure and retry; 0 never fails"}
      ],
      "inputs": [],
      "outputs": ["application/json"],
      "ladder": [{"name": "default", "kind": "placement", "help": "runs on the host; no device memory", "settings": {}}],
      "budget": "memory"
    }]})");
  }

  json estimate(const json& job, const json& rung) override {
    int64_t steps = std::max<int64_t>(1, sdk::param<int64_t>(job, "steps", 10));
    return {{"device_bytes", 0},
            {"host_bytes", 8 << 20},
            {"resident_device_bytes", 0},
            {"resident_host_bytes", 0},
            {"relative_time", 1.0},
            {"cpu_only", true},
            {"effective", {{"steps", steps}}}};
  }

  std::unique_ptr<sdk::Model> load(const std::string& model, const json& rung, const std::string& device) override {
    if (model != "sleep") throw sdk::BadInputError("the builtin plugin has no model '" + model + "'");
    return std::make_unique<SleepModel>();
  }
};

}  // namespace

REEL_PLUGIN_BUILTIN(SleepPlugin, "builtin", REEL_VERSION, reel_builtin_sleep_entry)
