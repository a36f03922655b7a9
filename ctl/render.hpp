// Text building blocks for reelctl's human output: colours, aligned tables, the
// progress bar, timestamps and one-line event descriptions.
//
// Pure (format_timestamp reads the local time zone). Colour is decided per stream by
// the caller and passed in as a Style, so output to a pipe never carries escape codes
// and alignment never counts them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/job.hpp"

namespace reel::ctl {

enum class Color { none, red, green, yellow, blue, cyan, dim, bold };

struct Style {
  bool color = false;
  std::string paint(std::string_view text, Color c) const;
};

// The colour of a job state name ("failed" -> red, ...).
Color state_color(std::string_view state);

struct Cell {
  std::string text;
  Color color = Color::none;
};

// Columns separated by two spaces, each as wide as its widest cell (in UTF-8 code
// points); the last column is not padded so lines carry no trailing blanks.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add_row(std::vector<Cell> cells);   // missing cells render empty
  size_t rows() const { return rows_.size(); }
  std::string render(const Style& style) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<Cell>> rows_;
};

// "[#####-----] 5/10 sleeping 50% ETA 0:04". Stage and ETA are left out when unknown;
// with total <= 0 the bar is empty and the count reads "5/?".
std::string progress_bar(int64_t step, int64_t total, const std::string& stage, std::optional<int64_t> eta_ms,
                         int width = 10);

// Local time "2024-05-01 12:00:05"; "-" for 0 (unset).
std::string format_timestamp(int64_t ms);

// One line for an event's data, without job id, seq or time:
//   state: "queued -> running (daemon restarted ...)", progress: "5/10 sleeping",
//   warning/log: the message, priority: "0 -> 5", fallback: "resident -> offload (reason)"
//   plus " [QUALITY LOWERED]" for a quality fallback, scheduled: "rung offload on cuda:0",
//   peak: "rung offload: GPU 32.0 MiB (estimate 32.0 MiB), host RAM ...",
//   others: compact JSON of data.
std::string describe_event(const Json& event);

// Defensive accessors for daemon JSON: a missing or mistyped field gives the fallback,
// so a newer (or buggy) daemon degrades the display instead of aborting it.
std::string json_str(const Json& j, const char* key, const std::string& fallback = "");
int64_t json_int(const Json& j, const char* key, int64_t fallback = 0);
bool json_bool(const Json& j, const char* key, bool fallback = false);

}  // namespace reel::ctl
