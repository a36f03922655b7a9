#include "core/paths.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

namespace reel {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// systemd passes one entry per StateDirectory=/RuntimeDirectory= name, ':'-separated.
std::string first_entry(const char* name) {
  std::string v = env(name);
  return v.substr(0, v.find(':'));
}

// The XDG spec: a relative value is invalid and must be ignored.
std::string xdg(const char* name) {
  std::string v = env(name);
  return !v.empty() && v[0] == '/' ? v : "";
}

std::string home_dir() {
  if (std::string h = env("HOME"); !h.empty()) return h;
  // Services started without $HOME still have a passwd entry.
  std::vector<char> buf(16384);
  struct passwd pw {}, *found = nullptr;
  if (getpwuid_r(getuid(), &pw, buf.data(), buf.size(), &found) == 0 && found && found->pw_dir)
    return found->pw_dir;
  return "";
}

std::string join(std::string dir, const std::string& name) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir == "/" ? "/" + name : dir + "/" + name;
}

std::string default_state_dir() {
  if (std::string s = first_entry("STATE_DIRECTORY"); !s.empty()) return s;
  if (std::string s = xdg("XDG_STATE_HOME"); !s.empty()) return join(s, "reel");
  if (std::string h = home_dir(); !h.empty()) return join(h, ".local/state/reel");
  return "";
}

std::string user_socket_path() {
  if (std::string r = first_entry("RUNTIME_DIRECTORY"); !r.empty()) return join(r, "reeld.sock");
  if (std::string r = xdg("XDG_RUNTIME_DIR"); !r.empty()) return join(r, "reel/reeld.sock");
  // No runtime dir (e.g. a cron job): a per-uid folder; reeld must create it 0700.
  return "/tmp/reel-" + std::to_string(getuid()) + "/reeld.sock";
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

ResolvedPaths resolve_paths(const Config& cfg) {
  ResolvedPaths p;
  p.state_dir = cfg.daemon.state_dir.empty() ? default_state_dir() : cfg.daemon.state_dir;
  if (p.state_dir.empty())
    throw ConfigError("cannot choose a state directory: set daemon.state_dir, $STATE_DIRECTORY or $HOME");
  p.socket_path = cfg.daemon.socket_path.empty() ? user_socket_path() : cfg.daemon.socket_path;
  p.database = join(p.state_dir, "reel.db");
  p.lock_file = join(p.state_dir, "reeld.lock");
  p.work_dir = join(p.state_dir, "work");
  p.output_dir = cfg.jobs.output_dir.empty() ? join(p.state_dir, "outputs") : cfg.jobs.output_dir;
  return p;
}

std::string default_socket_path(const std::string& system_socket) {
  if (std::string s = env("REEL_SOCKET"); !s.empty()) return s;
  std::string user = user_socket_path();
  if (!system_socket.empty() && !exists(user) && exists(system_socket)) return system_socket;
  return user;
}

std::string user_config_dir() {
  if (std::string x = xdg("XDG_CONFIG_HOME"); !x.empty()) return x;
  std::string h = home_dir();
  return h.empty() ? "" : join(h, ".config");
}

}  // namespace reel
