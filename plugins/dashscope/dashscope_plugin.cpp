// The `dashscope` plugin: Wan 2.5 text-to-video and image-to-video on Alibaba Cloud
// Model Studio (DashScope), run as a remote task under reel's queue (docs/DASHSCOPE.md).
//
// A run: upload local media to DashScope's temporary storage, submit the task, record
// its task_id in work_dir (which outlives attempts and daemon restarts) and as a
// `remote_task` event, poll with back-off, download the video with resume, write the
// sidecar. A rerun that finds the task_id polls that task instead of paying for another.
// Settings come from the environment reeld (and so its workers) runs with; the API key is
// read from a file or DASHSCOPE_API_KEY and is never logged, stored or put in an event.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "dashscope/dashscope_api.hpp"
#include "dashscope/http_client.hpp"
#include "dashscope/settings.hpp"
#include "sdk/reel_plugin.hpp"

namespace {

namespace sdk = reel::sdk;
namespace ds = reel::dashscope;
namespace fs = std::filesystem;
using sdk::json;

constexpr const char* kTaskFile = "dashscope-task.json";

int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

[[noreturn]] void throw_service(const ds::ServiceError& e, const std::string& what) {
  std::string msg = what + ": " + e.describe();
  switch (e.kind) {
    case ds::ErrorKind::bad_input: throw sdk::BadInputError(msg);
    case ds::ErrorKind::auth:
      throw sdk::MissingWeightsError(msg + "; check the API key and that it belongs to the endpoint's region");
    case ds::ErrorKind::quota: throw sdk::BadInputError(msg + "; check the account's quota and balance in Model Studio");
    case ds::ErrorKind::transient: throw sdk::InternalError(msg);
  }
  throw sdk::InternalError(msg);
}

void write_file_atomic(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc | std::ios::binary);
    f << text;
    if (!f.flush()) throw sdk::InternalError("cannot write " + tmp + "; check free space");
  }
  if (FILE* f = std::fopen(tmp.c_str(), "rb")) {   // the task_id must survive a power cut
    ::fsync(fileno(f));
    std::fclose(f);
  }
  fs::rename(tmp, path);
}

class Run {
 public:
  Run(const json& job, const sdk::RunDirs& dirs, sdk::Host& host)
      : job_(job), dirs_(dirs), host_(host), settings_(ds::Settings::from_env()),
        http_(ds::HttpOptions{15, 60, 30, [this] { return abortable_ && host_.cancelled(); }}) {
    model_ = job.value("model", "");
    params_ = job.value("params", json::object());
  }

  json go() {
    const int64_t started = now_ms();
    const std::string task_file = dirs_.work_dir + "/" + kTaskFile;
    json task = read_task(task_file);
    bool resumed = !task.is_null();
    if (resumed) {
      host_.info("resuming DashScope task " + task["task_id"].get<std::string>() + " (submitted by an earlier attempt)");
    } else {
      task = submit();
      write_file_atomic(task_file, task.dump(2) + "\n");
    }
    task_id_ = task["task_id"];
    host_.event("remote_task", {{"service", "dashscope"}, {"task_id", task_id_}, {"model", model_},
                                {"endpoint", settings_.endpoint}, {"resumed", resumed},
                                {"submit_request_id", task.value("submit_request_id", "")}});

    ds::TaskStatus done = poll(task_file);
    const int64_t finished = now_ms();
    std::string video = download(done.video_url);
    std::string sidecar = dirs_.output_dir + "/video.json";
    json info = {{"model", model_},
                 {"params", params_},
                 {"service", "dashscope"},
                 {"endpoint", settings_.endpoint},
                 {"task_id", task_id_},
                 {"resumed", resumed},
                 {"submit_request_id", task.value("submit_request_id", "")},
                 {"status_request_id", done.request_id},
                 {"request", task.value("request", json::object())},
                 {"output", done.output},
                 {"usage", done.usage},
                 {"timings", {{"submitted_at_ms", task.value("submitted_at_ms", int64_t{0})},
                              {"finished_at_ms", finished},
                              {"downloaded_at_ms", now_ms()},
                              {"polls", polls_},
                              {"seconds_this_attempt", double(now_ms() - started) / 1000.0}}}};
    info["output"].erase("video_url");   // a signed URL, useless after 24 h
    write_file_atomic(sidecar, info.dump(2) + "\n");
    return {{"outputs", {video, sidecar}},
            {"info", {{"task_id", task_id_}, {"usage", done.usage}, {"resumed", resumed}, {"polls", polls_}}}};
  }

