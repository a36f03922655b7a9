// Daemon: the control protocol's methods (see docs/PROTOCOL.md).
//
// Handlers throw; handle() maps each exception type to one wire error code, so
// every method reports failures the same way.
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "core/input_roots.hpp"
#include "core/job_spec.hpp"
#include "core/budget_scheduler.hpp"
#include "core/messages.hpp"
#include "server/daemon.hpp"
#include "server/model_workers.hpp"
#include "server/plugin_registry.hpp"
#include "store/job_store.hpp"

namespace reel {

namespace {

struct RequestError : std::runtime_error {
  RequestError(const char* c, const std::string& m) : std::runtime_error(m), code(c) {}
  const char* code;
};

const char* wire_code(StoreError::Code c) {
  switch (c) {
    case StoreError::Code::not_found: return err::not_found;
    case StoreError::Code::conflict: return err::conflict;
    case StoreError::Code::invalid_state: return err::invalid_state;
    case StoreError::Code::queue_full: return err::queue_full;
    case StoreError::Code::storage: return err::storage;
    case StoreError::Code::disk_full: return err::disk_full;
    case StoreError::Code::read_only: return err::read_only;
    case StoreError::Code::lease_mismatch: return err::internal;
  }
  return err::internal;
}

Job job_or_throw(JobStore& store, const std::string& id) {
  auto job = store.get(id);
  if (!job) throw RequestError(err::not_found, "no job '" + id + "'; `reelctl ls` lists jobs");
  return *job;
}

bool is_mutating(const std::string& method) {
  return method == "submit" || method == "cancel" || method == "retry" || method == "priority" ||
         method == "pause" || method == "resume" || method == "drain" || method == "prune";
}

}  // namespace

const std::map<std::string, Daemon::Method>& Daemon::methods() {
  static const std::map<std::string, Method> table = {
      {"submit", &Daemon::do_submit}, {"list", &Daemon::do_list},         {"show", &Daemon::do_show},
      {"cancel", &Daemon::do_cancel}, {"retry", &Daemon::do_retry},       {"priority", &Daemon::do_priority},
      {"pause", &Daemon::do_pause},   {"resume", &Daemon::do_resume},     {"drain", &Daemon::do_drain},
      {"status", &Daemon::do_status}, {"models", &Daemon::do_models},     {"follow", &Daemon::do_follow},
      {"prune", &Daemon::do_prune},   {"plugins", &Daemon::do_plugins},   {"watches", &Daemon::do_watches},
  };
  return table;
}

void Daemon::handle(const SessionPtr& session, const Request& req) {
  auto it = methods().find(req.method);
  if (it == methods().end()) {
    session->error(req.id, err::unknown_method, "unknown method '" + req.method + "'");
    return;
  }
  if (is_mutating(req.method)) {
    // Params can be up to jobs.max_params_bytes; the log gets their start, enough to tell jobs apart.
    constexpr size_t kMaxLogged = 512;
    std::string params = req.params.dump(-1, ' ', false, Json::error_handler_t::replace);
    if (params.size() > kMaxLogged) params = params.substr(0, kMaxLogged) + "... (" + std::to_string(params.size()) + " bytes)";
    spdlog::info("request {} {} from {}", req.method, params, session->peer().to_string());
  }
  try {
    (this->*(it->second))(session, req);
  } catch (const RequestError& e) {
    session->error(req.id, e.code, e.what());
  } catch (const StoreError& e) {
    if (is_storage_failure(e.code))
      spdlog::error("{} refused: {}", req.method, e.what());
    session->error(req.id, wire_code(e.code), e.what());
  } catch (const ParamError& e) {
    session->error(req.id, err::bad_request, std::string(req.method) + ": " + e.what());
  } catch (const JobSpecError& e) {
    session->error(req.id, err::bad_request, e.what());
  } catch (const ParamValidationError& e) {
    session->error(req.id, err::invalid_params, e.what());
  }
}

void Daemon::session_closed(const Session& session) {
  for (auto it = followers_.begin(); it != followers_.end();) {
    auto s = it->second.session.lock();
    if (!s || s.get() == &session) it = followers_.erase(it);
    else ++it;
  }
}

void Daemon::do_submit(const SessionPtr& s, const Request& req) {
  auto job_json = req.params.find("job");
  if (job_json == req.params.end() || !job_json->is_object()) throw ParamError("'job' must be an object");
  JobSpec spec = job_spec_from_json(*job_json, "submit");
  // Params are stored with the job and returned by every list; the request-size limit
  // alone would let a few clients fill the database and make `list` replies huge.
  const size_t params_bytes = spec.params.dump(-1, ' ', false, Json::error_handler_t::replace).size();
  if (params_bytes > static_cast<size_t>(config_.jobs.max_params_bytes))
    throw RequestError(err::invalid_params, "params are " + std::to_string(params_bytes) +
                                                " bytes of JSON, over jobs.max_params_bytes (" +
                                                std::to_string(config_.jobs.max_params_bytes) +
                                                "); pass large data as an input file instead");
  if (spec.source != "ctl" && spec.source != "api")
    throw RequestError(err::bad_request, "source must be 'ctl' or 'api' over the socket (got '" + spec.source + "')");
  submit_job(std::move(spec), [s, id = req.id](const SubmitReply& r) {
    if (r.ok) s->reply(id, Json{{"job", r.job.to_json()}, {"existed", r.existed}});
    else s->error(id, r.code.c_str(), r.message);
  });
}

void Daemon::submit_job(JobSpec spec, std::function<void(const SubmitReply&)> done) {
  auto refuse = [&](const char* code, const std::string& message) {
    SubmitReply r;
    r.code = code;
    r.message = message;
    done(r);
  };
  try {
    validate_and_plan(std::move(spec), done);
  } catch (const RequestError& e) {
    refuse(e.code, e.what());
  } catch (const ParamValidationError& e) {
    refuse(err::invalid_params, e.what());
  } catch (const JobSpecError& e) {
    refuse(err::bad_request, e.what());
  } catch (const StoreError& e) {
    refuse(wire_code(e.code), e.what());
  }
}

void Daemon::validate_and_plan(JobSpec spec, std::function<void(const SubmitReply&)> done) {
  if (draining_)
    throw RequestError(err::draining, "reeld is draining and accepts no new jobs; submit again after it restarts");
  const ModelCatalog& catalog = plugins_->catalog();
  if (!catalog.find(spec.model)) {
    std::string names;
    for (const auto& m : catalog.models()) names += (names.empty() ? "" : ", ") + m.name;
    throw RequestError(err::unknown_model, "unknown model '" + spec.model + "'; available: " + names +
                                               " (`reelctl plugins` shows plugins that failed to load)");
  }
  spec.params = catalog.validate(spec);
  const auto roots = input_roots();
  for (auto& [role, path] : spec.inputs) {
    InputCheck check = check_input(path, roots);
    if (!check.allowed) {
      spdlog::warn("submit from {} refused: input '{}': {}", spec.source, role, check.why);
      throw RequestError(err::input_not_allowed, "input '" + role + "': " + check.why);
    }
    path = check.resolved;   // the worker reads what was checked, not a name that could move
  }
  try {
    parse_job_policy(spec.policy, config_.scheduler.quality_fallback);
  } catch (const std::invalid_argument& e) {
    throw RequestError(err::invalid_params, e.what());
  }
  if (spec.max_attempts == 0) spec.max_attempts = config_.jobs.max_attempts;

  // The plan comes from the model's planner process; the job is stored (and the
  // submission acknowledged) only once it is planned and durable.
  Json plan_job = {{"id", ""}, {"model", spec.model}, {"params", spec.params}, {"inputs", spec.inputs}};
  plugins_->plan(plan_job, [this, done, spec](bool ok, const Json& result) {
    SubmitReply r;
    if (!ok) {
      std::string code = result.value("code", "internal");
      r.code = code == "bad_input"         ? err::invalid_params
               : code == "unknown_model"   ? err::unknown_model
               : code == "missing_weights" ? err::missing_weights
                                           : err::internal;
      r.message = "cannot plan the job: " + result.value("message", "");
      done(r);
      return;
    }
    Json plan = result;
    // A pinned rung that the model does not have is a typo: refuse it now rather than
    // let the job fail when the scheduler reaches it.
    if (auto pin = spec.policy.find("rung"); pin != spec.policy.end() && pin->is_string()) {
      std::vector<std::string> names;
      for (const auto& rung : plan) names.push_back(rung.value("rung", ""));
      if (std::find(names.begin(), names.end(), pin->get<std::string>()) == names.end()) {
        r.code = err::invalid_params;
        r.message = "policy.rung: model '" + spec.model + "' has no rung '" + pin->get<std::string>() + "'" +
                    did_you_mean(pin->get<std::string>(), names) + "; rungs: " + join(names);
        done(r);
        return;
      }
    }
    correct_plan(spec.model, plan);
    try {
      auto submitted = store_->submit(spec, now_ms(), config_.daemon.max_queued_jobs, plan);
      if (!submitted.existed)
        spdlog::info("job {}: queued ({}, priority {}, from {})", submitted.job.id, spec.model, spec.priority,
                     spec.source);
      r.ok = true;
      r.job = submitted.job;
      r.existed = submitted.existed;
      done(r);
      job_changed(submitted.job.id);
      request_schedule();
    } catch (const StoreError& e) {
      if (is_storage_failure(e.code)) spdlog::error("submit refused: {}", e.what());
      r.code = wire_code(e.code);
      r.message = e.what();
      done(r);
    }
  });
}

std::vector<std::string> Daemon::input_roots() const {
  std::vector<std::string> roots = config_.jobs.input_roots;
  // A watched folder's inputs are claimed into <folder>/.reel/processing: the folder is a root.
  for (const auto& w : config_.watches) roots.push_back(w.path);
  return roots;
}

void Daemon::do_list(const SessionPtr& s, const Request& req) {
  JobFilter f;
  if (auto st = optional_string(req.params, "state")) {
    f.state = parse_job_state(*st);
    if (!f.state) throw ParamError("'state' must be one of queued, running, succeeded, failed, cancelled");
  }
  f.model = optional_string(req.params, "model").value_or("");
  f.source = optional_string(req.params, "source").value_or("");
  f.limit = static_cast<int>(optional_int(req.params, "limit", 1, 10000).value_or(100));
  Json jobs = Json::array();
  for (const auto& j : store_->list(f)) jobs.push_back(j.to_json());
  s->reply(req.id, Json{{"jobs", jobs}});
}

void Daemon::do_show(const SessionPtr& s, const Request& req) {
  Job job = job_or_throw(*store_, require_string(req.params, "id"));
  Json events = Json::array();
  for (const auto& e : store_->events(job.id, 0)) events.push_back(e.to_json());
  Json result = {{"job", job.to_json()}, {"events", events}};
  if (auto w = waiting_.find(job.id); w != waiting_.end()) result["waiting"] = w->second;
  Json peaks = Json::array();
  for (const auto& p : store_->peaks(job.model))
    peaks.push_back(Json{{"rung", p.rung}, {"shape", p.shape}, {"estimate_device_bytes", p.estimate_device},
                         {"measured_device_bytes", p.measured_device}, {"estimate_host_bytes", p.estimate_host},
                         {"measured_host_bytes", p.measured_host}, {"samples", p.samples}});
  result["peaks"] = peaks;
  s->reply(req.id, result);
}

void Daemon::do_cancel(const SessionPtr& s, const Request& req) {
  Job job = store_->cancel(require_string(req.params, "id"), now_ms());
  if (job.state == JobState::running) {
    auto grace = std::chrono::milliseconds(static_cast<int64_t>(config_.daemon.cancel_grace_seconds * 1000));
    workers_->cancel(job.id, grace);
  }
  s->reply(req.id, Json{{"job", job.to_json()}});
  job_changed(job.id);
}

void Daemon::do_retry(const SessionPtr& s, const Request& req) {
  if (draining_) throw RequestError(err::draining, "reeld is draining and starts no jobs; retry after it restarts");
  Job job = store_->retry(require_string(req.params, "id"), now_ms());
  s->reply(req.id, Json{{"job", job.to_json()}});
  job_changed(job.id);
  request_schedule();
}

void Daemon::do_priority(const SessionPtr& s, const Request& req) {
  auto prio = optional_int(req.params, "priority", -1000, 1000);
  if (!prio) throw ParamError("'priority' (an integer from -1000 to 1000) is required");
  Job job = store_->set_priority(require_string(req.params, "id"), static_cast<int>(*prio), now_ms());
  s->reply(req.id, Json{{"job", job.to_json()}});
  job_changed(job.id);
  request_schedule();
}

void Daemon::do_pause(const SessionPtr& s, const Request& req) {
  store_->set_setting("paused", "1");   // survives a restart: a paused queue stays paused
  paused_ = true;
  spdlog::info("queue paused: running jobs continue, no new job starts until `reelctl resume`");
  publish_status();
  s->reply(req.id, Json{{"paused", true}});
}

void Daemon::do_resume(const SessionPtr& s, const Request& req) {
  store_->set_setting("paused", "0");
  paused_ = false;
  spdlog::info("queue resumed");
  publish_status();
  s->reply(req.id, Json{{"paused", false}});
  request_schedule();
}

void Daemon::do_drain(const SessionPtr& s, const Request& req) {
  draining_ = true;
  spdlog::info("draining: {} running job(s) will finish, nothing new starts, then reeld exits", active_runs());
  publish_status();
  s->reply(req.id, Json{{"draining", true}, {"running", active_runs()}});
  // Let the reply go out before a possible immediate exit.
  boost::asio::post(io_, [this] { stop_if_idle(); });
}

void Daemon::do_status(const SessionPtr& s, const Request& req) {
  auto c = store_->counts();
  Json running = Json::array();
  for (const auto& j : store_->running()) running.push_back(j.to_json());
  Json models = Json::array();
  for (const auto& m : plugins_->catalog().models()) models.push_back(m.to_json());
  Json plugins = Json::array();
  for (const auto& p : plugins_->plugins()) plugins.push_back(p.to_json());
  auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
  s->reply(req.id,
           Json{{"version", REEL_VERSION},
                {"pid", ::getpid()},
                {"uptime_s", uptime.count()},
                {"paused", paused_},
                {"draining", draining_},
                {"counts",
                 {{"queued", c.queued}, {"running", c.running}, {"succeeded", c.succeeded}, {"failed", c.failed},
                  {"cancelled", c.cancelled}}},
                {"running", running},
                {"budgets", {{"max_concurrent_jobs", config_.daemon.max_concurrent_jobs}}},
                {"devices", devices_json()},
                {"device_source", probe_->source()},
                {"workers", workers_->to_json()},
                {"models", models},
                {"plugins", plugins},
                {"socket", paths_.socket_path},
                {"state_dir", paths_.state_dir}});
}

void Daemon::do_models(const SessionPtr& s, const Request& req) {
  Json models = Json::array();
  auto name = optional_string(req.params, "name");
  for (const auto& m : plugins_->catalog().models())
    if (!name || m.name == *name) models.push_back(m.to_json());
  if (name && models.empty()) throw RequestError(err::unknown_model, "unknown model '" + *name + "'");
  s->reply(req.id, Json{{"models", models}});
}

void Daemon::do_follow(const SessionPtr& s, const Request& req) {
  Job job = job_or_throw(*store_, require_string(req.params, "id"));
  Follower f{s, req.id, optional_int(req.params, "after_seq", 0, INT64_MAX).value_or(0)};
  if (pump(f, job.id)) followers_.emplace(job.id, std::move(f));
}

bool Daemon::pump(Follower& f, const std::string& job_id) {
  auto s = f.session.lock();
  if (!s || s->closed()) return false;
  // Events and state change in one transaction, and only this thread writes, so
  // after sending every event up to now the job's state is consistent with them.
  for (const auto& e : store_->events(job_id, f.last_seq)) {
    s->send(encode_event(f.request_id, e.to_json()));
    f.last_seq = e.seq;
  }
  auto job = store_->get(job_id);
  if (!job) {
    s->error(f.request_id, err::not_found, "job '" + job_id + "' was pruned while being followed");
    return false;
  }
  if (is_final(job->state)) {
    s->reply(f.request_id, Json{{"job", job->to_json()}});
    return false;
  }
  return true;
}

void Daemon::do_plugins(const SessionPtr& s, const Request& req) {
  Json plugins = Json::array();
  for (const auto& p : plugins_->plugins()) plugins.push_back(p.to_json());
  s->reply(req.id, Json{{"plugins", plugins}});
}

void Daemon::do_prune(const SessionPtr& s, const Request& req) {
  auto older = optional_int(req.params, "older_than_s", 0, INT64_MAX / 1000);
  if (!older) throw ParamError("'older_than_s' (seconds, >= 0) is required");
  int64_t deleted = store_->prune(now_ms() - *older * 1000);
  spdlog::info("pruned {} finished job(s) older than {} s", deleted, *older);
  s->reply(req.id, Json{{"deleted", deleted}});
}

}  // namespace reel
