// Helpers for tests that drive the real binaries: temp dirs, a reeld child process,
// and running reelctl to completion. Everything is real (processes, sockets, files).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace reel::test {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& content);
std::string read_file(const std::string& path);

struct CommandResult {
  int exit_code = -1;      // -1: killed by a signal
  std::string out, err;
};
// Runs argv[0] with argv, extra environment "K=V" entries added, waits up to `timeout`.
CommandResult run_command(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
                          std::chrono::seconds timeout = std::chrono::seconds(60));

// A reeld child process with its own state dir, socket and config under a TempDir.
class Daemon {
 public:
  // `extra_config` is appended to the generated reeld.toml (which sets state_dir and socket).
  explicit Daemon(const std::string& dir, const std::string& extra_config = "",
                  std::vector<std::string> extra_env = {});
  ~Daemon();                                  // SIGKILLs if still running
  // Returns once the socket accepts connections (or at once, when not waiting).
  void start(bool wait_for_socket = true);
  void kill9();                               // SIGKILL and reap
  int terminate(std::chrono::seconds timeout = std::chrono::seconds(60));  // SIGTERM, returns exit code
  void signal(int sig);
  bool running();
  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  const std::string& state_dir() const { return state_dir_; }
  const std::string& config_path() const { return config_; }
  const std::string& log_path() const { return log_; }
  // reelctl against this daemon's socket.
  CommandResult ctl(const std::vector<std::string>& args,
                    std::chrono::seconds timeout = std::chrono::seconds(60)) const;

 private:
  std::string dir_, state_dir_, socket_, config_, log_;
  std::vector<std::string> env_;
  pid_t pid_ = -1;
};

// A raw protocol client over the real socket, for tests that need to send
// exactly the bytes they choose (malformed lines, oversized lines, slow reads).
class RawClient {
 public:
  explicit RawClient(const std::string& socket_path);   // throws if it cannot connect
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;
  void send_raw(const std::string& bytes);
  // One line without its '\n'; nullopt on EOF or timeout.
  std::optional<std::string> read_line(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  std::optional<nlohmann::json> read_json(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  // Sends a request and returns the first reply line that is not an event.
  nlohmann::json call(const std::string& method, const nlohmann::json& params = nlohmann::json::object());
  nlohmann::json hello();
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  int next_id_ = 1;
  std::string buf_;
};

std::string reeld_bin();
std::string reelctl_bin();

// Polls `pred` every 20 ms until it is true or `timeout` passes; returns its last value.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    struct timespec ts{0, 20 * 1000 * 1000};
    nanosleep(&ts, nullptr);
  }
  return pred();
}

// A throwaway reeld in its own TempDir with one connected client, for tests that run
// jobs through it. Construct with the [daemon] keys and environment, append to the
// config with add_config(), then start() (again after daemon.kill9() for a restart).
struct JobHarness {
  TempDir dir;
  Daemon daemon;
  std::unique_ptr<RawClient> c;   // connected and greeted by start()

  explicit JobHarness(const std::string& daemon_keys = "", std::vector<std::string> env = {});
  void add_config(const std::string& toml);
  // Config for tests of a real plugin: plugins come from `plugin_dir` only, and local
  // inputs from the test's own folder (its input root).
  std::string plugin_test_config(const std::string& plugin_dir) const;
  void start();

  nlohmann::json submit(const nlohmann::json& job);   // the stored job; a refusal fails the test
  nlohmann::json show(const std::string& id);         // show's result: job, events, peaks
  nlohmann::json job(const std::string& id);
  std::string state(const std::string& id);
  bool wait_final(const std::string& id, std::chrono::milliseconds timeout = std::chrono::seconds(60));
  std::vector<nlohmann::json> events(const std::string& id, const std::string& kind);
};

// A JobHarness whose reeld loads the plugins built in this tree (REEL_BINARY_DIR/lib/reel/
// plugins), started at once, with a wait sized for model jobs on a loaded 2-core machine.
struct BuiltPluginHarness : JobHarness {
  explicit BuiltPluginHarness(std::vector<std::string> env = {}, const std::string& extra_config = "");
  bool wait_final(const std::string& id, std::chrono::milliseconds timeout = std::chrono::seconds(300));
};
std::string built_plugin_dir();

bool ends_with(const std::string& s, const std::string& tail);
// The job's output whose path ends with `tail`, or "" when there is none.
std::string output_ending(const nlohmann::json& job, const std::string& tail);

}  // namespace reel::test
