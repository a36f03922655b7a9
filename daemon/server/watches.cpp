// Daemon: watched input folders (watch_folder.hpp): starting them before the socket,
// SIGHUP adding and removing them, telling them when their jobs change, `watches`.
#include <algorithm>

#include <spdlog/spdlog.h>

#include "server/daemon.hpp"
#include "server/plugin_registry.hpp"
#include "store/job_store.hpp"

namespace reel {

namespace {

bool same_watch(const Config::Watch& a, const Config::Watch& b) {
  return a.path == b.path && a.kind == b.kind && a.model == b.model && a.params == b.params &&
         a.policy == b.policy && a.output_dir == b.output_dir && a.priority == b.priority &&
         a.prompt_per_line == b.prompt_per_line && a.settle_seconds == b.settle_seconds && a.poll == b.poll &&
         a.poll_interval_seconds == b.poll_interval_seconds && a.max_file_bytes == b.max_file_bytes;
}

}  // namespace

WatchFolder::Hooks Daemon::watch_hooks() {
  WatchFolder::Hooks h;
  h.submit = [this](JobSpec spec, std::function<void(const SubmitReply&)> done) {
    submit_job(std::move(spec), std::move(done));
  };
  h.job = [this](const std::string& id) { return store_->get(id); };
  h.jobs_from = [this](const std::string& source) {
    JobFilter f;
    f.source = source;
    f.limit = 10000;
    return store_->list(f);
  };
  return h;
}

void Daemon::start_watches() {
  for (const auto& w : config_.watches) {
    watches_.push_back(std::make_unique<WatchFolder>(io_, w, watch_hooks()));
    if (!w.model.empty() && !plugins_->catalog().find(w.model))
      spdlog::warn("watch {}: model '{}' is not available (yet); its inputs will fail until it is "
                   "(`reelctl plugins` says why a plugin was refused)", w.path, w.model);
    watches_.back()->start();
  }
}

void Daemon::reload_watches() {
  std::vector<std::unique_ptr<WatchFolder>> next;
  for (const auto& w : config_.watches) {
    auto same = std::find_if(watches_.begin(), watches_.end(), [&](const std::unique_ptr<WatchFolder>& old) {
      return old && same_watch(old->config(), w);
    });
    if (same != watches_.end() && (*same)->running()) {
      next.push_back(std::move(*same));
      continue;
    }
    // New, changed, or not running (its folder was unusable): (re)start; what it had in
    // .reel/processing/ is resumed with the same idempotency keys.
    if (same != watches_.end()) same->reset();
    for (auto& old : watches_)
      if (old && old->config().path == w.path) old.reset();
    next.push_back(std::make_unique<WatchFolder>(io_, w, watch_hooks()));
    if (next.back()->start()) spdlog::info("watch {}: started by the config reload", w.path);
  }
  for (const auto& old : watches_)
    if (old) spdlog::info("watch {}: no longer in the config; stopped (its files stay where they are)", old->config().path);
  watches_ = std::move(next);
}

void Daemon::watches_job_changed(const std::string& job_id) {
  for (auto& w : watches_) {
    if (!w || !w->tracks(job_id)) continue;   // null: being replaced by a reload
    try {
      if (auto job = store_->get(job_id)) w->job_changed(*job);
    } catch (const std::exception& e) {
      spdlog::error("watch {}: cannot read job {}: {}; its input is finished at the next start", w->config().path,
                    job_id, e.what());
    }
    return;
  }
}

void Daemon::do_watches(const SessionPtr& s, const Request& req) {
  Json list = Json::array();
  for (const auto& w : watches_)
    if (w) list.push_back(w->to_json());
  s->reply(req.id, Json{{"watches", list}});
}

}  // namespace reel
