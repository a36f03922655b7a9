#include "server/daemon.hpp"

#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "server/logging.hpp"
#include "server/model_workers.hpp"
#include "server/plugin_registry.hpp"
#include "store/lock_file.hpp"
#include "store/sqlite_job_store.hpp"

namespace reel {

namespace fs = std::filesystem;

Daemon::Daemon(DaemonOptions options)
    : options_(std::move(options)),
      stop_signals_(io_, SIGTERM, SIGINT),
      reload_signal_(io_, SIGHUP),
      child_signal_(io_, SIGCHLD),
      status_timer_(io_),
      watchdog_timer_(io_),
      stop_timer_(io_),
      probe_timer_(io_) {}

Daemon::~Daemon() = default;

namespace {

void make_private_dir(const std::string& path, const char* what, const char* key) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec)
    throw std::runtime_error(std::string("cannot create the ") + what + " " + path + ": " + ec.message() +
                             "; create it with write access for this user or set " + key);
  if (::access(path.c_str(), R_OK | W_OK | X_OK) != 0) {
    if (errno == EROFS)
      throw std::runtime_error(std::string("the ") + what + " " + path + " is on a read-only filesystem; remount it "
                               "read-write (nothing in it was changed) or set " + key);
    throw std::runtime_error(std::string("the ") + what + " " + path + " is not writable by this user; fix its "
                             "permissions or set " + key);
  }
}

unsigned parse_mode(const std::string& octal) { return static_cast<unsigned>(std::stoul(octal, nullptr, 8)); }

}  // namespace

int Daemon::run() {
  started_ = std::chrono::steady_clock::now();
  // Workers are reached through posix::stream_descriptor, whose writes are plain
  // write(2): a worker SIGKILLed just before a request is written to it would raise
  // SIGPIPE and kill reeld silently (found by the soak, tests/soak). Ignored, the write
  // fails with EPIPE and the worker's death is handled like any other.
  std::signal(SIGPIPE, SIG_IGN);
  try {
    config_ = load_config(options_.config_path);
  } catch (const std::exception& e) {
    setup_logging(Config::Log{});
    spdlog::critical("cannot start: {}", e.what());
    return 2;
  }
  setup_logging(config_.log);
  try {
    start_up();
  } catch (const std::exception& e) {
    spdlog::critical("cannot start: {}", e.what());
    return 1;
  }
  io_.run();
  // Destroying the signal sets gives SIGTERM back its default action, so a second
  // SIGTERM arriving while reeld tears down (an impatient operator, systemd's final
  // kill) would end it by a signal instead of with its exit code. Blocked, it stays
  // pending until the process is gone; no worker is started after this point.
  sigset_t stop_set;
  sigemptyset(&stop_set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&stop_set, sig);
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  spdlog::info("reeld stopped");
  return exit_code_;
}

