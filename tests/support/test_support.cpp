#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>

namespace fs = std::filesystem;

namespace reel::test {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/reel-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed: " + std::string(strerror(errno)));
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  // Tests may leave read-only or unreadable folders behind; make them removable first.
  for (auto it = fs::recursive_directory_iterator(path_, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec))
    fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ec);
  fs::remove_all(path_, ec);
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("cannot write " + path);
  f << content;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return {};
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

static void drain_fd(int fd, std::string& into, bool& open) {
  char buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n > 0) into.append(buf, static_cast<size_t>(n));
  else if (n == 0 || (errno != EINTR && errno != EAGAIN)) open = false;
}

CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                          std::chrono::seconds timeout) {
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    for (const auto& e : env) putenv(strdup(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  CommandResult r;
  bool out_open = true, err_open = true;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int n = poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    if (out_open && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) drain_fd(out_pipe[0], r.out, out_open);
    if (err_open && (fds[1].revents & (POLLIN | POLLHUP | POLLERR))) drain_fd(err_pipe[0], r.err, err_open);
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

RawClient::RawClient(const std::string& socket_path) {
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int e = errno;
    close(fd_);
    throw std::runtime_error("cannot connect to " + socket_path + ": " + strerror(e));
  }
}

RawClient::~RawClient() {
  if (fd_ >= 0) close(fd_);
}

void RawClient::send_raw(const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(std::string("send failed: ") + strerror(errno));
    off += static_cast<size_t>(n);
  }
}

std::optional<std::string> RawClient::read_line(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[65536];
    ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buf_.append(chunk, static_cast<size_t>(n));
  }
}

std::optional<nlohmann::json> RawClient::read_json(std::chrono::milliseconds timeout) {
  auto line = read_line(timeout);
  if (!line) return std::nullopt;
  return nlohmann::json::parse(*line);
}

nlohmann::json RawClient::call(const std::string& method, const nlohmann::json& params) {
  int id = next_id_++;
  send_raw(nlohmann::json{{"id", id}, {"method", method}, {"params", params}}.dump() + "\n");
  for (;;) {
    auto j = read_json();
    if (!j) throw std::runtime_error("no reply to " + method);
    if (!j->contains("event")) return *j;
  }
}

nlohmann::json RawClient::hello() { return call("hello", {{"protocol", 1}, {"client", "test"}}); }

std::string reeld_bin() { return REELD_BIN; }
std::string reelctl_bin() { return REELCTL_BIN; }

Daemon::Daemon(const std::string& dir, const std::string& extra_config, std::vector<std::string> extra_env)
    : dir_(dir), state_dir_(dir + "/state"), socket_(dir + "/reeld.sock"), config_(dir + "/reeld.toml"),
      log_(dir + "/reeld.log"), env_(std::move(extra_env)) {
  write_file(config_, "[daemon]\nstate_dir = \"" + state_dir_ + "\"\nsocket_path = \"" + socket_ +
                          "\"\n" + extra_config + "\n");
}

Daemon::~Daemon() {
  if (pid_ > 0) kill9();
}

static bool socket_accepts(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

void Daemon::start(bool wait_for_socket) {
  if (pid_ > 0) throw std::runtime_error("daemon already started");
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int logfd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(logfd, 1);
    dup2(logfd, 2);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    for (const auto& e : env_) putenv(strdup(e.c_str()));
    execl(REELD_BIN, REELD_BIN, "--config", config_.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  if (!wait_for_socket) return;
  bool up = wait_until([&] {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("reeld exited during start-up; log:\n" + read_file(log_));
    }
    return socket_accepts(socket_);
  }, std::chrono::seconds(30));
  if (!up) throw std::runtime_error("reeld did not open its socket in 30 s; log:\n" + read_file(log_));
}

void Daemon::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int Daemon::terminate(std::chrono::seconds timeout) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  int status = 0;
  bool done = wait_until([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
  if (!done) {
    kill9();
    return -2;
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void Daemon::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

bool Daemon::running() {
  if (pid_ <= 0) return false;
  int status;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

CommandResult Daemon::ctl(const std::vector<std::string>& args, std::chrono::seconds timeout) const {
  std::vector<std::string> argv = {REELCTL_BIN, "--socket", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, {"NO_COLOR=1"}, timeout);
}

JobHarness::JobHarness(const std::string& daemon_keys, std::vector<std::string> env)
    : daemon(dir.path(), daemon_keys, std::move(env)) {}

void JobHarness::add_config(const std::string& toml) {
  write_file(daemon.config_path(), read_file(daemon.config_path()) + toml);
}

std::string JobHarness::plugin_test_config(const std::string& plugin_dir) const {
  return "[jobs]\ninput_roots = [\"" + dir.path() + "\"]\n[plugins]\ndirs = [\"" + plugin_dir + "\"]\n";
}

std::string built_plugin_dir() { return std::string(REEL_BINARY_DIR) + "/lib/reel/plugins"; }

BuiltPluginHarness::BuiltPluginHarness(std::vector<std::string> env, const std::string& extra_config)
    : JobHarness("", std::move(env)) {
  add_config(plugin_test_config(built_plugin_dir()) + extra_config);
  start();
}

bool BuiltPluginHarness::wait_final(const std::string& id, std::chrono::milliseconds timeout) {
  return JobHarness::wait_final(id, timeout);
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string output_ending(const nlohmann::json& job, const std::string& tail) {
  for (const auto& o : job.value("outputs", nlohmann::json::array()))
    if (o.is_string() && ends_with(o.get<std::string>(), tail)) return o.get<std::string>();
  return "";
}

void JobHarness::start() {
  daemon.start();
  c = std::make_unique<RawClient>(daemon.socket());
  c->hello();
}

nlohmann::json JobHarness::submit(const nlohmann::json& job) {
  nlohmann::json r = c->call("submit", {{"job", job}});
  EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
  return r["result"]["job"];
}

nlohmann::json JobHarness::show(const std::string& id) { return c->call("show", {{"id", id}})["result"]; }
nlohmann::json JobHarness::job(const std::string& id) { return show(id)["job"]; }
std::string JobHarness::state(const std::string& id) { return job(id).value("state", ""); }

bool JobHarness::wait_final(const std::string& id, std::chrono::milliseconds timeout) {
  return wait_until([&] {
    std::string s = state(id);
    return s == "succeeded" || s == "failed" || s == "cancelled";
  }, timeout);
}

std::vector<nlohmann::json> JobHarness::events(const std::string& id, const std::string& kind) {
  std::vector<nlohmann::json> out;
  const nlohmann::json shown = show(id);   // kept alive: ranging over part of a temporary dangles
  for (const auto& e : shown["events"])
    if (e.value("kind", "") == kind) out.push_back(e);
  return out;
}

}  // namespace reel::test
