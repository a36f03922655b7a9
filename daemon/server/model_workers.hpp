// ModelWorkers: the pool of model workers, one resident model each.
//
// A worker is keyed by (model, device, rung): it opened the model's plugin, loaded
// the model with that rung's placement on that device, and runs jobs one at a time.
// After a job it stays resident (idle) so the next job of the same model and rung
// starts without reloading, until it is evicted: by the scheduler when room is
// needed, when its keep-alive expires, or after an out-of-memory error (ending the
// process is the one sure way to give its VRAM back). A worker that dies mid-job
// reports the job as crashed; one that dies idle is simply forgotten.
// Thread-safety: one io_context thread.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "core/budget_scheduler.hpp"
#include "core/run_outcome.hpp"
#include "server/worker_process.hpp"

namespace reel {

struct RunRequest {
  Job job;                    // carries its lease
  std::string plugin_source;  // what the worker opens
  std::string device;         // "cuda:0", "cpu" (scheduler's device id)
  RungEstimate estimate;      // the rung chosen, with its estimate
  Json rung_entry;            // the ladder entry given to the plugin's load/run
  Json fallbacks = Json::array();  // the job's earlier "fallback" events' data, oldest first
  std::string work_dir, output_dir;
};

// How a scheduler device is presented to a worker process.
struct DeviceBinding {
  std::vector<std::string> env;   // e.g. CUDA_VISIBLE_DEVICES=GPU-<uuid>
  std::string device_arg;         // what the plugin's load() is told: "cuda:0" or "cpu"
};

class ModelWorkers {
 public:
  struct Callbacks {
    std::function<void(const std::string& job_id, const std::string& lease, const Json& event)> on_event;
    std::function<void(const std::string& job_id, const std::string& lease, const RunOutcome& outcome)> on_done;
    std::function<void()> on_idle;   // a worker became idle or went away: capacity changed
  };
  using BindFn = std::function<DeviceBinding(const std::string& device)>;

  ModelWorkers(boost::asio::io_context& io, std::string worker_exe, BindFn bind, Callbacks callbacks);
  ~ModelWorkers();

  void set_keep_alive(std::chrono::milliseconds keep_alive) { keep_alive_ = keep_alive; }
  // Before a new worker starts beyond this many, the least recently used idle one ends.
  void set_max_resident(int n) { max_resident_ = n; }

  // Runs the job on an idle resident worker with the same key, or starts one.
  void run(const RunRequest& request);
  // Cooperative cancel, then SIGKILL after `grace`.
  void cancel(const std::string& job_id, std::chrono::milliseconds grace);
  void kill(const std::string& job_id);
  // Ends an idle resident worker; returns false if none matches or it is busy.
  bool evict(const std::string& model, const std::string& device, const std::string& rung, const std::string& why);
  void evict_all_idle(const std::string& why);

  size_t active() const;                         // jobs running
  bool is_running(const std::string& job_id) const;
  std::vector<ResidentModel> residents() const;  // busy and idle
  std::vector<RunningJob> running() const;
  Json to_json() const;                          // for `reelctl status`

 private:
  struct Resident;
  void start_worker(const std::shared_ptr<Resident>& r, const RunRequest& request);
  void run_on(const std::shared_ptr<Resident>& r, const RunRequest& request);
  void finish_job(const std::shared_ptr<Resident>& r, const RunOutcome& outcome);
  void arm_keep_alive(const std::shared_ptr<Resident>& r);
  void forget(const std::shared_ptr<Resident>& r);

  boost::asio::io_context& io_;
  std::string worker_exe_;
  BindFn bind_;
  Callbacks callbacks_;
  std::chrono::milliseconds keep_alive_{300000};
  int max_resident_ = 4;
  std::vector<std::shared_ptr<Resident>> residents_;
};

}  // namespace reel
