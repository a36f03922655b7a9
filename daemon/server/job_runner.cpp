#include "server/job_runner.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "core/protocol.hpp"

namespace reel {

namespace asio = boost::asio;

struct JobRunner::Worker {
  Worker(asio::io_context& io, int fd) : channel(io, fd), kill_timer(io), inbuf(16 << 20) {}
  std::string job_id, lease;
  pid_t pid = -1;
  asio::posix::stream_descriptor channel;
  asio::steady_timer kill_timer;
  asio::streambuf inbuf;
  std::optional<RunOutcome> reply;   // what the worker said before it exited
  bool eof = false, reaped = false, cancel_sent = false, killed_for_cancel = false;
  int wait_status = 0;
};

JobRunner::JobRunner(asio::io_context& io, std::string worker_exe, Callbacks callbacks)
    : io_(io), worker_exe_(std::move(worker_exe)), callbacks_(std::move(callbacks)) {}

JobRunner::~JobRunner() {
  for (auto& [id, w] : workers_) {
    ::kill(w->pid, SIGKILL);
    ::waitpid(w->pid, nullptr, 0);
  }
}

std::vector<pid_t> JobRunner::worker_pids() const {
  std::vector<pid_t> pids;
  for (auto& [id, w] : workers_) pids.push_back(w->pid);
  return pids;
}

void JobRunner::launch(const Job& job, const std::string& work_dir, const std::string& output_dir) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    throw std::runtime_error(std::string("socketpair failed: ") + std::strerror(errno));
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(e));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) _exit(121);   // the daemon died before prctl took effect
    ::dup2(fds[1], 3);                       // dup2 clears FD_CLOEXEC on the copy
    ::close_range(4, ~0U, 0);                // nothing else of the daemon's leaks in (the lock file!)
    ::sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const char* argv[] = {worker_exe_.c_str(), "--worker-fd", "3", nullptr};
    ::execv(worker_exe_.c_str(), const_cast<char**>(argv));
    _exit(127);
  }
  ::close(fds[1]);
  auto w = std::make_shared<Worker>(io_, fds[0]);
  w->job_id = job.id;
  w->lease = job.lease;
  w->pid = pid;
  workers_[job.id] = w;
  spdlog::info("job {}: started worker pid {} (attempt {}/{})", job.id, pid, job.attempts, job.max_attempts);

  Json params = {{"job", job.to_json()}, {"work_dir", work_dir}, {"output_dir", output_dir}};
  std::string line = encode_request(1, "run", params);
  // Blocking write is fine: the request is small and the worker is reading.
  boost::system::error_code ec;
  asio::write(w->channel, asio::buffer(line), ec);
  if (ec) spdlog::warn("job {}: could not send the run request to worker {}: {}", job.id, pid, ec.message());
  read_next(w);
}

void JobRunner::read_next(const std::shared_ptr<Worker>& w) {
  asio::async_read_until(w->channel, w->inbuf, '\n', [this, w](const boost::system::error_code& ec, size_t n) {
    if (ec) {
      w->eof = true;
      boost::system::error_code ignored;
      w->channel.close(ignored);
      reap();   // the exit may already be waitable; SIGCHLD can arrive before our EOF
      maybe_complete(w);
      return;
    }
    std::string line(asio::buffers_begin(w->inbuf.data()), asio::buffers_begin(w->inbuf.data()) + n - 1);
    w->inbuf.consume(n);
    on_message(w, line);
    read_next(w);
  });
}

void JobRunner::on_message(const std::shared_ptr<Worker>& w, std::string_view line) {
  Reply r;
  try {
    r = decode_reply(line);
  } catch (const std::exception& e) {
    spdlog::warn("job {}: worker {} sent a malformed line ({}); ignoring it", w->job_id, w->pid, e.what());
    return;
  }
  if (r.kind == Reply::Kind::event) {
    if (callbacks_.on_event) callbacks_.on_event(w->job_id, w->lease, r.body);
    return;
  }
  RunOutcome out;
  if (r.kind == Reply::Kind::result) {
    out.kind = RunOutcome::Kind::succeeded;
    out.outputs = r.body.value("outputs", std::vector<std::string>{});

  } else {
    out.error_code = r.body.value("code", "internal");
    out.message = r.body.value("message", "");
    out.kind = out.error_code == "cancelled" ? RunOutcome::Kind::cancelled : RunOutcome::Kind::failed;
  }
  w->reply = std::move(out);
}

void JobRunner::cancel(const std::string& job_id, std::chrono::milliseconds grace) {
  auto it = workers_.find(job_id);
  if (it == workers_.end()) return;
  auto w = it->second;
  if (w->cancel_sent) return;
  w->cancel_sent = true;
  boost::system::error_code ec;
  std::string line = encode_request(2, "cancel", Json::object());
  asio::write(w->channel, asio::buffer(line), ec);
  w->kill_timer.expires_after(grace);
  w->kill_timer.async_wait([w](const boost::system::error_code& ec) {
    if (ec || w->reaped) return;
    spdlog::warn("job {}: worker {} did not stop within the cancel grace period; killing it", w->job_id, w->pid);
    w->killed_for_cancel = true;
    ::kill(w->pid, SIGKILL);
  });
}

void JobRunner::kill(const std::string& job_id) {
  auto it = workers_.find(job_id);
  if (it != workers_.end() && !it->second->reaped) ::kill(it->second->pid, SIGKILL);
}

void JobRunner::reap() {
  for (auto& [id, w] : workers_) {
    if (w->reaped) continue;
    int status = 0;
    pid_t r = ::waitpid(w->pid, &status, WNOHANG);
    if (r == w->pid || (r < 0 && errno == ECHILD)) {
      w->reaped = true;
      w->wait_status = status;
    }
  }
  // maybe_complete erases from workers_, so collect first.
  std::vector<std::shared_ptr<Worker>> done;
  for (auto& [id, w] : workers_)
    if (w->reaped && w->eof) done.push_back(w);
  for (auto& w : done) maybe_complete(w);
}

namespace {
std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return std::string("worker killed by signal ") + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  if (WIFEXITED(status)) return "worker exited with status " + std::to_string(WEXITSTATUS(status)) + " without a result";
  return "worker ended abnormally";
}
}  // namespace

void JobRunner::maybe_complete(const std::shared_ptr<Worker>& w) {
  if (!w->eof || !w->reaped) return;
  auto it = workers_.find(w->job_id);
  if (it == workers_.end() || it->second != w) return;   // already completed
  workers_.erase(it);
  w->kill_timer.cancel();
  RunOutcome out;
  if (w->reply) {
    out = *w->reply;
  } else if (w->killed_for_cancel) {
    out.kind = RunOutcome::Kind::cancelled;
    out.message = "cancelled; the worker was killed after the cancel grace period";
  } else {
    out.kind = RunOutcome::Kind::crashed;
    out.message = describe_exit(w->wait_status);
  }
  spdlog::info("job {}: worker {} finished: {}{}{}", w->job_id, w->pid, to_string(out.kind),
               out.message.empty() ? "" : ": ", out.message);
  if (callbacks_.on_done) callbacks_.on_done(w->job_id, w->lease, out);
}

}  // namespace reel
