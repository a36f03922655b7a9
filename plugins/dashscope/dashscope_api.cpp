// The DashScope video-synthesis API mapping (dashscope_api.hpp). Field names and ranges
// follow Alibaba Cloud Model Studio's text-to-video and image-to-video API references
// for wan2.5; docs/DASHSCOPE.md lists the sources.
#include "dashscope/dashscope_api.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace reel::dashscope {
namespace {

const std::vector<std::string> kT2vSizes = {
    "832*480",   "480*832",   "624*624",                                      // 480P
    "1280*720",  "720*1280",  "960*960",   "1088*832",  "832*1088",           // 720P
    "1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632"};         // 1080P
const std::vector<std::string> kI2vResolutions = {"480P", "720P", "1080P"};
constexpr std::size_t kMaxPromptChars = 2000, kMaxNegativeChars = 500;  // the service truncates beyond
constexpr int64_t kMaxSeed = 2147483647;

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

// UTF-8 code points, for the documented character limits.
std::size_t utf8_chars(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

json common_params() {
  return json::parse(R"J([
    {"name": "negative_prompt", "type": "string", "default": "", "help": "what the video should not show (at most 500 characters)"},
    {"name": "duration", "type": "integer", "min": 5, "max": 10, "default": 5, "help": "seconds of video: 5 or 10 (billed per second)"},
    {"name": "audio", "type": "boolean", "default": true, "help": "let the service generate a soundtrack when no audio file or audio_url is given; false: a silent video"},
    {"name": "audio_url", "type": "string", "default": "", "help": "an http(s) URL of a wav/mp3 (3-30 s, at most 15 MB) the service fetches, instead of the audio input"},
    {"name": "prompt_extend", "type": "boolean", "default": true, "help": "let the service rewrite the prompt with a language model"},
    {"name": "watermark", "type": "boolean", "default": false, "help": "add the service's watermark"},
    {"name": "seed", "type": "integer", "min": -1, "max": 2147483647, "default": -1, "help": "random seed; -1: the service picks one"}
  ])J");
}

json audio_input() {
  return {{"role", "audio"}, {"required", false}, {"help", "a local wav/mp3, 3-30 s, at most 15 MB; uploaded to DashScope's temporary storage"},
          {"kinds", {"audio/wav", "audio/mpeg"}}};
}

json ladder() {
  return json::array({{{"name", "remote"}, {"kind", "placement"}, {"help", "runs on DashScope; no local GPU or model memory"},
                       {"settings", json::object()}}});
}

[[noreturn]] void bad(const std::string& why) { throw std::invalid_argument(why); }

std::string str_param(const json& params, const char* name) {
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return "";
  if (!it->is_string()) bad(std::string("parameter '") + name + "' must be a string");
  return it->get<std::string>();
}

bool bool_param(const json& params, const char* name, bool fallback) {
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) bad(std::string("parameter '") + name + "' must be true or false");
  return it->get<bool>();
}

int64_t int_param(const json& params, const char* name, int64_t fallback) {
  auto it = params.find(name);
  if (it == params.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) bad(std::string("parameter '") + name + "' must be an integer");
  return it->get<int64_t>();
}

std::string choice(const json& params, const char* name, const std::vector<std::string>& choices,
                   const std::string& fallback) {
  std::string v = str_param(params, name);
  if (v.empty()) v = fallback;
  if (std::find(choices.begin(), choices.end(), v) == choices.end()) {
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
    bad(std::string("parameter '") + name + "' is '" + v + "'; DashScope accepts " + list);
  }
  return v;
}

bool is_remote_url(const std::string& u) {
  std::string l = lower(u);
  return starts_with(l, "https://") || starts_with(l, "http://") || starts_with(l, "oss://");
}

uint32_t le32(const std::string& s, std::size_t at) {
  return uint32_t(uint8_t(s[at])) | uint32_t(uint8_t(s[at + 1])) << 8 | uint32_t(uint8_t(s[at + 2])) << 16 |
         uint32_t(uint8_t(s[at + 3])) << 24;
}
uint32_t be32(const std::string& s, std::size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 | uint32_t(uint8_t(s[at + 2])) << 8 |
         uint32_t(uint8_t(s[at + 3]));
}

bool is_wav(const std::string& h) { return h.size() >= 12 && h.compare(0, 4, "RIFF") == 0 && h.compare(8, 4, "WAVE") == 0; }

std::optional<double> wav_seconds(const std::string& h, uint64_t size) {
  uint32_t byte_rate = 0;
  for (std::size_t at = 12; at + 8 <= h.size();) {
    std::string id = h.substr(at, 4);
    uint32_t len = le32(h, at + 4);
    if (id == "fmt " && at + 16 <= h.size()) byte_rate = le32(h, at + 16);
    if (id == "data") {
      if (byte_rate == 0) return std::nullopt;
      uint64_t avail = size > at + 8 ? size - (at + 8) : 0;
      uint64_t bytes = len == 0xFFFFFFFFu || len > avail ? avail : len;   // streamed WAVs leave it unset
      return double(bytes) / byte_rate;
    }
    at += 8 + len + (len & 1);
  }
  return std::nullopt;
}

