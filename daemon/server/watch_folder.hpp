// WatchFolder: one watched input folder ([[watch]] in reeld.toml, docs/WATCH.md).
//
// Files dropped into the folder become jobs: inotify (IN_CLOSE_WRITE, IN_MOVED_TO;
// IN_CREATE only to refuse symlinks, so a file is taken only once complete) read through Asio, a
// full scan at start and after an inotify queue overflow, or periodic scans with a
// size/mtime stability check on network filesystems where inotify sees nothing.
// An input is claimed by renaming it into <folder>/.reel/processing/ (same filesystem,
// so the move is atomic and a second event finds nothing), then submitted with an
// idempotency key made from its name, size, mtime and content hash
// (core/watch_input.hpp): a restart or re-scan resubmits what is in processing/ and
// gets the same job back. When its jobs end, outputs are linked (or copied) into the
// output folder under the input's stem and the input moves to .reel/done/ or
// .reel/failed/ (with <name>.error.json).
// Invariants: nothing outside the folder is read on a dropped file's behalf (symlinks,
// non-regular files and job-file inputs resolving elsewhere are refused into failed/);
// a bad file never stops the watch; a folder that cannot be used is reported
// (last_error, the log), never silently skipped.
// Thread-safety: none; everything runs on the daemon's io_context thread.
// watch_folder.cpp: start, inotify, polling, scans; watch_claims.cpp: claims and jobs.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "core/config.hpp"
#include "core/job.hpp"
#include "core/watch_input.hpp"

namespace reel {

struct InputRead;   // watch_files.hpp

// The answer to a submission, from the same path the control socket's submit takes.
struct SubmitReply {
  bool ok = false;
  std::string code, message;   // !ok: the wire error code and message
  Job job;
  bool existed = false;        // the idempotency key matched an existing job
};

class WatchFolder {
 public:
  struct Hooks {
    std::function<void(JobSpec, std::function<void(const SubmitReply&)>)> submit;
    std::function<std::optional<Job>(const std::string& id)> job;
    std::function<std::vector<Job>(const std::string& source)> jobs_from;   // newest first
  };
  WatchFolder(boost::asio::io_context& io, Config::Watch config, Hooks hooks);
  ~WatchFolder();
  WatchFolder(const WatchFolder&) = delete;
  WatchFolder& operator=(const WatchFolder&) = delete;

  // Checks the folder (exists, is a folder, readable and writable, .reel/ and the
  // output folder can be made), resumes what is in .reel/processing/, scans and starts
  // watching. False, logged with what to do and kept as last_error, when it cannot.
  bool start();
  bool running() const { return running_; }
  const Config::Watch& config() const { return config_; }

  bool tracks(const std::string& job_id) const { return job_claim_.count(job_id) > 0; }
  // A tracked job changed; when it and its input's other jobs are final, the input is finished.
  void job_changed(const Job& job);

  // {path, model, kind, mode ("inotify"|"poll"|"stopped"), output_dir, pending,
  //  processing, done, failed, last_error, last_error_at}
  Json to_json() const;

 private:
  struct Claim {
    std::string stem;                     // outputs are named after it
    std::vector<std::string> files;       // in .reel/processing/
    std::vector<std::pair<std::string, std::string>> jobs;   // (job id, output stem), in order
    std::vector<std::string> errors;      // submissions refused, files refused
    int outstanding = 0;                  // submissions not yet answered
    bool held = false;                    // the daemon is draining: left for the next start
  };

  // One job an input becomes: its spec, what tells it apart in the idempotency key
  // ("line3" for a prompt file's third line), and the stem its outputs are named after.
  struct ClaimJob {
    std::string key_part, output_stem;
    JobSpec spec;
  };

  void report(const std::string& error);   // last_error + one log line
  // Runs `f`, turning an exception (the database failing, say) into a reported error:
  // nothing a watch meets may end the daemon's event loop.
  template <class F> void guarded(const char* what, F&& f);
  bool start_watching();
  bool prepare_folders();
  void start_inotify();
  void read_events();
  bool on_events(std::size_t n);   // false: the folder is gone, stop reading
  void arm_timer();
  void on_timer();
  void scan();
  void consider(const std::string& name, bool from_scan);
  void take_due_sets();
  void claim(const std::string& stem, const std::vector<std::string>& files, WatchFileKind kind);
  void recover_processing();
  void submit_claim(std::string key, WatchFileKind kind);
  // The jobs of a claim from its files as read; JobSpecError says why there are none.
  std::vector<ClaimJob> job_file_jobs(const Claim& c, const InputRead& read) const;
  std::vector<ClaimJob> prompt_jobs(const Claim& c, WatchFileKind kind, const std::vector<InputRead>& reads) const;
  void submit_one(std::string key, JobSpec spec, const std::string& output_stem);
  void on_submitted(const std::string& key, const std::string& source, const std::string& idem,
                    const std::string& output_stem, const SubmitReply& r);
  void maybe_finish(std::string key);   // by value: finishing erases the maps a key may come from
  void finish(std::string key);
  void refuse(const std::string& name, const std::string& why);   // into failed/ at once

  std::string dir(const char* sub) const;   // <folder>/.reel/<sub>

  boost::asio::io_context& io_;
  Config::Watch config_;
  Hooks hooks_;
  std::string folder_;        // canonical (realpath) once started
  std::string output_dir_;
  bool running_ = false, polling_ = false;
  int inotify_fd_ = -1;
  std::unique_ptr<boost::asio::posix::stream_descriptor> events_;
  std::vector<char> event_buf_;
  boost::asio::steady_timer timer_;
  MediaSetGrouper sets_;
  StabilityTracker stability_;
  std::set<std::string> unstable_;               // seen in a scan, not yet stable
  std::map<std::string, Claim> claims_;          // by primary file name
  std::map<std::string, std::string> job_claim_;
  bool blocked_ = false;                         // a dropped name was still in processing/: scan after a finish
  std::string last_error_;
  int64_t last_error_at_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);   // guards callbacks after destruction
};

template <class F>
void WatchFolder::guarded(const char* what, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    report(std::string(what) + ": " + e.what() + "; the watch goes on, inputs left in .reel/processing/ are "
           "resumed at the next start");
  }
}

}  // namespace reel
