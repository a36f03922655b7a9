// A loopback fake of the DashScope video-synthesis API (docs/DASHSCOPE.md), for tests
// that drive the real daemon and the real dashscope plugin: plain HTTP/1.1 on
// 127.0.0.1, one thread per connection, every connection closed after one answer.
// It serves submit, task status, cancel, the upload policy, the OSS form upload and the
// video download, and records what it saw. Behaviour is set by Options; set_options may
// change it while a test runs. All methods are thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace reel::test {

class FakeDashScope {
 public:
  struct Options {
    std::string api_key = "test-key";
    int pending_polls = 1;          // polls answering PENDING, then
    int running_polls = 1;          // polls answering RUNNING, then the final state
    bool hold = false;              // stay RUNNING (or PENDING, with pending_polls) until set false
    std::string final_status = "SUCCEEDED";   // or "FAILED"
    std::string fail_code = "InternalError", fail_message = "the task failed";
    int submit_429s = 0;            // the first N submissions answer 429 with Retry-After
    std::string retry_after = "1";
    int submit_status = 200;        // != 200: submissions answer this with submit_code/message
    std::string submit_code, submit_message;
    bool break_first_download = false;  // the first download stops half-way
    int download_status = 200;      // e.g. 403: the result URL has expired
    std::size_t video_bytes = 300 * 1024;
  };
  struct Request {
    std::string method, target;
    std::map<std::string, std::string> headers;   // lower-cased names
    std::string body;
    int64_t at_ms = 0;                            // steady clock
  };

  explicit FakeDashScope(Options options);
  ~FakeDashScope();
  FakeDashScope(const FakeDashScope&) = delete;
  FakeDashScope& operator=(const FakeDashScope&) = delete;

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void set_options(const Options& options);
  Options options() const;

  int submissions() const;                        // tasks created (429s and errors not counted)
  int count(const std::string& method, const std::string& target_prefix) const;
  std::vector<Request> requests() const;
  std::vector<Request> requests_to(const std::string& method, const std::string& target_prefix) const;
  std::string video() const;                      // the bytes every task's video has

 private:
  void accept_loop();
  void serve(int fd);
  std::string answer(const Request& r, int fd, bool* closed);
  nlohmann::json task_json(const std::string& id);

  mutable std::mutex mu_;
  Options options_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
  std::vector<Request> requests_;
  struct Task {
    int polls = 0;
    bool canceled = false;
    nlohmann::json body;
  };
  std::map<std::string, Task> tasks_;
  int submit_attempts_ = 0;
  int downloads_ = 0;
};

}  // namespace reel::test
