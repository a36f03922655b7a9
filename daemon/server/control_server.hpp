// ControlServer: the AF_UNIX control socket, its framing and its connections.
//
// Owns the listening socket (created with the configured mode and group) and one
// Session per client. A Session reads newline-delimited JSON requests (refusing lines
// over the size limit), enforces the hello handshake, and hands each request to the
// RequestHandler. Replies are queued per session and written asynchronously, so a
// slow or stuck client never blocks the daemon or other clients; a client whose
// unsent output grows past a cap is disconnected.
// Thread-safety: everything runs on the one io_context thread that owns it.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>

#include <boost/asio.hpp>

#include "core/protocol.hpp"

namespace reel {

struct PeerCredentials {
  pid_t pid = -1;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  std::string to_string() const;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;
  Session(Socket socket, class ControlServer& server);

  void start();
  void send(std::string line);                  // one encoded line (see protocol.hpp)
  void reply(const Json& id, const Json& result) { send(encode_result(id, result)); }
  void error(const Json& id, const std::string& code, const std::string& message) {
    send(encode_error(id, code, message));
  }
  void close_after_flush();                     // stop reading; close once output is written
  bool closed() const { return closed_; }
  const PeerCredentials& peer() const { return peer_; }
  uint64_t serial() const { return serial_; }

 private:
  void read_next();
  void on_line(std::string_view line);
  void write_next();
  void close();

  Socket socket_;
  ControlServer& server_;
  boost::asio::streambuf inbuf_;
  std::deque<std::string> outq_;
  size_t out_bytes_ = 0;
  bool writing_ = false, closing_ = false, closed_ = false, greeted_ = false;
  PeerCredentials peer_;
  uint64_t serial_;
};
using SessionPtr = std::shared_ptr<Session>;

// Implemented by the daemon: one call per request after the hello.
class RequestHandler {
 public:
  virtual ~RequestHandler() = default;
  virtual void handle(const SessionPtr& session, const Request& request) = 0;
  virtual void session_closed(const Session& session) {}
};

struct ControlServerOptions {
  std::string socket_path;
  unsigned socket_mode = 0660;
  std::string socket_group;        // empty: leave the daemon's group
  size_t max_request_bytes = 1 << 20;
  size_t max_output_bytes = 64 << 20;
  int max_clients = 64;
};

class ControlServer {
 public:
  // Binds and listens; throws std::runtime_error with an operator-facing message.
  ControlServer(boost::asio::io_context& io, ControlServerOptions options, RequestHandler& handler);
  ~ControlServer();                       // closes every session and unlinks the socket

  void set_limits(size_t max_request_bytes, int max_clients);
  size_t session_count() const { return sessions_.size(); }
  void close_all();

 private:
  friend class Session;
  void accept_next();
  void forget(Session* s);

  boost::asio::io_context& io_;
  ControlServerOptions options_;
  RequestHandler& handler_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::set<SessionPtr> sessions_;
  uint64_t next_serial_ = 1;
};

}  // namespace reel
