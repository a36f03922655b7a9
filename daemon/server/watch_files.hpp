// The file operations behind watched folders (watch_folder.hpp), each refusing to
// follow symlinks or to overwrite: reading an input once (identity and content hash
// for its idempotency key), moving it without replacing anything, and placing outputs.
// Failures return false with `why` completing "cannot <do what>: <why>".
// Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/job.hpp"
#include "core/watch_input.hpp"

namespace reel {

struct InputRead {
  WatchedFile file;    // name, size, mtime, content hash
  std::string text;    // the content, when it was at most `keep_text_bytes`
};

// Opens `dir`/`name` with O_NOFOLLOW (a symlink is refused, not followed), checks it is
// a regular file of at most `max_bytes`, and reads it once to hash it.
bool read_input(const std::string& dir, const std::string& name, int64_t max_bytes, std::size_t keep_text_bytes,
                InputRead& out, std::string& why);

// rename(2) that never replaces an existing `to` (RENAME_NOREPLACE; on filesystems
// without it, an existence check first). `exists` is set when `to` was in the way.
bool move_no_replace(const std::string& from, const std::string& to, bool& exists, std::string& why);

// `name` if `dir`/`name` is free, else "<stem>.<tag><ext>", then with a counter.
std::string free_name(const std::string& dir, const std::string& name, const std::string& tag);

// True when `a` and `b` are the same file (one inode): an output already linked.
bool same_file(const std::string& a, const std::string& b);

// A hard link of `from` at `to` (same filesystem), else a copy; `to` must not exist.
bool link_or_copy(const std::string& from, const std::string& to, std::string& why);

// Writes `j` (pretty) to `path` through a temp file and rename.
bool write_json_file(const std::string& path, const Json& j, std::string& why);

// realpath(3) of `path`; "" when it cannot be resolved (missing, a dangling link).
std::string canonical_path(const std::string& path);

// The names in `dir`, sorted; empty when it cannot be listed.
std::vector<std::string> sorted_names(const std::string& dir);

// Problems that make `path` unusable as a watched folder ("" when fine): missing, not
// a folder, not readable/writable/searchable by this user.
std::string folder_problem(const std::string& path);

}  // namespace reel
