// Parsing job specifications: job files (TOML or JSON) and reelctl's flags.
//
// One format everywhere: reelctl --file, watched folders and the control protocol's
// submit all carry the same fields:
//   model = "sleep"            # required
//   priority = 0               # optional, -1000..1000
//   max_attempts = 2           # optional, 1..100
//   idempotency_key = "..."    # optional, <= 200 chars
//   source = "api"             # optional, who submitted; default "ctl"
//   [params]                   # model parameters (scalars, arrays, tables; TOML dates are refused)
//   seconds = 2
//   [inputs]                   # role -> file path (relative paths resolve against the file's folder;
//   image = "cat.png"          #   URLs and absolute paths are kept as given; empty is refused)
//   [policy]                   # what may happen when the job does not fit (budget_scheduler.hpp)
//   quality_fallback = true    #   rung = "...", degrade_now, no_quality_loss, max_slowdown,
//   floor = { steps = 20 }     #   floor = { steps, frames, size, precision }
// Unknown fields are errors (with a did-you-mean), so a typo is never silently dropped.
// Only the shape is checked here; the model's own parameters are checked by
// ModelCatalog::validate().
// Errors are JobSpecError with a message naming the file (and line for TOML, or the
// byte offset of a JSON syntax error) and field, e.g.
//   job.toml:3: unknown field 'modle' (did you mean 'model'?); fields: model, ...
//   job.json: priority: must be between -1000 and 1000, got 5000
// Pure functions apart from load_job_spec_file(); thread-safe.
#pragma once

#include <stdexcept>
#include <string>

#include "core/job.hpp"

namespace reel {

struct JobSpecError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Parses TOML or JSON text. `name` is used in messages and to pick the format by
// extension (.toml / .json); any other name is sniffed ('{' first -> JSON).
// `base_dir` resolves relative input paths; empty leaves them as given.
JobSpec parse_job_spec(const std::string& text, const std::string& name, const std::string& base_dir);
// Reads the file (refusing anything over 1 MiB) and parses it; relative inputs
// resolve against the file's folder.
JobSpec load_job_spec_file(const std::string& path);
// From the wire (protocol submit params); the same validation as the file forms.
JobSpec job_spec_from_json(const Json& j, const std::string& name);

// "key=value" from the command line: value is parsed as JSON when it is valid JSON
// (2, 2.5, true, null, "quoted", [1,2], {"a":1}), else kept as a string, so
// name=hello world needs no quotes. Splits at the first '='. Throws JobSpecError
// when there is no '=' or the key is empty.
std::pair<std::string, Json> parse_param_assignment(const std::string& kv);

}  // namespace reel
