// Durations as people type and read them: "30d", "12h", "45m", "10s", "1h30m", "0".
//
// Pure functions, no clocks. Parsing is strict (a typo is an error, never a silent 0);
// format_duration rounds down so an age never claims more time than has passed;
// format_clock rounds up so an ETA reads 0:00 only when nothing is left.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace reel::ctl {

// Parses a non-negative duration into seconds: one or more <integer><unit> groups with
// unit d, h, m or s ("1h30m"), or a bare integer meaning seconds ("0", "90").
// Returns nullopt on anything else (empty, negative, unknown unit, overflow).
std::optional<int64_t> parse_duration_seconds(std::string_view text);

// Compact duration with at most `max_units` units, largest first: 3725000 ms ->
// "1h" (max_units 1), "1h2m" (2). Under a second: "0s". Negative counts as 0.
std::string format_duration(int64_t ms, int max_units = 1);

// Clock style for an ETA, rounded up to whole seconds: "0:04", "12:30", "1:02:03".
std::string format_clock(int64_t ms);

}  // namespace reel::ctl