void Daemon::start_up() {
  paths_ = resolve_paths(config_);
  spdlog::info("reeld {} starting (pid {}); config: {}", REEL_VERSION, ::getpid(),
               config_.source_path.empty() ? "embedded defaults" : config_.source_path);
  make_private_dir(paths_.state_dir, "state folder", "daemon.state_dir");
  ::chmod(paths_.state_dir.c_str(), 0750);
  lock_ = std::make_unique<LockFile>(paths_.lock_file);
  make_private_dir(paths_.work_dir, "work folder", "daemon.state_dir");
  make_private_dir(paths_.output_dir, "output folder", "jobs.output_dir");

  store_ = std::make_unique<SqliteJobStore>(paths_.database, SqliteOptions::from_config(config_.storage));
  for (const auto& id : store_->recover_interrupted(config_.jobs.max_crashes, now_ms())) {
    auto job = store_->get(id);
    if (job && job->state == JobState::failed)
      spdlog::error("job {} failed as poison after {} crashes; inspect with `reelctl show {}`", id,
                    job->crash_count, id);
    else
      spdlog::warn("job {} was running when reeld stopped unexpectedly; re-queued", id);
  }
  paused_ = store_->setting("paused").value_or("0") == "1";
  queue_ = std::make_unique<QueueView>(*store_);
  queue_->reload_all(config_.scheduler.quality_fallback);

  probe_ = std::make_unique<DeviceProbe>(config_);
  probe_devices();
  spdlog::info("devices: {}", probe_->source());

  plugins_ = std::make_unique<PluginRegistry>(io_, options_.worker_exe);
  plugins_->load(discover_plugins(plugin_dirs(config_, options_.worker_exe)),
                 std::chrono::milliseconds(static_cast<int64_t>(config_.plugins.load_timeout_seconds * 1000)));

  workers_ = std::make_unique<ModelWorkers>(
      io_, options_.worker_exe, [this](const std::string& device) { return bind_device(device); },
      ModelWorkers::Callbacks{
          [this](const std::string& id, const std::string& lease, const Json& ev) { on_worker_event(id, lease, ev); },
          [this](const std::string& id, const std::string& lease, const RunOutcome& o) {
            on_worker_done(id, lease, o);
          },
          [this] { request_schedule(); }});
  workers_->set_keep_alive(
      std::chrono::milliseconds(static_cast<int64_t>(config_.scheduler.keep_alive_seconds * 1000)));
  workers_->set_max_resident(config_.scheduler.max_resident_models);

  // Watches before the socket: once a client can connect, every folder already has its
  // inotify watch and its start-up scan behind it, so a file a client then starts writing
  // is taken on close, never half-written by a scan (WatchTest.SlowPartialWrite...).
  start_watches();

  ControlServerOptions so;
  so.socket_path = paths_.socket_path;
  so.socket_mode = parse_mode(config_.daemon.socket_mode);
  so.socket_group = config_.daemon.socket_group;
  so.max_request_bytes = static_cast<size_t>(config_.daemon.max_request_bytes);
  so.max_clients = config_.daemon.max_clients;
  server_ = std::make_unique<ControlServer>(io_, so, *this);

  watch_signals();
  arm_status_timer();
  arm_watchdog_timer();
  arm_probe_timer();
  auto counts = store_->counts();
  spdlog::info("ready: socket {}, state {}, {} queued, {}{}", paths_.socket_path, paths_.state_dir, counts.queued,
               paused_ ? "queue paused (reelctl resume to start jobs)" : "queue running",
               "");
  notifier_.ready();
  publish_status();
  request_schedule();
}

void Daemon::request_schedule() {
  // Many events can free capacity at once (a job ends, its worker goes idle...);
  // one scheduling pass after them is enough.
  if (schedule_posted_) return;
  schedule_posted_ = true;
  boost::asio::post(io_, [this] {
    schedule_posted_ = false;
    schedule();
  });
}

void Daemon::watch_signals() {
  watch_stop_signals();
  watch_reload_signal();
  watch_child_signal();
}

// Each handler re-arms itself: a signal_set delivers one signal per async_wait.
void Daemon::watch_stop_signals() {
  stop_signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    begin_stop(sig == SIGTERM ? "SIGTERM" : "SIGINT");
    watch_stop_signals();
  });
}

void Daemon::watch_reload_signal() {
  reload_signal_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    reload_config();
    watch_reload_signal();
  });
}

void Daemon::watch_child_signal() {
  child_signal_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    WorkerProcess::reap_all();
    watch_child_signal();
  });
}

