// The DashScope API mapping (plugins/dashscope/dashscope_api.hpp) as tables: endpoints,
// request bodies from params, parameter refusals, audio headers, task and error parsing,
// error classes, the poll back-off and the retry policy.
#include <gtest/gtest.h>

#include "dashscope/dashscope_api.hpp"

namespace reel::dashscope {
namespace {

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(DashScopeApi, EndpointsByRegionOrUrl) {
  struct Case {
    std::string in, want;
  } cases[] = {
      {"", "https://dashscope-intl.aliyuncs.com"},
      {"intl", "https://dashscope-intl.aliyuncs.com"},
      {"Singapore", "https://dashscope-intl.aliyuncs.com"},
      {"us", "https://dashscope-us.aliyuncs.com"},
      {"virginia", "https://dashscope-us.aliyuncs.com"},
      {"beijing", "https://dashscope.aliyuncs.com"},
      {"https://ws-1.ap-southeast-1.maas.aliyuncs.com/", "https://ws-1.ap-southeast-1.maas.aliyuncs.com"},
      {"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
      {"http://localhost:9", "http://localhost:9"},
  };
  for (const auto& c : cases) EXPECT_EQ(resolve_endpoint(c.in), c.want) << c.in;
  for (std::string bad : {"http://dashscope-intl.aliyuncs.com", "http://127.0.0.1.evil.com", "ftp://x", "mars"})
    EXPECT_THROW(resolve_endpoint(bad), std::invalid_argument) << bad;
}

TEST(DashScopeApi, RequestBodies) {
  struct Case {
    std::string name, model;
    json params;
    std::optional<MediaRef> image, audio;
    json want;
    bool oss;
  } cases[] = {
      {"t2v defaults", kT2vModel, {{"prompt", "a fox"}}, std::nullopt, std::nullopt,
       {{"model", kT2vModel}, {"input", {{"prompt", "a fox"}}},
        {"parameters", {{"size", "1280*720"}, {"audio", true}, {"duration", 5}, {"prompt_extend", true}, {"watermark", false}}}},
       false},
      {"t2v everything", kT2vModel,
       {{"prompt", "a fox"}, {"negative_prompt", "blur"}, {"size", "1080*1920"}, {"duration", 10}, {"seed", 42},
        {"prompt_extend", false}, {"watermark", true}},
       std::nullopt, MediaRef{"https://x/a.mp3", false},
       {{"model", kT2vModel}, {"input", {{"prompt", "a fox"}, {"negative_prompt", "blur"}, {"audio_url", "https://x/a.mp3"}}},
        {"parameters", {{"size", "1080*1920"}, {"audio", true}, {"duration", 10}, {"prompt_extend", false}, {"watermark", true}, {"seed", 42}}}},
       false},
      {"t2v silent", kT2vModel, {{"prompt", "p"}, {"audio", false}}, std::nullopt, std::nullopt,
       {{"model", kT2vModel}, {"input", {{"prompt", "p"}}},
        {"parameters", {{"size", "1280*720"}, {"audio", false}, {"duration", 5}, {"prompt_extend", true}, {"watermark", false}}}},
       false},
      {"i2v uploaded image", kI2vModel, {{"resolution", "1080P"}}, MediaRef{"oss://dir/a.png", true}, std::nullopt,
       {{"model", kI2vModel}, {"input", {{"img_url", "oss://dir/a.png"}}},
        {"parameters", {{"resolution", "1080P"}, {"audio", true}, {"duration", 5}, {"prompt_extend", true}, {"watermark", false}}}},
       true},
      {"i2v url image, uploaded audio", kI2vModel, {{"prompt", "wave"}}, MediaRef{"https://x/a.png", false},
       MediaRef{"oss://dir/a.wav", true},
       {{"model", kI2vModel}, {"input", {{"prompt", "wave"}, {"img_url", "https://x/a.png"}, {"audio_url", "oss://dir/a.wav"}}},
        {"parameters", {{"resolution", "720P"}, {"audio", true}, {"duration", 5}, {"prompt_extend", true}, {"watermark", false}}}},
       true},
  };
  for (const auto& c : cases) {
    SynthesisRequest r = build_request(c.model, c.params, c.image, c.audio);
    EXPECT_EQ(r.body, c.want) << c.name << ": " << r.body.dump();
    EXPECT_EQ(r.oss_resolve, c.oss) << c.name;
  }
}

TEST(DashScopeApi, RefusedParams) {
  struct Case {
    std::string model;
    json params;
    std::optional<MediaRef> image, audio;
    std::string why;
  } cases[] = {
      {kT2vModel, json::object(), std::nullopt, std::nullopt, "'prompt' is empty"},
      {kT2vModel, {{"prompt", "p"}, {"duration", 7}}, std::nullopt, std::nullopt, "5 or 10"},
      {kT2vModel, {{"prompt", "p"}, {"size", "1280*1280"}}, std::nullopt, std::nullopt, "DashScope accepts 832*480"},
      {kT2vModel, {{"prompt", std::string(2001, 'a')}}, std::nullopt, std::nullopt, "2001 characters"},
      {kT2vModel, {{"prompt", "p"}, {"negative_prompt", std::string(501, 'a')}}, std::nullopt, std::nullopt, "at most 500"},
      {kT2vModel, {{"prompt", "p"}}, MediaRef{"https://x/a.png", false}, std::nullopt, "takes no image"},
      {kT2vModel, {{"prompt", "p"}, {"audio", false}}, std::nullopt, MediaRef{"https://x/a.wav", false}, "audio is false"},
      {kT2vModel, {{"prompt", "p"}}, std::nullopt, MediaRef{"/tmp/a.wav", false}, "not an http(s) URL"},
      {kT2vModel, {{"prompt", "p"}, {"seed", -2}}, std::nullopt, std::nullopt, "'seed'"},
      {kI2vModel, {{"prompt", "p"}}, std::nullopt, std::nullopt, "needs a first frame"},
      {kI2vModel, json::object(), MediaRef{"https://x/a.png", false}, std::nullopt, ""},   // fine: prompt optional
      {kI2vModel, {{"resolution", "4K"}}, MediaRef{"https://x/a.png", false}, std::nullopt, "480P, 720P, 1080P"},
      {"wan2.6-t2v", {{"prompt", "p"}}, std::nullopt, std::nullopt, "no model 'wan2.6-t2v'"},
  };
  for (const auto& c : cases) {
    if (c.why.empty()) {
      EXPECT_NO_THROW(build_request(c.model, c.params, c.image, c.audio)) << c.params.dump();
      continue;
    }
    try {
      build_request(c.model, c.params, c.image, c.audio);
      ADD_FAILURE() << "accepted " << c.params.dump();
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), c.why)) << e.what() << " (wanted: " << c.why << ")";
    }
  }
}

