// Which local files a job may read (its inputs) and where its outputs may be.
//
// A job names its inputs by path, and reeld's workers read them with the daemon's
// rights, which a client reaching the socket may not have. So a local input is
// accepted only when its real path — every symlink resolved, "..", "." and repeated
// slashes gone — lies in one of the allowed roots: the folders in jobs.input_roots plus
// every watched folder (whoever adds those calls is_allowed_input with them included).
// An empty list allows no local file at all (the safe default; docs/RELIABILITY.md).
// http:// and https:// URLs are not files and pass unchanged; any other "scheme://"
// (file://, ...) is refused, so no reader can be steered around the roots.
// Containment is by whole path components: /srv/in2/x is not in /srv/in.
// The check cannot stop a user who may write inside a root from swapping a file for a
// symlink after it (the job keeps the resolved path, so only a later swap of that very
// path matters): give write access to input roots only to people allowed to submit.
// Thread-safety: pure functions except resolve_path/check_input/is_allowed_input, which
// read the filesystem (realpath) and are reentrant.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace reel {

// Pure: is the absolute, normalised `path` equal to `root` or below it? Both must be
// absolute; a trailing slash on root is ignored.
bool path_is_within(const std::string& path, const std::string& root);

// realpath(3): the absolute path with every symlink resolved, or nullopt with `why`
// (the errno text) when it does not exist or cannot be reached.
std::optional<std::string> resolve_path(const std::string& path, std::string& why);

struct InputCheck {
  bool allowed = false;
  std::string resolved;   // allowed: the path to hand to the worker (a URL unchanged)
  std::string why;        // refused: a message saying what to do
};
// Checks one input against `roots` (absolute folders; each is resolved too, so a root
// that is itself a symlink works). Relative paths are refused: reeld's working
// directory means nothing to a client.
InputCheck check_input(const std::string& input, const std::vector<std::string>& roots);
inline bool is_allowed_input(const std::string& input, const std::vector<std::string>& roots) {
  return check_input(input, roots).allowed;
}

// A job's reported outputs that do not resolve into `output_dir` (a plugin that
// joined a parameter into a path, say "../../etc/x"); empty when all are inside.
std::vector<std::string> outputs_outside(const std::vector<std::string>& outputs, const std::string& output_dir);

}  // namespace reel
