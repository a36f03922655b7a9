// The job-spec fuzz targets' shared body: parse_job_spec on the fuzzer's text as a
// file named `name` (its extension picks TOML or JSON). Properties: only JobSpecError
// escapes, and an accepted spec survives the trip to the wire (to_json, then
// job_spec_from_json as the daemon's submit reads it) with the same canonical payload,
// so a job file and the same job over the socket are one job for idempotency.
#pragma once

#include "core/job_spec.hpp"
#include "fuzz_support.hpp"

namespace reel::fuzz {

inline void fuzz_job_spec(const uint8_t* data, size_t size, const char* name) {
  JobSpec spec;
  try {
    spec = parse_job_spec(std::string(text_of(data, size)), name, "/srv/jobs");
  } catch (const JobSpecError&) {
    return;
  }
  Json wire = spec.to_json();
  if (spec.max_attempts == 0) wire.erase("max_attempts");   // 0 means "the daemon's default"
  JobSpec again;
  try {
    again = job_spec_from_json(wire, "submit");
  } catch (const JobSpecError& e) {
    require(false, "an accepted job file is refused on the wire", std::string(e.what()) + "\n" + wire.dump());
  }
  require(again.canonical_payload() == spec.canonical_payload(), "canonical payload changed on the wire",
          spec.canonical_payload() + "\n" + again.canonical_payload());
}

}  // namespace reel::fuzz
