#include "submit_spec.hpp"

#include <cmath>
#include <filesystem>

#include "core/job_spec.hpp"
#include "exit_codes.hpp"

namespace reel::ctl {

namespace {

bool looks_like_url(const std::string& s) { return s.find("://") != std::string::npos; }

// Whole numbers are sent as integers ("max_slowdown": 8, not 8.0).
Json number(double x) {
  if (std::nearbyint(x) == x && std::fabs(x) < 9007199254740992.0) return static_cast<int64_t>(x);
  return x;
}

// The policy flags over the job file's policy, key by key. The two quality switches
// replace each other: the command line's choice is the one that counts.
void apply_policy_flags(const SubmitArgs& a, Json& policy) {
  if (!policy.is_object()) policy = Json::object();
  if (a.rung) policy["rung"] = *a.rung;
  if (a.allow_degrade) {
    policy["quality_fallback"] = true;
    policy.erase("no_quality_loss");
  }
  if (a.no_quality_loss) {
    policy["no_quality_loss"] = true;
    policy.erase("quality_fallback");
  }
  if (a.degrade_now) policy["degrade_now"] = true;
  if (a.max_slowdown) policy["max_slowdown"] = number(*a.max_slowdown);
  if (!a.floor.empty()) {
    if (!policy.contains("floor") || !policy["floor"].is_object()) policy["floor"] = Json::object();
    for (const auto& [k, v] : a.floor) policy["floor"][k] = v;
  }
}

}  // namespace

JobSpec build_submit_spec(const SubmitArgs& a, const std::string& cwd) {
  JobSpec spec;
  if (a.file) {
    try {
      spec = load_job_spec_file(*a.file);
    } catch (const std::exception& e) {
      throw UsageError(e.what(), "submit");
    }
  }
  if (!a.model.empty()) spec.model = a.model;
  if (spec.model.empty()) throw UsageError("no model: give MODEL or set `model` in the job file", "submit");
  if (!spec.params.is_object()) spec.params = Json::object();
  for (const auto& [k, v] : a.params) spec.params[k] = v;
  for (const auto& [role, path] : a.inputs) {
    std::filesystem::path p(path);
    spec.inputs[role] = looks_like_url(path) || p.is_absolute() ? path
                                                                 : (std::filesystem::path(cwd) / p).lexically_normal().string();
  }
  if (a.priority) spec.priority = *a.priority;
  if (a.max_attempts) spec.max_attempts = *a.max_attempts;
  if (a.idempotency_key) spec.idempotency_key = *a.idempotency_key;
  apply_policy_flags(a, spec.policy);
  spec.source = "ctl";
  return spec;
}

Json submit_job_json(const JobSpec& spec) {
  Json job = spec.to_json();
  // Defaults are left out rather than spelled as 0 / {}: the daemon fills them in, and
  // a daemon that predates a field still accepts the request.
  if (spec.max_attempts == 0) job.erase("max_attempts");
  if (auto p = job.find("policy"); p != job.end() && (p->is_null() || p->empty())) job.erase(p);
  return job;
}

}  // namespace reel::ctl
