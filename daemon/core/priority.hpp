// The order queued jobs are considered in: effective priority, i.e. the job's priority
// plus one point per `aging_seconds` waited, so a low-priority job is never starved.
// The budget scheduler (budget_scheduler.hpp) breaks ties by age, then id. Pure.
#pragma once

#include <cstdint>

#include "core/job.hpp"

namespace reel {

// The effective priority of a queued job at time `now` (ms). `aging_seconds` <= 0
// disables aging; a clock that went backwards never lowers a job's priority.
double effective_priority(const Job& job, int64_t now, double aging_seconds);

}  // namespace reel
