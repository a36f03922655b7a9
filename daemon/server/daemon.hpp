// Daemon: reeld's effectful shell. Wires config, the durable store, the control
// server, the job runner and systemd notification onto one Asio io_context.
//
// Start-up order is what makes READY=1 honest: config -> state dir -> lock file ->
// database + migrations -> crash recovery -> plugins -> watched folders -> control socket
// -> READY=1 -> scheduling.
// All state changes go through the store first and are then announced to followers,
// so a client that reconnects and follows from its last sequence number misses nothing.
// Lifecycle: SIGHUP reloads the config (an invalid file is rejected, the old one stays);
// SIGTERM/SIGINT send STOPPING=1, then drain (or re-queue) running jobs within the
// stop grace and exit 0; the `drain` request does the same without a signal.
// Thread-safety: everything runs on the single io_context thread inside run().
#pragma once

#include <chrono>
#include <map>
#include <vector>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include <boost/asio.hpp>

#include "core/budget_scheduler.hpp"
#include "core/config.hpp"
#include "core/paths.hpp"
#include "core/run_outcome.hpp"
#include "server/control_server.hpp"
#include "server/device_probe.hpp"
#include "server/model_workers.hpp"
#include "server/queue_view.hpp"
#include "server/sd_notify.hpp"
#include "server/watch_folder.hpp"

namespace reel {

class JobStore;
class LockFile;
class ModelWorkers;
class PluginRegistry;

struct DaemonOptions {
  std::string config_path;     // --config; empty: the search order in config.hpp
  std::string worker_exe;      // the executable started for workers (this one)
};

// Where plugins are looked for: plugins.dirs from the config, else $REEL_PLUGIN_PATH
// (colon-separated), then <dir of reeld>/../lib/reel/plugins (the install layout, and
// the build tree's, which mirrors it).
std::vector<std::string> plugin_dirs(const Config& cfg, const std::string& reeld_exe);

class Daemon : public RequestHandler {
 public:
  explicit Daemon(DaemonOptions options);
  ~Daemon() override;
  // Runs until stopped; returns the process exit code. Start-up failures are logged
  // with what to do and return non-zero.
  int run();

  // RequestHandler
  void handle(const SessionPtr& session, const Request& request) override;
  void session_closed(const Session& session) override;

 private:
  // Start-up and lifecycle (daemon.cpp)
  void start_up();
  void watch_signals();
  void watch_stop_signals();
  void watch_reload_signal();
  void watch_child_signal();
  void reload_config();
  void begin_stop(const std::string& why);
  void stop_if_idle();
  void arm_status_timer();
  void arm_watchdog_timer();
  void publish_status();

  // Running jobs (execution.cpp)
  void request_schedule();   // coalesced: one pass after the current handler
  void schedule();
  void launch(const Decision& d, const PlannedJob& job);
  void add_remote_pools(SchedulerInput& in);
  void fail_unschedulable(const Decision& d);
  void on_worker_event(const std::string& job_id, const std::string& lease, const Json& event);
  void on_worker_done(const std::string& job_id, const std::string& lease, const RunOutcome& reported);
  void record_peak(const Job& job, const RunOutcome& outcome);
  void job_changed(const std::string& job_id);
  size_t active_runs() const;

  // Devices and budgets (devices.cpp)
  void probe_devices();
  void arm_probe_timer();
  std::vector<DeviceBudget> budgets() const;
  DeviceBinding bind_device(const std::string& device) const;
  Json devices_json() const;
  // Applies measured peaks to a fresh plan (estimates only ever go up).
  void correct_plan(const std::string& model, Json& plan);

  // Watched folders (watches.cpp)
  void start_watches();
  void reload_watches();        // SIGHUP: adds, removes, restarts changed or failed ones
  void watches_job_changed(const std::string& job_id);
  WatchFolder::Hooks watch_hooks();
  void do_watches(const SessionPtr&, const Request&);
  // Folders a job's local inputs may be in (input_roots.hpp): jobs.input_roots, and
  // watched folders once there are any.
  std::vector<std::string> input_roots() const;

  // Requests (requests.cpp)
  using Method = void (Daemon::*)(const SessionPtr&, const Request&);
  static const std::map<std::string, Method>& methods();
  void do_submit(const SessionPtr&, const Request&);
  // The one submission path (socket and watched folders): validate, plan, store.
  // `done` is called exactly once, possibly before this returns.
  void submit_job(JobSpec spec, std::function<void(const SubmitReply&)> done);
  void validate_and_plan(JobSpec spec, std::function<void(const SubmitReply&)> done);
  void do_list(const SessionPtr&, const Request&);
  void do_show(const SessionPtr&, const Request&);
  void do_cancel(const SessionPtr&, const Request&);
  void do_retry(const SessionPtr&, const Request&);
  void do_priority(const SessionPtr&, const Request&);
  void do_pause(const SessionPtr&, const Request&);
  void do_resume(const SessionPtr&, const Request&);
  void do_drain(const SessionPtr&, const Request&);
  void do_status(const SessionPtr&, const Request&);
  void do_models(const SessionPtr&, const Request&);
  void do_follow(const SessionPtr&, const Request&);
  void do_prune(const SessionPtr&, const Request&);
  void do_plugins(const SessionPtr&, const Request&);

  // Follow streams: a session waiting for a job's events (requests.cpp).
  struct Follower {
    std::weak_ptr<Session> session;
    Json request_id;
    int64_t last_seq = 0;
  };
  // Sends the follower's new events; returns false once it is finished or gone.
  bool pump(Follower& f, const std::string& job_id);

  DaemonOptions options_;
  Config config_;
  ResolvedPaths paths_;
  boost::asio::io_context io_;
  boost::asio::signal_set stop_signals_, reload_signal_, child_signal_;
  boost::asio::steady_timer status_timer_, watchdog_timer_, stop_timer_, probe_timer_;
  SystemdNotifier notifier_;
  std::unique_ptr<LockFile> lock_;
  std::unique_ptr<JobStore> store_;
  std::unique_ptr<QueueView> queue_;                 // the queued jobs, for scheduling
  std::unique_ptr<PluginRegistry> plugins_;
  std::unique_ptr<ModelWorkers> workers_;
  std::unique_ptr<DeviceProbe> probe_;
  std::vector<GpuInfo> gpus_;                        // as last probed
  HostMemory host_memory_;
  std::unique_ptr<ControlServer> server_;
  std::multimap<std::string, Follower> followers_;   // by job id
  std::set<std::string> interrupted_by_stop_;        // jobs whose worker we killed to stop
  struct Launched { int rung_index; RungEstimate estimate; std::string device; };
  std::map<std::string, Launched> launched_;         // running jobs: what they were started with
  std::unordered_map<std::string, std::string> waiting_;  // queued job -> why it is not running (last decision)
  std::map<std::string, std::vector<int64_t>> remote_starts_;  // remote pool -> job starts (ms), last minute
  std::vector<std::unique_ptr<WatchFolder>> watches_;   // one per [[watch]], started or not
  bool schedule_posted_ = false;
  std::chrono::steady_clock::time_point started_;
  bool paused_ = false, draining_ = false, stopping_ = false;
  int exit_code_ = 0;
};

}  // namespace reel
