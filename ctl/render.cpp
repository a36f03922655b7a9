#include "render.hpp"

#include <algorithm>
#include <ctime>

#include "core/budget_scheduler.hpp"
#include "duration.hpp"

namespace reel::ctl {

namespace {

const char* ansi(Color c) {
  switch (c) {
    case Color::red: return "\033[31m";
    case Color::green: return "\033[32m";
    case Color::yellow: return "\033[33m";
    case Color::blue: return "\033[34m";
    case Color::cyan: return "\033[36m";
    case Color::dim: return "\033[2m";
    case Color::bold: return "\033[1m";
    case Color::none: break;
  }
  return "";
}

// Display width approximated as UTF-8 code points: job ids and states are ASCII, and
// model names or paths with accents should still line up.
size_t display_width(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

}  // namespace

std::string Style::paint(std::string_view text, Color c) const {
  if (!color || c == Color::none || text.empty()) return std::string(text);
  return std::string(ansi(c)) + std::string(text) + "\033[0m";
}

Color state_color(std::string_view state) {
  if (state == "succeeded") return Color::green;
  if (state == "failed") return Color::red;
  if (state == "cancelled" || state == "cancelling") return Color::yellow;
  if (state == "running") return Color::cyan;
  if (state == "queued") return Color::dim;
  return Color::none;
}

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add_row(std::vector<Cell> cells) {
  cells.resize(headers_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::render(const Style& style) const {
  std::vector<size_t> widths(headers_.size());
  for (size_t c = 0; c < headers_.size(); ++c) {
    widths[c] = display_width(headers_[c]);
    for (const auto& row : rows_) widths[c] = std::max(widths[c], display_width(row[c].text));
  }
  std::string out;
  auto line = [&](const std::vector<Cell>& cells) {
    std::string l;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c > 0) l += "  ";
      l += style.paint(cells[c].text, cells[c].color);
      if (c + 1 < cells.size()) l.append(widths[c] - display_width(cells[c].text), ' ');
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();   // empty trailing cells
    out += l + "\n";
  };
  std::vector<Cell> header;
  for (const auto& h : headers_) header.push_back({h, Color::bold});
  line(header);
  for (const auto& row : rows_) line(row);
  return out;
}

std::string progress_bar(int64_t step, int64_t total, const std::string& stage, std::optional<int64_t> eta_ms,
                         int width) {
  int64_t shown = std::max<int64_t>(step, 0);
  int filled = 0;
  if (total > 0) filled = static_cast<int>(std::min(shown, total) * width / total);
  std::string out = "[" + std::string(static_cast<size_t>(filled), '#') +
                    std::string(static_cast<size_t>(width - filled), '-') + "] ";
  out += std::to_string(shown) + "/" + (total > 0 ? std::to_string(total) : "?");
  if (!stage.empty()) out += " " + stage;
  if (total > 0) out += " " + std::to_string(std::min(shown, total) * 100 / total) + "%";
  if (eta_ms) out += " ETA " + format_clock(*eta_ms);
  return out;
}

std::string format_timestamp(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string json_str(const Json& j, const char* key, const std::string& fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return fallback;
  return it->get<std::string>();
}

int64_t json_int(const Json& j, const char* key, int64_t fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return fallback;
  return it->is_number_float() ? static_cast<int64_t>(it->get<double>()) : it->get<int64_t>();
}

bool json_bool(const Json& j, const char* key, bool fallback) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return fallback;
  return it->get<bool>();
}

std::string describe_event(const Json& event) {
  std::string kind = json_str(event, "kind");
  Json data = event.is_object() ? event.value("data", Json::object()) : Json::object();
  if (!data.is_object()) data = Json::object();
  auto scalar = [&](const char* key) {
    auto it = data.find(key);
    if (it == data.end() || it->is_null()) return std::string("?");
    return it->is_string() ? it->get<std::string>() : it->dump();
  };
  std::string reason = json_str(data, "reason");
  std::string suffix = reason.empty() ? "" : " (" + reason + ")";
  if (kind == "state" || kind == "priority") return scalar("from") + " -> " + scalar("to") + suffix;
  if (kind == "fallback")
    return scalar("from") + " -> " + scalar("to") + suffix + (json_bool(data, "quality") ? " [QUALITY LOWERED]" : "");
  if (kind == "peak") {
    auto size = [&](const char* key) {
      auto it = data.find(key);
      return it != data.end() && it->is_number() ? format_bytes(it->get<int64_t>()) : std::string("?");
    };
    return "rung " + scalar("rung") + ": GPU " + size("measured_device_bytes") + " (estimate " +
           size("estimate_device_bytes") + "), host RAM " + size("measured_host_bytes") + " (estimate " +
           size("estimate_host_bytes") + ")";
  }
  if (kind == "scheduled") {
    // The explain object (every device and rung considered) is for `show`'s rung history.
    Json explain = data.value("explain", Json::object());
    std::string s = "rung " + scalar("rung") + " on " + scalar("device");
    if (json_bool(explain, "degraded")) s += " (degraded from " + json_str(explain, "target_rung", "?") + ")";
    return s;
  }
  if (kind == "progress") {
    std::string s = std::to_string(json_int(data, "step")) + "/" + std::to_string(json_int(data, "total"));
    std::string stage = json_str(data, "stage");
    return stage.empty() ? s : s + " " + stage;
  }
  if (kind == "submitted") {
    std::string s = "model " + json_str(data, "model", "?");
    std::string source = json_str(data, "source");
    return source.empty() ? s : s + " from " + source;
  }
  if (data.contains("message")) return scalar("message");
  if (data.empty()) return "";
  return data.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace reel::ctl
