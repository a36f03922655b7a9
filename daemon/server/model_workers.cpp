#include "server/model_workers.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace reel {

namespace asio = boost::asio;

struct ModelWorkers::Resident {
  explicit Resident(asio::io_context& io) : keep_alive_timer(io), kill_timer(io) {}
  std::string model, device, rung;
  std::shared_ptr<WorkerProcess> worker;
  enum class State { starting, idle, busy } state = State::starting;
  int64_t resident_device_bytes = 0, resident_host_bytes = 0;
  int64_t last_used = 0;
  // The job in flight (busy or starting).
  std::string job_id, lease;
  int64_t job_device_bytes = 0, job_host_bytes = 0;
  bool cancel_sent = false, killed_for_cancel = false, ending = false;
  asio::steady_timer keep_alive_timer, kill_timer;
};

ModelWorkers::ModelWorkers(asio::io_context& io, std::string worker_exe, BindFn bind, Callbacks callbacks)
    : io_(io), worker_exe_(std::move(worker_exe)), bind_(std::move(bind)), callbacks_(std::move(callbacks)) {}

ModelWorkers::~ModelWorkers() {
  for (auto& r : residents_)
    if (r->worker) r->worker->kill();
}

void ModelWorkers::run(const RunRequest& req) {
  for (auto& r : residents_) {
    if (r->state == Resident::State::idle && !r->ending && r->model == req.job.model && r->device == req.device &&
        r->rung == req.estimate.rung) {
      r->keep_alive_timer.cancel();
      run_on(r, req);
      return;
    }
  }
  // Over the cap: the least recently used idle model makes way (busy ones never do).
  // Workers of remote models (device "remote:<pool>") hold no model: they neither count
  // toward max_resident_models nor make a local model leave.
  auto local = [](const auto& x) { return !x->ending && !is_remote_device(x->device); };
  int live = static_cast<int>(std::count_if(residents_.begin(), residents_.end(), local));
  while (!is_remote_device(req.device) && live >= max_resident_) {
    std::shared_ptr<Resident> lru;
    for (auto& x : residents_)
      if (x->state == Resident::State::idle && local(x) && (!lru || x->last_used < lru->last_used)) lru = x;
    if (!lru) break;
    evict(lru->model, lru->device, lru->rung, "max_resident_models reached");
    --live;
  }
  auto r = std::make_shared<Resident>(io_);
  r->model = req.job.model;
  r->device = req.device;
  r->rung = req.estimate.rung;
  r->resident_device_bytes = req.estimate.resident_device_bytes;
  r->resident_host_bytes = req.estimate.resident_host_bytes;
  r->job_id = req.job.id;
  r->lease = req.job.lease;
  r->job_device_bytes = req.estimate.device_bytes;
  r->job_host_bytes = req.estimate.host_bytes;
  residents_.push_back(r);
  start_worker(r, req);
}

void ModelWorkers::start_worker(const std::shared_ptr<Resident>& r, const RunRequest& req) {
  DeviceBinding binding = bind_(req.device);
  std::string label = r->model + "@" + r->device + "/" + r->rung;
  std::weak_ptr<Resident> weak = r;
  try {
    r->worker = WorkerProcess::spawn(io_, worker_exe_, binding.env, label, [this, weak](const std::string& how) {
      auto r = weak.lock();
      if (!r) return;
      if (!r->job_id.empty()) {
        RunOutcome out;
        if (r->killed_for_cancel) {
          out.kind = RunOutcome::Kind::cancelled;
          out.message = "cancelled; the worker was killed after the cancel grace period";
        } else {
          out.kind = RunOutcome::Kind::crashed;
          out.message = how;
        }
        finish_job(r, out);
      } else if (!r->ending) {
        spdlog::warn("idle worker {} ({}) exited: {}", r->worker ? r->worker->pid() : -1, r->model, how);
      }
      forget(r);
    });
  } catch (const std::exception& e) {
    RunOutcome out;
    out.kind = RunOutcome::Kind::crashed;
    out.message = std::string("could not start a worker: ") + e.what();
    forget(r);
    if (callbacks_.on_done) callbacks_.on_done(req.job.id, req.job.lease, out);
    return;
  }
  spdlog::info("job {}: starting worker {} for {} on {} at rung '{}'", req.job.id, r->worker->pid(), r->model,
               r->device, r->rung);
  auto fail_start = [this, weak](const Reply& reply, const std::string& what) {
    auto r = weak.lock();
    if (!r || r->job_id.empty()) return;
    RunOutcome out;
    out.kind = reply.body.value("code", "") == "crashed" ? RunOutcome::Kind::crashed : RunOutcome::Kind::failed;
    out.error_code = reply.body.value("code", "internal");
    out.message = what + ": " + reply.body.value("message", "");
    r->ending = true;
    finish_job(r, out);
    r->worker->close();   // a half-started worker is never kept
  };
  r->worker->call("open", Json{{"plugin", req.plugin_source}}, [this, weak, req, binding, fail_start](const Reply& o) {
    auto r = weak.lock();
    if (!r) return;
    if (o.kind == Reply::Kind::error) return fail_start(o, "cannot open plugin " + req.plugin_source);
    Json load = {{"model", req.job.model}, {"rung", req.rung_entry}, {"device", binding.device_arg}};
    r->worker->call("load", load, [this, weak, req, fail_start](const Reply& l) {
      auto r = weak.lock();
      if (!r) return;
      if (l.kind == Reply::Kind::error) return fail_start(l, "cannot load " + req.job.model);
      run_on(r, req);
    });
  });
}

