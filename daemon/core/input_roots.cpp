#include "core/input_roots.hpp"

#include <climits>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "core/messages.hpp"

namespace reel {

bool path_is_within(const std::string& path, const std::string& root) {
  if (path.empty() || root.empty() || path[0] != '/' || root[0] != '/') return false;
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  if (r == "/") return true;
  if (path.compare(0, r.size(), r) != 0) return false;
  return path.size() == r.size() || path[r.size()] == '/';
}

std::optional<std::string> resolve_path(const std::string& path, std::string& why) {
  char buf[PATH_MAX];
  if (!::realpath(path.c_str(), buf)) {
    why = std::strerror(errno);
    return std::nullopt;
  }
  return std::string(buf);
}

namespace {

bool is_web_url(const std::string& s) { return s.rfind("http://", 0) == 0 || s.rfind("https://", 0) == 0; }

}  // namespace

InputCheck check_input(const std::string& input, const std::vector<std::string>& roots) {
  InputCheck c;
  if (is_web_url(input)) {
    c.allowed = true;
    c.resolved = input;
    return c;
  }
  if (input.find("://") != std::string::npos) {
    c.why = "'" + input + "' is neither a local path nor an http(s) URL; give the file's absolute path";
    return c;
  }
  if (input.empty() || input[0] != '/') {
    c.why = "'" + input + "' is a relative path; reeld needs an absolute one (reelctl resolves them for you)";
    return c;
  }
  const std::string configured = roots.empty() ? "none are configured" : "allowed: " + join(roots);
  std::string why;
  auto real = resolve_path(input, why);
  if (!real) {
    c.why = "cannot read input '" + input + "': " + why;
    return c;
  }
  for (const auto& root : roots) {
    std::string ignored;
    auto real_root = resolve_path(root, ignored);
    if (real_root && path_is_within(*real, *real_root)) {
      c.allowed = true;
      c.resolved = *real;
      return c;
    }
  }
  c.why = "input '" + input + "'" + (*real != input ? " (really " + *real + ")" : "") +
          " is outside the folders reeld may read inputs from (" + configured +
          "); copy it into one of them, or add its folder to jobs.input_roots in reeld.toml";
  return c;
}

std::vector<std::string> outputs_outside(const std::vector<std::string>& outputs, const std::string& output_dir) {
  std::vector<std::string> bad;
  std::string why;
  auto real_dir = resolve_path(output_dir, why);
  for (const auto& out : outputs) {
    auto real = resolve_path(out, why);
    // A reported output that does not exist is outside by definition: nothing to hand out.
    if (!real || !real_dir || !path_is_within(*real, *real_dir)) bad.push_back(out);
  }
  return bad;
}

}  // namespace reel
