// WatchFolder: claiming inputs, turning them into jobs, and finishing them when their
// jobs end (moving them to done/ or failed/, placing outputs). See watch_folder.hpp.
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include <spdlog/spdlog.h>

#include "core/job_spec.hpp"
#include "core/messages.hpp"
#include "server/watch_files.hpp"
#include "server/watch_folder.hpp"

namespace reel {

namespace {

constexpr std::size_t kMaxTextBytes = 1 << 20;   // job and prompt files: the job spec's own limit

}  // namespace

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
  for (const auto& name : sorted_names(dir("processing"))) {
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
    std::string real = canonical_path(path);
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

}  // namespace reel
