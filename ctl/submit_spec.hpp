// Turning `reelctl submit` arguments into the JobSpec sent to the daemon.
//
// Precedence: the job file (--file) gives the base; MODEL and each flag override the
// file's field (params and inputs key by key). Input paths typed on the command line
// are made absolute against `cwd` because the daemon resolves nothing relative to the
// client; paths in a job file are already resolved against the file's folder by
// load_job_spec_file. URLs ("scheme://...") are passed through. source is always "ctl".
// The policy flags (--rung, --allow-degrade, ...) override the file's [policy] key by
// key (--floor: floor key by key); the daemon validates the result (invalid_params).
#pragma once

#include <string>

#include "args.hpp"
#include "core/job.hpp"

namespace reel::ctl {

// Throws UsageError (exit 2) for an unreadable or invalid job file or a missing model.
JobSpec build_submit_spec(const SubmitArgs& args, const std::string& cwd);

// The submit request's `job` object, leaving out fields at their defaults
// (max_attempts 0, empty policy) so the daemon applies its own.
Json submit_job_json(const JobSpec& spec);

}  // namespace reel::ctl
