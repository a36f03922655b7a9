// JobRunner: runs each job in a worker process, never in the queue-owning daemon.
//
// A worker is this same executable started as `reeld --worker-fd 3` with one end of a
// socketpair; the two talk the control protocol's framing (protocol.hpp): the daemon
// sends `run` and `cancel`, the worker streams events (progress, log) and ends with a
// result or an error reply. A worker that dies without a reply is a crash: the daemon
// decides what happens to its job (re-queue, poison). Workers get PR_SET_PDEATHSIG so a
// SIGKILLed daemon never leaves one behind.
// Cancel is cooperative first (the worker checks between steps), then SIGKILL after
// the grace period. Thread-safety: one io_context thread, like the rest of the shell.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "core/job.hpp"
#include "core/run_outcome.hpp"

namespace reel {

class JobRunner {
 public:
  struct Callbacks {
    // A worker's event for a running job: {"kind": "progress"|"log"|..., ...}.
    std::function<void(const std::string& job_id, const std::string& lease, const Json& event)> on_event;
    // The run ended; called once per launch, after the worker process is reaped.
    std::function<void(const std::string& job_id, const std::string& lease, const RunOutcome& outcome)> on_done;
  };

  JobRunner(boost::asio::io_context& io, std::string worker_exe, Callbacks callbacks);
  ~JobRunner();   // SIGKILLs and reaps every worker

  // Starts a worker for `job` (which carries its lease). Throws std::runtime_error
  // if no process could be started.
  void launch(const Job& job, const std::string& work_dir, const std::string& output_dir);
  // Asks the job's worker to stop, and kills it after `grace`. No-op for unknown jobs.
  void cancel(const std::string& job_id, std::chrono::milliseconds grace);
  // SIGKILL the job's worker at once (its outcome will be `crashed` unless cancelled).
  void kill(const std::string& job_id);
  // Call on SIGCHLD: reaps exited workers and completes their runs.
  void reap();

  size_t active() const { return workers_.size(); }
  bool is_running(const std::string& job_id) const { return workers_.count(job_id) > 0; }
  std::vector<pid_t> worker_pids() const;

 private:
  struct Worker;
  void read_next(const std::shared_ptr<Worker>& w);
  void on_message(const std::shared_ptr<Worker>& w, std::string_view line);
  void maybe_complete(const std::shared_ptr<Worker>& w);

  boost::asio::io_context& io_;
  std::string worker_exe_;
  Callbacks callbacks_;
  std::map<std::string, std::shared_ptr<Worker>> workers_;   // by job id
};

}  // namespace reel
