// What became of one run of a job, and what the daemon does about it.
//
// decide_after_run() is the whole retry policy as a pure function, so it is tested
// with tables rather than through processes:
//  - success -> succeeded; a cancel request wins over a failure or a crash;
//  - a crash (the worker died without answering) -> re-queued, counting toward
//    max_crashes (the store turns the last one into a poison failure);
//  - out of memory -> fall back: re-queued one allowed rung lower (the daemon finds
//    which, see next_fallback_rung in budget_scheduler.hpp), not charged as an attempt;
//  - internal failures -> re-queued while attempts < max_attempts, else failed;
//  - bad_input / missing_weights -> failed at once: running again cannot help;
//  - a run interrupted because reeld is stopping -> re-queued, not counted as a crash.
#pragma once

#include <string>
#include <vector>

#include "core/job.hpp"

namespace reel {

struct RunOutcome {
  enum class Kind { succeeded, failed, cancelled, crashed } kind = Kind::crashed;
  std::string error_code;     // failed: the worker's error kind (oom, bad_input, internal, ...)
  std::string message;        // failed/crashed: what went wrong, for the job's error text
  std::vector<std::string> outputs;
  Json info = Json::object();     // the plugin's own report (timings, settings used)
  int64_t peak_device_bytes = 0;  // measured during the run (0 = unknown)
  int64_t peak_host_bytes = 0;
};
const char* to_string(RunOutcome::Kind k);

struct AfterRun {
  enum class Action { finish, requeue, fall_back } action = Action::finish;
  JobState final_state = JobState::failed;   // for finish
  RequeueCause cause = RequeueCause::failed_attempt;   // for requeue
  std::string text;                          // finish: the job's error; requeue: the event's reason
};

// `job` is the job as stored when the run ended (attempts already counts this run).
AfterRun decide_after_run(const Job& job, const RunOutcome& outcome, bool interrupted_by_stop);

}  // namespace reel
