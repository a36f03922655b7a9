#include "core/run_plan.hpp"

namespace reel {

RungEstimate stored_rung_estimate(const Json& j) {
  RungEstimate e;
  e.rung = j.value("rung", "");
  e.quality = j.value("quality", false);
  e.cpu_only = j.value("cpu_only", false);
  e.device_bytes = j.value("device_bytes", int64_t{0});
  e.host_bytes = j.value("host_bytes", int64_t{0});
  e.resident_device_bytes = j.value("resident_device_bytes", int64_t{0});
  e.resident_host_bytes = j.value("resident_host_bytes", int64_t{0});
  e.relative_time = j.value("relative_time", 1.0);
  e.effective = j.value("effective", Json::object());
  return e;
}

Json to_json(const RungEstimate& e) {
  return Json{{"rung", e.rung},
              {"quality", e.quality},
              {"cpu_only", e.cpu_only},
              {"device_bytes", e.device_bytes},
              {"host_bytes", e.host_bytes},
              {"resident_device_bytes", e.resident_device_bytes},
              {"resident_host_bytes", e.resident_host_bytes},
              {"relative_time", e.relative_time},
              {"effective", e.effective}};
}

PlannedJob planned_job(const Job& job, bool default_quality_fallback) {
  PlannedJob p;
  p.job = job;
  p.min_rung = job.min_rung;
  if (job.plan.is_array())
    for (const auto& r : job.plan) p.plan.push_back(stored_rung_estimate(r));
  try {
    p.policy = parse_job_policy(job.policy, default_quality_fallback);
  } catch (const std::exception&) {
    p.policy = parse_job_policy(Json::object(), default_quality_fallback);
  }
  return p;
}

}  // namespace reel

namespace reel {

int next_fallback_rung(const PlannedJob& job, int failed_index, std::string* why) {
  std::string last_reason = "it was the last rung of the ladder";
  for (int i = failed_index + 1; i < static_cast<int>(job.plan.size()); ++i) {
    std::string reason;
    if (rung_allowed(job, i, &reason)) return i;
    last_reason = "rung '" + job.plan[static_cast<size_t>(i)].rung + "' is not allowed: " + reason;
  }
  if (why) *why = last_reason;
  return -1;
}

}  // namespace reel
