// The scheduler's decision, as a pure function: which queued jobs start now.
//
// No I/O, no clocks, no globals: the daemon passes in the queue, what is running
// and the policy, and gets back an ordered list of job ids to start. Tests drive it
// with tables. (The VRAM-budget scheduler with rungs and eviction grows from here.)
// Ordering: effective priority (priority + one point per `aging_seconds` waited, so
// nothing starves), then age (older first), then id for a total order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/job.hpp"

namespace reel {

struct SchedulingPolicy {
  int max_concurrent_jobs = 1;
  double aging_seconds = 300;   // <= 0 disables aging
  bool paused = false;
  bool draining = false;
};

// The effective priority of a queued job at time `now` (ms).
double effective_priority(const Job& job, int64_t now, double aging_seconds);

// Ids of the jobs to start now, in start order. `running` is how many runs are in flight.
std::vector<std::string> pick_jobs_to_start(const std::vector<Job>& queued, int running,
                                            const SchedulingPolicy& policy, int64_t now);

}  // namespace reel
