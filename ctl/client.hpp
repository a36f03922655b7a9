// A blocking client for reeld's control socket (docs/PROTOCOL.md).
//
// One Client is one connection: connect, hello, then requests answered in order.
// Every wait has a deadline (the --timeout) except stream(), whose events may be
// hours apart; a dead daemon still ends a stream because the kernel closes the socket.
// Failures are thrown as the exit_codes.hpp types:
//   UnreachableError  connect failed, connection lost, or no reply in time (exit 3)
//   RemoteError       the daemon answered {"ok": false} (exit per error code)
//   CtlError          the daemon sent something that is not the protocol (exit 1)
// Not thread-safe: one thread uses a Client at a time.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "core/job.hpp"

namespace reel::ctl {

// No reply line may exceed this (a `show` of a job with a long event log is the
// largest); a longer line means a confused peer, not data to buffer forever.
inline constexpr size_t kMaxReplyBytes = 64u << 20;

class Client {
 public:
  // Connects and performs the hello. Throws as described above.
  Client(std::string socket_path, std::chrono::milliseconds timeout);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends one request and returns its result object.
  Json call(const std::string& method, const Json& params = Json::object());
  // For follow: passes each event object to `on_event` until the result arrives.
  Json stream(const std::string& method, const Json& params, const std::function<void(const Json&)>& on_event);

  const std::string& socket_path() const { return path_; }

 private:
  using Clock = std::chrono::steady_clock;
  Json exchange(const std::string& method, const Json& params, const std::function<void(const Json&)>* on_event);
  void send_line(const std::string& line);
  std::string read_line(bool with_deadline);
  [[noreturn]] void lost(const std::string& why) const;

  std::string path_;
  std::chrono::milliseconds timeout_;
  int fd_ = -1;
  std::string buffer_;
  int64_t next_id_ = 0;
};

// The message for a failed connect(2) to `path` with `error` (an errno value), naming
// the path and what to do about it. `group` is the socket's group name for EACCES
// ("" when unknown). Pure, for tests.
std::string connect_error_message(const std::string& path, int error, const std::string& group);

}  // namespace reel::ctl
