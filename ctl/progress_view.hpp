// What `submit --wait` and `follow` show on stderr while a job runs.
//
// On a terminal: one progress bar redrawn in place ("[#####-----] 5/10 sleeping 50%
// ETA 0:04") with state changes, starts ("scheduled: rung offload on cuda:0"), warnings
// and fallbacks (a quality fallback as "QUALITY FALLBACK: ...") printed as lines above it.
// Otherwise (a pipe, a log file): one line per such event and at most one
// progress line per 10% of the job, so logs stay short. "log" events are left to
// `reelctl show`. The ETA extrapolates the rate observed since the job (last)
// started running, using the daemon's event timestamps, so replayed history gives
// the same estimate as live events. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "core/job.hpp"
#include "follow.hpp"
#include "render.hpp"

namespace reel::ctl {

class EtaEstimator {
 public:
  void on_running(int64_t at_ms);   // a run (re)started: the rate restarts from zero
  void on_progress(int64_t at_ms, int64_t step, int64_t total);
  std::optional<int64_t> eta_ms() const;   // nullopt until there is a rate

 private:
  int64_t started_at_ = 0;
  int64_t last_at_ = 0, step_ = 0, total_ = 0;
};

class ProgressView : public FollowObserver {
 public:
  ProgressView(std::ostream& out, std::string job_id, bool tty, Style style);
  void on_event(const Json& event) override;
  void on_connection_lost(const std::string& why, std::chrono::milliseconds retry_for) override;
  void on_reconnected() override;
  void finish();   // removes the bar so the final output starts on a clean line

 private:
  void print_line(const std::string& text, Color color = Color::none);
  void draw_bar();
  void clear_bar();

  std::ostream& out_;
  std::string job_;
  bool tty_;
  Style style_;
  EtaEstimator eta_;
  bool running_ = false;
  bool bar_shown_ = false;
  int64_t step_ = 0, total_ = 0;
  std::string stage_;
  int64_t last_decile_ = 0;   // non-tty: the last 10% bucket printed
};

}  // namespace reel::ctl
