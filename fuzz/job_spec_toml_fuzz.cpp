// Job files in TOML (job_spec.hpp); the shared body is in job_spec_fuzz.hpp.
#include "job_spec_fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  reel::fuzz::fuzz_job_spec(data, size, "job.toml");
  return 0;
}
