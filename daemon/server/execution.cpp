// Daemon: starting jobs, and recording what their workers report.
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/scheduler.hpp"
#include "server/daemon.hpp"
#include "server/job_runner.hpp"
#include "store/job_store.hpp"

namespace reel {

namespace fs = std::filesystem;

void Daemon::schedule() {
  if (!store_ || !runner_) return;
  SchedulingPolicy policy;
  policy.max_concurrent_jobs = config_.daemon.max_concurrent_jobs;
  policy.aging_seconds = config_.jobs.aging_seconds;
  policy.paused = paused_;
  policy.draining = draining_;
  if (policy.paused || policy.draining || static_cast<int>(runner_->active()) >= policy.max_concurrent_jobs) return;
  std::vector<std::string> picks;
  try {
    picks = pick_jobs_to_start(store_->queued(), static_cast<int>(runner_->active()), policy, now_ms());
  } catch (const std::exception& e) {
    spdlog::error("cannot read the queue: {}; retrying at the next status tick", e.what());
    return;
  }
  for (const auto& id : picks) launch(id);
}

void Daemon::launch(const std::string& job_id) {
  Job job;
  try {
    job = store_->start(job_id, "", now_ms());
  } catch (const std::exception& e) {
    spdlog::error("job {}: cannot mark it running: {}; it stays queued", job_id, e.what());
    return;
  }
  job_changed(job_id);
  const std::string work_dir = paths_.work_dir + "/" + job.id;
  const std::string output_dir = paths_.output_dir + "/" + job.id;
  try {
    fs::create_directories(work_dir);
    fs::create_directories(output_dir);
    runner_->launch(job, work_dir, output_dir);
  } catch (const std::exception& e) {
    // Could not even start a worker (fork failed, folder not writable): put the job
    // back without charging it a crash; the status tick will try again.
    spdlog::error("job {}: cannot start a worker: {}; re-queued, check free memory and the state folder", job.id,
                  e.what());
    try {
      store_->requeue(job.id, job.lease, std::string("could not start a worker: ") + e.what(), RequeueCause::interrupted,
                      config_.jobs.max_crashes, now_ms());
    } catch (const std::exception& e2) {
      spdlog::error("job {}: cannot re-queue it either: {}", job.id, e2.what());
    }
    job_changed(job.id);
  }
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
      store_->add_event(job_id, lease, level == "warn" || level == "warning" ? "warning" : "log",
                        Json{{"level", level}, {"message", message}}, now_ms());
    } else {
      store_->add_event(job_id, lease, kind.empty() ? "log" : kind, event, now_ms());
    }
  } catch (const StoreError& e) {
    if (e.code == StoreError::Code::lease_mismatch) return;   // a run we already gave up on
    spdlog::error("job {}: cannot record a {} event: {}", job_id, kind, e.what());
  }
  job_changed(job_id);
}

void Daemon::on_worker_done(const std::string& job_id, const std::string& lease, const RunOutcome& outcome) {
  const bool stopped = interrupted_by_stop_.erase(job_id) > 0;
  try {
    auto job = store_->get(job_id);
    if (!job || job->lease != lease) {
      spdlog::warn("job {}: a worker finished for a run that is no longer current; ignoring its result", job_id);
    } else {
      AfterRun next = decide_after_run(*job, outcome, stopped);
      if (next.action == AfterRun::Action::finish) {
        store_->finish(job_id, lease, next.final_state, next.text, outcome.outputs, now_ms());
        if (next.final_state == JobState::succeeded) {
          std::error_code ec;
          fs::remove_all(paths_.work_dir + "/" + job_id, ec);   // scratch is kept for failed jobs, for inspection
          spdlog::info("job {}: succeeded", job_id);
        } else {
          spdlog::warn("job {}: {}: {}", job_id, to_string(next.final_state), next.text);
        }
      } else {
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
  job_changed(job_id);
  if (draining_) stop_if_idle();
  if (!draining_) schedule();
}

void Daemon::job_changed(const std::string& job_id) {
  auto range = followers_.equal_range(job_id);
  for (auto it = range.first; it != range.second;) {
    if (pump(it->second, job_id)) ++it;
    else it = followers_.erase(it);
  }
}

}  // namespace reel
