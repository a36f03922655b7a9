// systemd notification protocol (sd_notify(3)), implemented directly on a datagram
// socket so there is no libsystemd dependency and tests can own the receiving end.
//
// Messages go to $NOTIFY_SOCKET (a filesystem path, or an abstract name when it starts
// with '@'). With no $NOTIFY_SOCKET every call is a cheap no-op. Thread-safe.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace reel {

class SystemdNotifier {
 public:
  // Reads $NOTIFY_SOCKET and $WATCHDOG_USEC (honouring $WATCHDOG_PID) once.
  SystemdNotifier();
  bool enabled() const { return !socket_path_.empty(); }
  // Sends e.g. "READY=1" or "STATUS=3 queued, 1 running". Returns false on failure.
  bool notify(const std::string& message) const;
  void ready() const { notify("READY=1"); }
  void stopping() const { notify("STOPPING=1"); }
  void reloading() const { notify("RELOADING=1"); }
  void status(const std::string& text) const { notify("STATUS=" + text); }
  void watchdog() const { notify("WATCHDOG=1"); }
  // The interval at which to send WATCHDOG=1 (half of $WATCHDOG_USEC), if requested.
  std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_interval_; }

 private:
  std::string socket_path_;
  std::optional<std::chrono::microseconds> watchdog_interval_;
};

}  // namespace reel
