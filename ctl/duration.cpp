#include "duration.hpp"

#include <cctype>
#include <cstdio>
#include <limits>

namespace reel::ctl {

namespace {
struct Unit {
  char suffix;
  int64_t seconds;
};
constexpr Unit kUnits[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
}  // namespace

std::optional<int64_t> parse_duration_seconds(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t total = 0;
  size_t i = 0;
  bool bare = true;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
    int64_t n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (n > (std::numeric_limits<int64_t>::max() - 9) / 10) return std::nullopt;
      n = n * 10 + (text[i++] - '0');
    }
    int64_t scale = 1;
    if (i < text.size()) {
      const Unit* unit = nullptr;
      for (const auto& u : kUnits)
        if (text[i] == u.suffix) unit = &u;
      if (!unit) return std::nullopt;
      scale = unit->seconds;
      bare = false;
      ++i;
    } else if (!bare) {
      return std::nullopt;   // "1h30": a trailing number without a unit is ambiguous
    }
    if (n > (std::numeric_limits<int64_t>::max() - total) / scale) return std::nullopt;
    total += n * scale;
  }
  return total;
}

std::string format_duration(int64_t ms, int max_units) {
  int64_t s = ms > 0 ? ms / 1000 : 0;
  std::string out;
  int used = 0;
  for (const auto& u : kUnits) {
    if (used == max_units) break;
    int64_t n = s / u.seconds;
    if (n == 0 && used == 0) continue;   // skip leading zero units
    if (n == 0) {                        // "2h0m" says nothing "2h" does not
      ++used;
      continue;
    }
    out += std::to_string(n) + u.suffix;
    s -= n * u.seconds;
    ++used;
  }
  return out.empty() ? "0s" : out;
}

std::string format_clock(int64_t ms) {
  int64_t s = ms > 0 ? (ms + 999) / 1000 : 0;   // an ETA rounds up: "0:00" means done
  char buf[48];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return buf;
}

}  // namespace reel::ctl