// Offset of the first MPEG audio frame after an ID3v2 tag, or npos.
std::size_t mp3_frame_start(const std::string& h) {
  std::size_t at = 0;
  if (h.size() >= 10 && h.compare(0, 3, "ID3") == 0) {
    uint32_t tag = (uint32_t(h[6] & 0x7F) << 21) | (uint32_t(h[7] & 0x7F) << 14) | (uint32_t(h[8] & 0x7F) << 7) |
                   uint32_t(h[9] & 0x7F);
    at = 10 + tag + ((h[5] & 0x10) ? 10 : 0);
  }
  for (; at + 4 <= h.size(); ++at)
    if (uint8_t(h[at]) == 0xFF && (uint8_t(h[at + 1]) & 0xE0) == 0xE0) return at;
  return std::string::npos;
}

std::optional<double> mp3_seconds(const std::string& h, uint64_t size) {
  std::size_t at = mp3_frame_start(h);
  if (at == std::string::npos) return std::nullopt;
  uint32_t hdr = be32(h, at);
  int version = (hdr >> 19) & 3;   // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
  int layer = (hdr >> 17) & 3;     // 1: Layer III
  int bitrate_index = (hdr >> 12) & 15, rate_index = (hdr >> 10) & 3, mode = (hdr >> 6) & 3;
  if (version == 1 || layer != 1 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3) return std::nullopt;
  static const int kV1[] = {0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320};
  static const int kV2[] = {0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160};
  static const int kRates[3][3] = {{11025, 12000, 8000}, {22050, 24000, 16000}, {44100, 48000, 32000}};
  const bool v1 = version == 3;
  const int kbps = v1 ? kV1[bitrate_index] : kV2[bitrate_index];
  const int rate = kRates[version == 3 ? 2 : version == 2 ? 1 : 0][rate_index];
  const int samples = v1 ? 1152 : 576;
  // A VBR file says its frame count in a Xing/Info header after the side information.
  std::size_t xing = at + 4 + (v1 ? (mode == 3 ? 17 : 32) : (mode == 3 ? 9 : 17));
  if (xing + 12 <= h.size() && (h.compare(xing, 4, "Xing") == 0 || h.compare(xing, 4, "Info") == 0) &&
      (be32(h, xing + 4) & 1))
    return double(be32(h, xing + 8)) * samples / rate;
  return double(size - at) * 8.0 / (kbps * 1000.0);
}

}  // namespace

std::string resolve_endpoint(const std::string& region_or_url) {
  std::string r = lower(region_or_url);
  if (r.empty() || r == "intl" || r == "singapore" || r == "international") return "https://dashscope-intl.aliyuncs.com";
  if (r == "us" || r == "virginia") return "https://dashscope-us.aliyuncs.com";
  if (r == "beijing" || r == "cn" || r == "china") return "https://dashscope.aliyuncs.com";
  std::string url = region_or_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (starts_with(r, "https://") && url.size() > 8) return url;
  if (starts_with(r, "http://")) {
    std::string host = r.substr(7, r.find_first_of(":/", 7) - 7);
    if (starts_with(r, "http://[::1]")) host = "::1";
    if (host == "127.0.0.1" || host == "localhost" || host == "::1") return url;
    bad("endpoint '" + region_or_url + "' is plain http to a remote host; use https (TLS is always verified)");
  }
  bad("endpoint '" + region_or_url + "' is neither a region (intl, us, beijing) nor an https:// URL");
}

json model_descriptions(const json& budget) {
  json t2v_params = json::array({{{"name", "prompt"}, {"type", "string"}, {"help", "what the video shows (at most 2000 characters)"}},
                                 {{"name", "size"}, {"type", "string"}, {"choices", kT2vSizes}, {"default", "1280*720"},
                                  {"help", "width*height; 480P, 720P and 1080P sizes"}}});
  json i2v_params = json::array({{{"name", "prompt"}, {"type", "string"}, {"default", ""}, {"help", "how the image should move"}},
                                 {{"name", "resolution"}, {"type", "string"}, {"choices", kI2vResolutions}, {"default", "720P"},
                                  {"help", "output resolution; the aspect ratio follows the image"}},
                                 {{"name", "image_url"}, {"type", "string"}, {"default", ""},
                                  {"help", "an http(s) URL of the first frame the service fetches, instead of the image input"}}});
  for (const auto& p : common_params()) {
    t2v_params.push_back(p);
    i2v_params.push_back(p);
  }
  json t2v = {{"name", kT2vModel},
              {"description", "Wan 2.5 text-to-video on Alibaba Cloud DashScope (remote, billed per second of video)"},
              {"params", t2v_params},
              {"inputs", json::array({audio_input()})},
              {"outputs", {"video/mp4", "application/json"}},
              {"ladder", ladder()},
              {"budget", budget}};
  json i2v = t2v;
  i2v["name"] = kI2vModel;
  i2v["description"] = "Wan 2.5 image-to-video on Alibaba Cloud DashScope (remote, billed per second of video)";
  i2v["params"] = i2v_params;
  i2v["inputs"] = json::array({{{"role", "image"}, {"required", false},
                                {"help", "the first frame (JPEG, PNG, BMP, WEBP; 360-2000 px a side); or give image_url"},
                                {"kinds", {"image/jpeg", "image/png", "image/bmp", "image/webp"}}},
                               audio_input()});
  return {{"models", {t2v, i2v}}};
}

