#include "core/messages.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace reel {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rolling rows are enough for the adjacent-swap case (it looks two rows back).
  std::vector<std::size_t> two_back(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        cur[j] = std::min(cur[j], two_back[j - 2] + 1);
    }
    std::swap(two_back, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

static bool abbreviates(std::string_view word, std::string_view candidate) {
  if (word.size() < 3 || word.size() >= candidate.size() || word[0] != candidate[0]) return false;
  std::size_t at = 0;
  for (char c : candidate)
    if (at < word.size() && word[at] == c) ++at;
  return at == word.size();
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  // Short words get little slack: one edit turns "foo" into too many unrelated names.
  const std::size_t limit = word.size() <= 4 ? 1 : word.size() <= 8 ? 2 : 3;
  const std::string* best = nullptr;
  std::size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    if (d < best_distance && d < std::max(word.size(), c.size())) best = &c, best_distance = d;
  }
  if (best) return *best;
  for (const auto& c : candidates)
    if (abbreviates(word, c) && (!best || c.size() < best->size())) best = &c;
  return best ? *best : std::string();
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  std::string m = closest_match(word, candidates);
  return m.empty() ? std::string() : " (did you mean '" + m + "'?)";
}

std::string join(const std::vector<std::string>& items, std::string_view empty) {
  if (items.empty()) return std::string(empty);
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string format_number(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

std::string out_of_range(double lo, double hi, std::string_view got) {
  std::string range = hi == std::numeric_limits<double>::infinity()
                          ? "must be at least " + format_number(lo)
                          : "must be between " + format_number(lo) + " and " + format_number(hi);
  return range + ", got " + std::string(got);
}

std::string not_one_of(const std::vector<std::string>& choices, const std::string& got) {
  return "must be one of " + join(choices) + "; got '" + got + "'" + did_you_mean(got, choices);
}

std::string describe_type(const nlohmann::json& v, bool toml) {
  using T = nlohmann::json::value_t;
  switch (v.type()) {
    case T::string: return "a string";
    case T::number_integer:
    case T::number_unsigned: return "an integer";
    case T::number_float: return "a float";
    case T::boolean: return "a boolean";
    case T::null: return "null";
    case T::array: return "an array";
    case T::object: return toml ? "a table" : "an object";
    default: return "a binary value";
  }
}

std::string describe_value(const nlohmann::json& v, bool toml) {
  if (v.is_structured() || v.is_null()) return describe_type(v, toml);
  std::string shown = v.dump();
  if (shown.size() > 40) shown = shown.substr(0, 37) + "...";
  return describe_type(v, toml) + " (" + shown + ")";
}

}  // namespace reel
