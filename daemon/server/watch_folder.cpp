// WatchFolder: starting, inotify through Asio, polling and scans: deciding which
// files in the folder are complete inputs. See watch_folder.hpp.
#include "server/watch_folder.hpp"

#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "server/watch_files.hpp"
#include "store/filesystem_probe.hpp"

namespace reel {

namespace fs = std::filesystem;

namespace {

constexpr const char* kReload = "then reload reeld (systemctl reload reeld, or kill -HUP its pid)";

int64_t ms(double seconds) { return static_cast<int64_t>(seconds * 1000); }

// IN_CREATE is only for symlinks (`ln -s` makes no other event): a regular file is
// never taken at creation, only once closed after writing or moved in.
bool is_symlink(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

WatchFolder::WatchFolder(boost::asio::io_context& io, Config::Watch config, Hooks hooks)
    : io_(io),
      config_(std::move(config)),
      hooks_(std::move(hooks)),
      timer_(io),
      sets_(ms(config_.settle_seconds)),
      stability_(ms(config_.poll_interval_seconds)) {}

WatchFolder::~WatchFolder() {
  *alive_ = false;
  timer_.cancel();
  if (events_) events_.reset();   // closes the inotify fd
  else if (inotify_fd_ >= 0) ::close(inotify_fd_);
}

std::string WatchFolder::dir(const char* sub) const { return folder_ + "/.reel/" + sub; }

void WatchFolder::report(const std::string& error) {
  last_error_ = error;
  last_error_at_ = now_ms();
  spdlog::error("watch {}: {}", config_.path, error);
}

bool WatchFolder::start() {
  bool ok = false;
  guarded("cannot start the watch", [&] { ok = start_watching(); });
  return ok;
}

bool WatchFolder::start_watching() {
  if (std::string why = folder_problem(config_.path); !why.empty()) {
    report("cannot watch the folder: " + why + "; create it with read and write access for uid " +
           std::to_string(::getuid()) + ", " + kReload);
    return false;
  }
  folder_ = canonical_path(config_.path);
  output_dir_ = config_.output_dir.empty() ? folder_ + "/out" : config_.output_dir;
  if (!prepare_folders()) return false;
  polling_ = config_.poll == "true";
  if (config_.poll == "auto")
    if (auto type = filesystem_type(folder_); type && is_network_filesystem(*type)) {
      polling_ = true;
      spdlog::info("watch {}: {} filesystem: polling every {} s (inotify sees no changes made on other hosts)",
                   config_.path, filesystem_type_name(*type), config_.poll_interval_seconds);
    }
  if (!polling_) start_inotify();
  running_ = true;
  recover_processing();
  scan();
  spdlog::info("watch {}: watching ({}; {} inputs{}); outputs go to {}", config_.path,
               polling_ ? "polling" : "inotify", config_.kind,
               config_.model.empty() ? "" : " for model " + config_.model, output_dir_);
  return true;
}

bool WatchFolder::prepare_folders() {
  for (const std::string& d : {dir("processing"), dir("done"), dir("failed"), output_dir_}) {
    std::error_code ec;
    fs::create_directories(d, ec);
    std::string why = ec ? ec.message() : folder_problem(d);
    if (!why.empty()) {
      report("cannot use " + d + ": " + why + "; reeld keeps claimed inputs under <folder>/.reel/ and needs "
             "write access there and to the output folder; fix it, " + kReload);
      return false;
    }
  }
  return true;
}

void WatchFolder::start_inotify() {
  inotify_fd_ = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ < 0 ||
      ::inotify_add_watch(inotify_fd_, folder_.c_str(),
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                              IN_EXCL_UNLINK) < 0) {
    spdlog::warn("watch {}: inotify failed ({}); polling every {} s instead (raise fs.inotify.max_user_instances "
                 "or max_user_watches to get events)",
                 config_.path, std::strerror(errno), config_.poll_interval_seconds);
    if (inotify_fd_ >= 0) ::close(inotify_fd_);
    inotify_fd_ = -1;
    polling_ = true;
    return;
  }
  events_ = std::make_unique<boost::asio::posix::stream_descriptor>(io_, inotify_fd_);
  event_buf_.resize(64 * 1024);
  read_events();
}

void WatchFolder::read_events() {
  auto alive = alive_;
  events_->async_read_some(boost::asio::buffer(event_buf_), [this, alive](const boost::system::error_code& ec,
                                                                           std::size_t n) {
    if (!*alive || ec == boost::asio::error::operation_aborted) return;
    if (ec) {
      report("reading inotify events failed: " + ec.message() + "; " + kReload);
      return;
    }
    bool keep_reading = true;
    guarded("handling inotify events", [&] { keep_reading = on_events(n); });
    if (keep_reading) read_events();
  });
}

bool WatchFolder::on_events(std::size_t n) {
  bool overflow = false, gone = false;
  for (std::size_t off = 0; off + sizeof(inotify_event) <= n;) {
    inotify_event ev;
    std::memcpy(&ev, event_buf_.data() + off, sizeof ev);
    std::string name = ev.len ? std::string(event_buf_.data() + off + sizeof ev) : std::string();
    off += sizeof ev + ev.len;
    if (ev.mask & IN_Q_OVERFLOW) overflow = true;
    if (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED)) gone = true;
    if (name.empty() || (ev.mask & IN_ISDIR)) continue;
    if (ev.mask & (IN_CLOSE_WRITE | IN_MOVED_TO)) consider(name, false);
    else if ((ev.mask & IN_CREATE) && is_symlink(folder_ + "/" + name)) consider(name, false);
  }
  if (gone) {
    running_ = false;
    timer_.cancel();
    report("the folder was removed or moved away; recreate it, " + std::string(kReload));
    return false;
  }
  if (overflow) {
    spdlog::warn("watch {}: the inotify queue overflowed; scanning the whole folder", config_.path);
    scan();
  } else {
    take_due_sets();
    arm_timer();
  }
  return true;
}

void WatchFolder::arm_timer() {
  int64_t now = now_ms();
  std::optional<int64_t> next = sets_.next_deadline();
  if (polling_ || !unstable_.empty()) {
    int64_t rescan = now + ms(config_.poll_interval_seconds);
    next = next ? std::min(*next, rescan) : rescan;
  }
  if (!next) {
    timer_.cancel();
    return;
  }
  timer_.expires_after(std::chrono::milliseconds(std::max<int64_t>(0, *next - now)));
  auto alive = alive_;
  timer_.async_wait([this, alive](const boost::system::error_code& ec) {
    if (ec || !*alive || !running_) return;
    guarded("handling the timer", [&] { on_timer(); });
  });
}

void WatchFolder::on_timer() {
  if (polling_ || !unstable_.empty()) {
    scan();
  } else {
    take_due_sets();
    arm_timer();
  }
}

void WatchFolder::scan() {
  std::error_code ec;
  fs::directory_iterator it(folder_, ec);
  if (ec) {
    report("cannot list the folder: " + ec.message() + "; fix its permissions, " + kReload);
    arm_timer();
    return;
  }
  std::set<std::string> present;
  for (const auto& name : sorted_names(folder_)) {
    present.insert(name);
    consider(name, true);
  }
  for (auto u = unstable_.begin(); u != unstable_.end();) {
    if (present.count(*u)) {
      ++u;
    } else {
      stability_.forget(*u);
      u = unstable_.erase(u);
    }
  }
  take_due_sets();
  arm_timer();
}

void WatchFolder::consider(const std::string& name, bool from_scan) {
  WatchFileClass c = classify_watch_file(name, config_.kind);
  if (c.kind == WatchFileKind::ignored || c.kind == WatchFileKind::other) return;
  struct stat st {};
  if (::lstat((folder_ + "/" + name).c_str(), &st) != 0) return;   // already claimed, or removed
  if (S_ISDIR(st.st_mode)) return;
  if (S_ISLNK(st.st_mode)) {
    refuse(name, "it is a symbolic link; links are refused so that nothing outside the folder is read "
                 "(copy the file itself into the folder)");
    return;
  }
  if (!S_ISREG(st.st_mode)) {
    refuse(name, "it is not a regular file (a FIFO, socket or device)");
    return;
  }
  if (st.st_size > config_.max_file_bytes) {
    refuse(name, "it is " + std::to_string(st.st_size) + " bytes, over this watch's max_file_bytes (" +
                     std::to_string(config_.max_file_bytes) + "); raise max_file_bytes or drop a smaller file");
    return;
  }
  if (from_scan) {
    if (c.kind == WatchFileKind::media_member && sets_.contains(name)) return;   // its deadline stands
    int64_t mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
    if (!stability_.observe(name, st.st_size, mtime_ns, now_ms())) {
      unstable_.insert(name);
      return;
    }
  }
  stability_.forget(name);
  unstable_.erase(name);
  if (c.kind == WatchFileKind::media_member) sets_.add(c, name, now_ms());
  else claim(c.stem, {name}, c.kind);
}

void WatchFolder::take_due_sets() {
  for (auto& set : sets_.take_due(now_ms())) {
    // In an auto watch a prompt with no image or audio of its stem is a prompt file.
    bool prompt_only = !set.has_media() && config_.kind == "auto";
    claim(set.stem, set.files(), prompt_only ? WatchFileKind::prompt_file : WatchFileKind::media_member);
  }
}

Json WatchFolder::to_json() const {
  auto count = [&](const std::string& d, bool skip_records) {
    int64_t n = 0;
    for (const auto& name : sorted_names(d)) n += !(skip_records && ends_with(name, ".error.json"));
    return n;
  };
  int64_t pending = 0;
  if (running_) {
    for (const auto& name : sorted_names(folder_)) {
      auto k = classify_watch_file(name, config_.kind).kind;
      struct stat st {};
      if (k != WatchFileKind::ignored && k != WatchFileKind::other &&
          ::lstat((folder_ + "/" + name).c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
        ++pending;
    }
  }
  bool ready = !folder_.empty();
  return Json{{"path", config_.path},
              {"model", config_.model},
              {"kind", config_.kind},
              {"mode", !running_ ? "stopped" : polling_ ? "poll" : "inotify"},
              {"output_dir", ready ? output_dir_ : config_.output_dir},
              {"pending", pending},
              {"processing", ready ? count(dir("processing"), false) : 0},
              {"done", ready ? count(dir("done"), false) : 0},
              {"failed", ready ? count(dir("failed"), true) : 0},
              {"last_error", last_error_},
              {"last_error_at", last_error_at_}};
}

}  // namespace reel
