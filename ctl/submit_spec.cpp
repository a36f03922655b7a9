#include "submit_spec.hpp"

#include <filesystem>

#include "core/job_spec.hpp"
#include "exit_codes.hpp"

namespace reel::ctl {

namespace {
bool looks_like_url(const std::string& s) { return s.find("://") != std::string::npos; }
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
