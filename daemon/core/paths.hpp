// Where reeld keeps its state and socket when the config leaves them empty.
//
// Under systemd (StateDirectory=/RuntimeDirectory=) the unit's directories win; as a
// normal user with no config, XDG locations are used so `reeld` just works:
//   state:  $STATE_DIRECTORY, else $XDG_STATE_HOME/reel, else ~/.local/state/reel
//   socket: $RUNTIME_DIRECTORY/reeld.sock, else $XDG_RUNTIME_DIR/reel/reeld.sock,
//           else /tmp/reel-<uid>/reeld.sock
// reelctl uses the same resolution (plus $REEL_SOCKET) so both agree with no flags.
#pragma once

#include <string>

#include "core/config.hpp"

namespace reel {

struct ResolvedPaths {
  std::string state_dir;
  std::string socket_path;
  std::string database;      // <state_dir>/reel.db
  std::string lock_file;     // <state_dir>/reeld.lock
  std::string work_dir;      // <state_dir>/work  (per-job scratch: <work_dir>/<job id>)
  std::string output_dir;    // jobs.output_dir or <state_dir>/outputs
};

// Pure function of the config and the environment (reads getenv, touches no files).
ResolvedPaths resolve_paths(const Config& cfg);
std::string default_socket_path();   // what reelctl tries when given neither --socket nor $REEL_SOCKET

}  // namespace reel
