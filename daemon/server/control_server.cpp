#include "server/control_server.hpp"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

namespace reel {

namespace asio = boost::asio;
using stream = asio::local::stream_protocol;

std::string PeerCredentials::to_string() const {
  return "pid=" + std::to_string(pid) + " uid=" + std::to_string(uid) + " gid=" + std::to_string(gid);
}

Session::Session(Socket socket, ControlServer& server)
    : socket_(std::move(socket)),
      server_(server),
      inbuf_(server.options_.max_request_bytes + 1),
      serial_(server.next_serial_++) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    peer_.pid = cred.pid;
    peer_.uid = cred.uid;
    peer_.gid = cred.gid;
  }
}

void Session::start() { read_next(); }

void Session::read_next() {
  if (closing_ || closed_) return;
  asio::async_read_until(socket_, inbuf_, '\n',
                         [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
    if (self->closed_) return;
    if (ec == asio::error::not_found) {
      // The line outgrew the buffer; there is no way to resynchronise cheaply.
      self->error(nullptr, err::too_large,
                  "request line exceeds " + std::to_string(self->server_.options_.max_request_bytes) +
                      " bytes (daemon.max_request_bytes)");
      self->close_after_flush();
      return;
    }
    if (ec) {
      self->close();
      return;
    }
    std::string line(asio::buffers_begin(self->inbuf_.data()), asio::buffers_begin(self->inbuf_.data()) + n - 1);
    self->inbuf_.consume(n);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) self->on_line(line);
    self->read_next();
  });
}

void Session::on_line(std::string_view line) {
  auto parsed = parse_request(line);
  if (parsed.error) {
    error(parsed.error->id, parsed.error->code, parsed.error->message);
    return;
  }
  const Request& req = *parsed.request;
  if (req.method == "hello") {
    auto proto = req.params.find("protocol");
    if (proto == req.params.end() || !proto->is_number_integer()) {
      error(req.id, err::bad_request, "hello needs 'protocol' (an integer)");
      return;
    }
    if (proto->get<int64_t>() != kProtocolVersion) {
      error(req.id, err::protocol_mismatch,
            "client speaks protocol " + proto->dump() + ", reeld speaks " + std::to_string(kProtocolVersion) +
                "; use a reelctl of the same version as reeld");
      return;
    }
    greeted_ = true;
    reply(req.id, Json{{"protocol", kProtocolVersion}, {"server", "reeld"}, {"version", REEL_VERSION}});
    return;
  }
  if (!greeted_) {
    error(req.id, err::hello_required, "send {\"method\":\"hello\",\"params\":{\"protocol\":1}} first");
    return;
  }
  try {
    server_.handler_.handle(shared_from_this(), req);
  } catch (const std::exception& e) {
    spdlog::error("request '{}' from {} failed unexpectedly: {}; please report this with the daemon log",
                  req.method, peer_.to_string(), e.what());
    error(req.id, err::internal, std::string("internal error: ") + e.what());
  }
}

void Session::send(std::string line) {
  if (closed_) return;
  out_bytes_ += line.size();
  if (out_bytes_ > server_.options_.max_output_bytes) {
    spdlog::warn("client {} is not reading its replies ({} bytes pending); disconnecting it", peer_.to_string(),
                 out_bytes_);
    close();
    return;
  }
  outq_.push_back(std::move(line));
  if (!writing_) write_next();
}

void Session::write_next() {
  if (closed_) return;
  if (outq_.empty()) {
    writing_ = false;
    if (closing_) close();
    return;
  }
  writing_ = true;
  asio::async_write(socket_, asio::buffer(outq_.front()),
                    [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
    if (self->closed_) return;
    if (ec) {
      self->close();
      return;
    }
    self->out_bytes_ -= self->outq_.front().size();
    self->outq_.pop_front();
    self->write_next();
  });
}

void Session::close_after_flush() {
  closing_ = true;
  if (!writing_) close();
}

void Session::close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(stream::socket::shutdown_both, ignored);
  socket_.close(ignored);
  server_.handler_.session_closed(*this);
  server_.forget(this);
}

