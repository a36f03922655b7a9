// A job's plan in its stored JSON form, and the scheduler's view of a job.
//
// The plan is made once at submission (the plugin's estimate at every rung, corrected
// by measured peaks) and stored with the job, so scheduling is a pure function over
// stored data and `reelctl show` can explain every choice later.
#pragma once

#include <vector>

#include "core/budget_scheduler.hpp"

namespace reel {

RungEstimate stored_rung_estimate(const Json& j);
Json to_json(const RungEstimate& e);

// The scheduler's input for one queued job: its plan, policy and minimum rung. A job
// whose stored policy no longer parses gets the default policy (it was validated at
// submission; this only guards against hand-edited databases).
PlannedJob planned_job(const Job& job, bool default_quality_fallback);

}  // namespace reel

namespace reel {

// The rung a job falls back to after running out of memory at `failed_index`: the
// next index whose rung the job's policy allows (rung_allowed in budget_scheduler.hpp).
// Returns -1 when there is none; `why` then says what stopped it (for the job's error).
int next_fallback_rung(const PlannedJob& job, int failed_index, std::string* why);

}  // namespace reel
