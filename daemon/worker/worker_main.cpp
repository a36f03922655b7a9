#include "worker/worker_main.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <thread>

#include "core/protocol.hpp"
#include "worker/sleep_model.hpp"

namespace reel {

namespace {

// Blocking line I/O over the channel; writes are serialised because the model
// thread and the main thread both send.
class Channel {
 public:
  explicit Channel(int fd) : fd_(fd) {}
  bool read_line(std::string& line) {
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      char chunk[4096];
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  void write(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    size_t off = 0;
    while (off < line.size()) {
      ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;   // the daemon is gone; PR_SET_PDEATHSIG will end us
      off += static_cast<size_t>(n);
    }
  }

 private:
  int fd_;
  std::string buf_;
  std::mutex mu_;
};

class ChannelRunContext : public RunContext {
 public:
  ChannelRunContext(Channel& ch, Json id, std::string work_dir, std::string output_dir)
      : ch_(ch), id_(std::move(id)), work_dir_(std::move(work_dir)), output_dir_(std::move(output_dir)) {}

  void progress(int64_t step, int64_t total, const std::string& stage) override {
    // Every progress event becomes a durable write in the daemon; a few per second
    // is plenty for a progress bar, but the last step and stage changes always go.
    auto now = std::chrono::steady_clock::now();
    bool important = step == total || step == 0 || stage != last_stage_;
    if (!important && now - last_sent_ < std::chrono::milliseconds(200)) return;
    last_sent_ = now;
    last_stage_ = stage;
    ch_.write(encode_event(id_, Json{{"kind", "progress"}, {"step", step}, {"total", total}, {"stage", stage}}));
  }
  bool cancelled() const override { return cancelled_.load(); }
  void log(const std::string& level, const std::string& message) override {
    ch_.write(encode_event(id_, Json{{"kind", "log"}, {"level", level}, {"message", message}}));
  }
  const std::string& work_dir() const override { return work_dir_; }
  const std::string& output_dir() const override { return output_dir_; }
  void cancel() { cancelled_ = true; }

 private:
  Channel& ch_;
  Json id_;
  std::string work_dir_, output_dir_;
  std::atomic<bool> cancelled_{false};
  std::chrono::steady_clock::time_point last_sent_{};
  std::string last_stage_;
};

}  // namespace

int worker_main(int channel_fd) {
  Channel ch(channel_fd);
  std::string line;
  if (!ch.read_line(line)) return 2;
  auto parsed = parse_request(line);
  if (!parsed.request || parsed.request->method != "run") {
    ch.write(encode_error(nullptr, err::bad_request, "worker expected a 'run' request"));
    return 2;
  }
  const Request req = *parsed.request;
  Job job = Job::from_json(req.params.value("job", Json::object()));
  ChannelRunContext ctx(ch, req.id, req.params.value("work_dir", ""), req.params.value("output_dir", ""));

  // The daemon writes `cancel` (or closes the channel when it dies); watch for both.
  std::thread watcher([&ch, &ctx] {
    std::string l;
    while (ch.read_line(l)) {
      auto p = parse_request(l);
      if (p.request && p.request->method == "cancel") ctx.cancel();
    }
    ctx.cancel();
  });
  watcher.detach();   // it ends with the process; joining would wait on the daemon

  try {
    std::vector<std::string> outputs;
    if (job.model == "sleep") {
      outputs = run_sleep_model(job, ctx);
    } else {
      throw ModelError("bad_input", "this worker has no model '" + job.model + "'");
    }
    ch.write(encode_result(req.id, Json{{"outputs", outputs}, {"rung", ""}}));
  } catch (const ModelError& e) {
    ch.write(encode_error(req.id, e.kind, e.what()));
  } catch (const std::bad_alloc&) {
    ch.write(encode_error(req.id, "oom", "out of host memory"));
  } catch (const std::exception& e) {
    ch.write(encode_error(req.id, "internal", e.what()));
  }
  return 0;
}

}  // namespace reel