SynthesisRequest build_request(const std::string& model, const json& params, const std::optional<MediaRef>& image,
                               const std::optional<MediaRef>& audio) {
  const bool i2v = model == kI2vModel;
  if (!i2v && model != kT2vModel) bad("the dashscope plugin has no model '" + model + "'");
  SynthesisRequest r;
  json input = json::object(), parameters = json::object();

  std::string prompt = str_param(params, "prompt");
  if (!i2v && prompt.empty()) bad("parameter 'prompt' is empty; text-to-video needs one");
  if (utf8_chars(prompt) > kMaxPromptChars)
    bad("parameter 'prompt' has " + std::to_string(utf8_chars(prompt)) + " characters; DashScope takes at most 2000");
  std::string negative = str_param(params, "negative_prompt");
  if (utf8_chars(negative) > kMaxNegativeChars)
    bad("parameter 'negative_prompt' has " + std::to_string(utf8_chars(negative)) + " characters; DashScope takes at most 500");
  if (!prompt.empty()) input["prompt"] = prompt;
  if (!negative.empty()) input["negative_prompt"] = negative;

  if (i2v) {
    if (!image) bad("wan2.5-i2v-preview needs a first frame: give the input 'image' (a file) or the parameter image_url");
    if (!image->uploaded && !is_remote_url(image->url))
      bad("image_url '" + image->url + "' is not an http(s) URL; give a local file as the input 'image' instead");
    input["img_url"] = image->url;
    r.oss_resolve = r.oss_resolve || image->uploaded;
    parameters["resolution"] = choice(params, "resolution", kI2vResolutions, "720P");
  } else {
    if (image) bad("wan2.5-t2v-preview takes no image; use wan2.5-i2v-preview");
    parameters["size"] = choice(params, "size", kT2vSizes, "1280*720");
  }

  const bool want_audio = bool_param(params, "audio", true);
  if (audio) {
    if (!want_audio) bad("audio is false but an audio file or audio_url was given; drop one of them");
    if (!audio->uploaded && !is_remote_url(audio->url))
      bad("audio_url '" + audio->url + "' is not an http(s) URL; give a local file as the input 'audio' instead");
    input["audio_url"] = audio->url;
    r.oss_resolve = r.oss_resolve || audio->uploaded;
  }
  parameters["audio"] = want_audio;

  int64_t duration = int_param(params, "duration", 5);
  if (duration != 5 && duration != 10)
    bad("parameter 'duration' is " + std::to_string(duration) + "; DashScope makes 5 or 10 second videos");
  parameters["duration"] = duration;
  parameters["prompt_extend"] = bool_param(params, "prompt_extend", true);
  parameters["watermark"] = bool_param(params, "watermark", false);
  int64_t seed = int_param(params, "seed", -1);
  if (seed < -1 || seed > kMaxSeed) bad("parameter 'seed' must be -1 (random) or 0..2147483647");
  if (seed >= 0) parameters["seed"] = seed;

  r.body = {{"model", model}, {"input", input}, {"parameters", parameters}};
  return r;
}

std::optional<double> audio_seconds(const std::string& head, uint64_t size) {
  if (is_wav(head)) return wav_seconds(head, size);
  return mp3_seconds(head, size);
}

std::string check_audio(const std::string& name, const std::string& head, uint64_t size) {
  constexpr uint64_t kMaxBytes = 15ull << 20;
  if (size > kMaxBytes)
    return name + " is " + std::to_string(size >> 20) + " MB; DashScope takes audio of at most 15 MB";
  const bool wav = is_wav(head);
  if (!wav && mp3_frame_start(head) == std::string::npos)
    return name + " is neither WAV nor MP3; DashScope takes wav or mp3 audio";
  std::optional<double> s = audio_seconds(head, size);
  if (!s) return name + ": cannot read its duration from the " + (wav ? "WAV" : "MP3") + " header; convert it to a plain wav or mp3";
  if (*s < 3.0 || *s > 30.0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", *s);
    return name + " lasts " + buf + " s; DashScope takes audio of 3 to 30 s";
  }
  return "";
}

