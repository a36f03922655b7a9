// memtest: a test-only plugin that really allocates host memory as its estimate says,
// in two stages (denoise, decode) with a checkpoint between them, and fails with OOM
// above a configured limit. It lets tests drive the OOM fallback, checkpoint reuse and
// cancellation through the real ABI without a GPU. See docs/PLUGINS.md.
//
// Per rung: alloc(denoise) = megabytes MiB * factor, alloc(decode) = half of that.
// oom_above_mb / decode_oom_above_mb (0 = never) make a stage throw OomError when its
// allocation at the rung would exceed them.
#include <cstdio>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "sdk/reel_plugin.hpp"

namespace {

using reel::sdk::json;
namespace sdk = reel::sdk;

constexpr int64_t kMiB = 1 << 20;
constexpr int64_t kOverheadBytes = 16 * kMiB;  // fixed host overhead in every estimate

const json& ladder() {
  static const json l = json::parse(R"([
    {"name": "resident", "kind": "placement", "help": "everything on the device",
     "settings": {"factor": 1.0, "relative_time": 1, "cpu_only": false}},
    {"name": "offload", "kind": "placement", "help": "half the weights offloaded to the host",
     "settings": {"factor": 0.5, "relative_time": 2, "cpu_only": false}},
    {"name": "cpu", "kind": "placement", "help": "runs on the host only",
     "settings": {"factor": 0.25, "relative_time": 10, "cpu_only": true}},
    {"name": "half-steps", "kind": "quality", "help": "half the steps, a quarter of the memory",
     "settings": {"factor": 0.25, "relative_time": 0.5, "cpu_only": false, "steps_divisor": 2}}
  ])");
  return l;
}

struct Rung {
  std::string name;
  double factor = 1.0;
  double relative_time = 1.0;
  bool cpu_only = false;
  int64_t steps_divisor = 1;
};

Rung parse_rung(const json& rung) {
  if (!rung.is_object() || !rung.contains("name") || !rung["name"].is_string())
    throw sdk::BadInputError("memtest: the rung has no name: " + rung.dump());
  Rung r;
  r.name = rung["name"].get<std::string>();
  const json* settings = nullptr;
  for (const auto& entry : ladder())
    if (entry["name"] == r.name) settings = &entry["settings"];
  if (!settings) throw sdk::BadInputError("memtest: no rung '" + r.name + "'");
  r.factor = settings->value("factor", 1.0);
  r.relative_time = settings->value("relative_time", 1.0);
  r.cpu_only = settings->value("cpu_only", false);
  r.steps_divisor = settings->value("steps_divisor", int64_t{1});
  return r;
}

struct Plan {
  Rung rung;
  int64_t steps = 4;
  int64_t step_ms = 50;
  int64_t denoise_bytes = 0, decode_bytes = 0;
  int64_t oom_above_mb = 0, decode_oom_above_mb = 0;
};

Plan plan(const json& job, const json& rung) {
  Plan p;
  p.rung = parse_rung(rung);
  int64_t mb = sdk::param<int64_t>(job, "megabytes", 64);
  if (mb < 1 || mb > 4096) throw sdk::BadInputError("memtest: megabytes must be 1..4096, got " + std::to_string(mb));
  p.steps = std::max<int64_t>(1, sdk::param<int64_t>(job, "steps", 4) / p.rung.steps_divisor);
  p.step_ms = std::max<int64_t>(0, sdk::param<int64_t>(job, "step_ms", 50));
  p.denoise_bytes = static_cast<int64_t>(static_cast<double>(mb * kMiB) * p.rung.factor);
  p.decode_bytes = p.denoise_bytes / 2;
  p.oom_above_mb = sdk::param<int64_t>(job, "oom_above_mb", 0);
  p.decode_oom_above_mb = sdk::param<int64_t>(job, "decode_oom_above_mb", 0);
  return p;
}

std::string mib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / kMiB);
  return buf;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

void write_file(const std::string& path, const json& j) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << j.dump(2) << "\n";
    if (!f.flush()) throw sdk::InternalError("memtest: cannot write " + tmp);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw sdk::InternalError("memtest: cannot rename " + tmp);
}

class MemtestModel : public sdk::Model {
 public:
  explicit MemtestModel(std::string device) : device_(std::move(device)) {}