std::string wav(uint32_t byte_rate, uint32_t data_bytes) {
  auto le = [](uint32_t v, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += char((v >> (8 * i)) & 0xFF);
    return s;
  };
  return "RIFF" + le(36 + data_bytes, 4) + "WAVE" + "fmt " + le(16, 4) + le(1, 2) + le(1, 2) + le(byte_rate, 4) +
         le(byte_rate, 4) + le(1, 2) + le(8, 2) + "data" + le(data_bytes, 4);
}

std::string mp3_frame(bool xing, uint32_t frames) {
  std::string h = {char(0xFF), char(0xFB), char(0x90), char(0x00)};   // MPEG-1 L3, 128 kbps, 44.1 kHz, stereo
  std::string side(32, '\0');
  std::string tag;
  if (xing) tag = std::string("Xing") + std::string("\0\0\0\1", 4) + char(frames >> 24) + char(frames >> 16) + char(frames >> 8) + char(frames);
  return h + side + tag + std::string(64, '\0');
}

TEST(DashScopeApi, AudioDurations) {
  struct Case {
    std::string name, head;
    uint64_t size;
    std::optional<double> seconds;
  } cases[] = {
      {"wav 8000 B/s, 5 s", wav(8000, 40000), 44 + 40000, 5.0},
      {"wav, data size unset", wav(8000, 0xFFFFFFFF), 44 + 24000, 3.0},
      {"mp3 CBR 128 kbps, 160000 bytes", mp3_frame(false, 0), 160000, 10.0},
      {"mp3 with Xing: 1000 frames", mp3_frame(true, 1000), 5000, 1000 * 1152 / 44100.0},
      {"id3 then mp3", std::string("ID3\x03\x00\x00\x00\x00\x00\x0A", 10) + std::string(10, '\0') + mp3_frame(false, 0),
       20 + 160000, 10.0},
      {"neither", "hello world, not audio", 100, std::nullopt},
  };
  for (const auto& c : cases) {
    auto got = audio_seconds(c.head, c.size);
    ASSERT_EQ(got.has_value(), c.seconds.has_value()) << c.name;
    if (got) {
      EXPECT_NEAR(*got, *c.seconds, 0.01) << c.name;
    }
  }
  EXPECT_EQ(check_audio("a.wav", wav(8000, 40000), 44 + 40000), "");
  EXPECT_TRUE(contains(check_audio("a.wav", wav(8000, 16000), 44 + 16000), "lasts 2.0 s"));
  EXPECT_TRUE(contains(check_audio("a.wav", wav(8000, 400000), 44 + 400000), "lasts 50.0 s"));
  EXPECT_TRUE(contains(check_audio("a.mp3", mp3_frame(false, 0), 16u << 20), "at most 15 MB"));
  EXPECT_TRUE(contains(check_audio("a.ogg", "OggS....", 1000), "neither WAV nor MP3"));
}

