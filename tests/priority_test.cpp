// The order in which queued jobs start: priority with aging, then age, then id, within
// the concurrency cap; nothing starts while paused or draining. Driven through
// schedule_jobs() with jobs that have no plan, so memory plays no part.
#include <gtest/gtest.h>

#include "core/budget_scheduler.hpp"
#include "core/priority.hpp"

namespace reel {
namespace {

PlannedJob queued_job(std::string id, int priority, int64_t created_at) {
  PlannedJob p;
  p.job.id = std::move(id);
  p.job.model = "sleep";
  p.job.priority = priority;
  p.job.created_at = created_at;
  return p;
}

std::vector<std::string> started(const std::vector<PlannedJob>& queued, int running, SchedulerPolicy policy,
                                 int64_t now) {
  SchedulerInput in;
  in.queued = queued;
  for (int i = 0; i < running; ++i) in.running.push_back(RunningJob{"r" + std::to_string(i), "sleep", "cpu", "default"});
  in.devices.push_back(DeviceBudget{"cpu", false, int64_t{1} << 40});
  in.policy = policy;
  in.now = now;
  std::vector<std::string> ids;
  for (const auto& d : schedule_jobs(in).decisions)
    if (d.kind == Decision::Kind::start) ids.push_back(d.job_id);
  return ids;
}

TEST(Priority, StartOrderTable) {
  const int64_t t0 = 1'000'000;
  SchedulerPolicy one;                        // 1 slot, aging 300 s
  SchedulerPolicy three = one;
  three.max_concurrent_jobs = 3;
  SchedulerPolicy no_aging = one;
  no_aging.aging_seconds = 0;
  SchedulerPolicy paused = three;
  paused.paused = true;
  SchedulerPolicy draining = three;
  draining.draining = true;

  struct Case {
    const char* name;
    std::vector<PlannedJob> queued;
    int running;
    SchedulerPolicy policy;
    int64_t now;
    std::vector<std::string> expected;
  };
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
  for (const auto& c : cases) EXPECT_EQ(started(c.queued, c.running, c.policy, c.now), c.expected) << c.name;
}

TEST(Priority, EffectivePriorityGrowsWithWaiting) {
  Job j;
  j.priority = 2;
  EXPECT_DOUBLE_EQ(effective_priority(j, 0, 300), 2.0);
  EXPECT_DOUBLE_EQ(effective_priority(j, 300'000, 300), 3.0);
  EXPECT_DOUBLE_EQ(effective_priority(j, 300'000, 0), 2.0);
  EXPECT_DOUBLE_EQ(effective_priority(j, -5, 300), 2.0) << "clock skew must not lower priority";
}

}  // namespace
}  // namespace reel