void ModelWorkers::run_on(const std::shared_ptr<Resident>& r, const RunRequest& req) {
  r->state = Resident::State::busy;
  r->job_id = req.job.id;
  r->lease = req.job.lease;
  r->job_device_bytes = req.estimate.device_bytes;
  r->job_host_bytes = req.estimate.host_bytes;
  r->cancel_sent = r->killed_for_cancel = false;
  std::weak_ptr<Resident> weak = r;
  Json plugin_job = {{"id", req.job.id},         {"model", req.job.model},    {"params", req.job.params},
                     {"inputs", req.job.inputs}, {"fallbacks", req.fallbacks}};
  Json params = {{"job", plugin_job},
                 {"rung", req.rung_entry},
                 {"work_dir", req.work_dir},
                 {"output_dir", req.output_dir}};
  const std::string job_id = req.job.id, lease = req.job.lease;
  r->worker->call(
      "run", params,
      [this, weak](const Reply& reply) {
        auto r = weak.lock();
        if (!r || r->job_id.empty()) return;
        RunOutcome out;
        if (reply.kind == Reply::Kind::result) {
          out.kind = RunOutcome::Kind::succeeded;
          out.outputs = reply.body.value("outputs", std::vector<std::string>{});
          out.info = reply.body.value("info", Json::object());
          out.peak_device_bytes = reply.body.value("peak_device_bytes", int64_t{0});
          out.peak_host_bytes = reply.body.value("peak_host_bytes", int64_t{0});
        } else {
          out.error_code = reply.body.value("code", "internal");
          out.message = reply.body.value("message", "");
          if (out.error_code == "crashed") out.kind = r->killed_for_cancel ? RunOutcome::Kind::cancelled : RunOutcome::Kind::crashed;
          else out.kind = out.error_code == "cancelled" ? RunOutcome::Kind::cancelled : RunOutcome::Kind::failed;
        }
        // After an OOM only a new process certainly gives the memory back.
        const bool end_worker = out.error_code == "oom" && !r->ending;
        if (end_worker) r->ending = true;
        finish_job(r, out);
        if (end_worker) r->worker->close();
      },
      [this, job_id, lease](const Json& event) {
        if (callbacks_.on_event) callbacks_.on_event(job_id, lease, event);
      });
}

void ModelWorkers::finish_job(const std::shared_ptr<Resident>& r, const RunOutcome& outcome) {
  std::string job_id = r->job_id, lease = r->lease;
  r->job_id.clear();
  r->lease.clear();
  r->kill_timer.cancel();
  r->last_used = now_ms();
  if (r->state == Resident::State::busy && !r->ending && !r->worker->exited()) {
    r->state = Resident::State::idle;
    arm_keep_alive(r);
  }
  if (callbacks_.on_done) callbacks_.on_done(job_id, lease, outcome);
  if (callbacks_.on_idle) callbacks_.on_idle();
}

void ModelWorkers::arm_keep_alive(const std::shared_ptr<Resident>& r) {
  if (keep_alive_.count() <= 0) {
    evict(r->model, r->device, r->rung, "keep_alive_seconds is 0");
    return;
  }
  r->keep_alive_timer.expires_after(keep_alive_);
  std::weak_ptr<Resident> weak = r;
  r->keep_alive_timer.async_wait([this, weak](const boost::system::error_code& ec) {
    auto r = weak.lock();
    if (ec || !r || r->state != Resident::State::idle) return;
    evict(r->model, r->device, r->rung, "idle longer than keep_alive_seconds");
  });
}

