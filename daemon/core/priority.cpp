#include "core/priority.hpp"

#include <algorithm>

namespace reel {

double effective_priority(const Job& job, int64_t now, double aging_seconds) {
  double waited_s = std::max<int64_t>(0, now - job.created_at) / 1000.0;
  double aging = aging_seconds > 0 ? waited_s / aging_seconds : 0.0;
  return job.priority + aging;
}

}  // namespace reel
