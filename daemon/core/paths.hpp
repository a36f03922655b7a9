// Where reeld keeps its state and socket when the config leaves them empty.
//
// Under systemd (StateDirectory=/RuntimeDirectory=) the unit's directories win; as a
// normal user with no config, XDG locations are used so `reeld` just works:
//   state:  $STATE_DIRECTORY (first entry if systemd gives a ':'-separated list),
//           else $XDG_STATE_HOME/reel, else ~/.local/state/reel
//   socket: $RUNTIME_DIRECTORY/reeld.sock (first entry likewise),
//           else $XDG_RUNTIME_DIR/reel/reeld.sock, else /tmp/reel-<uid>/reeld.sock
// XDG variables that are not absolute paths are ignored, as the XDG spec says; ~ is
// $HOME, or the passwd entry's home when $HOME is unset.
// reelctl uses the same resolution (plus $REEL_SOCKET) so both agree with no flags,
// and it also finds the system service: when the per-user socket does not exist but
// /run/reel/reeld.sock does, it talks to that one.
// Everything here only reads the environment; thread-safe as long as nobody calls
// setenv() concurrently.
#pragma once

#include <string>

#include "core/config.hpp"

namespace reel {

inline constexpr const char* kSystemSocketPath = "/run/reel/reeld.sock";  // the systemd unit's socket

struct ResolvedPaths {
  std::string state_dir;
  std::string socket_path;
  std::string database;      // <state_dir>/reel.db
  std::string lock_file;     // <state_dir>/reeld.lock
  std::string work_dir;      // <state_dir>/work  (per-job scratch: <work_dir>/<job id>)
  std::string output_dir;    // jobs.output_dir or <state_dir>/outputs
};

// Pure function of the config and the environment (reads getenv, touches no files).
// Throws ConfigError when no state directory can be determined (no config value,
// no $STATE_DIRECTORY / $XDG_STATE_HOME, and no home directory).
ResolvedPaths resolve_paths(const Config& cfg);

// What reelctl tries when given no --socket: $REEL_SOCKET, else the per-user socket
// as above, except that `system_socket` is used when it exists and the per-user one
// does not (the only file access here: two existence checks).
std::string default_socket_path(const std::string& system_socket = kSystemSocketPath);

// $XDG_CONFIG_HOME, else ~/.config; "" when neither is known. Used to find reeld.toml.
std::string user_config_dir();

}  // namespace reel
