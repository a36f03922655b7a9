// Daemon: deciding what runs where, starting it, and recording what workers report.
#include <algorithm>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/input_roots.hpp"
#include "core/messages.hpp"
#include "core/run_plan.hpp"
#include "server/daemon.hpp"
#include "server/model_workers.hpp"
#include "server/plugin_registry.hpp"
#include "store/job_store.hpp"

namespace reel {

namespace fs = std::filesystem;

size_t Daemon::active_runs() const { return workers_ ? workers_->active() : 0; }

void Daemon::schedule() {
  if (!store_ || !workers_) return;
  SchedulerInput in;
  in.policy.max_concurrent_jobs = config_.daemon.max_concurrent_jobs;
  in.policy.aging_seconds = config_.jobs.aging_seconds;
  in.policy.paused = paused_;
  in.policy.draining = draining_;
  if (in.policy.paused || in.policy.draining) return;
  try {
    queue_->refresh();
  } catch (const std::exception& e) {
    spdlog::error("cannot read the queue: {}; retrying at the next status tick", e.what());
    return;
  }
  // The view's jobs are lent to the input for this pass (launch() points into them) and
  // given back however the pass ends.
  struct GiveBack {
    std::vector<PlannedJob>& lent;
    std::vector<PlannedJob>& owner;
    ~GiveBack() { std::swap(lent, owner); }
  } give_back{in.queued, queue_->jobs()};
  std::swap(in.queued, queue_->jobs());
  if (config_.scheduler.degrade_now)
    for (auto& q : in.queued) q.policy.degrade_now = true;
  add_remote_pools(in);
  in.running = workers_->running();
  in.resident = workers_->residents();
  in.devices = budgets();
  in.now = now_ms();
  SchedulerOutput out = schedule_jobs(in);

  waiting_.clear();
  for (auto& w : out.waiting) waiting_[w.job_id] = std::move(w.reason);
  auto queued_job = [&](const std::string& id) {
    return std::find_if(in.queued.begin(), in.queued.end(), [&](const PlannedJob& q) { return q.job.id == id; });
  };
  for (const auto& d : out.decisions) {
    switch (d.kind) {
      case Decision::Kind::evict:
        workers_->evict(d.model, d.device, d.rung, d.message.empty() ? "room needed" : d.message);
        break;
      case Decision::Kind::start:
        if (auto it = queued_job(d.job_id); it != in.queued.end()) launch(d, *it);
        break;
      case Decision::Kind::fail:
        fail_unschedulable(d);
        break;
    }
  }
}

// Remote models: each queued job's pool, and every pool's limits (the strictest any of
// its models states) with its starts in the last minute.
void Daemon::add_remote_pools(SchedulerInput& in) {
  const ModelCatalog& catalog = plugins_->catalog();
  std::map<std::string, RemotePoolBudget> pools;
  for (const auto& m : catalog.models()) {
    if (!m.remote) continue;
    auto [it, fresh] = pools.try_emplace(m.remote->pool);
    RemotePoolBudget& p = it->second;
    p.name = m.remote->pool;
    p.max_concurrent = fresh ? m.remote->max_concurrent : std::min(p.max_concurrent, m.remote->max_concurrent);
    int rpm = m.remote->requests_per_minute;
    if (fresh || (rpm > 0 && (p.requests_per_minute == 0 || rpm < p.requests_per_minute))) p.requests_per_minute = rpm;
  }
  const int64_t now = now_ms();
  for (auto& [name, starts] : remote_starts_) {
    starts.erase(std::remove_if(starts.begin(), starts.end(), [&](int64_t t) { return t <= now - 60000; }), starts.end());
    if (auto it = pools.find(name); it != pools.end()) it->second.recent_starts = starts;
  }
  for (auto& [name, p] : pools) in.pools.push_back(p);
  for (auto& q : in.queued)
    if (const ModelInfo* m = catalog.find(q.job.model); m && m->remote) q.remote_pool = m->remote->pool;
}

void Daemon::launch(const Decision& d, const PlannedJob& planned) {
  if (!planned.remote_pool.empty()) remote_starts_[planned.remote_pool].push_back(now_ms());
  Job job;
  try {
    job = store_->start(d.job_id, d.rung, now_ms());
    Json data = {{"device", d.device}, {"rung", d.rung}, {"rung_index", d.rung_index}, {"explain", d.explain}};
    store_->add_event(job.id, job.lease, "scheduled", data, now_ms());
  } catch (const std::exception& e) {
    spdlog::error("job {}: cannot mark it running: {}; it stays queued", d.job_id, e.what());
    return;
  }
  job_changed(job.id);
  RunRequest req;
  req.job = job;
  req.plugin_source = plugins_->source_of(job.model);
  req.device = d.device;
  if (d.rung_index >= 0 && d.rung_index < static_cast<int>(planned.plan.size()))
    req.estimate = planned.plan[static_cast<size_t>(d.rung_index)];
  else
    req.estimate.rung = d.rung;
  req.rung_entry = plugins_->ladder_rung(job.model, d.rung);
  if (req.rung_entry.is_null()) req.rung_entry = Json{{"name", d.rung}, {"kind", "placement"}, {"settings", Json::object()}};
  for (const JobEvent& e : store_->events(job.id))
    if (e.kind == "fallback") req.fallbacks.push_back(e.data);
  req.work_dir = paths_.work_dir + "/" + job.id;
  req.output_dir = paths_.output_dir + "/" + job.id;
  launched_[job.id] = Launched{d.rung_index, req.estimate, d.device};
  try {
    fs::create_directories(req.work_dir);
    fs::create_directories(req.output_dir);
  } catch (const std::exception& e) {
    RunOutcome out;
    out.kind = RunOutcome::Kind::failed;
    out.error_code = "internal";
    out.message = std::string("cannot create the job's folders: ") + e.what() + "; check free space and permissions";
    on_worker_done(job.id, job.lease, out);
    return;
  }
  spdlog::info("job {}: starting {} on {} at rung '{}'", job.id, job.model, d.device, d.rung);
  workers_->run(req);
}

void Daemon::fail_unschedulable(const Decision& d) {
  try {
    store_->fail_queued(d.job_id, d.message, Json{{"explain", d.explain}}, now_ms());
    spdlog::warn("job {}: failed without running: {}", d.job_id, d.message);
  } catch (const std::exception& e) {
    spdlog::error("job {}: cannot record that it cannot run: {}", d.job_id, e.what());
  }
  job_changed(d.job_id);
}

void Daemon::on_worker_event(const std::string& job_id, const std::string& lease, const Json& event) {
  const std::string kind = event.value("kind", "");
  try {
    if (kind == "progress") {
      JobProgress p;
      p.step = event.value("step", int64_t{0});
      p.total = event.value("total", int64_t{0});
      p.stage = event.value("stage", "");
      store_->progress(job_id, lease, p, now_ms());
    } else if (kind == "log") {
      std::string level = event.value("level", "info");
      std::string message = event.value("message", "");
      spdlog::log(spdlog::level::from_str(level), "job {}: {}", job_id, message);
      store_->add_event(job_id, lease, level == "warn" ? "warning" : "log",
                        Json{{"level", level}, {"message", message}}, now_ms());
    } else {
      store_->add_event(job_id, lease, kind.empty() ? "log" : kind, event.value("data", event), now_ms());
    }
  } catch (const StoreError& e) {
    if (e.code == StoreError::Code::lease_mismatch) return;   // a run we already gave up on
    spdlog::error("job {}: cannot record a {} event: {}", job_id, kind, e.what());
  }
  job_changed(job_id);
}

void Daemon::record_peak(const Job& job, const RunOutcome& outcome) {
  auto it = launched_.find(job.id);
  if (it == launched_.end() || (outcome.peak_device_bytes == 0 && outcome.peak_host_bytes == 0)) return;
  PeakRecord p;
  p.model = job.model;
  p.rung = it->second.estimate.rung;
  p.shape = job.plan.is_array() && it->second.rung_index >= 0 && it->second.rung_index < static_cast<int>(job.plan.size())
                ? job.plan[static_cast<size_t>(it->second.rung_index)].value("shape", "default")
                : "default";
  p.estimate_device = it->second.estimate.device_bytes;
  p.estimate_host = it->second.estimate.host_bytes;
  p.measured_device = outcome.peak_device_bytes;
  p.measured_host = outcome.peak_host_bytes;
  store_->record_peak(p, now_ms());
  store_->add_event(job.id, job.lease, "peak",
                    Json{{"rung", p.rung},
                         {"estimate_device_bytes", p.estimate_device},
                         {"measured_device_bytes", p.measured_device},
                         {"estimate_host_bytes", p.estimate_host},
                         {"measured_host_bytes", p.measured_host}},
                    now_ms());
}

void Daemon::on_worker_done(const std::string& job_id, const std::string& lease, const RunOutcome& reported) {
  const bool stopped = interrupted_by_stop_.erase(job_id) > 0;
  RunOutcome outcome = reported;
  // Outputs are handed to clients as paths: one outside the job's output folder (a
  // parameter joined into a file name, "../../x") is refused, never recorded.
  if (outcome.kind == RunOutcome::Kind::succeeded) {
    const std::string dir = paths_.output_dir + "/" + job_id;
    if (auto bad = outputs_outside(outcome.outputs, dir); !bad.empty()) {
      outcome.kind = RunOutcome::Kind::failed;
      outcome.error_code = "bad_input";   // running it again would do the same
      outcome.message = "the model reported outputs outside the job's output folder " + dir + ": " + join(bad) +
                        "; they were not recorded (a job parameter may steer a file name: report this to the "
                        "plugin's author)";
      outcome.outputs.clear();
      spdlog::error("job {}: {}", job_id, outcome.message);
    }
  }
  try {
    auto job = store_->get(job_id);
    if (!job || job->lease != lease) {
      spdlog::warn("job {}: a worker finished for a run that is no longer current; ignoring its result", job_id);
    } else {
      AfterRun next = decide_after_run(*job, outcome, stopped);
      if (next.action == AfterRun::Action::fall_back) {
        PlannedJob planned = planned_job(*job, config_.scheduler.quality_fallback);
        int failed = launched_.count(job_id) ? launched_[job_id].rung_index : job->min_rung;
        std::string why;
        int to = next_fallback_rung(planned, failed, &why);
        std::string from_rung = failed >= 0 && failed < static_cast<int>(planned.plan.size())
                                    ? planned.plan[static_cast<size_t>(failed)].rung : job->rung;
        if (to < 0) {
          next.action = AfterRun::Action::finish;
          next.final_state = JobState::failed;
          next.text = "out of memory at rung '" + from_rung + "' and no lower rung is allowed (" + why +
                      "); allow quality fallback or lower the job's floor. Last error: " + outcome.message;
        } else {
          const std::string& to_rung = planned.plan[static_cast<size_t>(to)].rung;
          store_->fall_back(job_id, lease, to,
                            Json{{"from", from_rung}, {"to", to_rung}, {"reason", next.text},
                                 {"quality", planned.plan[static_cast<size_t>(to)].quality}},
                            now_ms());
          spdlog::warn("job {}: out of memory at rung '{}'; retrying at rung '{}'", job_id, from_rung, to_rung);
        }
      }
      if (next.action == AfterRun::Action::finish) {
        if (next.final_state == JobState::succeeded) record_peak(*job, outcome);
        store_->finish(job_id, lease, next.final_state, next.text, outcome.outputs, now_ms());
        if (next.final_state == JobState::succeeded) {
          std::error_code ec;
          fs::remove_all(paths_.work_dir + "/" + job_id, ec);   // scratch is kept for failed jobs, for inspection
          spdlog::info("job {}: succeeded", job_id);
        } else {
          spdlog::warn("job {}: {}: {}", job_id, to_string(next.final_state), next.text);
        }
      } else if (next.action == AfterRun::Action::requeue) {
        Job after = store_->requeue(job_id, lease, next.text, next.cause, config_.jobs.max_crashes, now_ms());
        if (after.state == JobState::failed)
          spdlog::error("job {}: {}; fix the cause, then `reelctl retry {}`", job_id, after.error, job_id);
        else
          spdlog::warn("job {}: {}", job_id, next.text);
      }
    }
  } catch (const std::exception& e) {
    spdlog::error("job {}: cannot record the end of its run: {}; it will be recovered at the next start", job_id,
                  e.what());
  }
  launched_.erase(job_id);
  job_changed(job_id);
  if (draining_) stop_if_idle();
}

void Daemon::job_changed(const std::string& job_id) {
  if (queue_) queue_->mark(job_id);
  watches_job_changed(job_id);
  auto range = followers_.equal_range(job_id);
  for (auto it = range.first; it != range.second;) {
    if (pump(it->second, job_id)) ++it;
    else it = followers_.erase(it);
  }
}

}  // namespace reel
