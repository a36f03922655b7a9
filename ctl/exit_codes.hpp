// reelctl's exit codes and the single mapping from protocol error codes to them.
//
// Scripts rely on these numbers (docs/REELCTL.md), so they never change meaning:
//   0 ok, 1 job failed / operation refused, 2 usage error, 3 daemon unreachable,
//   4 no such job.
// Every failure inside reelctl is a CtlError carrying its exit code; main() prints
// "reelctl: <message>" and exits with it, so no command decides exit codes ad hoc.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace reel::ctl {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,       // job failed or cancelled; the daemon refused the operation
  kExitUsage = 2,        // bad flags, unknown command, invalid job spec or parameters
  kExitUnreachable = 3,  // no daemon at the socket, or the connection broke
  kExitNotFound = 4,     // no such job
};

// Maps a protocol error code (core/protocol.hpp, reel::err) to an exit code.
// Codes this reelctl does not know are treated as a refusal (1).
int exit_code_for_error(std::string_view code);

struct CtlError : std::runtime_error {
  CtlError(int exit_code, const std::string& message) : std::runtime_error(message), exit_code(exit_code) {}
  int exit_code;
};

// Bad command line: main() adds a hint to run --help.
struct UsageError : CtlError {
  UsageError(const std::string& message, std::string command = {})
      : CtlError(kExitUsage, message), command(std::move(command)) {}
  std::string command;   // the subcommand whose --help applies; empty: global
};

// The daemon answered {"ok": false}.
struct RemoteError : CtlError {
  RemoteError(std::string code, const std::string& message)
      : CtlError(exit_code_for_error(code), message.empty() ? code : message), code(std::move(code)) {}
  std::string code;
};

// The daemon could not be reached or the connection broke. `transient` errors (no
// socket yet, refused, connection lost) are worth retrying while a daemon restarts;
// permission problems are not.
struct UnreachableError : CtlError {
  UnreachableError(const std::string& message, bool transient)
      : CtlError(kExitUnreachable, message), transient(transient) {}
  bool transient;
};

}  // namespace reel::ctl
