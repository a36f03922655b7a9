// Memory sizes as people write them in a config: "24GiB", "512MiB", "0.4 GB", "1.5G",
// "1048576".
//
// A size is a non-negative number (digits, optionally with a decimal fraction), then
// optional spaces, then an optional unit; surrounding spaces are ignored. Units are
// case-insensitive:
//   B                      bytes (the default when there is no unit)
//   KiB  MiB  GiB  TiB     binary: powers of 1024 (also written Ki, Mi, Gi, Ti)
//   K    M    G    T       binary too, as in systemd's MemoryMax= and `free -g`
//   KB   MB   GB   TB      decimal: powers of 1000 ("0.4 GB" = 400000000 bytes)
// A fraction is exact decimal arithmetic (no floating point), rounded down to whole
// bytes: "1.5KiB" = 1536, "0.1KiB" = 102. A count of bytes (no unit, or B) must be a
// whole number. Anything else — empty, negative, an unknown unit, more than
// 2^63-1 bytes — is an error, never a silent 0.
//
// Human-readable output ("9.1 GiB") is format_bytes() in budget_scheduler.hpp;
// memory_size_string() here is only the exact inverse of the parser, used where a
// value must round-trip (to_toml).
// Pure functions, thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace reel {

// The size in bytes, or nullopt with `why` set to a short reason ("unknown unit 'gx'").
std::optional<int64_t> parse_memory_size(std::string_view text, std::string& why);

// As above; throws std::invalid_argument("not a size: '<text>' (<why>)").
int64_t parse_memory_size(std::string_view text);

// The form with the fewest digits that parses back to exactly `bytes`, using whole
// multiples only: 419430400 -> "400MiB", 400000000 -> "400MB", 1536 -> "1536",
// 0 -> "0". Binary units win ties. Zero and negative values: plain digits.
std::string memory_size_string(int64_t bytes);

}  // namespace reel
