#include "worker/worker_main.hpp"

#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/protocol.hpp"
#include "sdk/plugin_host.hpp"
#include "worker/plugin_sources.hpp"
#include "core/run_plan.hpp"

namespace reel {

namespace {

// Blocking line I/O over the channel. Writes are serialised: the run thread and the
// main thread both send.
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
      char chunk[65536];
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
      if (n <= 0) return;   // the daemon is gone; PR_SET_PDEATHSIG ends us
      off += static_cast<size_t>(n);
    }
  }

 private:
  int fd_;
  std::string buf_;
  std::mutex mu_;
};

// Peak RSS of this process since the last reset (Linux: clear_refs "5" resets VmHWM).
void reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}
int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string key;
  while (f >> key) {
    if (key == "VmHWM:") {
      int64_t kb = 0;
      f >> kb;
      return kb * 1024;
    }
    f.ignore(1 << 20, '\n');
  }
  return 0;
}

// Turns the plugin's host callbacks into events on the channel.
class ChannelHooks : public RunHooks {
 public:
  ChannelHooks(Channel& ch, Json id, const std::atomic<bool>& cancel) : ch_(ch), id_(std::move(id)), cancel_(cancel) {}

  void progress(int64_t step, int64_t total, const std::string& stage) override {
    // Each progress event is a durable write in the daemon: a few per second is plenty
    // for a progress bar, but first/last steps and stage changes always go through.
    auto now = std::chrono::steady_clock::now();
    bool important = step == 0 || step == total || stage != last_stage_;
    if (!important && now - last_sent_ < std::chrono::milliseconds(200)) return;
    last_sent_ = now;
    last_stage_ = stage;
    ch_.write(encode_event(id_, Json{{"kind", "progress"}, {"step", step}, {"total", total}, {"stage", stage}}));
  }
  bool cancelled() override { return cancel_.load(); }
  void log(int level, const std::string& message) override {
    static const char* names[] = {"debug", "info", "warn", "error"};
    ch_.write(encode_event(id_, Json{{"kind", "log"}, {"level", names[std::clamp(level, 0, 3)]}, {"message", message}}));
  }
  void memory_sample(uint64_t device, uint64_t host) override {
    peak_device_ = std::max(peak_device_, static_cast<int64_t>(device));
    peak_host_reported_ = std::max(peak_host_reported_, static_cast<int64_t>(host));
  }
  void event(const std::string& kind, const Json& data) override {
    ch_.write(encode_event(id_, Json{{"kind", kind}, {"data", data}}));
  }
  int64_t peak_device() const { return peak_device_; }
  int64_t peak_host_reported() const { return peak_host_reported_; }

 private:
  Channel& ch_;
  Json id_;
  const std::atomic<bool>& cancel_;
  std::chrono::steady_clock::time_point last_sent_{};
  std::string last_stage_;
  int64_t peak_device_ = 0, peak_host_reported_ = 0;
};

// The error reply for whatever a plugin call threw. The plugin's own words are what a
// job's error should say, so PluginCallError contributes its message, not what().
std::string error_reply(const Json& id, std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const PluginCallError& e) {
    return encode_error(id, e.kind(), e.message());
  } catch (const std::bad_alloc&) {
    return encode_error(id, "oom", "the worker ran out of host memory");
  } catch (const std::exception& e) {
    return encode_error(id, "internal", e.what());
  } catch (...) {
    return encode_error(id, "internal", "unknown exception");
  }
}

class Worker {
 public:
  explicit Worker(int fd) : ch_(fd) {}

  int serve() {
    std::string line;
    while (ch_.read_line(line)) {
      auto parsed = parse_request(line);
      if (!parsed.request) {
        ch_.write(encode_error(parsed.error->id, parsed.error->code, parsed.error->message));
        continue;
      }
      const Request& req = *parsed.request;
      if (req.method == "cancel") {
        cancel_ = true;
        continue;
      }
      if (running_) {
        ch_.write(encode_error(req.id, "busy", "a job is running in this worker"));
        continue;
      }
      if (run_thread_.joinable()) run_thread_.join();
      try {
        dispatch(req);
      } catch (...) {
        ch_.write(error_reply(req.id, std::current_exception()));
      }
    }
    // The daemon closed the channel (eviction, shutdown, or it died): stop now. A run
    // in progress is abandoned; the process exit frees its memory.
    cancel_ = true;
    _exit(0);
  }

