// Parsing job specifications: job files (TOML or JSON) and reelctl's flags.
//
// One format everywhere: reelctl --file, watched folders and the control protocol's
// submit all carry the same fields:
//   model = "sleep"            # required
//   priority = 0               # optional, -1000..1000
//   max_attempts = 2           # optional, 1..100
//   idempotency_key = "..."    # optional, <= 200 chars
//   [params]                   # model parameters (scalars, arrays, tables)
//   seconds = 2
//   [inputs]                   # role -> file path (relative paths resolve against the file's folder)
//   image = "cat.png"
// Errors are JobSpecError with a message naming the file (and line for TOML) and field.
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
// Reads the file (refusing anything over 1 MiB) and parses it.
JobSpec load_job_spec_file(const std::string& path);
// From the wire (protocol submit params); the same validation as the file forms.
JobSpec job_spec_from_json(const Json& j, const std::string& name);

// "key=value" from the command line: value is parsed as a JSON scalar when it is one
// (2, 2.5, true, null, "quoted"), else kept as a string. Throws JobSpecError when
// there is no '='.
std::pair<std::string, Json> parse_param_assignment(const std::string& kv);

}  // namespace reel
