// reelctl's commands: one function per subcommand, and the entry point that parses
// argv, runs the command and turns every failure into "reelctl: <message>" on stderr
// plus the documented exit code (exit_codes.hpp).
//
// Data goes to `out`, diagnostics and progress to `err`; whether each is a terminal
// is passed in (Terminal) rather than probed, so tests can drive every path.
// Not thread-safe (one command at a time).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "args.hpp"

namespace reel::ctl {

struct Terminal {
  bool out_tty = false;        // stdout is a terminal: colour allowed
  bool err_tty = false;        // stderr is a terminal: progress bar drawn in place, colour allowed
  bool no_color_env = false;   // $NO_COLOR is set and non-empty
};

// Runs an already-parsed command. Returns the exit code; throws CtlError on failure.
int execute(const Command& cmd, std::ostream& out, std::ostream& err, const Terminal& term);

// argv without argv[0] -> exit code; never throws.
int run_reelctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, const Terminal& term);

// The real process: std::cout/std::cerr, terminal and $NO_COLOR probed.
int reelctl_main(int argc, char** argv);

}  // namespace reel::ctl