 private:
  void dispatch(const Request& req) {
    const Json& p = req.params;
    if (req.method == "open") {
      open(p.value("plugin", ""));
      ch_.write(encode_result(req.id, Json{{"name", plugin_->name()}, {"version", plugin_->version()},
                                           {"description", description_}}));
    } else if (req.method == "plan") {
      ch_.write(encode_result(req.id, Json{{"plan", plan(p.value("job", Json::object()))}}));
    } else if (req.method == "load") {
      require_plugin();
      model_.reset();
      model_ = plugin_->load(p.value("model", ""), p.value("rung", Json::object()), p.value("device", "cpu"));
      ch_.write(encode_result(req.id, Json{{"resident_host_bytes", peak_rss_bytes()}}));
    } else if (req.method == "unload") {
      model_.reset();
      ch_.write(encode_result(req.id, Json::object()));
    } else if (req.method == "run") {
      if (!model_) throw std::runtime_error("run before load");
      start_run(req);
    } else {
      ch_.write(encode_error(req.id, err::unknown_method, "worker has no method '" + req.method + "'"));
    }
  }

  void open(const std::string& plugin) {
    if (plugin_) throw std::runtime_error("this worker already serves plugin " + plugin_->path());
    plugin_ = open_plugin(plugin);
    description_ = plugin_->describe();
  }

  void require_plugin() const {
    if (!plugin_) throw std::runtime_error("no plugin opened in this worker");
  }

  // The model's ladder with this job's estimate at every rung, best first.
  Json plan(const Json& job) {
    require_plugin();
    const std::string model = job.value("model", "");
    for (const auto& m : description_.value("models", Json::array())) {
      if (m.value("name", "") != model) continue;
      Json out = Json::array();
      for (const auto& rung : m.value("ladder", Json::array())) {
        Json raw = plugin_->estimate(job, rung);
        Json e = to_json(rung_estimate_from_json(raw, rung, plugin_->name()));
        e["shape"] = raw.value("shape", "default");   // the key measured peaks are filed under
        out.push_back(std::move(e));
      }
      return out;
    }
    throw PluginCallError(REEL_ERR_BAD_INPUT, plugin_->name(), "plan", "no model '" + model + "'");
  }

  void start_run(const Request& req) {
    cancel_ = false;
    running_ = true;
    run_thread_ = std::thread([this, req] {
      ChannelHooks hooks(ch_, req.id, cancel_);
      const Json& p = req.params;
      reset_peak_rss();
      try {
        Json result = model_->run(p.value("job", Json::object()), p.value("rung", Json::object()),
                                  p.value("work_dir", ""), p.value("output_dir", ""), hooks);
        result["peak_device_bytes"] = hooks.peak_device();
        result["peak_host_bytes"] = std::max(peak_rss_bytes(), hooks.peak_host_reported());
        ch_.write(encode_result(req.id, result));
      } catch (...) {
        ch_.write(error_reply(req.id, std::current_exception()));
      }
      running_ = false;
    });
  }

  Channel ch_;
  std::unique_ptr<PluginLibrary> plugin_;
  Json description_;
  std::unique_ptr<LoadedModel> model_;
  std::thread run_thread_;
  std::atomic<bool> running_{false}, cancel_{false};
};

}  // namespace

int worker_main(int channel_fd) {
  // Pin glibc's mmap threshold at its initial 128 KiB. Left dynamic, glibc raises it each
  // time a large block is freed, after which tensors come from the heap and freed ones
  // stay in this process: a model's peak RSS then grows with fragmentation (measured: 2x
  // for a VAE decode) and the plugins' memory estimates stop being true. Setting it turns
  // the dynamic raise off. The memory-estimate test measures under the same setting.
  ::mallopt(M_MMAP_THRESHOLD, kWorkerMmapThreshold);
  Worker w(channel_fd);
  return w.serve();
}

}  // namespace reel
