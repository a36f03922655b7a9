#include "core/memory_size.hpp"

#include <cctype>
#include <limits>
#include <stdexcept>

namespace reel {
namespace {

using u128 = unsigned __int128;

constexpr int64_t kKi = int64_t{1} << 10;

struct Unit {
  const char* name;  // lower case
  int64_t multiplier;
};

// Lower-case spellings; the first of each multiplier is the canonical one for output.
constexpr Unit kUnits[] = {
    {"b", 1},
    {"kib", kKi},           {"ki", kKi},           {"k", kKi},
    {"mib", kKi << 10},     {"mi", kKi << 10},     {"m", kKi << 10},
    {"gib", kKi << 20},     {"gi", kKi << 20},     {"g", kKi << 20},
    {"tib", kKi << 30},     {"ti", kKi << 30},     {"t", kKi << 30},
    {"kb", 1000},           {"mb", 1000000},       {"gb", 1000000000},
    {"tb", 1000000000000},
};

// Output candidates, binary first so they win ties.
constexpr struct {
  const char* name;
  int64_t multiplier;
} kOutputUnits[] = {
    {"TiB", kKi << 30}, {"GiB", kKi << 20}, {"MiB", kKi << 10}, {"KiB", kKi},
    {"TB", 1000000000000}, {"GB", 1000000000}, {"MB", 1000000}, {"KB", 1000},
};

constexpr int kMaxFractionDigits = 18;  // 10^18 fits in int64; finer digits are below a byte

bool is_space(char c) { return c == ' ' || c == '\t'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::optional<int64_t> parse_memory_size(std::string_view text, std::string& why) {
  std::size_t i = 0, end = text.size();
  while (i < end && is_space(text[i])) ++i;
  while (end > i && is_space(text[end - 1])) --end;
  if (i == end) {
    why = "empty";
    return std::nullopt;
  }
  if (text[i] == '-') {
    why = "must not be negative";
    return std::nullopt;
  }
  if (text[i] == '+') ++i;

  // Whole part, exactly (u128 cannot overflow before we check against int64).
  u128 whole = 0;
  std::size_t whole_digits = 0;
  for (; i < end && is_digit(text[i]); ++i, ++whole_digits) {
    whole = whole * 10 + static_cast<unsigned>(text[i] - '0');
    if (whole > u128(std::numeric_limits<int64_t>::max())) {
      why = "too large (at most 9223372036854775807 bytes)";
      return std::nullopt;
    }
  }
  // Fraction: its first kMaxFractionDigits digits as numerator / 10^n.
  u128 frac = 0, frac_scale = 1;
  std::size_t frac_digits = 0;
  bool has_point = i < end && text[i] == '.';
  if (has_point) {
    for (++i; i < end && is_digit(text[i]); ++i, ++frac_digits) {
      if (frac_digits < kMaxFractionDigits) {
        frac = frac * 10 + static_cast<unsigned>(text[i] - '0');
        frac_scale *= 10;
      }
    }
  }
  if (whole_digits == 0 && frac_digits == 0) {
    why = "expected a number followed by an optional unit, e.g. \"24GiB\"";
    return std::nullopt;
  }
  if (has_point && frac_digits == 0) {
    why = "expected digits after the decimal point";
    return std::nullopt;
  }
  while (i < end && is_space(text[i])) ++i;

  std::string unit = lower(text.substr(i, end - i));
  int64_t multiplier = 0;
  if (unit.empty()) {
    multiplier = 1;
  } else {
    for (const Unit& u : kUnits)
      if (unit == u.name) multiplier = u.multiplier;
  }
  if (multiplier == 0) {
    why = "unknown unit '" + std::string(text.substr(i, end - i)) +
          "'; use B, KiB, MiB, GiB, TiB (or K, M, G, T), KB, MB, GB, TB";
    return std::nullopt;
  }
  if (multiplier == 1 && frac != 0) {
    why = "a number of bytes must be whole";
    return std::nullopt;
  }
  u128 bytes = whole * u128(multiplier) + frac * u128(multiplier) / frac_scale;
  if (bytes > u128(std::numeric_limits<int64_t>::max())) {
    why = "too large (at most 9223372036854775807 bytes)";
    return std::nullopt;
  }
  return static_cast<int64_t>(bytes);
}

int64_t parse_memory_size(std::string_view text) {
  std::string why;
  if (auto v = parse_memory_size(text, why)) return *v;
  throw std::invalid_argument("not a size: '" + std::string(text) + "' (" + why + ")");
}

std::string memory_size_string(int64_t bytes) {
  std::string best = std::to_string(bytes);
  if (bytes <= 0) return best;
  std::size_t best_digits = best.size();
  // Fewest digits wins (the unit's length does not count, so "400MB" beats
  // "390625KiB"); on a tie the earlier unit — binary, larger — stays.
  for (const auto& u : kOutputUnits) {
    if (bytes % u.multiplier != 0) continue;
    std::string digits = std::to_string(bytes / u.multiplier);
    if (digits.size() < best_digits) {
      best = digits + u.name;
      best_digits = digits.size();
    }
  }
  return best;
}

}  // namespace reel
