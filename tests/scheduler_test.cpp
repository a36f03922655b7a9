// Table tests for the pure scheduling decision (core/scheduler.hpp).
#include <gtest/gtest.h>

#include "core/scheduler.hpp"

namespace reel {
namespace {

Job queued_job(std::string id, int priority, int64_t created_at) {
  Job j;
  j.id = std::move(id);
  j.priority = priority;
  j.created_at = created_at;
  return j;
}

struct Case {
  const char* name;
  std::vector<Job> queued;
  int running;
  SchedulingPolicy policy;
  int64_t now;
  std::vector<std::string> expected;
};

TEST(Scheduler, Table) {
  const int64_t t0 = 1'000'000;
  SchedulingPolicy one;                       // 1 slot, aging 300 s
  SchedulingPolicy three = one;
  three.max_concurrent_jobs = 3;
  SchedulingPolicy no_aging = one;
  no_aging.aging_seconds = 0;
  SchedulingPolicy paused = three;
  paused.paused = true;
  SchedulingPolicy draining = three;
  draining.draining = true;

  std::vector<Case> cases = {
      {"empty queue", {}, 0, one, t0, {}},
      {"higher priority first", {queued_job("a", 0, t0), queued_job("b", 5, t0 + 1)}, 0, one, t0 + 2, {"b"}},
      {"same priority: oldest first", {queued_job("a", 0, t0 + 5), queued_job("b", 0, t0)}, 0, one, t0 + 10, {"b"}},
      {"same priority and age: id order", {queued_job("b", 0, t0), queued_job("a", 0, t0)}, 0, one, t0, {"a"}},
      {"no free slot", {queued_job("a", 0, t0)}, 1, one, t0, {}},
      {"fills every free slot in order",
       {queued_job("a", 1, t0), queued_job("b", 3, t0), queued_job("c", 2, t0), queued_job("d", 0, t0)},
       1, three, t0, {"b", "c"}},
      {"fewer jobs than slots", {queued_job("a", 0, t0)}, 0, three, t0, {"a"}},
      {"paused starts nothing", {queued_job("a", 0, t0)}, 0, paused, t0, {}},
      {"draining starts nothing", {queued_job("a", 0, t0)}, 0, draining, t0, {}},
      // Aging: after 10 aging periods a priority-0 job outranks a fresh priority-5 one.
      {"aging prevents starvation", {queued_job("old", 0, t0), queued_job("new", 5, t0 + 3'000'000)}, 0, one,
       t0 + 3'000'000, {"old"}},
      {"aging disabled keeps strict priority", {queued_job("old", 0, t0), queued_job("new", 5, t0 + 3'000'000)}, 0,
       no_aging, t0 + 3'000'000, {"new"}},
      {"aging not yet enough", {queued_job("old", 0, t0), queued_job("new", 5, t0 + 600'000)}, 0, one,
       t0 + 600'000, {"new"}},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(pick_jobs_to_start(c.queued, c.running, c.policy, c.now), c.expected) << c.name;
  }
}

TEST(Scheduler, IgnoresJobsThatAreNotQueued) {
  Job running = queued_job("r", 100, 0);
  running.state = JobState::running;
  SchedulingPolicy p;
  EXPECT_EQ(pick_jobs_to_start({running, queued_job("q", 0, 0)}, 0, p, 10), std::vector<std::string>{"q"});
}

TEST(Scheduler, EffectivePriorityGrowsWithWaiting) {
  Job j = queued_job("a", 2, 0);
  EXPECT_DOUBLE_EQ(effective_priority(j, 0, 300), 2.0);
  EXPECT_DOUBLE_EQ(effective_priority(j, 300'000, 300), 3.0);
  EXPECT_DOUBLE_EQ(effective_priority(j, 300'000, 0), 2.0);
  EXPECT_DOUBLE_EQ(effective_priority(j, -5, 300), 2.0) << "clock skew must not lower priority";
}

}  // namespace
}  // namespace reel