const char* to_string(TaskState s) {
  switch (s) {
    case TaskState::pending: return "PENDING";
    case TaskState::running: return "RUNNING";
    case TaskState::succeeded: return "SUCCEEDED";
    case TaskState::failed: return "FAILED";
    case TaskState::canceled: return "CANCELED";
    case TaskState::unknown: return "UNKNOWN";
  }
  return "UNKNOWN";
}

namespace {
json parse_object(const std::string& body, const char* what) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) bad(std::string(what) + ": the service answered with something that is not a JSON object: " + body.substr(0, 200));
  return j;
}
std::string str_field(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}
}  // namespace

TaskStatus parse_task(const std::string& body) {
  json j = parse_object(body, "task status");
  auto out = j.find("output");
  if (out == j.end() || !out->is_object()) bad("task status: no 'output' object in " + body.substr(0, 200));
  TaskStatus t;
  t.output = *out;
  t.request_id = str_field(j, "request_id");
  t.task_id = str_field(*out, "task_id");
  std::string s = str_field(*out, "task_status");
  t.state = s == "PENDING"     ? TaskState::pending
            : s == "RUNNING"   ? TaskState::running
            : s == "SUCCEEDED" ? TaskState::succeeded
            : s == "FAILED"    ? TaskState::failed
            : s == "CANCELED"  ? TaskState::canceled
                               : TaskState::unknown;
  t.video_url = str_field(*out, "video_url");
  t.code = str_field(*out, "code");
  t.message = str_field(*out, "message");
  if (auto u = j.find("usage"); u != j.end() && u->is_object()) t.usage = *u;
  if (t.state == TaskState::succeeded && t.video_url.empty()) bad("task status: SUCCEEDED without output.video_url");
  return t;
}

std::string parse_submit(const std::string& body) {
  json j = parse_object(body, "task submission");
  auto out = j.find("output");
  std::string id = out != j.end() && out->is_object() ? str_field(*out, "task_id") : "";
  if (id.empty()) bad("task submission: no output.task_id in " + body.substr(0, 200));
  return id;
}

ErrorKind classify(int http_status, const std::string& code) {
  auto has = [&](const char* s) { return code.find(s) != std::string::npos; };
  if (http_status == 401 || http_status == 403 || has("InvalidApiKey") || has("AccessDenied")) return ErrorKind::auth;
  if (has("Arrearage") || has("AllocationQuota") || has("FreeTierOnly")) return ErrorKind::quota;
  if (http_status == 429 || http_status >= 500 || has("Throttling") || has("InternalError") || has("Timeout") ||
      has("ServiceUnavailable") || (http_status == 0 && code.empty()))
    return ErrorKind::transient;
  return ErrorKind::bad_input;
}

ServiceError parse_error(int http_status, const std::string& body) {
  ServiceError e;
  e.http_status = http_status;
  json j = json::parse(body, nullptr, false);
  if (j.is_object()) {
    e.code = str_field(j, "code");
    e.message = str_field(j, "message");
    e.request_id = str_field(j, "request_id");
  }
  if (e.message.empty()) e.message = body.substr(0, 200);
  e.kind = classify(http_status, e.code);
  return e;
}

std::string ServiceError::describe() const {
  std::string s = "DashScope " + (code.empty() ? std::string("error") : code);
  if (http_status) s += " (HTTP " + std::to_string(http_status) + ")";
  s += ": " + (message.empty() ? std::string("no message") : message);
  if (!request_id.empty()) s += " [request_id " + request_id + "]";
  return s;
}

int64_t poll_delay_ms(const PollPolicy& p, int n) {
  double d = double(p.initial_ms) * std::pow(1.5, std::max(0, n));
  return std::max<int64_t>(0, std::min<int64_t>(p.max_ms, int64_t(std::min(d, 1e15))));
}

std::optional<int64_t> retry_delay_ms(const RetryPolicy& p, int attempt, int http_status, const std::string& retry_after) {
  const bool retryable = http_status == 0 || http_status == 429 || http_status >= 500;
  if (!retryable || attempt >= p.max_attempts) return std::nullopt;
  constexpr int64_t kCapMs = 60000;
  if (!retry_after.empty() && std::all_of(retry_after.begin(), retry_after.end(), ::isdigit) && retry_after.size() < 7)
    return std::min<int64_t>(kCapMs, std::stoll(retry_after) * 1000);
  double d = double(p.base_ms) * std::pow(2.0, std::max(0, attempt - 1));
  return std::min<int64_t>(kCapMs, int64_t(d));
}

}  // namespace reel::dashscope