  json run(const json& job, const json& rung, const sdk::RunDirs& dirs, sdk::Host& host) override {
    Plan p = plan(job, rung);
    json stages_run = json::array();
    bool reused = false;
    std::string ckpt = dirs.work_dir + "/denoise.ckpt";

    if (exists(ckpt)) {
      reused = true;
      host.event("checkpoint", {{"stage", "denoise"}, {"reused", true}});
    } else {
      stage(host, "denoise", p.denoise_bytes, p.oom_above_mb, p.steps, p.step_ms, p.rung);
      write_file(ckpt, {{"stage", "denoise"}, {"rung", p.rung.name}, {"steps", p.steps}});
      host.event("checkpoint", {{"stage", "denoise"}, {"reused", false}});
      stages_run.push_back("denoise");
    }
    stage(host, "decode", p.decode_bytes, p.decode_oom_above_mb, std::max<int64_t>(1, p.steps / 2), p.step_ms, p.rung);
    stages_run.push_back("decode");

    // Deliberately naive, like a careless plugin: the name is joined as given, so the
    // daemon's check that outputs stay in their folder can be tested (security_test).
    std::string out = dirs.output_dir + "/" + job["params"].value("output_name", std::string("memtest.json"));
    json result = {{"rung", p.rung.name}, {"stages_run", stages_run}, {"denoise_reused", reused}};
    // The optional input is read and echoed, to show which file the worker really got.
    auto inputs = job.value("inputs", json::object());
    if (auto src = inputs.find("source"); src != inputs.end() && src->is_string()) {
      std::ifstream f(src->get<std::string>(), std::ios::binary);
      if (!f) throw sdk::BadInputError("memtest: cannot read input " + src->get<std::string>());
      std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      result["source"] = {{"path", *src}, {"content", bytes}};
    }
    write_file(out, result);
    return {{"outputs", {out}},
            {"info",
             {{"rung", p.rung.name},
              {"device", device_},
              {"stages_run", stages_run},
              {"denoise_reused", reused},
              {"denoise_bytes", p.denoise_bytes},
              {"decode_bytes", p.decode_bytes}}}};
  }

 private:
  // Allocates and touches `bytes` for the stage's duration, stepping `steps` times.
  static void stage(sdk::Host& host, const std::string& name, int64_t bytes, int64_t oom_above_mb, int64_t steps,
                    int64_t step_ms, const Rung& rung) {
    if (oom_above_mb > 0 && bytes > oom_above_mb * kMiB)
      throw sdk::OomError("memtest: " + name + " at rung '" + rung.name + "' needs " + mib(bytes) + ", above the " +
                          std::to_string(oom_above_mb) + " MiB limit (simulated out of memory)");
    std::unique_ptr<unsigned char, decltype(&std::free)> block(
        static_cast<unsigned char*>(std::malloc(static_cast<std::size_t>(std::max<int64_t>(bytes, 1)))), &std::free);
    if (!block) throw sdk::OomError("memtest: " + name + ": malloc of " + mib(bytes) + " failed");
    const long page = std::max(1L, ::sysconf(_SC_PAGESIZE));
    for (int64_t off = 0; off < bytes; off += page) block.get()[off] = static_cast<unsigned char>(off / page);
    host.memory_sample(rung.cpu_only ? 0 : static_cast<uint64_t>(bytes), static_cast<uint64_t>(bytes + kOverheadBytes));

    host.progress(0, steps, name);
    for (int64_t step = 1; step <= steps; ++step) {
      auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(step_ms);
      do {
        host.check_cancelled("in " + name + " at step " + std::to_string(step));
        auto left = end - std::chrono::steady_clock::now();
        if (left > std::chrono::steady_clock::duration::zero())
          std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(10)));
      } while (std::chrono::steady_clock::now() < end);
      host.progress(step, steps, name);
    }
  }

  std::string device_;
};

class MemtestPlugin : public sdk::Plugin {
 public:
  json describe() override {
    json model = json::parse(R"json({
      "name": "memtest",
      "description": "Test model: allocates host memory per its estimate in two stages (denoise, decode) with a checkpoint; fails with OOM above a limit",
      "params": [
        {"name": "megabytes", "type": "integer", "min": 1, "max": 4096, "default": 64,
         "help": "the denoise stage's allocation at the best rung, in MiB (decode allocates half)"},
        {"name": "steps", "type": "integer", "min": 1, "max": 10000, "default": 4, "help": "denoise steps"},
        {"name": "step_ms", "type": "integer", "min": 0, "max": 600000, "default": 50, "help": "time per step, in ms"},
        {"name": "oom_above_mb", "type": "integer", "min": 0, "max": 1048576, "default": 0,
         "help": "denoise fails with OOM when its allocation at the rung exceeds this many MiB; 0 never"},
        {"name": "decode_oom_above_mb", "type": "integer", "min": 0, "max": 1048576, "default": 0,
         "help": "decode fails with OOM when its allocation at the rung exceeds this many MiB; 0 never"},
        {"name": "output_name", "type": "string", "default": "memtest.json",
         "help": "the output's file name, joined to the output folder as given (tests the daemon's output check)"}
      ],
      "inputs": [{"role": "source", "required": false, "help": "a text file echoed into the output"}],
      "outputs": ["application/json"],
      "budget": "memory"
    })json");
    model["ladder"] = ladder();
    return {{"models", {model}}};
  }

  json estimate(const json& job, const json& rung) override {
    Plan p = plan(job, rung);
    return {{"device_bytes", p.rung.cpu_only ? 0 : p.denoise_bytes},
            {"host_bytes", kOverheadBytes + p.denoise_bytes},
            {"resident_device_bytes", 0},
            {"resident_host_bytes", 0},
            {"relative_time", p.rung.relative_time},
            {"cpu_only", p.rung.cpu_only},
            {"effective", {{"steps", p.steps}}}};
  }

  std::unique_ptr<sdk::Model> load(const std::string& model, const json& rung, const std::string& device) override {
    if (model != "memtest") throw sdk::BadInputError("memtest: no model '" + model + "'");
    parse_rung(rung);
    return std::make_unique<MemtestModel>(device);
  }
};

}  // namespace

REEL_PLUGIN(MemtestPlugin, "memtest", "0.1.0")
