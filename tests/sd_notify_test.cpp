// SystemdNotifier against a real AF_UNIX datagram socket the test owns (path and
// abstract), plus the environment rules for $NOTIFY_SOCKET / $WATCHDOG_USEC / $WATCHDOG_PID.
#include "server/sd_notify.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace reel {
namespace {

// Sets or unsets environment variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  void set(const char* name, const std::string& value) {
    remember(name);
    ::setenv(name, value.c_str(), 1);
  }
  void unset(const char* name) {
    remember(name);
    ::unsetenv(name);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else ::unsetenv(it->first.c_str());
    }
  }

 private:
  void remember(const char* name) {
    const char* v = std::getenv(name);
    saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
  }
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// A bound AF_UNIX datagram socket: the receiving end systemd would own.
class Receiver {
 public:
  // `name` is a filesystem path, or an abstract name written with a leading '@'.
  explicit Receiver(const std::string& name) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    EXPECT_GE(fd_, 0) << std::strerror(errno);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    socklen_t len;
    if (name[0] == '@') {
      addr.sun_path[0] = '\0';
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    } else {
      len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + 1);
    }
    int rc = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len);
    EXPECT_EQ(rc, 0) << "bind " << name << ": " << std::strerror(errno);
  }
  ~Receiver() {
    if (fd_ >= 0) ::close(fd_);
  }

  // The next datagram, or nullopt if none arrives within `timeout_ms`.
  std::optional<std::string> receive(int timeout_ms = 2000) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }

 private:
  int fd_ = -1;
};

void expect_messages_delivered(Receiver& rx) {
  SystemdNotifier n;
  ASSERT_TRUE(n.enabled());

  EXPECT_TRUE(n.notify("READY=1"));
  EXPECT_EQ(rx.receive(), "READY=1");

  n.status("3 queued, 1 running");
  EXPECT_EQ(rx.receive(), "STATUS=3 queued, 1 running");

  n.watchdog();
  EXPECT_EQ(rx.receive(), "WATCHDOG=1");

  n.ready();
  EXPECT_EQ(rx.receive(), "READY=1");
  n.reloading();
  EXPECT_EQ(rx.receive(), "RELOADING=1");
  n.stopping();
  EXPECT_EQ(rx.receive(), "STOPPING=1");

  // Several assignments in one datagram arrive as one datagram, byte for byte.
  EXPECT_TRUE(n.notify("READY=1\nSTATUS=up"));
  EXPECT_EQ(rx.receive(), "READY=1\nSTATUS=up");

  // Nothing else was sent.
  EXPECT_EQ(rx.receive(100), std::nullopt);
}

TEST(SdNotify, SendsExactDatagramsToPathSocket) {
  test::TempDir dir;
  std::string path = dir.file("notify.sock");
  Receiver rx(path);
  ScopedEnv env;
  env.set("NOTIFY_SOCKET", path);
  expect_messages_delivered(rx);
}

TEST(SdNotify, SendsExactDatagramsToAbstractSocket) {
  // Unique per process so parallel test runs do not collide.
  std::string name = "@reel-sd-notify-test-" + std::to_string(::getpid());
  Receiver rx(name);
  ScopedEnv env;
  env.set("NOTIFY_SOCKET", name);
  expect_messages_delivered(rx);
}

TEST(SdNotify, AbstractAddressUsesExactLength) {
  // A receiver bound to "@name" must not get messages meant for "@name-longer" and
  // vice versa: the address length, not a NUL, ends an abstract name.
  std::string name = "@reel-sd-len-" + std::to_string(::getpid());
  Receiver rx(name);
  Receiver rx_long(name + "-longer");
  ScopedEnv env;
  env.set("NOTIFY_SOCKET", name + "-longer");
  SystemdNotifier n;
  EXPECT_TRUE(n.notify("READY=1"));
  EXPECT_EQ(rx_long.receive(), "READY=1");
  EXPECT_EQ(rx.receive(100), std::nullopt);
}

TEST(SdNotify, DisabledWithoutNotifySocket) {
  ScopedEnv env;
  env.unset("NOTIFY_SOCKET");
  SystemdNotifier n;
  EXPECT_FALSE(n.enabled());
  EXPECT_FALSE(n.notify("READY=1"));
  n.ready();
  n.status("x");
  n.watchdog();
  n.stopping();
  n.reloading();
}

TEST(SdNotify, EmptyOrUnsupportedNotifySocketIsDisabled) {
  ScopedEnv env;
  for (const char* v : {"", "@", "relative/path", "vsock:2:1234"}) {
    env.set("NOTIFY_SOCKET", v);
    SystemdNotifier n;
    EXPECT_FALSE(n.enabled()) << "NOTIFY_SOCKET=" << v;
    EXPECT_FALSE(n.notify("READY=1")) << "NOTIFY_SOCKET=" << v;
  }
}

TEST(SdNotify, NotifyToMissingSocketReturnsFalse) {
  test::TempDir dir;
  ScopedEnv env;
  env.set("NOTIFY_SOCKET", dir.file("nobody-listens.sock"));
  SystemdNotifier n;
  EXPECT_TRUE(n.enabled());
  EXPECT_FALSE(n.notify("READY=1"));
}

TEST(SdNotify, WatchdogIntervalIsHalfOfWatchdogUsec) {
  ScopedEnv env;
  env.set("WATCHDOG_USEC", "2000000");
  env.unset("WATCHDOG_PID");
  SystemdNotifier n;
  ASSERT_TRUE(n.watchdog_interval().has_value());
  EXPECT_EQ(*n.watchdog_interval(), std::chrono::seconds(1));
}

TEST(SdNotify, WatchdogPidOfThisProcessEnablesWatchdog) {
  ScopedEnv env;
  env.set("WATCHDOG_USEC", "2000000");
  env.set("WATCHDOG_PID", std::to_string(::getpid()));
  SystemdNotifier n;
  ASSERT_TRUE(n.watchdog_interval().has_value());
  EXPECT_EQ(*n.watchdog_interval(), std::chrono::seconds(1));
}

TEST(SdNotify, WatchdogPidOfAnotherProcessDisablesWatchdog) {
  ScopedEnv env;
  env.set("WATCHDOG_USEC", "2000000");
  env.set("WATCHDOG_PID", std::to_string(::getpid() + 1));
  SystemdNotifier n;
  EXPECT_FALSE(n.watchdog_interval().has_value());
}

TEST(SdNotify, NoOrInvalidWatchdogUsecMeansNoWatchdog) {
  ScopedEnv env;
  env.unset("WATCHDOG_PID");
  env.unset("WATCHDOG_USEC");
  EXPECT_FALSE(SystemdNotifier().watchdog_interval().has_value());
  for (const char* v : {"", "0", "abc", "-5", "12x"}) {
    env.set("WATCHDOG_USEC", v);
    EXPECT_FALSE(SystemdNotifier().watchdog_interval().has_value()) << "WATCHDOG_USEC=" << v;
  }
}

}  // namespace
}  // namespace reel
