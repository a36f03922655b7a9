// Table tests for what the daemon does after a run ends (core/run_outcome.hpp).
#include <gtest/gtest.h>

#include "core/run_outcome.hpp"

namespace reel {
namespace {

RunOutcome outcome(RunOutcome::Kind k, std::string code = "", std::string msg = "") {
  RunOutcome o;
  o.kind = k;
  o.error_code = std::move(code);
  o.message = std::move(msg);
  return o;
}

Job job_with(int attempts, int max_attempts, bool cancel_requested = false) {
  Job j;
  j.attempts = attempts;
  j.max_attempts = max_attempts;
  j.cancel_requested = cancel_requested;
  return j;
}

TEST(AfterRun, Table) {
  using K = RunOutcome::Kind;
  using A = AfterRun::Action;
  struct Case {
    const char* name;
    Job job;
    RunOutcome out;
    bool stopping;
    A action;
    JobState final_state;
    RequeueCause cause;
  };
  std::vector<Case> cases = {
      {"success", job_with(1, 2), outcome(K::succeeded), false, A::finish, JobState::succeeded, RequeueCause::failed_attempt},
      {"cancelled by the worker", job_with(1, 2), outcome(K::cancelled, "cancelled"), false, A::finish,
       JobState::cancelled, RequeueCause::failed_attempt},
      {"cancel request wins over a crash", job_with(1, 2, true), outcome(K::crashed, "", "signal 9"), false, A::finish,
       JobState::cancelled, RequeueCause::failed_attempt},
      {"cancel request wins over a failure", job_with(1, 2, true), outcome(K::failed, "internal", "x"), false,
       A::finish, JobState::cancelled, RequeueCause::failed_attempt},
      {"crash is re-queued and counted", job_with(1, 2), outcome(K::crashed, "", "signal 11"), false, A::requeue,
       JobState::failed, RequeueCause::crash},
      {"crash during stop is not counted", job_with(1, 2), outcome(K::crashed, "", "signal 9"), true, A::requeue,
       JobState::failed, RequeueCause::interrupted},
      {"retryable failure with attempts left", job_with(1, 2), outcome(K::failed, "internal", "boom"), false,
       A::requeue, JobState::failed, RequeueCause::failed_attempt},
      {"oom falls back a rung, whatever the attempts", job_with(3, 3), outcome(K::failed, "oom", "cuda"), false,
       A::fall_back, JobState::failed, RequeueCause::failed_attempt},
      {"retryable failure, attempts used up", job_with(2, 2), outcome(K::failed, "internal", "boom"), false,
       A::finish, JobState::failed, RequeueCause::failed_attempt},
      {"bad input never retried", job_with(1, 5), outcome(K::failed, "bad_input", "no file"), false, A::finish,
       JobState::failed, RequeueCause::failed_attempt},
      {"missing weights never retried", job_with(1, 5), outcome(K::failed, "missing_weights", "x"), false,
       A::finish, JobState::failed, RequeueCause::failed_attempt},
  };
  for (const auto& c : cases) {
    AfterRun a = decide_after_run(c.job, c.out, c.stopping);
    EXPECT_EQ(a.action, c.action) << c.name;
    if (a.action == A::finish) EXPECT_EQ(a.final_state, c.final_state) << c.name;
    if (a.action == A::requeue) EXPECT_EQ(a.cause, c.cause) << c.name;
  }
}

TEST(AfterRun, TextsExplainWhatHappened) {
  auto a = decide_after_run(job_with(1, 2), outcome(RunOutcome::Kind::failed, "internal", "boom"), false);
  EXPECT_EQ(a.text, "attempt 1/2 failed (boom); retrying");
  auto b = decide_after_run(job_with(2, 2), outcome(RunOutcome::Kind::failed, "internal", "boom"), false);
  EXPECT_EQ(b.text, "boom (after 2 attempts)");
  auto c = decide_after_run(job_with(1, 2), outcome(RunOutcome::Kind::crashed, "", "worker killed by signal 11"), false);
  EXPECT_NE(c.text.find("signal 11"), std::string::npos);
}

}  // namespace
}  // namespace reel
