// The DashScope video-synthesis API (Wan 2.5) as pure functions: reel's job params ->
// the request body, the service's responses -> task states and errors, and the polling
// and retry policy. No I/O and no clock: the plugin (dashscope_plugin.cpp) does the HTTP
// and the waiting. docs/DASHSCOPE.md cites the service documentation behind each field.
// Every function is thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace reel::dashscope {

using json = nlohmann::json;

inline constexpr const char* kT2vModel = "wan2.5-t2v-preview";
inline constexpr const char* kI2vModel = "wan2.5-i2v-preview";
inline constexpr const char* kSynthesisPath = "/api/v1/services/aigc/video-generation/video-synthesis";

// The endpoint for a region name ("intl"/"singapore", "us"/"virginia", "beijing"/"cn") or
// an explicit URL. https only, except http to a loopback host (127.0.0.1, localhost, ::1),
// which tests use. Throws std::invalid_argument saying what is accepted.
std::string resolve_endpoint(const std::string& region_or_url);

// The two models' descriptions for the plugin's describe(), with `budget` as given.
json model_descriptions(const json& budget);

// Media the job hands over: a URL the service fetches itself, or a local file the
// plugin uploads first (then `url` is the oss:// URL the upload produced).
struct MediaRef {
  std::string url;
  bool uploaded = false;   // an oss:// URL: the request needs X-DashScope-OssResourceResolve
};

struct SynthesisRequest {
  json body;                 // {"model", "input": {...}, "parameters": {...}}
  bool oss_resolve = false;  // send X-DashScope-OssResourceResolve: enable
};

// Checks params against the documented ranges the catalog cannot express (duration 5 or
// 10, the size list, prompt length) and builds the body. `image` is required for i2v and
// refused for t2v. Throws std::invalid_argument with a message for the job's error.
SynthesisRequest build_request(const std::string& model, const json& params, const std::optional<MediaRef>& image,
                               const std::optional<MediaRef>& audio);

// Checks a local audio file's type, size and duration (wav/mp3, 3-30 s, <= 15 MB) from
// its first bytes and its size. Returns "" when fine, else why not.
std::string check_audio(const std::string& name, const std::string& head, uint64_t size);
// The duration in seconds of a WAV (from its header) or a constant-bitrate MP3 (from the
// first frame header and the size); nullopt when it cannot tell.
std::optional<double> audio_seconds(const std::string& head, uint64_t size);

enum class TaskState { pending, running, succeeded, failed, canceled, unknown };
const char* to_string(TaskState s);

// GET /api/v1/tasks/{id}: output.task_status, output.video_url, output.code/message,
// usage and request_id. Throws std::invalid_argument when the body is not the documented
// shape.
struct TaskStatus {
  TaskState state = TaskState::unknown;
  std::string task_id, video_url, code, message, request_id;
  json usage = json::object();
  json output = json::object();
};
TaskStatus parse_task(const std::string& body);

// A non-2xx answer (or a FAILED task): the service's code and message, and what reel does.
enum class ErrorKind {
  bad_input,    // the job is wrong or refused (InvalidParameter, content moderation): never retried
  auth,         // key missing, wrong or for another region: never retried
  quota,        // out of quota or money: never retried
  transient,    // 429 / 5xx / network: retried
};
struct ServiceError {
  int http_status = 0;
  std::string code, message, request_id;
  ErrorKind kind = ErrorKind::transient;
  std::string describe() const;   // "DashScope InvalidParameter (HTTP 400): <message> [request_id ...]"
};
ServiceError parse_error(int http_status, const std::string& body);
ErrorKind classify(int http_status, const std::string& code);

// Submission answer: output.task_id (and output.task_status). Throws std::invalid_argument.
std::string parse_submit(const std::string& body);

// Polling: the wait before poll number `n` (0-based) — initial, then x1.5 each time, at
// most max_ms.
struct PollPolicy {
  int64_t initial_ms = 5000;
  int64_t max_ms = 30000;
};
int64_t poll_delay_ms(const PollPolicy& p, int n);

// Retries of one HTTP request: whether to retry attempt `attempt` (1-based, the one that
// just failed) with this status (0 = network error), and after how long: Retry-After
// (seconds) when the service sent one, else base_ms doubled per attempt, capped at 60 s.
struct RetryPolicy {
  int max_attempts = 5;
  int64_t base_ms = 1000;
};
std::optional<int64_t> retry_delay_ms(const RetryPolicy& p, int attempt, int http_status,
                                      const std::string& retry_after);

}  // namespace reel::dashscope