 private:
  json read_task(const std::string& path) {
    std::ifstream in(path);
    if (!in) return nullptr;
    json t = json::parse(in, nullptr, false);
    if (!t.is_object() || !t.contains("task_id") || !t["task_id"].is_string()) {
      host_.warn("ignoring unreadable " + path + "; submitting a new DashScope task");
      return nullptr;
    }
    if (t.value("model", "") != model_ || t.value("endpoint", "") != settings_.endpoint) {
      host_.warn("the recorded DashScope task " + t["task_id"].get<std::string>() +
                 " was for another model or endpoint; submitting a new one");
      return nullptr;
    }
    return t;
  }

  std::vector<std::string> auth_headers() const { return {"Authorization: Bearer " + settings_.api_key}; }

  // One request with retries on network errors, 429 and 5xx (Retry-After honoured).
  ds::HttpResponse call(const std::string& method, const std::string& url, std::vector<std::string> headers,
                        const std::string& body = "") {
    for (int attempt = 1;; ++attempt) {
      ds::HttpResponse r = http_.request(method, url, headers, body);
      if (r.status == 0 && r.error == "cancelled") throw_cancelled();
      if (r.status >= 200 && r.status < 300) return r;
      if (!abortable_ && r.status == 0 && !r.not_sent) return r;   // a submission that may have arrived is never repeated
      auto delay = ds::retry_delay_ms(settings_.retry, attempt, r.status, r.header("retry-after"));
      if (!delay) return r;
      host_.event("retry", {{"what", method + " " + url.substr(settings_.endpoint.size())}, {"status", r.status},
                            {"error", r.error}, {"retry_after", r.header("retry-after")}, {"delay_ms", *delay},
                            {"attempt", attempt}});
      host_.warn("DashScope " + method + " answered " + (r.status ? std::to_string(r.status) : r.error) + "; retrying in " +
                 std::to_string(*delay) + " ms");
      sleep_ms(*delay);
    }
  }

  [[noreturn]] void fail_response(const ds::HttpResponse& r, const std::string& what) {
    if (r.status == 0)
      throw sdk::InternalError(what + ": cannot reach DashScope at " + settings_.endpoint + ": " + r.error +
                               "; check the network and REEL_DASHSCOPE_ENDPOINT" +
                               (abortable_ || r.not_sent ? "" : " (the task may have been created and billed: check the Model Studio console)"));
    throw_service(ds::parse_error(r.status, r.body), what);
  }

  // The image or audio of the job: a local input (uploaded, unless `dry`: then only its
  // place is kept, to check the request before paying for uploads) or a URL param.
  std::optional<ds::MediaRef> media(const char* role, const char* url_param, bool dry) {
    const json inputs = job_.value("inputs", json::object());
    std::string url = params_.value(url_param, "");
    auto it = inputs.find(role);
    if (it != inputs.end() && it->is_string() && !it->get<std::string>().empty()) {
      if (!url.empty()) throw sdk::BadInputError(std::string("both the input '") + role + "' and " + url_param + " are given; use one");
      return ds::MediaRef{dry ? "oss://" + it->get<std::string>() : upload(it->get<std::string>(), role), true};
    }
    if (!url.empty()) return ds::MediaRef{url, false};
    return std::nullopt;
  }

