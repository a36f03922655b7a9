// WorkerProcess: one child process running `reeld --worker-fd 3`, and the
// asynchronous request/reply channel to it (the control protocol's framing).
//
// Requests carry ids; each reply (result or error) goes to the callback of the request
// with that id, events in between to that request's event callback. When the process
// exits, every pending request is answered with an error {"code": "crashed"} naming
// how it ended, then on_exit runs once. Children get PR_SET_PDEATHSIG, so a SIGKILLed
// daemon never leaves workers behind. Call reap() on SIGCHLD.
// Thread-safety: one io_context thread.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "core/protocol.hpp"

namespace reel {

class WorkerProcess : public std::enable_shared_from_this<WorkerProcess> {
 public:
  using ReplyFn = std::function<void(const Reply& reply)>;   // kind result or error
  using EventFn = std::function<void(const Json& event)>;
  using ExitFn = std::function<void(const std::string& how)>;

  // Starts the process. `env` entries ("K=V") are added to its environment (e.g.
  // CUDA_VISIBLE_DEVICES). Throws std::runtime_error if it cannot be started.
  static std::shared_ptr<WorkerProcess> spawn(boost::asio::io_context& io, const std::string& exe,
                                              const std::vector<std::string>& env, std::string label,
                                              ExitFn on_exit);
  ~WorkerProcess();

  void call(const std::string& method, const Json& params, ReplyFn on_reply, EventFn on_event = {});
  void notify(const std::string& method, const Json& params);   // no reply expected (cancel)
  void kill();                                                   // SIGKILL; the exit is reported as usual
  void close();            // closes the channel: the worker exits on its own (graceful eviction)
  void reap();             // non-blocking waitpid; completes the exit once the channel is drained too

  // Reaps every live worker; call on SIGCHLD.
  static void reap_all();

  pid_t pid() const { return pid_; }
  bool exited() const { return exit_reported_; }
  const std::string& label() const { return label_; }
  int64_t rss_bytes() const;   // current resident set, from /proc

 private:
  WorkerProcess(boost::asio::io_context& io, int fd);
  void read_next();
  void on_line(std::string_view line);
  void maybe_report_exit();

  boost::asio::posix::stream_descriptor channel_;
  boost::asio::streambuf inbuf_;
  pid_t pid_ = -1;
  std::string label_;
  ExitFn on_exit_;
  struct Pending { ReplyFn reply; EventFn event; };
  std::map<int64_t, Pending> pending_;
  int64_t next_id_ = 1;
  bool eof_ = false, reaped_ = false, exit_reported_ = false;
  int wait_status_ = 0;
};

// "worker killed by signal 9 (Killed)" / "worker exited with status 3"
std::string describe_exit_status(int wait_status);

}  // namespace reel
