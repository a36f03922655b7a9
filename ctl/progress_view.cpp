#include "progress_view.hpp"

namespace reel::ctl {

void EtaEstimator::on_running(int64_t at_ms) {
  started_at_ = at_ms;
  last_at_ = at_ms;
  step_ = 0;
  total_ = 0;
}

void EtaEstimator::on_progress(int64_t at_ms, int64_t step, int64_t total) {
  last_at_ = at_ms;
  step_ = step;
  total_ = total;
}

std::optional<int64_t> EtaEstimator::eta_ms() const {
  if (started_at_ <= 0 || total_ <= 0 || step_ <= 0 || last_at_ <= started_at_) return std::nullopt;
  if (step_ >= total_) return 0;
  double ms_per_step = static_cast<double>(last_at_ - started_at_) / static_cast<double>(step_);
  return static_cast<int64_t>(ms_per_step * static_cast<double>(total_ - step_));
}

ProgressView::ProgressView(std::ostream& out, std::string job_id, bool tty, Style style)
    : out_(out), job_(std::move(job_id)), tty_(tty), style_(style) {}

void ProgressView::on_event(const Json& event) {
  std::string kind = json_str(event, "kind");
  int64_t at = json_int(event, "at");
  Json data = event.is_object() ? event.value("data", Json::object()) : Json::object();
  if (kind == "progress") {
    step_ = json_int(data, "step");
    total_ = json_int(data, "total");
    stage_ = json_str(data, "stage");
    eta_.on_progress(at, step_, total_);
    if (tty_) {
      draw_bar();
    } else if (total_ > 0) {
      int64_t decile = std::min<int64_t>(step_, total_) * 10 / total_;
      if (decile > last_decile_) {
        last_decile_ = decile;
        print_line(progress_bar(step_, total_, stage_, eta_.eta_ms()));
      }
    }
    return;
  }
  if (kind == "state") {
    std::string to = json_str(data, "to");
    running_ = to == "running";
    if (running_) {
      eta_.on_running(at);
      step_ = total_ = 0;
      stage_.clear();
      last_decile_ = 0;
    }
    print_line(describe_event(event), state_color(to));
  } else if (kind == "fallback" && json_bool(data, "quality")) {
    print_line("QUALITY FALLBACK: " + describe_event(event), Color::red);
  } else if (kind == "warning" || kind == "fallback") {
    print_line(kind + ": " + describe_event(event), Color::yellow);
  } else if (kind == "scheduled") {
    print_line("scheduled: " + describe_event(event));
  } else if (kind == "cancel_requested") {
    print_line("cancel requested", Color::yellow);
  } else if (kind == "submitted") {
    print_line("submitted: " + describe_event(event));
  } else if (kind == "priority") {
    print_line("priority " + describe_event(event));
  }
  if (tty_ && running_ && total_ > 0) draw_bar();
}

void ProgressView::on_connection_lost(const std::string& why, std::chrono::milliseconds retry_for) {
  print_line(why + "; reconnecting for up to " + std::to_string((retry_for.count() + 999) / 1000) + " s", Color::yellow);
}

void ProgressView::on_reconnected() { print_line("reconnected to reeld", Color::green); }

void ProgressView::finish() { clear_bar(); }

void ProgressView::print_line(const std::string& text, Color color) {
  clear_bar();
  out_ << job_ << ": " << style_.paint(text, color) << "\n";
  out_.flush();
}

void ProgressView::draw_bar() {
  out_ << "\r\033[K" << progress_bar(step_, total_, stage_, eta_.eta_ms());
  out_.flush();
  bar_shown_ = true;
}

void ProgressView::clear_bar() {
  if (!bar_shown_) return;
  out_ << "\r\033[K";
  out_.flush();
  bar_shown_ = false;
}

}  // namespace reel::ctl