void ModelWorkers::forget(const std::shared_ptr<Resident>& r) {
  r->keep_alive_timer.cancel();
  r->kill_timer.cancel();
  residents_.erase(std::remove(residents_.begin(), residents_.end(), r), residents_.end());
  if (callbacks_.on_idle) asio::post(io_, [this] { if (callbacks_.on_idle) callbacks_.on_idle(); });
}

void ModelWorkers::cancel(const std::string& job_id, std::chrono::milliseconds grace) {
  for (auto& r : residents_) {
    if (r->job_id != job_id || r->cancel_sent) continue;
    r->cancel_sent = true;
    if (r->state == Resident::State::starting) {
      // Still opening/loading: there is no run to stop cooperatively.
      r->killed_for_cancel = true;
      r->worker->kill();
      return;
    }
    r->worker->notify("cancel", Json::object());
    r->kill_timer.expires_after(grace);
    std::weak_ptr<Resident> weak = r;
    r->kill_timer.async_wait([weak](const boost::system::error_code& ec) {
      auto r = weak.lock();
      if (ec || !r || r->job_id.empty()) return;
      spdlog::warn("job {}: worker {} did not stop within the cancel grace period; killing it", r->job_id,
                   r->worker->pid());
      r->killed_for_cancel = true;
      r->worker->kill();
    });
    return;
  }
}

void ModelWorkers::kill(const std::string& job_id) {
  for (auto& r : residents_)
    if (r->job_id == job_id) r->worker->kill();
}

bool ModelWorkers::evict(const std::string& model, const std::string& device, const std::string& rung,
                         const std::string& why) {
  for (auto& r : residents_) {
    if (r->model != model || r->device != device || r->rung != rung || r->state != Resident::State::idle || r->ending)
      continue;
    spdlog::info("evicting {} from {} (rung '{}', worker {}): {}", model, device, rung, r->worker->pid(), why);
    r->ending = true;
    r->keep_alive_timer.cancel();
    r->worker->close();
    return true;
  }
  return false;
}

void ModelWorkers::evict_all_idle(const std::string& why) {
  auto copy = residents_;
  for (auto& r : copy)
    if (r->state == Resident::State::idle) evict(r->model, r->device, r->rung, why);
}

size_t ModelWorkers::active() const {
  return static_cast<size_t>(std::count_if(residents_.begin(), residents_.end(),
                                           [](const auto& r) { return !r->job_id.empty(); }));
}

bool ModelWorkers::is_running(const std::string& job_id) const {
  return std::any_of(residents_.begin(), residents_.end(), [&](const auto& r) { return r->job_id == job_id; });
}

std::vector<ResidentModel> ModelWorkers::residents() const {
  std::vector<ResidentModel> out;
  for (const auto& r : residents_) {
    if (r->ending) continue;   // its memory is on the way out; not reusable
    ResidentModel m;
    m.model = r->model;
    m.device = r->device;
    m.rung = r->rung;
    m.device_bytes = r->resident_device_bytes;
    m.host_bytes = r->resident_host_bytes;
    m.busy = r->state != Resident::State::idle;
    m.last_used = r->last_used;
    out.push_back(m);
  }
  return out;
}

std::vector<RunningJob> ModelWorkers::running() const {
  std::vector<RunningJob> out;
  for (const auto& r : residents_)
    if (!r->job_id.empty())
      out.push_back(RunningJob{r->job_id, r->model, r->device, r->rung, r->job_device_bytes, r->job_host_bytes});
  return out;
}

Json ModelWorkers::to_json() const {
  Json out = Json::array();
  for (const auto& r : residents_) {
    const char* state = r->ending ? "ending" : r->state == Resident::State::idle ? "idle"
                                             : r->state == Resident::State::busy ? "busy" : "starting";
    Json j = {{"model", r->model}, {"device", r->device}, {"rung", r->rung}, {"state", state},
              {"pid", r->worker ? r->worker->pid() : -1}, {"job", r->job_id},
              {"resident_device_bytes", r->resident_device_bytes}, {"rss_bytes", r->worker ? r->worker->rss_bytes() : 0},
              {"last_used", r->last_used}};
    if (r->state == Resident::State::idle && !r->ending) {
      auto left = std::chrono::duration_cast<std::chrono::seconds>(r->keep_alive_timer.expiry() -
                                                                   std::chrono::steady_clock::now());
      j["keep_alive_left_s"] = std::max<int64_t>(0, left.count());
    }
    out.push_back(j);
  }
  return out;
}

}  // namespace reel