void Daemon::reload_config() {
  notifier_.reloading();
  try {
    Config next = load_config(options_.config_path);
    ResolvedPaths next_paths = resolve_paths(next);
    if (next_paths.state_dir != paths_.state_dir || next_paths.socket_path != paths_.socket_path ||
        next.daemon.socket_mode != config_.daemon.socket_mode || next.daemon.socket_group != config_.daemon.socket_group ||
        next.storage.journal_mode != config_.storage.journal_mode || next.log.file != config_.log.file)
      spdlog::warn("config reload: state_dir, socket, storage and log.file changes take effect only after a "
                   "restart (systemctl restart reeld)");
    apply_log_level(next.log.level);
    workers_->set_keep_alive(
        std::chrono::milliseconds(static_cast<int64_t>(next.scheduler.keep_alive_seconds * 1000)));
    workers_->set_max_resident(next.scheduler.max_resident_models);
    server_->set_limits(static_cast<size_t>(next.daemon.max_request_bytes), next.daemon.max_clients);
    // Keep what cannot change without a restart, take everything else.
    next.daemon.state_dir = config_.daemon.state_dir;
    next.daemon.socket_path = config_.daemon.socket_path;
    next.storage = config_.storage;
    next.log.file = config_.log.file;
    config_ = std::move(next);
    queue_->reload_all(config_.scheduler.quality_fallback);
    reload_watches();
    spdlog::info("config reloaded from {}", config_.source_path.empty() ? "embedded defaults" : config_.source_path);
  } catch (const std::exception& e) {
    spdlog::error("config reload rejected, the previous config stays in force: {}; fix the file and send SIGHUP again",
                  e.what());
  }
  notifier_.notify("READY=1");
  publish_status();
  request_schedule();
}

void Daemon::begin_stop(const std::string& why) {
  if (stopping_) {
    spdlog::info("{} again while stopping; still waiting for {} running job(s)", why, active_runs());
    return;
  }
  stopping_ = true;
  draining_ = true;
  notifier_.stopping();
  spdlog::info("{}: stopping; {} running job(s)", why, active_runs());
  auto grace = std::chrono::duration<double>(config_.daemon.drain_on_stop ? config_.daemon.stop_grace_seconds : 0);
  stop_timer_.expires_after(std::chrono::duration_cast<std::chrono::milliseconds>(grace));
  stop_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    if (active_runs() > 0)
      spdlog::warn("stop grace over; re-queueing {} running job(s) so they run again after the restart",
                   active_runs());
    for (const auto& run : workers_->running()) {
      interrupted_by_stop_.insert(run.job_id);
      workers_->kill(run.job_id);
    }
  });
  stop_if_idle();
}

void Daemon::stop_if_idle() {
  if (!draining_ || active_runs() > 0) return;
  if (!stopping_) {
    stopping_ = true;
    notifier_.stopping();
  }
  spdlog::info("no jobs running; exiting");
  boost::system::error_code ignored;
  stop_timer_.cancel();
  status_timer_.cancel();
  watchdog_timer_.cancel();
  stop_signals_.cancel(ignored);
  reload_signal_.cancel(ignored);
  child_signal_.cancel(ignored);
  probe_timer_.cancel();
  server_.reset();   // closes the clients and unlinks the socket
  watches_.clear();  // inputs being processed stay in .reel/processing/ and resume at the next start
  workers_->evict_all_idle("reeld is stopping");
  io_.stop();
}

void Daemon::arm_status_timer() {
  status_timer_.expires_after(std::chrono::milliseconds(static_cast<int64_t>(config_.daemon.status_interval_seconds * 1000)));
  status_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    publish_status();
    queue_->reload_all(config_.scheduler.quality_fallback);   // resynchronise with the store
    request_schedule();   // aging can change the order; a launch that failed is retried
    arm_status_timer();
  });
}

void Daemon::arm_watchdog_timer() {
  auto interval = notifier_.watchdog_interval();
  if (!interval) return;
  notifier_.watchdog();
  watchdog_timer_.expires_after(*interval);
  watchdog_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) arm_watchdog_timer();
  });
}

void Daemon::publish_status() {
  try {
    auto c = store_->counts();
    std::string s = std::to_string(c.queued) + " queued, " + std::to_string(c.running) + " running";
    if (paused_) s += ", paused";
    if (draining_) s += ", draining";
    notifier_.status(s);
  } catch (const std::exception& e) {
    notifier_.status(std::string("database error: ") + e.what());
  }
}

}  // namespace reel
