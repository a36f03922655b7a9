#include "server/worker_process.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <spdlog/spdlog.h>

namespace reel {

namespace asio = boost::asio;

namespace {
// Live workers, for reap_all(). Only touched on the io thread.
std::vector<std::weak_ptr<WorkerProcess>>& live_workers() {
  static std::vector<std::weak_ptr<WorkerProcess>> all;
  return all;
}
}  // namespace

void WorkerProcess::reap_all() {
  auto& all = live_workers();
  std::vector<std::shared_ptr<WorkerProcess>> alive;
  for (auto& w : all)
    if (auto s = w.lock(); s && !s->exit_reported_) alive.push_back(s);
  all.assign(alive.begin(), alive.end());
  for (auto& w : alive) w->reap();
}

std::string describe_exit_status(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return "worker killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  if (WIFEXITED(status)) return "worker exited with status " + std::to_string(WEXITSTATUS(status));
  return "worker ended abnormally";
}

WorkerProcess::WorkerProcess(asio::io_context& io, int fd) : channel_(io, fd), inbuf_(64 << 20) {}

WorkerProcess::~WorkerProcess() {
  if (!reaped_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

std::shared_ptr<WorkerProcess> WorkerProcess::spawn(asio::io_context& io, const std::string& exe,
                                                    const std::vector<std::string>& env, std::string label,
                                                    ExitFn on_exit) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw std::runtime_error(std::string("socketpair failed: ") + std::strerror(errno));
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<std::string> env_copy = env;
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(e));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(121);   // the daemon died before prctl took effect
    ::dup2(fds[1], 3);                       // dup2 clears FD_CLOEXEC on the copy
    ::close_range(4, ~0U, 0);                // nothing else of the daemon's leaks in (the lock file!)
    ::sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (auto& e : env_copy) ::putenv(e.data());
    const char* argv[] = {exe.c_str(), "--worker-fd", "3", nullptr};
    ::execv(exe.c_str(), const_cast<char**>(argv));
    _exit(127);
  }
  ::close(fds[1]);
  std::shared_ptr<WorkerProcess> w(new WorkerProcess(io, fds[0]));
  w->pid_ = pid;
  w->label_ = std::move(label);
  w->on_exit_ = std::move(on_exit);
  live_workers().push_back(w);
  w->read_next();
  return w;
}

void WorkerProcess::call(const std::string& method, const Json& params, ReplyFn on_reply, EventFn on_event) {
  int64_t id = next_id_++;
  if (eof_) {
    Reply r;
    r.kind = Reply::Kind::error;
    r.body = Json{{"code", "crashed"}, {"message", label_ + ": worker is gone"}};
    if (on_reply) on_reply(r);
    return;
  }
  pending_[id] = Pending{std::move(on_reply), std::move(on_event)};
  // Requests are small and the worker always reads; a blocking write keeps ordering simple.
  boost::system::error_code ec;
  asio::write(channel_, asio::buffer(encode_request(id, method, params)), ec);
  if (ec) spdlog::warn("{}: cannot send '{}' to worker {}: {}", label_, method, pid_, ec.message());
}

void WorkerProcess::notify(const std::string& method, const Json& params) {
  if (eof_) return;
  boost::system::error_code ec;
  asio::write(channel_, asio::buffer(encode_request(0, method, params)), ec);
}

void WorkerProcess::kill() {
  if (!reaped_ && pid_ > 0) ::kill(pid_, SIGKILL);
}

void WorkerProcess::close() {
  // The worker reads EOF and exits; we keep reading until it has, so the exit is reported.
  if (channel_.is_open()) ::shutdown(channel_.native_handle(), SHUT_WR);
}

int64_t WorkerProcess::rss_bytes() const {
  std::ifstream f("/proc/" + std::to_string(pid_) + "/statm");
  int64_t size = 0, resident = 0;
  f >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

void WorkerProcess::read_next() {
  asio::async_read_until(channel_, inbuf_, '\n',
                         [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
    if (ec) {
      self->eof_ = true;
      boost::system::error_code ignored;
      self->channel_.close(ignored);
      self->reap();   // SIGCHLD may have come before our EOF
      return;
    }
    std::string line(asio::buffers_begin(self->inbuf_.data()), asio::buffers_begin(self->inbuf_.data()) + n - 1);
    self->inbuf_.consume(n);
    self->on_line(line);
    self->read_next();
  });
}

void WorkerProcess::on_line(std::string_view line) {
  Reply r;
  try {
    r = decode_reply(line);
  } catch (const std::exception& e) {
    spdlog::warn("{}: worker {} sent a malformed line ({}); ignoring it", label_, pid_, e.what());
    return;
  }
  if (!r.id.is_number_integer()) return;
  auto it = pending_.find(r.id.get<int64_t>());
  if (it == pending_.end()) return;
  if (r.kind == Reply::Kind::event) {
    if (it->second.event) it->second.event(r.body);
    return;
  }
  ReplyFn fn = std::move(it->second.reply);
  pending_.erase(it);
  if (fn) fn(r);
}

void WorkerProcess::reap() {
  if (!reaped_) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno == ECHILD)) {
      reaped_ = true;
      wait_status_ = status;
    }
  }
  maybe_report_exit();
}

void WorkerProcess::maybe_report_exit() {
  if (!eof_ || !reaped_ || exit_reported_) return;
  exit_reported_ = true;
  std::string how = describe_exit_status(wait_status_);
  auto self = shared_from_this();   // callbacks may drop the last owner
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [id, p] : pending) {
    Reply r;
    r.kind = Reply::Kind::error;
    r.body = Json{{"code", "crashed"}, {"message", how}};
    if (p.reply) p.reply(r);
  }
  if (on_exit_) on_exit_(how);
}

}  // namespace reel
