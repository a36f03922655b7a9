// The control protocol as reeld reads it: one request line (protocol.hpp), the typed
// param accessors the methods use, and a submit's job spec and policy, which are the
// parts of a request that reach the pure core before anything touches the store.
// Properties: parse_request never throws; whatever it accepts can be echoed back with
// encode_result, and decode_reply reads that line back to the same id and params.
#include "core/budget_scheduler.hpp"
#include "core/job_spec.hpp"
#include "core/protocol.hpp"
#include "fuzz_support.hpp"

using namespace reel;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line = fuzz::text_of(data, size);
  ParsedRequest parsed = parse_request(line);
  fuzz::require(parsed.request.has_value() != parsed.error.has_value(), "exactly one of request and error");
  try {
    decode_reply(line);   // reelctl reads server lines with it; a hostile server must not crash it
  } catch (const std::runtime_error&) {
  }
  if (!parsed.request) return 0;
  const Request& req = *parsed.request;

  Reply echoed = decode_reply(encode_result(req.id, req.params));
  fuzz::require(echoed.kind == Reply::Kind::result && echoed.id == req.id && echoed.body == req.params,
                "encode_result/decode_reply round trip", req.params.dump());

  try {
    require_string(req.params, "id");
  } catch (const ParamError&) {
  }
  try {
    optional_string(req.params, "state");
    optional_int(req.params, "limit", 1, 10000);
    optional_int(req.params, "after_seq", 0, INT64_MAX);
  } catch (const ParamError&) {
  }
  auto job = req.params.find("job");
  if (job == req.params.end() || !job->is_object()) return 0;
  try {
    JobSpec spec = job_spec_from_json(*job, "submit");
    parse_job_policy(spec.policy, false);
  } catch (const JobSpecError&) {
  } catch (const std::invalid_argument&) {   // parse_job_policy's documented error
  }
  return 0;
}
