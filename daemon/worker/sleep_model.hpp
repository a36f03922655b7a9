// The built-in diagnostic model `sleep`: waits `seconds` in `steps` equal steps,
// reporting progress after each, and fails with an `internal` error at
// `fail_at_step` (1-based; 0 = never). It writes result.json (its parameters and
// timings) as its one output, so the output path of a job is exercised too.
#pragma once

#include <string>
#include <vector>

#include "core/job.hpp"
#include "worker/run_context.hpp"

namespace reel {

// Returns the output files. Throws ModelError("cancelled") when cancelled,
// ModelError("internal") at fail_at_step.
std::vector<std::string> run_sleep_model(const Job& job, RunContext& ctx);

}  // namespace reel
