// sd_notify(3) without libsystemd: one datagram per message to $NOTIFY_SOCKET.
#include "server/sd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

namespace reel {

namespace {

// Parses a non-negative decimal integer that fills the whole string; nullopt otherwise.
std::optional<unsigned long long> parse_unsigned(const char* s) {
  if (s == nullptr || *s == '\0') return std::nullopt;
  for (const char* p = s; *p; ++p)
    if (*p < '0' || *p > '9') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  unsigned long long v = std::strtoull(s, &end, 10);
  if (errno != 0 || end == nullptr || *end != '\0') return std::nullopt;
  return v;
}

}  // namespace

SystemdNotifier::SystemdNotifier() {
  if (const char* sock = std::getenv("NOTIFY_SOCKET")) {
    std::string path(sock);
    // Only filesystem paths and abstract names ('@...') are AF_UNIX addresses we can
    // reach; anything else (e.g. systemd's "vsock:" form) is left disabled. The path
    // must also fit sun_path (abstract: the '@' becomes the leading NUL).
    bool usable = !path.empty() && (path[0] == '/' || (path[0] == '@' && path.size() > 1)) &&
                  path.size() <= sizeof(sockaddr_un::sun_path) - (path[0] == '/' ? 1 : 0);
    if (usable) socket_path_ = std::move(path);
  }

  // $WATCHDOG_USEC applies to us only if $WATCHDOG_PID is unset or names this process
  // (it may have been inherited from a parent that is the real watchdog target).
  auto usec = parse_unsigned(std::getenv("WATCHDOG_USEC"));
  if (usec && *usec > 0) {
    bool for_us = true;
    if (const char* pid_s = std::getenv("WATCHDOG_PID")) {
      auto pid = parse_unsigned(pid_s);
      for_us = pid && *pid == static_cast<unsigned long long>(getpid());
    }
    if (for_us) watchdog_interval_ = std::chrono::microseconds(static_cast<long long>(*usec / 2));
  }
}

bool SystemdNotifier::notify(const std::string& message) const {
  if (socket_path_.empty()) return false;

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, socket_path_.data(), socket_path_.size());
  socklen_t len;
  if (socket_path_[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace: the name is exactly these bytes, no terminator
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
  } else {
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size() + 1);
  }

  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ssize_t n;
  do {
    n = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                 reinterpret_cast<const sockaddr*>(&addr), len);
  } while (n < 0 && errno == EINTR);
  int saved = errno;
  ::close(fd);
  errno = saved;
  return n == static_cast<ssize_t>(message.size());
}

}  // namespace reel
