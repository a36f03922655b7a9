// Reading small whole files (configs, job specs) with a size cap, so a stray huge
// file or a FIFO cannot make reeld or reelctl read without bound. Thread-safe.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace reel {

// The file's contents, or nullopt with `why` set to a reason that completes
// "cannot read '<path>': <why>" — the errno text ("No such file or directory",
// "Is a directory", "Permission denied") or "larger than the limit of N bytes".
std::optional<std::string> read_text_file(const std::string& path, std::size_t max_bytes, std::string& why);

}  // namespace reel
