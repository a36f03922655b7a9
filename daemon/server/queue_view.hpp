// QueueView: the queued jobs as the scheduler sees them (PlannedJob), kept in memory
// so that a scheduling pass does not re-read and re-parse the whole queue from the
// store. With 10,000 queued that reading cost ~55 ms per pass, paid after every
// submit, start and finish (docs/BENCHMARKS.md).
//
// The store stays the truth. Call mark(id) after any change to a job; the next
// refresh() re-reads just the marked jobs. reload_all() makes the next refresh()
// read everything: at start-up, after a config change (the default quality fallback
// is part of a PlannedJob), and at every status tick, which also resynchronises with
// anything that changed the store behind the daemon's back.
// A refresh() that throws (the store failed) keeps its marks for the next one.
// Thread-safety: none; used on the daemon's io thread only.
#pragma once

#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/budget_scheduler.hpp"

namespace reel {

class JobStore;

class QueueView {
 public:
  explicit QueueView(JobStore& store) : store_(store) {}

  void mark(const std::string& job_id) { marked_.insert(job_id); }
  void reload_all(bool default_quality_fallback);
  void refresh();

  // The queued jobs in no particular order (the scheduler orders them). A pass swaps
  // them into its SchedulerInput and back, so nothing is copied.
  std::vector<PlannedJob>& jobs() { return jobs_; }

 private:
  void put(PlannedJob job);
  void erase(const std::string& job_id);

  JobStore& store_;
  bool default_quality_fallback_ = false;
  bool stale_ = true;
  std::set<std::string> marked_;
  std::vector<PlannedJob> jobs_;
  std::unordered_map<std::string, size_t> index_;   // job id -> position in jobs_
};

}  // namespace reel
