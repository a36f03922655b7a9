// Daemon: what devices there are, their budgets, and how a worker is bound to one.
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include <spdlog/spdlog.h>

#include "server/daemon.hpp"
#include "server/model_workers.hpp"
#include "store/job_store.hpp"

namespace reel {

std::vector<std::string> plugin_dirs(const Config& cfg, const std::string& reeld_exe) {
  if (!cfg.plugins.dirs.empty()) return cfg.plugins.dirs;
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("REEL_PLUGIN_PATH"); env && *env) {
    std::stringstream ss(env);
    std::string d;
    while (std::getline(ss, d, ':'))
      if (!d.empty()) dirs.push_back(d);
  }
  dirs.push_back((std::filesystem::path(reeld_exe).parent_path() / ".." / "lib" / "reel" / "plugins")
                     .lexically_normal()
                     .string());
  return dirs;
}

void Daemon::probe_devices() {
  std::string before = probe_->source();
  gpus_ = probe_->gpus();
  host_memory_ = probe_->host();
  if (probe_->source() != before && !before.empty()) spdlog::info("devices: {}", probe_->source());
}

void Daemon::arm_probe_timer() {
  probe_timer_.expires_after(
      std::chrono::milliseconds(static_cast<int64_t>(config_.gpu.probe_interval_seconds * 1000)));
  probe_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    probe_devices();
    request_schedule();   // memory freed by other processes may let a waiting job start
    arm_probe_timer();
  });
}

std::vector<DeviceBudget> Daemon::budgets() const {
  // The probe saw our workers' memory as used; tell make_budgets what is ours so it
  // is counted once, by the scheduler, from our own accounting.
  OurMemory ours;
  if (workers_) {
    for (const auto& r : workers_->residents()) {
      if (r.busy) continue;   // its running job's peak below covers it
      ours.device_bytes[r.device] += r.device_bytes;
      ours.host_bytes += r.host_bytes;
    }
    for (const auto& j : workers_->running()) {
      ours.device_bytes[j.device] += j.device_bytes;
      ours.host_bytes += j.host_bytes;
    }
  }
  return make_budgets(gpus_, host_memory_, config_, ours);
}

DeviceBinding Daemon::bind_device(const std::string& device) const {
  // A worker sees exactly one GPU (pinned by UUID: NVML and CUDA number GPUs
  // differently) or none, so plugin code cannot wander onto memory the scheduler
  // did not give it. A simulated GPU is backed by the host: the plugin runs on CPU.
  for (const auto& g : gpus_)
    if (g.id == device && !g.simulated) return DeviceBinding{{"CUDA_VISIBLE_DEVICES=" + g.uuid}, "cuda:0"};
  return DeviceBinding{{"CUDA_VISIBLE_DEVICES="}, "cpu"};
}

Json Daemon::devices_json() const {
  Json out = Json::array();
  auto running = workers_ ? workers_->running() : std::vector<RunningJob>{};
  auto residents = workers_ ? workers_->residents() : std::vector<ResidentModel>{};
  for (const auto& b : budgets()) {
    int64_t reserved_by_jobs = 0, resident = 0;
    for (const auto& j : running)
      if (j.device == b.id || !b.gpu) reserved_by_jobs += b.gpu ? j.device_bytes : j.host_bytes;
    for (const auto& r : residents)
      if (!r.busy && (r.device == b.id || !b.gpu)) resident += b.gpu ? r.device_bytes : r.host_bytes;
    int64_t free = b.total_bytes - b.reserve_bytes - b.foreign_bytes - reserved_by_jobs - resident;
    Json d = {{"id", b.id},
              {"gpu", b.gpu},
              {"total_bytes", b.total_bytes},
              {"reserve_bytes", b.reserve_bytes},
              {"foreign_bytes", b.foreign_bytes},
              {"running_bytes", reserved_by_jobs},
              {"idle_resident_bytes", resident},
              {"free_bytes", std::max<int64_t>(0, free)}};
    for (const auto& g : gpus_)
      if (g.id == b.id) {
        d["name"] = g.name;
        d["uuid"] = g.uuid;
        d["simulated"] = g.simulated;
      }
    out.push_back(d);
  }
  return out;
}

void Daemon::correct_plan(const std::string& model, Json& plan) {
  if (!plan.is_array()) return;
  for (auto& rung : plan) {
    auto peak = store_->peak(model, rung.value("rung", ""), rung.value("shape", "default"));
    if (!peak) continue;
    // Estimates only go up: a run that peaked below its estimate says little about
    // the next one, one that went above says the estimate is wrong.
    for (auto [key, measured] : {std::pair<const char*, int64_t>{"device_bytes", peak->measured_device},
                                 std::pair<const char*, int64_t>{"host_bytes", peak->measured_host}}) {
      int64_t estimate = rung.value(key, int64_t{0});
      if (measured > estimate) {
        rung[std::string("estimated_") + key] = estimate;
        rung[key] = measured;
        rung["corrected"] = true;
      }
    }
  }
}

}  // namespace reel
