#include "client.hpp"

#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/protocol.hpp"
#include "exit_codes.hpp"

namespace reel::ctl {

namespace {

const char* kStartHint =
    "Is reeld running? Start it (`reeld`, or `systemctl start reeld`), or point reelctl at its socket "
    "with --socket PATH or $REEL_SOCKET.";

std::string socket_group(const std::string& path) {
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) return "";
  if (const group* g = getgrgid(st.st_gid)) return g->gr_name;
  return std::to_string(st.st_gid);
}

std::string seconds_text(std::chrono::milliseconds ms) {
  double s = static_cast<double>(ms.count()) / 1000.0;
  char buf[32];
  std::snprintf(buf, sizeof buf, s == std::floor(s) ? "%.0f" : "%.1f", s);
  return buf;
}

}  // namespace

std::string connect_error_message(const std::string& path, int error, const std::string& group) {
  std::string head = "cannot reach reeld at " + path + ": ";
  switch (error) {
    case ENOENT:
      return head + "no such socket. " + kStartHint;
    case ECONNREFUSED:
      return head + "connection refused (the socket exists but no reeld is listening; it may have stopped "
                    "or be restarting). " + kStartHint;
    case EACCES:
    case EPERM:
      return head + "permission denied: add yourself to the socket's group" +
             (group.empty() ? "" : " (sudo usermod -aG " + group + " $USER, then log in again)") +
             ", or use --socket to pick a socket you may use.";
    case ENOTSOCK:
      return head + "not a socket. Check --socket / $REEL_SOCKET.";
    case ENAMETOOLONG:
      return head + "path too long for a unix socket (at most " + std::to_string(sizeof(sockaddr_un::sun_path) - 1) +
             " bytes).";
    case EAGAIN:
      return head + "reeld is not accepting connections (too many clients?).";
    default:
      return head + std::strerror(error) + ". " + kStartHint;
  }
}

Client::Client(std::string socket_path, std::chrono::milliseconds timeout)
    : path_(std::move(socket_path)), timeout_(timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path_.empty() || path_.size() >= sizeof addr.sun_path)
    throw UnreachableError(connect_error_message(path_, ENAMETOOLONG, ""), false);
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);

  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) throw UnreachableError("cannot create a socket: " + std::string(std::strerror(errno)), false);
  // Linux applies SO_SNDTIMEO to connect(): a daemon whose backlog is full cannot hang us.
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout_.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>(timeout_.count() % 1000 * 1000);
  setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int rc;
  do rc = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int e = errno;
    close(fd_);
    fd_ = -1;
    bool transient = e == ENOENT || e == ECONNREFUSED || e == EAGAIN || e == EINPROGRESS;
    throw UnreachableError(connect_error_message(path_, e, e == EACCES ? socket_group(path_) : ""), transient);
  }
  try {
    call("hello", Json{{"protocol", kProtocolVersion}, {"client", std::string("reelctl ") + REEL_VERSION}});
  } catch (...) {
    close(fd_);   // the destructor does not run for a constructor that throws
    fd_ = -1;
    throw;
  }
}

Client::~Client() {
  if (fd_ >= 0) close(fd_);
}

void Client::lost(const std::string& why) const {
  throw UnreachableError("lost the connection to reeld at " + path_ + ": " + why, true);
}

Json Client::call(const std::string& method, const Json& params) { return exchange(method, params, nullptr); }

Json Client::stream(const std::string& method, const Json& params, const std::function<void(const Json&)>& on_event) {
  return exchange(method, params, &on_event);
}

Json Client::exchange(const std::string& method, const Json& params,
                      const std::function<void(const Json&)>* on_event) {
  Json id = next_id_++;
  send_line(encode_request(id, method, params));
  for (;;) {
    std::string line = read_line(on_event == nullptr);
    Reply reply;
    try {
      reply = decode_reply(line);
    } catch (const std::exception& e) {
      throw CtlError(kExitFailed, e.what());
    }
    // A reply with a null id is the server refusing a line it could not read.
    if (reply.id != id && !reply.id.is_null())
      throw CtlError(kExitFailed, "malformed reply from reeld (id " + reply.id.dump() + ", expected " + id.dump() + ")");
    switch (reply.kind) {
      case Reply::Kind::event:
        if (on_event) (*on_event)(reply.body);
        continue;
      case Reply::Kind::error:
        throw RemoteError(reply.body.value("code", std::string(err::internal)), reply.body.value("message", ""));
      case Reply::Kind::result:
        return reply.body;
    }
  }
}

void Client::send_line(const std::string& line) {
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      throw UnreachableError("reeld at " + path_ + " did not accept a request within " + seconds_text(timeout_) + " s",
                             false);
    } else {
      lost(n < 0 ? std::strerror(errno) : "closed");
    }
  }
}

std::string Client::read_line(bool with_deadline) {
  auto deadline = Clock::now() + timeout_;
  for (;;) {
    if (auto nl = buffer_.find('\n'); nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (buffer_.size() > kMaxReplyBytes)
      throw CtlError(kExitFailed, "reply from reeld exceeds " + std::to_string(kMaxReplyBytes >> 20) + " MiB");
    int wait_ms = -1;
    if (with_deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0)
        throw UnreachableError("no reply from reeld at " + path_ + " within " + seconds_text(timeout_) +
                                   " s (see --timeout)",
                               false);
      wait_ms = static_cast<int>(std::min<int64_t>(left, 1 << 30));
    }
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, wait_ms);
    if (r < 0 && errno != EINTR) lost(std::strerror(errno));
    if (r <= 0) continue;
    char buf[65536];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      buffer_.append(buf, static_cast<size_t>(n));
    } else if (n == 0) {
      lost("reeld closed the connection");
    } else if (errno != EINTR && errno != EAGAIN) {
      lost(std::strerror(errno));
    }
  }
}

}  // namespace reel::ctl
