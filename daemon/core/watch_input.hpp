// Watched input folders, the pure part: which dropped files are inputs, how media
// sets are grouped, the jobs an input becomes, its idempotency key and the names its
// outputs get. The folder itself (inotify, polling, moving files) is
// server/watch_folder.hpp; docs/WATCH.md describes the whole lifecycle.
//
// Exactly once rests on the key: an input's key is a function of the watched folder,
// its file names, sizes, modification times and content hashes (FNV-1a 64), so every
// event, re-scan or restart that sees the same input computes the same key and the
// store returns the job it already has instead of making a second one.
// Everything here is a pure function of its arguments (time is passed in); the
// classes are plain values, not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "core/job.hpp"

namespace reel {

enum class WatchFileKind {
  ignored,        // dotfiles and partial downloads (*.part, *.tmp, *.crdownload): never touched
  job_file,       // *.toml / *.json: a job spec, the format reelctl --file takes
  prompt_file,    // *.txt in a prompt_file watch: one job, or one per line
  media_member,   // an image, audio or prompt (*.txt) joining the media set of its stem
  other,          // anything else: left where it is (e.g. an image a job file names)
};

struct WatchFileClass {
  WatchFileKind kind = WatchFileKind::other;
  std::string role;   // media_member: "image", "audio" or "prompt"
  std::string stem;   // the name without its last extension ("anna" for "anna.png")
};

// By name alone (extensions compared case-insensitively), for a watch of `watch_kind`
// (Config::Watch::kind): job files count in auto and job_file watches, prompt files
// in prompt_file watches, media members (and *.txt as their prompt) in auto and
// media_set watches. In an auto watch a *.txt with no image or audio of its stem
// becomes a prompt job when its settle time is over.
WatchFileClass classify_watch_file(const std::string& name, const std::string& watch_kind);

// A media set: the members sharing one stem, role -> file name.
struct MediaSet {
  std::string stem;
  std::map<std::string, std::string> members;
  std::vector<std::string> duplicates;   // a second file for a role already taken (anna.png + anna.jpg)
  bool has_media() const { return members.count("image") || members.count("audio"); }
  std::vector<std::string> files() const;   // members then duplicates, sorted
};

// Collects media members until each set's settle time has passed since its last member
// arrived, so a set dropped one file at a time becomes one job with all of them.
class MediaSetGrouper {
 public:
  explicit MediaSetGrouper(int64_t settle_ms) : settle_ms_(settle_ms) {}
  // Adding a file already in its set only moves the deadline.
  void add(const WatchFileClass& member, const std::string& name, int64_t now_ms);
  // The sets whose deadline is <= now, removed from the grouper, ordered by stem.
  std::vector<MediaSet> take_due(int64_t now_ms);
  std::optional<int64_t> next_deadline() const;
  std::size_t size() const { return sets_.size(); }
  bool contains(const std::string& name) const;

 private:
  struct Pending {
    MediaSet set;
    int64_t deadline = 0;
  };
  int64_t settle_ms_;
  std::map<std::string, Pending> sets_;   // by stem
};

// A file's identity as the key sees it.
struct WatchedFile {
  std::string name;        // relative to the watched folder (the file name)
  int64_t size = 0;
  int64_t mtime_ns = 0;
  uint64_t content_hash = 0;   // fnv1a64 of the whole content
};

inline constexpr uint64_t kFnv1a64Offset = 0xcbf29ce484222325ull;
// FNV-1a 64: continue a hash with more bytes by passing the previous value as `h`.
uint64_t fnv1a64(const void* data, std::size_t size, uint64_t h = kFnv1a64Offset);
std::string hex64(uint64_t v);   // 16 lowercase hex digits

// "watch:<fnv of folder>:<fnv of the members>[:<part>]" (at most 60 characters);
// members in any order give the same key. `part` tells apart the jobs of one input
// ("line3" for a prompt file's third line).
std::string watch_idempotency_key(const std::string& folder, std::vector<WatchedFile> members,
                                  const std::string& part = "");

// The watch's own fields applied to a spec: model and params defaults (the spec's
// own params win), policy when the spec has none, and source "watch:<folder>".
// `override_priority`: prompt files and media sets take the watch's priority; job
// files keep their own.
void apply_watch_defaults(const Config::Watch& w, JobSpec& spec, bool override_priority);

// One prompt per job: the whole text (trimmed), or each non-blank line with its 1-based
// line number when per_line. Empty when there is nothing but whitespace.
std::vector<std::pair<int, std::string>> watch_prompts(const std::string& text, bool per_line);

// The spec for a prompt file or media set: the watch's model and defaults, inputs by
// role (absolute paths), and `prompt` (when not empty) as the "prompt" parameter.
JobSpec watch_media_spec(const Config::Watch& w, const std::map<std::string, std::string>& inputs,
                         const std::string& prompt);

// The file names a job's outputs get in the output folder: "<stem><ext>" ("anna.mp4",
// "anna.json"), or "<stem>.<output file name>" when two outputs share an extension.
std::vector<std::string> watch_output_names(const std::string& stem, const std::vector<std::string>& outputs);

// True when `path` is `root` or inside it; both already canonical (realpath), compared
// by whole components ("/in2" is not inside "/in").
bool path_is_inside(const std::string& root, const std::string& path);

// Polling mode: a file is taken once its size and mtime have stayed the same for
// `quiet_ms` (or its mtime is already that old at the first look), so a file still
// being copied over the network is never taken half-written.
class StabilityTracker {
 public:
  explicit StabilityTracker(int64_t quiet_ms) : quiet_ms_(quiet_ms) {}
  bool observe(const std::string& name, int64_t size, int64_t mtime_ns, int64_t now_ms);
  void forget(const std::string& name) { seen_.erase(name); }
  std::size_t size() const { return seen_.size(); }

 private:
  struct Seen {
    int64_t size, mtime_ns, since_ms;
  };
  int64_t quiet_ms_;
  std::map<std::string, Seen> seen_;
};

// The <name>.error.json written next to a failed input.
Json watch_error_record(const std::vector<std::string>& files, const std::vector<std::string>& job_ids,
                        const std::string& error, int64_t at_ms);

}  // namespace reel
