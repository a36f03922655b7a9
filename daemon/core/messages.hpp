// Pieces of user-facing error messages shared by the config loader, job specs and
// the model catalog, so every "unknown X" and "out of range" reads the same way.
//
// did_you_mean() is the one place that decides when a name is a plausible typo of a
// known one. Everything here is pure and thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace reel {

// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps
// of two adjacent characters each cost 1 ("modle" is 1 away from "model").
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate `word` most plausibly is a typo of, or "" when none is close: within
// an edit distance that grows with the word's length, else one that `word`
// abbreviates ("secs" -> "seconds": same first letter, letters in order).
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'x'?)" for the closest candidate, or "" when there is none.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

// "a, b, c"; `empty` when there are none.
std::string join(const std::vector<std::string>& items, std::string_view empty = "none");

// A number as people write it: 1024, 0.1, 86400 (no trailing zeros, no exponent below 1e15).
std::string format_number(double v);

// "must be between 1 and 1024, got 0"; hi = +infinity gives "must be at least 1, got 0".
std::string out_of_range(double lo, double hi, std::string_view got);

// "must be one of info, warn; got 'inf' (did you mean 'info'?)".
std::string not_one_of(const std::vector<std::string>& choices, const std::string& got);

// The kind of a JSON value with its article: "a string", "an integer", "a float",
// "a boolean", "null", "an array", "an object" ("a table" when `toml`).
std::string describe_type(const nlohmann::json& v, bool toml = false);
// describe_type() plus the value for scalars, shortened: a string ("2"), a float (2.5).
std::string describe_value(const nlohmann::json& v, bool toml = false);

}  // namespace reel
