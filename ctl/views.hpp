// Human renderings of protocol results (the non---json output of each command).
//
// Pure: each takes the result JSON exactly as the daemon sent it plus "now", so tests
// pin the output. Unknown or missing fields render as "-" rather than failing.
#pragma once

#include <cstdint>
#include <string>

#include "core/job.hpp"
#include "render.hpp"

namespace reel::ctl {

// ID STATE MODEL PRIO PROGRESS AGE SOURCE, one row per job object.
std::string render_job_table(const Json& jobs, int64_t now_ms, const Style& style);

// `show`: key/value lines for the job, then its events.
std::string render_job_details(const Json& job, const Json& events, int64_t now_ms, const Style& style);

// `status`: daemon summary, counts, running jobs.
std::string render_status(const Json& status, int64_t now_ms, const Style& style);

// `models`: NAME PROVIDER DESCRIPTION; `models NAME`: one model's params and inputs.
std::string render_model_list(const Json& models, const Style& style);
std::string render_model_details(const Json& model, const Style& style);

// The end of --wait/follow: "<id> <state>" then one output path per line, indented.
std::string render_final(const Json& job, const Style& style);

// "5/10" for a job object with a known total, else "-".
std::string job_progress_cell(const Json& job);

}  // namespace reel::ctl