  // DashScope's temporary storage: a policy from /api/v1/uploads, then a form POST to OSS.
  std::string upload(const std::string& path, const std::string& role) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) throw sdk::BadInputError("input '" + role + "': no file at " + path);
    const uint64_t size = fs::file_size(path, ec);
    if (role == "audio") {
      std::ifstream in(path, std::ios::binary);
      std::string head(64 * 1024, '\0');
      in.read(head.data(), std::streamsize(head.size()));
      head.resize(std::size_t(in.gcount()));
      if (std::string why = ds::check_audio("input 'audio' (" + path + ")", head, size); !why.empty())
        throw sdk::BadInputError(why);
    }
    ds::HttpResponse p = call("GET", settings_.endpoint + "/api/v1/uploads?action=getPolicy&model=" + model_, auth_headers());
    if (p.status != 200)
      fail_response(p, "getting an upload policy for " + path + " (DashScope documents temporary uploads for the Beijing "
                       "region; elsewhere pass " + (role == "image" ? std::string("image_url") : std::string("audio_url")) +
                       " instead)");
    json d = json::parse(p.body, nullptr, false);
    if (!d.is_object() || !d.contains("data") || !d["data"].is_object())
      throw sdk::InternalError("DashScope upload policy: unexpected answer " + p.body.substr(0, 200));
    const json& data = d["data"];
    auto field = [&](const char* name) {
      auto f = data.find(name);
      if (f == data.end() || !f->is_string())
        throw sdk::InternalError(std::string("DashScope upload policy: no data.") + name);
      return f->get<std::string>();
    };
    if (auto m = data.find("max_file_size_mb"); m != data.end() && m->is_number() && double(size) > m->get<double>() * 1048576)
      throw sdk::BadInputError("input '" + role + "' (" + path + ") is larger than the " + m->dump() +
                               " MB DashScope accepts for " + model_);
    const std::string key = field("upload_dir") + "/" + fs::path(path).filename().string();
    std::vector<ds::FormField> fields = {{"OSSAccessKeyId", field("oss_access_key_id")},
                                         {"Signature", field("signature")},
                                         {"policy", field("policy")},
                                         {"x-oss-object-acl", field("x_oss_object_acl")},
                                         {"x-oss-forbid-overwrite", field("x_oss_forbid_overwrite")},
                                         {"key", key},
                                         {"success_action_status", "200"}};
    for (int attempt = 1;; ++attempt) {
      ds::HttpResponse r = http_.post_form(field("upload_host"), fields, "file", path);
      if (r.status == 0 && r.error == "cancelled") throw_cancelled();
      if (r.status >= 200 && r.status < 300) break;
      auto delay = ds::retry_delay_ms(settings_.retry, attempt, r.status, r.header("retry-after"));
      if (!delay)
        throw sdk::InternalError("uploading " + path + " to DashScope's temporary storage failed: " +
                                 (r.status ? "HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 200) : r.error));
      sleep_ms(*delay);
    }
    host_.event("upload", {{"role", role}, {"file", path}, {"bytes", size}, {"url", "oss://" + key}});
    return "oss://" + key;
  }

  json submit() {
    ds::SynthesisRequest req;
    try {
      ds::build_request(model_, params_, media("image", "image_url", true), media("audio", "audio_url", true));
      auto image = media("image", "image_url", false);
      auto audio = media("audio", "audio_url", false);
      req = ds::build_request(model_, params_, image, audio);
    } catch (const std::invalid_argument& e) {
      throw sdk::BadInputError(e.what());
    }
    host_.check_cancelled("before submitting");
    std::vector<std::string> headers = auth_headers();
    headers.push_back("Content-Type: application/json");
    headers.push_back("X-DashScope-Async: enable");
    if (req.oss_resolve) headers.push_back("X-DashScope-OssResourceResolve: enable");
    // Not aborted half-way: a submission the service received but reel never heard of
    // would be billed and lost. A cancel is honoured once the task_id is known.
    abortable_ = false;
    ds::HttpResponse r = call("POST", settings_.endpoint + ds::kSynthesisPath, headers, req.body.dump());
    if (r.status != 200) fail_response(r, "submitting the task");
    abortable_ = true;
    std::string task_id;
    try {
      task_id = ds::parse_submit(r.body);
    } catch (const std::invalid_argument& e) {
      throw sdk::InternalError(e.what());
    }
    json body = json::parse(r.body, nullptr, false);
    host_.info("DashScope task " + task_id + " submitted");
    return {{"task_id", task_id}, {"model", model_}, {"endpoint", settings_.endpoint}, {"submitted_at_ms", now_ms()},
            {"submit_request_id", body.value("request_id", "")}, {"request", req.body}};
  }

  ds::TaskStatus poll(const std::string& task_file) {
    for (int n = 0;; ++n) {
      sleep_ms(ds::poll_delay_ms(settings_.poll, n));
      ds::HttpResponse r = call("GET", settings_.endpoint + "/api/v1/tasks/" + task_id_, auth_headers());
      ++polls_;
      if (r.status != 200) fail_response(r, "polling task " + task_id_);
      ds::TaskStatus t;
      try {
        t = ds::parse_task(r.body);
      } catch (const std::invalid_argument& e) {
        throw sdk::InternalError(e.what());
      }
      last_state_ = t.state;
      host_.progress(n + 1, 0, std::string("remote ") + ds::to_string(t.state));
      switch (t.state) {
        case ds::TaskState::pending:
        case ds::TaskState::running: continue;
        case ds::TaskState::succeeded: return t;
        case ds::TaskState::failed: {
          std::error_code ec;
          fs::remove(task_file, ec);   // a retry must submit afresh
          ds::ServiceError e;
          e.code = t.code;
          e.message = t.message;
          e.request_id = t.request_id;
          e.kind = ds::classify(0, t.code);
          throw_service(e, "DashScope task " + task_id_ + " FAILED");
        }
        case ds::TaskState::canceled:
        case ds::TaskState::unknown: {
          std::error_code ec;
          fs::remove(task_file, ec);
          throw sdk::InternalError("DashScope task " + task_id_ + " is " + ds::to_string(t.state) +
                                   (t.state == ds::TaskState::unknown
                                        ? " (task ids expire 24 h after submission, or it belongs to another account)"
                                        : " (cancelled outside reel)") +
                                   "; a retry submits a new task, which is billed again");
        }
      }
    }
  }

  std::string download(const std::string& url) {
    const std::string part = dirs_.output_dir + "/video.mp4.part", out = dirs_.output_dir + "/video.mp4";
    for (int attempt = 1;; ++attempt) {
      ds::HttpResponse r = http_.download(url, part);
      if (r.status == 0 && r.error == "cancelled")
        throw sdk::CancelledError("cancelled while downloading the finished video of DashScope task " + task_id_ +
                                  "; the task is billed (it SUCCEEDED)");
      std::error_code ec;
      const uint64_t have = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
      if (r.status == 200 || r.status == 206) {
        host_.event("download", {{"bytes", have}, {"status", r.status}, {"attempt", attempt}});
        fs::rename(part, out);
        return out;
      }
      if (r.status == 403 || r.status == 404 || r.status == 410)
        throw sdk::BadInputError("the video of DashScope task " + task_id_ + " can no longer be downloaded (HTTP " +
                                 std::to_string(r.status) + "): result URLs expire 24 h after the task finished; "
                                 "the task was billed, submit the job again for a new video");
      auto delay = ds::retry_delay_ms(settings_.retry, attempt, r.status, r.header("retry-after"));
      host_.event("download", {{"bytes", have}, {"status", r.status}, {"error", r.error}, {"attempt", attempt},
                               {"resuming", bool(delay)}});
      if (!delay)
        throw sdk::InternalError("downloading the video of DashScope task " + task_id_ + " failed: " +
                                 (r.status ? "HTTP " + std::to_string(r.status) : r.error) +
                                 "; a retry resumes the download from byte " + std::to_string(have));
      host_.warn("download of task " + task_id_ + " broke at byte " + std::to_string(have) + "; resuming");
      sleep_ms(*delay);
    }
  }

  // Sleeps in short slices, so a cancel is noticed within ~50 ms.
  void sleep_ms(int64_t ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (true) {
      if (host_.cancelled()) throw_cancelled();
      auto left = end - std::chrono::steady_clock::now();
      if (left <= std::chrono::steady_clock::duration::zero()) return;
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
    }
  }

  // Stops polling; a task still PENDING is cancelled remotely (the only state DashScope
  // lets one cancel), and the message says what may be billed.
  [[noreturn]] void throw_cancelled() {
    if (task_id_.empty()) throw sdk::CancelledError("cancelled before a DashScope task was submitted: nothing billed");
    std::string what;
    bool remote = false;
    if (last_state_ == ds::TaskState::pending || last_state_ == ds::TaskState::unknown) {
      abortable_ = false;   // the host says cancelled: this one request must still go out
      ds::HttpResponse r = http_.request("POST", settings_.endpoint + "/api/v1/tasks/" + task_id_ + "/cancel", auth_headers());
      remote = r.status == 200;
      what = remote ? "it was still PENDING and was cancelled remotely: nothing billed"
                    : "cancelling it remotely failed (" + (r.status ? "HTTP " + std::to_string(r.status) + " " +
                                                                           ds::parse_error(r.status, r.body).describe()
                                                                     : r.error) +
                          "): it may run and be billed";
    } else {
      what = std::string("it was ") + ds::to_string(last_state_) +
             ": DashScope cannot cancel a running task, it will finish and be billed; `reelctl retry` resumes it";
    }
    if (remote) {
      std::error_code ec;
      fs::remove(dirs_.work_dir + "/" + kTaskFile, ec);
    }
    host_.event("remote_task", {{"service", "dashscope"}, {"task_id", task_id_}, {"cancelled_remotely", remote},
                                {"state", ds::to_string(last_state_)}, {"billing", what}});
    throw sdk::CancelledError("cancelled; DashScope task " + task_id_ + ": " + what);
  }

  const json& job_;
  const sdk::RunDirs& dirs_;
  sdk::Host& host_;
  ds::Settings settings_;
  ds::HttpClient http_;
  std::string model_, task_id_;
  json params_;
  ds::TaskState last_state_ = ds::TaskState::unknown;
  int polls_ = 0;
  bool abortable_ = true;
};

class DashScopeModel : public sdk::Model {
 public:
  json run(const json& job, const json&, const sdk::RunDirs& dirs, sdk::Host& host) override {
    return Run(job, dirs, host).go();
  }
};

class DashScopePlugin : public sdk::Plugin {
 public:
  json describe() override { return ds::model_descriptions(ds::budget_from_env()); }

  json estimate(const json& job, const json&) override {
    return {{"device_bytes", 0}, {"host_bytes", 64 << 20}, {"resident_device_bytes", 0}, {"resident_host_bytes", 0},
            {"relative_time", 1.0}, {"cpu_only", true},
            {"effective", {{"frames", 24 * sdk::param<int64_t>(job, "duration", 5)}}}};
  }

  std::unique_ptr<sdk::Model> load(const std::string& model, const json&, const std::string&) override {
    if (model != ds::kT2vModel && model != ds::kI2vModel)
      throw sdk::BadInputError("the dashscope plugin has no model '" + model + "'");
    return std::make_unique<DashScopeModel>();
  }
};

}  // namespace

REEL_PLUGIN(DashScopePlugin, "dashscope", "0.1.0")
