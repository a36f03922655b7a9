#include "server/watch_folder.hpp"

#include <limits.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "core/job_spec.hpp"
#include "core/messages.hpp"
#include "server/watch_files.hpp"
#include "store/filesystem_probe.hpp"

namespace reel {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxTextBytes = 1 << 20;   // job and prompt files: the job spec's own limit
constexpr const char* kReload = "then reload reeld (systemctl reload reeld, or kill -HUP its pid)";

int64_t ms(double seconds) { return static_cast<int64_t>(seconds * 1000); }

std::string canonical(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    out.push_back(it->path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

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

template <class F>
void WatchFolder::guarded(const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    report(std::string(what) + ": " + e.what() + "; the watch goes on, inputs left in .reel/processing/ are "
           "resumed at the next start");
  }
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
  folder_ = canonical(config_.path);
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
  for (const auto& name : names_in(folder_)) {
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

void WatchFolder::claim(const std::string& stem, const std::vector<std::string>& files, WatchFileKind kind) {
  struct stat st {};
  for (const auto& f : files)
    if (::lstat((dir("processing") + "/" + f).c_str(), &st) == 0) {
      // An input of the same name is still being processed; this one is taken after it.
      blocked_ = true;
      return;
    }
  std::vector<std::string> moved;
  for (const auto& f : files) {
    bool exists = false;
    std::string why;
    if (move_no_replace(folder_ + "/" + f, dir("processing") + "/" + f, exists, why)) moved.push_back(f);
    else if (exists) blocked_ = true;
    else if (errno != ENOENT) report("cannot claim " + f + " (move into .reel/processing/): " + why);
  }
  if (moved.empty() || claims_.count(moved[0])) return;
  Claim& c = claims_[moved[0]];
  c.stem = stem;
  c.files = moved;
  submit_claim(moved[0], kind);
}

void WatchFolder::recover_processing() {
  std::map<std::string, std::vector<std::string>> sets;   // media members by stem
  for (const auto& name : names_in(dir("processing"))) {
    WatchFileClass c = classify_watch_file(name, config_.kind);
    if (c.kind == WatchFileKind::media_member) {
      sets[c.stem].push_back(name);
    } else if (c.kind == WatchFileKind::job_file || c.kind == WatchFileKind::prompt_file) {
      claims_[name] = Claim{c.stem, {name}, {}, {}, 0, false};
      submit_claim(name, c.kind);
    } else {
      spdlog::warn("watch {}: {} in .reel/processing/ is not an input of this watch (kind {}); left there",
                   config_.path, name, config_.kind);
    }
  }
  for (auto& [stem, files] : sets) {
    bool media = std::any_of(files.begin(), files.end(), [&](const std::string& f) {
      return classify_watch_file(f, config_.kind).role != "prompt";
    });
    claims_[files[0]] = Claim{stem, files, {}, {}, 0, false};
    submit_claim(files[0], !media && config_.kind == "auto" ? WatchFileKind::prompt_file : WatchFileKind::media_member);
  }
  if (!claims_.empty())
    spdlog::info("watch {}: resuming {} input(s) found in .reel/processing/", config_.path, claims_.size());
}

void WatchFolder::submit_claim(std::string key, WatchFileKind kind) {
  Claim& c = claims_[key];
  std::vector<InputRead> reads;
  for (const auto& f : c.files) {
    InputRead r;
    std::string why;
    if (read_input(dir("processing"), f, config_.max_file_bytes, kMaxTextBytes, r, why)) reads.push_back(std::move(r));
    else c.errors.push_back(f + ": refused: " + why);
  }
  std::vector<ClaimJob> jobs;
  try {
    if (c.errors.empty()) jobs = kind == WatchFileKind::job_file ? job_file_jobs(c, reads[0]) : prompt_jobs(c, kind, reads);
  } catch (const JobSpecError& e) {
    c.errors.push_back(e.what());
  }
  if (!c.errors.empty()) {
    finish(key);
    return;
  }
  std::vector<WatchedFile> identity;
  for (const auto& r : reads) identity.push_back(r.file);
  c.outstanding = static_cast<int>(jobs.size());
  for (auto& job : jobs) {
    job.spec.idempotency_key = watch_idempotency_key(folder_, identity, job.key_part);
    submit_one(key, std::move(job.spec), job.output_stem);
  }
}

std::vector<WatchFolder::ClaimJob> WatchFolder::job_file_jobs(const Claim& c, const InputRead& read) const {
  if (read.file.size > static_cast<int64_t>(kMaxTextBytes))
    throw JobSpecError(c.files[0] + ": a job file must be at most 1 MiB");
  // Relative inputs name files next to the job file, in the watched folder.
  JobSpec spec = parse_job_spec(read.text, c.files[0], folder_);
  for (auto& [role, path] : spec.inputs) {
    std::string real = canonical(path);
    if (real.empty() || !path_is_inside(folder_, real))
      throw JobSpecError(c.files[0] + ": inputs." + role + ": '" + path + "' is not a file inside the watched "
                         "folder; put the input in a sub-folder of it and name it relatively");
    path = real;
  }
  apply_watch_defaults(config_, spec, false);
  return {ClaimJob{"", c.stem, std::move(spec)}};
}

std::vector<WatchFolder::ClaimJob> WatchFolder::prompt_jobs(const Claim& c, WatchFileKind kind,
                                                             const std::vector<InputRead>& reads) const {
  std::map<std::string, std::string> inputs;   // role -> path in processing/
  std::string prompt_text;
  bool have_prompt = false;
  for (std::size_t i = 0; i < reads.size(); ++i) {
    std::string role = kind == WatchFileKind::prompt_file ? "prompt" : classify_watch_file(c.files[i], config_.kind).role;
    if (role == "prompt" && reads[i].file.size > static_cast<int64_t>(kMaxTextBytes))
      throw JobSpecError(c.files[i] + ": a prompt file must be at most 1 MiB");
    if (role == "prompt" ? have_prompt : inputs.count(role) > 0)
      throw JobSpecError("two files for the " + role + " of '" + c.stem + "' (" + c.files[i] +
                         "); drop one file per role and stem");
    if (role == "prompt") {
      prompt_text = reads[i].text;
      have_prompt = true;
    } else {
      inputs[role] = dir("processing") + "/" + c.files[i];
    }
  }
  auto prompts = watch_prompts(prompt_text, kind == WatchFileKind::prompt_file && config_.prompt_per_line);
  if (kind == WatchFileKind::prompt_file && prompts.empty())
    throw JobSpecError(c.files[0] + ": the prompt file is empty");
  if (prompts.empty()) prompts.emplace_back(0, "");   // a media set without a prompt
  std::vector<ClaimJob> jobs;
  for (const auto& [line, prompt] : prompts) {
    bool numbered = line > 0;
    jobs.push_back(ClaimJob{numbered ? "line" + std::to_string(line) : "",
                            numbered ? c.stem + "." + std::to_string(line) : c.stem,
                            watch_media_spec(config_, inputs, prompt)});
  }
  return jobs;
}

void WatchFolder::submit_one(std::string key, JobSpec spec, const std::string& output_stem) {
  auto alive = alive_;
  std::string source = spec.source, idem = spec.idempotency_key;
  hooks_.submit(std::move(spec), [this, alive, key, source, idem, output_stem](const SubmitReply& r) {
    if (!*alive) return;
    guarded("recording a submission", [&] { on_submitted(key, source, idem, output_stem, r); });
  });
}

void WatchFolder::on_submitted(const std::string& key, const std::string& source, const std::string& idem,
                               const std::string& output_stem, const SubmitReply& r) {
  auto it = claims_.find(key);
  if (it == claims_.end()) return;
  Claim& c = it->second;
  --c.outstanding;
  std::string job_id;
  if (r.ok) {
    job_id = r.job.id;
  } else if (r.code == "draining") {
    c.held = true;   // stays in processing/; the next start submits it
  } else if (r.code == "conflict") {
    // Submitted before with other settings (the watch's config changed since): that job is this input's.
    for (const auto& j : hooks_.jobs_from(source))
      if (j.idempotency_key == idem) job_id = j.id;
    if (job_id.empty()) c.errors.push_back(r.message);
  } else {
    c.errors.push_back(r.message);
  }
  if (!job_id.empty()) {
    c.jobs.emplace_back(job_id, output_stem);
    job_claim_[job_id] = key;
    if (!r.existed) spdlog::info("watch {}: {} -> job {}", config_.path, key, job_id);
  }
  maybe_finish(key);
}

void WatchFolder::job_changed(const Job& job) {
  if (!is_final(job.state)) return;
  auto it = job_claim_.find(job.id);
  if (it != job_claim_.end()) guarded("finishing an input", [&] { maybe_finish(it->second); });
}

void WatchFolder::maybe_finish(std::string key) {
  auto it = claims_.find(key);
  if (it == claims_.end() || it->second.outstanding > 0 || it->second.held) return;
  for (const auto& [id, stem] : it->second.jobs) {
    auto job = hooks_.job(id);
    if (job && !is_final(job->state)) return;
  }
  finish(key);
}

void WatchFolder::finish(std::string key) {
  auto node = claims_.extract(key);
  if (node.empty()) return;
  Claim c = std::move(node.mapped());
  std::vector<std::string> job_ids;
  for (const auto& [id, stem] : c.jobs) {
    job_claim_.erase(id);
    job_ids.push_back(id);
    auto job = hooks_.job(id);
    if (!job) {
      c.errors.push_back("job " + id + " no longer exists (pruned before its input was finished)");
      continue;
    }
    if (job->state != JobState::succeeded) {
      c.errors.push_back("job " + id + " " + std::string(to_string(job->state)) +
                         (job->error.empty() ? "" : ": " + job->error));
      continue;
    }
    auto names = watch_output_names(stem, job->outputs);
    for (std::size_t i = 0; i < names.size(); ++i) {
      // Linked before a crash that came before the input was moved: not again.
      if (same_file(job->outputs[i], output_dir_ + "/" + names[i])) continue;
      std::string dest = output_dir_ + "/" + free_name(output_dir_, names[i], id);
      std::string why;
      if (!link_or_copy(job->outputs[i], dest, why))
        c.errors.push_back("cannot place output " + job->outputs[i] + " at " + dest + ": " + why);
    }
  }
  const bool ok = c.errors.empty();
  const std::string target = dir(ok ? "done" : "failed");
  const std::string tag = job_ids.empty() ? std::to_string(now_ms()) : job_ids.back();
  std::string primary;
  for (const auto& f : c.files) {
    std::string name = free_name(target, f, tag);
    bool exists = false;
    std::string why;
    if (!move_no_replace(dir("processing") + "/" + f, target + "/" + name, exists, why))
      spdlog::warn("watch {}: cannot move {} out of .reel/processing/: {}", config_.path, f, why);
    if (primary.empty()) primary = name;
  }
  std::string error;
  for (const auto& e : c.errors) error += (error.empty() ? "" : "; ") + e;
  if (ok) {
    spdlog::info("watch {}: {} done (job {}); outputs in {}", config_.path, key, join(job_ids), output_dir_);
  } else {
    std::string record = target + "/" + primary + ".error.json";
    std::string why;
    if (!write_json_file(record, watch_error_record(c.files, job_ids, error, now_ms()), why))
      spdlog::error("watch {}: {}", config_.path, why);
    report(key + " failed: " + error + " (details in " + record + "; fix the input and drop it again)");
  }
  if (blocked_) {
    blocked_ = false;
    auto alive = alive_;
    boost::asio::post(io_, [this, alive] {
      if (*alive && running_) guarded("scanning the folder", [&] { scan(); });
    });
  }
}

void WatchFolder::refuse(const std::string& name, const std::string& why) {
  std::string target = free_name(dir("failed"), name, std::to_string(now_ms()));
  bool exists = false;
  std::string move_why;
  if (!move_no_replace(folder_ + "/" + name, dir("failed") + "/" + target, exists, move_why)) {
    if (errno != ENOENT) report("cannot move refused " + name + " into .reel/failed/: " + move_why);
    return;
  }
  std::string record = dir("failed") + "/" + target + ".error.json";
  std::string write_why;
  if (!write_json_file(record, watch_error_record({name}, {}, "refused: " + why, now_ms()), write_why))
    spdlog::error("watch {}: {}", config_.path, write_why);
  report(name + " refused: " + why + " (moved to .reel/failed/)");
}

Json WatchFolder::to_json() const {
  auto count = [&](const std::string& d, bool skip_records) {
    int64_t n = 0;
    for (const auto& name : names_in(d)) n += !(skip_records && ends_with(name, ".error.json"));
    return n;
  };
  int64_t pending = 0;
  if (running_) {
    for (const auto& name : names_in(folder_)) {
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