TEST(DashScopeApi, TaskStatuses) {
  TaskStatus t = parse_task(R"({"request_id": "r1", "output": {"task_id": "t1", "task_status": "SUCCEEDED",
      "video_url": "https://oss/x.mp4", "end_time": "2025-09-29 12:00:00.000"},
      "usage": {"video_duration": 5, "video_count": 1, "SR": 720}})");
  EXPECT_EQ(t.state, TaskState::succeeded);
  EXPECT_EQ(t.video_url, "https://oss/x.mp4");
  EXPECT_EQ(t.request_id, "r1");
  EXPECT_EQ(t.usage["video_duration"], 5);
  struct Case {
    std::string status;
    TaskState want;
  } cases[] = {{"PENDING", TaskState::pending}, {"RUNNING", TaskState::running}, {"FAILED", TaskState::failed},
               {"CANCELED", TaskState::canceled}, {"UNKNOWN", TaskState::unknown}, {"SOMETHING", TaskState::unknown}};
  for (const auto& c : cases) {
    TaskStatus s = parse_task(json{{"output", {{"task_id", "t"}, {"task_status", c.status}}}}.dump());
    EXPECT_EQ(s.state, c.want) << c.status;
  }
  TaskStatus f = parse_task(R"({"output": {"task_id": "t", "task_status": "FAILED", "code": "DataInspectionFailed",
      "message": "Input data may contain inappropriate content."}})");
  EXPECT_EQ(f.code, "DataInspectionFailed");
  EXPECT_THROW(parse_task("<html>"), std::invalid_argument);
  EXPECT_THROW(parse_task(R"({"code": "x"})"), std::invalid_argument);
  EXPECT_THROW(parse_task(R"({"output": {"task_status": "SUCCEEDED"}})"), std::invalid_argument);
  EXPECT_EQ(parse_submit(R"({"output": {"task_status": "PENDING", "task_id": "0385dc79"}, "request_id": "4909100c"})"),
            "0385dc79");
  EXPECT_THROW(parse_submit(R"({"code": "InvalidParameter"})"), std::invalid_argument);
}

TEST(DashScopeApi, ErrorClasses) {
  struct Case {
    int status;
    std::string code;
    ErrorKind want;
  } cases[] = {
      {400, "InvalidParameter", ErrorKind::bad_input},
      {400, "DataInspectionFailed", ErrorKind::bad_input},
      {0, "DataInspectionFailed", ErrorKind::bad_input},
      {0, "IPInfringementSuspect", ErrorKind::bad_input},
      {401, "InvalidApiKey", ErrorKind::auth},
      {403, "AccessDenied.Unpurchased", ErrorKind::auth},
      {400, "Arrearage", ErrorKind::quota},
      {429, "Throttling.AllocationQuota", ErrorKind::quota},
      {429, "Throttling.RateQuota", ErrorKind::transient},
      {500, "InternalError", ErrorKind::transient},
      {503, "", ErrorKind::transient},
      {0, "InternalError.Timeout", ErrorKind::transient},
      {0, "", ErrorKind::transient},
  };
  for (const auto& c : cases) EXPECT_EQ(int(classify(c.status, c.code)), int(c.want)) << c.status << " " << c.code;
  ServiceError e = parse_error(400, R"({"code": "InvalidParameter", "message": "size is invalid", "request_id": "r9"})");
  EXPECT_EQ(e.describe(), "DashScope InvalidParameter (HTTP 400): size is invalid [request_id r9]");
  EXPECT_EQ(parse_error(502, "<html>bad gateway</html>").describe(), "DashScope error (HTTP 502): <html>bad gateway</html>");
}

TEST(DashScopeApi, PollBackOff) {
  PollPolicy p{1000, 5000};
  std::vector<int64_t> want = {1000, 1500, 2250, 3375, 5000, 5000};
  for (int n = 0; n < int(want.size()); ++n) EXPECT_EQ(poll_delay_ms(p, n), want[n]) << n;
  EXPECT_EQ(poll_delay_ms(p, 10000), 5000);
}

TEST(DashScopeApi, RetryPolicy) {
  RetryPolicy p{4, 500};
  struct Case {
    int attempt, status;
    std::string retry_after;
    std::optional<int64_t> want;
  } cases[] = {
      {1, 429, "3", 3000},      // Retry-After wins
      {1, 429, "", 500},        // else base, doubling
      {2, 503, "", 1000},
      {3, 0, "", 2000},         // network error
      {4, 500, "", std::nullopt},  // attempts spent
      {1, 400, "", std::nullopt},  // not retryable
      {1, 401, "", std::nullopt},
      {1, 429, "Wed, 21 Oct 2015 07:28:00 GMT", 500},   // an HTTP date: the back-off instead
      {1, 429, "100000", 60000},   // capped
  };
  for (const auto& c : cases)
    EXPECT_EQ(retry_delay_ms(p, c.attempt, c.status, c.retry_after), c.want) << c.attempt << " " << c.status;
}

TEST(DashScopeApi, DescriptionsCarryTheBudget) {
  json b = {{"kind", "remote"}, {"pool", "dashscope"}, {"max_concurrent", 2}};
  json d = model_descriptions(b);
  ASSERT_EQ(d["models"].size(), 2u);
  EXPECT_EQ(d["models"][0]["name"], kT2vModel);
  EXPECT_EQ(d["models"][1]["name"], kI2vModel);
  EXPECT_EQ(d["models"][1]["budget"], b);
}

}  // namespace
}  // namespace reel::dashscope