namespace {

void prepare_socket_path(const std::string& path) {
  namespace fs = std::filesystem;
  if (path.size() >= sizeof(sockaddr_un{}.sun_path))
    throw std::runtime_error("socket path '" + path + "' is longer than the " +
                             std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) +
                             " bytes AF_UNIX allows; set a shorter daemon.socket_path");
  fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::exists(parent)) {
    fs::create_directories(parent, ec);
    if (ec)
      throw std::runtime_error("cannot create the socket's folder " + parent.string() + ": " + ec.message() +
                               "; create it or set daemon.socket_path");
    ::chmod(parent.c_str(), 0750);
  }
  struct stat st{};
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISSOCK(st.st_mode))
    throw std::runtime_error(path + " exists and is not a socket; remove it or set another daemon.socket_path");
  // A socket file is left behind by a crash; if something still answers on it,
  // another daemon owns it and we must not steal it.
  asio::io_context probe_io;
  stream::socket probe(probe_io);
  boost::system::error_code cec;
  probe.connect(stream::endpoint(path), cec);
  if (!cec)
    throw std::runtime_error("another process is serving " + path +
                             "; stop it or give this reeld another daemon.socket_path");
  ::unlink(path.c_str());
}

}  // namespace

ControlServer::ControlServer(asio::io_context& io, ControlServerOptions options, RequestHandler& handler)
    : io_(io), options_(std::move(options)), handler_(handler), acceptor_(io) {
  prepare_socket_path(options_.socket_path);
  // Create the socket with no access for anyone, then open it up once mode and group
  // are right, so there is no window in which a wrong user could connect.
  mode_t old = ::umask(0777);
  boost::system::error_code ec;
  acceptor_.open(stream(), ec);
  if (!ec) acceptor_.bind(stream::endpoint(options_.socket_path), ec);
  ::umask(old);
  if (ec)
    throw std::runtime_error("cannot bind the control socket " + options_.socket_path + ": " + ec.message() +
                             "; check the folder's permissions or set daemon.socket_path");
  if (!options_.socket_group.empty()) {
    group* gr = ::getgrnam(options_.socket_group.c_str());
    if (!gr)
      throw std::runtime_error("daemon.socket_group '" + options_.socket_group +
                               "' does not exist; create the group or change the setting");
    if (::chown(options_.socket_path.c_str(), static_cast<uid_t>(-1), gr->gr_gid) != 0)
      throw std::runtime_error("cannot give " + options_.socket_path + " to group '" + options_.socket_group +
                               "': " + std::strerror(errno) + "; run reeld as a member of that group");
  }
  if (::chmod(options_.socket_path.c_str(), options_.socket_mode) != 0)
    throw std::runtime_error("cannot chmod " + options_.socket_path + ": " + std::strerror(errno));
  acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen on " + options_.socket_path + ": " + ec.message());
  accept_next();
}

ControlServer::~ControlServer() {
  close_all();
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  ::unlink(options_.socket_path.c_str());
}

void ControlServer::set_limits(size_t max_request_bytes, int max_clients) {
  options_.max_request_bytes = max_request_bytes;  // applies to connections made from now on
  options_.max_clients = max_clients;
}

void ControlServer::close_all() {
  auto sessions = sessions_;  // close() removes from the set
  for (auto& s : sessions) s->close_after_flush();
}

void ControlServer::accept_next() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, stream::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // EMFILE and friends: log, back off a little, keep serving existing clients.
      spdlog::warn("accept on the control socket failed: {}; raise LimitNOFILE if this repeats", ec.message());
      auto timer = std::make_shared<asio::steady_timer>(io_, std::chrono::milliseconds(100));
      timer->async_wait([this, timer](const boost::system::error_code&) { accept_next(); });
      return;
    }
    auto session = std::make_shared<Session>(std::move(socket), *this);
    if (static_cast<int>(sessions_.size()) >= options_.max_clients) {
      sessions_.insert(session);
      session->error(nullptr, err::internal,
                     "too many clients connected (daemon.max_clients=" + std::to_string(options_.max_clients) + ")");
      session->close_after_flush();
    } else {
      sessions_.insert(session);
      session->start();
    }
    accept_next();
  });
}

void ControlServer::forget(Session* s) {
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it)
    if (it->get() == s) {
      // Defer the destruction: we may be inside one of the session's own handlers.
      asio::post(io_, [keep = *it] {});
      sessions_.erase(it);
      return;
    }
}

}  // namespace reel
