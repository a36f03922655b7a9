#include "core/watch_input.hpp"

#include <algorithm>
#include <cctype>
#include <ctime>

namespace reel {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

template <class T>
uint64_t hash_value(uint64_t h, const T& v) {
  return fnv1a64(&v, sizeof v, h);
}

uint64_t hash_string(uint64_t h, const std::string& s) {
  h = fnv1a64(s.data(), s.size(), h);
  return fnv1a64("", 1, h);   // the terminator keeps "ab"+"c" apart from "a"+"bc"
}

std::string iso_utc(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

WatchFileClass classify_watch_file(const std::string& name, const std::string& watch_kind) {
  WatchFileClass c;
  std::string l = lower(name);
  if (name.empty() || name[0] == '.' || ends_with(l, ".part") || ends_with(l, ".tmp") || ends_with(l, ".crdownload")) {
    c.kind = WatchFileKind::ignored;
    return c;
  }
  auto dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return c;   // no extension: other
  c.stem = name.substr(0, dot);
  std::string ext = l.substr(dot + 1);
  const bool media_watch = watch_kind == "auto" || watch_kind == "media_set";
  if (ext == "toml" || ext == "json") {
    if (watch_kind == "auto" || watch_kind == "job_file") c.kind = WatchFileKind::job_file;
    return c;
  }
  if (ext == "txt" && watch_kind == "prompt_file") {
    c.kind = WatchFileKind::prompt_file;
    return c;
  }
  static const std::pair<const char*, const char*> kMediaRoles[] = {
      {"txt", "prompt"}, {"png", "image"}, {"jpg", "image"}, {"jpeg", "image"}, {"webp", "image"},
      {"wav", "audio"},  {"mp3", "audio"}, {"m4a", "audio"}, {"flac", "audio"}};
  for (const auto& [e, role] : kMediaRoles)
    if (media_watch && ext == e) {
      c.kind = WatchFileKind::media_member;
      c.role = role;
    }
  return c;
}

std::vector<std::string> MediaSet::files() const {
  std::vector<std::string> out;
  for (const auto& [role, name] : members) out.push_back(name);
  out.insert(out.end(), duplicates.begin(), duplicates.end());
  std::sort(out.begin(), out.end());
  return out;
}

void MediaSetGrouper::add(const WatchFileClass& member, const std::string& name, int64_t now_ms) {
  Pending& p = sets_[member.stem];
  p.set.stem = member.stem;
  p.deadline = now_ms + settle_ms_;
  auto it = p.set.members.find(member.role);
  if (it == p.set.members.end()) p.set.members[member.role] = name;
  else if (it->second != name && std::find(p.set.duplicates.begin(), p.set.duplicates.end(), name) == p.set.duplicates.end())
    p.set.duplicates.push_back(name);
}

std::vector<MediaSet> MediaSetGrouper::take_due(int64_t now_ms) {
  std::vector<MediaSet> due;
  for (auto it = sets_.begin(); it != sets_.end();) {
    if (it->second.deadline <= now_ms) {
      due.push_back(std::move(it->second.set));
      it = sets_.erase(it);
    } else {
      ++it;
    }
  }
  return due;
}

std::optional<int64_t> MediaSetGrouper::next_deadline() const {
  std::optional<int64_t> next;
  for (const auto& [stem, p] : sets_)
    if (!next || p.deadline < *next) next = p.deadline;
  return next;
}

bool MediaSetGrouper::contains(const std::string& name) const {
  for (const auto& [stem, p] : sets_) {
    auto files = p.set.files();
    if (std::find(files.begin(), files.end(), name) != files.end()) return true;
  }
  return false;
}

uint64_t fnv1a64(const void* data, std::size_t size, uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string hex64(uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<std::size_t>(i)] = digits[v & 0xf];
  return out;
}

std::string watch_idempotency_key(const std::string& folder, std::vector<WatchedFile> members,
                                  const std::string& part) {
  std::sort(members.begin(), members.end(), [](const WatchedFile& a, const WatchedFile& b) { return a.name < b.name; });
  uint64_t h = kFnv1a64Offset;
  for (const auto& m : members) {
    h = hash_string(h, m.name);
    h = hash_value(h, m.size);
    h = hash_value(h, m.mtime_ns);
    h = hash_value(h, m.content_hash);
  }
  std::string key = "watch:" + hex64(hash_string(kFnv1a64Offset, folder)) + ":" + hex64(h);
  return part.empty() ? key : key + ":" + part;
}

void apply_watch_defaults(const Config::Watch& w, JobSpec& spec, bool override_priority) {
  if (spec.model.empty()) spec.model = w.model;
  // Defaults are the watch model's parameters; a job file naming another model keeps its own.
  bool same_model = w.model.empty() || spec.model == w.model;
  Json params = same_model && w.params.is_object() ? w.params : Json::object();
  for (auto& [k, v] : spec.params.items()) params[k] = v;
  spec.params = std::move(params);
  if (spec.policy.empty() && w.policy.is_object()) spec.policy = w.policy;
  if (override_priority) spec.priority = w.priority;
  spec.source = "watch:" + w.path;
}

std::vector<std::pair<int, std::string>> watch_prompts(const std::string& text, bool per_line) {
  auto trim = [](const std::string& s) {
    auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return std::string();
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
  };
  std::vector<std::pair<int, std::string>> out;
  if (!per_line) {
    if (std::string t = trim(text); !t.empty()) out.emplace_back(0, t);
    return out;
  }
  int line_no = 0;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line_no;
    if (std::string t = trim(text.substr(start, end - start)); !t.empty()) out.emplace_back(line_no, t);
    start = end + 1;
  }
  return out;
}

JobSpec watch_media_spec(const Config::Watch& w, const std::map<std::string, std::string>& inputs,
                         const std::string& prompt) {
  JobSpec spec;
  spec.inputs = inputs;
  if (!prompt.empty()) spec.params["prompt"] = prompt;
  apply_watch_defaults(w, spec, true);
  return spec;
}

std::vector<std::string> watch_output_names(const std::string& stem, const std::vector<std::string>& outputs) {
  auto base = [](const std::string& path) { return path.substr(path.rfind('/') + 1); };
  auto ext = [&](const std::string& path) {
    std::string b = base(path);
    auto dot = b.rfind('.');
    return dot == std::string::npos || dot == 0 ? std::string() : b.substr(dot);
  };
  std::vector<std::string> names;
  for (const auto& o : outputs) {
    int same_ext = 0;
    for (const auto& other : outputs) same_ext += ext(other) == ext(o);
    names.push_back(same_ext > 1 || ext(o).empty() ? stem + "." + base(o) : stem + ext(o));
  }
  return names;
}

bool path_is_inside(const std::string& root, const std::string& path) {
  if (root.empty() || path.compare(0, root.size(), root) != 0) return false;
  return path.size() == root.size() || root.back() == '/' || path[root.size()] == '/';
}

bool StabilityTracker::observe(const std::string& name, int64_t size, int64_t mtime_ns, int64_t now_ms) {
  bool old_enough = mtime_ns / 1000000 + quiet_ms_ <= now_ms;
  auto it = seen_.find(name);
  if (it == seen_.end() || it->second.size != size || it->second.mtime_ns != mtime_ns) {
    seen_[name] = Seen{size, mtime_ns, now_ms};
    return old_enough;
  }
  return old_enough || now_ms - it->second.since_ms >= quiet_ms_;
}

Json watch_error_record(const std::vector<std::string>& files, const std::vector<std::string>& job_ids,
                        const std::string& error, int64_t at_ms) {
  return Json{{"files", files}, {"jobs", job_ids}, {"error", error}, {"at", iso_utc(at_ms)}, {"at_ms", at_ms}};
}

}  // namespace reel
