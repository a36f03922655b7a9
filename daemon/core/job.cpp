#include "core/job.hpp"

#include <chrono>

namespace reel {

std::string_view to_string(JobState s) {
  switch (s) {
    case JobState::queued: return "queued";
    case JobState::running: return "running";
    case JobState::succeeded: return "succeeded";
    case JobState::failed: return "failed";
    case JobState::cancelled: return "cancelled";
  }
  return "unknown";
}

std::optional<JobState> parse_job_state(std::string_view s) {
  for (auto st : {JobState::queued, JobState::running, JobState::succeeded, JobState::failed,
                  JobState::cancelled})
    if (to_string(st) == s) return st;
  return std::nullopt;
}

bool is_final(JobState s) {
  return s == JobState::succeeded || s == JobState::failed || s == JobState::cancelled;
}

std::string JobSpec::canonical_payload() const {
  // nlohmann::json objects are ordered maps, so dump() is canonical for equal content.
  Json j = {{"model", model}, {"params", params}, {"inputs", inputs}, {"priority", priority},
            {"max_attempts", max_attempts}};
  if (!policy.empty()) j["policy"] = policy;   // absent when empty: keeps keys made before policies existed
  return j.dump();
}

Json JobSpec::to_json() const {
  Json j = {{"model", model}, {"params", params}, {"inputs", inputs}, {"priority", priority},
            {"max_attempts", max_attempts}, {"source", source}, {"policy", policy}};
  if (!idempotency_key.empty()) j["idempotency_key"] = idempotency_key;
  return j;
}

Json Job::to_json() const {
  return Json{{"id", id},
              {"model", model},
              {"params", params},
              {"inputs", inputs},
              {"priority", priority},
              {"state", std::string(to_string(state))},
              {"created_at", created_at},
              {"started_at", started_at},
              {"finished_at", finished_at},
              {"attempts", attempts},
              {"max_attempts", max_attempts},
              {"crash_count", crash_count},
              {"source", source},
              {"idempotency_key", idempotency_key},
              {"outputs", outputs},
              {"rung", rung},
              {"error", error},
              {"progress", {{"step", progress.step}, {"total", progress.total}, {"stage", progress.stage}}},
              {"cancel_requested", cancel_requested},
              {"policy", policy},
              {"plan", plan},
              {"min_rung", min_rung}};
}

Job Job::from_json(const Json& j) {
  Job job;
  job.id = j.value("id", "");
  job.model = j.value("model", "");
  job.params = j.value("params", Json::object());
  job.inputs = j.value("inputs", std::map<std::string, std::string>{});
  job.priority = j.value("priority", 0);
  job.state = parse_job_state(j.value("state", "queued")).value_or(JobState::queued);
  job.created_at = j.value("created_at", int64_t{0});
  job.started_at = j.value("started_at", int64_t{0});
  job.finished_at = j.value("finished_at", int64_t{0});
  job.attempts = j.value("attempts", 0);
  job.max_attempts = j.value("max_attempts", 3);
  job.crash_count = j.value("crash_count", 0);
  job.source = j.value("source", "ctl");
  job.idempotency_key = j.value("idempotency_key", "");
  job.outputs = j.value("outputs", std::vector<std::string>{});
  job.rung = j.value("rung", "");
  job.error = j.value("error", "");
  if (auto p = j.find("progress"); p != j.end() && p->is_object()) {
    job.progress.step = p->value("step", int64_t{0});
    job.progress.total = p->value("total", int64_t{0});
    job.progress.stage = p->value("stage", "");
  }
  job.cancel_requested = j.value("cancel_requested", false);
  job.policy = j.value("policy", Json::object());
  job.plan = j.value("plan", Json::array());
  job.min_rung = j.value("min_rung", 0);
  return job;
}

Json JobEvent::to_json() const {
  return Json{{"job", job_id}, {"seq", seq}, {"at", at}, {"kind", kind}, {"data", data}};
}

JobEvent JobEvent::from_json(const Json& j) {
  JobEvent e;
  e.job_id = j.value("job", "");
  e.seq = j.value("seq", int64_t{0});
  e.at = j.value("at", int64_t{0});
  e.kind = j.value("kind", "");
  e.data = j.value("data", Json::object());
  return e;
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace reel
