#include "server/queue_view.hpp"

#include "core/run_plan.hpp"
#include "store/job_store.hpp"

namespace reel {

void QueueView::reload_all(bool default_quality_fallback) {
  default_quality_fallback_ = default_quality_fallback;
  stale_ = true;
}

void QueueView::refresh() {
  if (stale_) {
    std::vector<PlannedJob> fresh;
    for (const auto& job : store_.queued()) fresh.push_back(planned_job(job, default_quality_fallback_));
    jobs_.clear();
    index_.clear();
    for (auto& p : fresh) put(std::move(p));
    stale_ = false;
    marked_.clear();
    return;
  }
  while (!marked_.empty()) {
    const std::string id = *marked_.begin();
    auto job = store_.get(id);
    if (job && job->state == JobState::queued)
      put(planned_job(*job, default_quality_fallback_));
    else
      erase(id);
    marked_.erase(marked_.begin());
  }
}

void QueueView::put(PlannedJob job) {
  auto it = index_.find(job.job.id);
  if (it != index_.end()) {
    jobs_[it->second] = std::move(job);
    return;
  }
  index_.emplace(job.job.id, jobs_.size());
  jobs_.push_back(std::move(job));
}

void QueueView::erase(const std::string& job_id) {
  auto it = index_.find(job_id);
  if (it == index_.end()) return;
  const size_t pos = it->second;
  index_.erase(it);
  if (pos + 1 != jobs_.size()) {
    jobs_[pos] = std::move(jobs_.back());
    index_[jobs_[pos].job.id] = pos;
  }
  jobs_.pop_back();
}

}  // namespace reel
