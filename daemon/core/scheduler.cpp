#include "core/scheduler.hpp"

#include <algorithm>

namespace reel {

double effective_priority(const Job& job, int64_t now, double aging_seconds) {
  double waited_s = std::max<int64_t>(0, now - job.created_at) / 1000.0;
  double aging = aging_seconds > 0 ? waited_s / aging_seconds : 0.0;
  return job.priority + aging;
}

std::vector<std::string> pick_jobs_to_start(const std::vector<Job>& queued, int running,
                                            const SchedulingPolicy& policy, int64_t now) {
  std::vector<std::string> picks;
  if (policy.paused || policy.draining) return picks;
  int free_slots = policy.max_concurrent_jobs - running;
  if (free_slots <= 0 || queued.empty()) return picks;

  std::vector<const Job*> order;
  order.reserve(queued.size());
  for (const auto& j : queued)
    if (j.state == JobState::queued) order.push_back(&j);
  auto n = std::min<size_t>(static_cast<size_t>(free_slots), order.size());
  std::partial_sort(order.begin(), order.begin() + n, order.end(), [&](const Job* a, const Job* b) {
    double pa = effective_priority(*a, now, policy.aging_seconds);
    double pb = effective_priority(*b, now, policy.aging_seconds);
    if (pa != pb) return pa > pb;
    if (a->created_at != b->created_at) return a->created_at < b->created_at;
    return a->id < b->id;
  });
  for (size_t i = 0; i < n; ++i) picks.push_back(order[i]->id);
  return picks;
}

}  // namespace reel
