#include "core/run_outcome.hpp"

namespace reel {

const char* to_string(RunOutcome::Kind k) {
  switch (k) {
    case RunOutcome::Kind::succeeded: return "succeeded";
    case RunOutcome::Kind::failed: return "failed";
    case RunOutcome::Kind::cancelled: return "cancelled";
    case RunOutcome::Kind::crashed: return "crashed";
  }
  return "unknown";
}

AfterRun decide_after_run(const Job& job, const RunOutcome& outcome, bool interrupted_by_stop) {
  using K = RunOutcome::Kind;
  AfterRun a;
  if (outcome.kind == K::succeeded) {
    a.final_state = JobState::succeeded;
    return a;
  }
  if (outcome.kind == K::cancelled || job.cancel_requested) {
    a.final_state = JobState::cancelled;
    a.text = "cancelled by request";
    return a;
  }
  if (interrupted_by_stop) {
    a.action = AfterRun::Action::requeue;
    a.cause = RequeueCause::interrupted;
    a.text = "reeld stopped before the job finished; re-queued";
    return a;
  }
  if (outcome.kind == K::crashed) {
    a.action = AfterRun::Action::requeue;
    a.cause = RequeueCause::crash;
    a.text = "the run crashed (" + outcome.message + ")";
    return a;
  }
  if (outcome.error_code == "oom") {
    a.action = AfterRun::Action::fall_back;
    a.text = "out of memory: " + outcome.message;
    return a;
  }
  const bool retryable = outcome.error_code != "bad_input" && outcome.error_code != "missing_weights";
  // The model's own message says what went wrong; the kind is for the policy, not the user.
  std::string what = outcome.message.empty() ? outcome.error_code : outcome.message;
  if (retryable && job.attempts < job.max_attempts) {
    a.action = AfterRun::Action::requeue;
    a.text = "attempt " + std::to_string(job.attempts) + "/" + std::to_string(job.max_attempts) +
             " failed (" + what + "); retrying";
    return a;
  }
  a.final_state = JobState::failed;
  a.text = what;
  if (retryable && job.max_attempts > 1)
    a.text += " (after " + std::to_string(job.attempts) + " attempts)";
  return a;
}

}  // namespace reel
