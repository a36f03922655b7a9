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

// `show`, from the whole result {job, events, waiting?, peaks?}: key/value lines for the
// job (rung, waiting reason), its plan (RUNG KIND GPU HOST TIME QUALITY NOTE: the rung in
// use, rungs ruled out by a fallback, corrected estimates), its rung history (from the
// "scheduled" and "fallback" events: time, rung, device, needed vs available; quality
// fallbacks flagged loudly), the measured peaks of the plan's rungs, then every event.
std::string render_show(const Json& result, int64_t now_ms, const Style& style);
// The same for a job and its events alone.
std::string render_job_details(const Json& job, const Json& events, int64_t now_ms, const Style& style);

// `status`: daemon summary, counts, plugins, devices (the "cpu" budget is host RAM),
// the probe's source, model workers, running jobs.
std::string render_status(const Json& status, int64_t now_ms, const Style& style);

// `plugins`: SOURCE NAME VERSION STATE MODELS/ERROR, one row per plugin object.
std::string render_plugins(const Json& plugins, const Style& style);

// `watch ls`: PATH MODE PENDING PROCESSING DONE FAILED LAST ERROR, one row per watch
// object (the error with its age, e.g. "2m ago: anna.png refused: ..."); "no watched
// folders" and where to configure them when there are none.
std::string render_watches(const Json& watches, int64_t now_ms, const Style& style);

// `models`: NAME PROVIDER DESCRIPTION; `models NAME`: one model's params, inputs,
// outputs and ladder.
std::string render_model_list(const Json& models, const Style& style);
std::string render_model_details(const Json& model, const Style& style);

// Human byte sizes, as the daemon writes them: "512 B", "1.5 KiB", "9.1 GiB"; "-" when
// the field is missing.
std::string bytes_cell(const Json& j, const char* key);

// The end of --wait/follow: "<id> <state>" then one output path per line, indented.
std::string render_final(const Json& job, const Style& style);

// "5/10" for a job object with a known total, else "-".
std::string job_progress_cell(const Json& job);

}  // namespace reel::ctl
