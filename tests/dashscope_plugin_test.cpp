// The `dashscope` plugin (plugins/dashscope/) through the real daemon and worker
// processes against a loopback fake of the DashScope API (support/fake_dashscope.hpp):
// text- and image-to-video, the poll back-off, 429 with Retry-After, a FAILED task, a
// download that breaks half-way, a daemon killed mid-poll, cancel, an expired result URL.
// Poll and retry intervals are shrunk to milliseconds through the environment.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include <boost/asio.hpp>
#include <gtest/gtest.h>

#include "support/fake_dashscope.hpp"
#include "support/test_support.hpp"

namespace reel::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kPluginDir = std::string(REEL_BINARY_DIR) + "/lib/reel/plugins";
const std::string kPlugin = kPluginDir + "/libdashscope.so";
const std::string kKey = "sk-secret-4242";

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

FakeDashScope::Options fake_options() {
  FakeDashScope::Options o;
  o.api_key = kKey;
  return o;
}

struct Harness : JobHarness {
  FakeDashScope& fake;
  Harness(FakeDashScope& f, std::vector<std::string> env = {}, bool with_key = true, const std::string& config = "")
      : JobHarness("", with_env(f, std::move(env), with_key)), fake(f) {
    add_config(plugin_test_config(kPluginDir) + config);
    start();
  }
  static std::vector<std::string> with_env(FakeDashScope& f, std::vector<std::string> env, bool with_key) {
    auto fallback = [&](const std::string& name, const std::string& value) {   // the test's own setting wins
      for (const auto& e : env)
        if (e.rfind(name + "=", 0) == 0) return;
      env.push_back(name + "=" + value);
    };
    fallback("REEL_DASHSCOPE_ENDPOINT", f.endpoint());
    fallback("REEL_DASHSCOPE_POLL_MS", "20");
    fallback("REEL_DASHSCOPE_POLL_MAX_MS", "80");
    fallback("REEL_DASHSCOPE_RETRY_MS", "10");
    if (with_key) fallback("DASHSCOPE_API_KEY", kKey);
    return env;
  }
  // Submits a job, waits for its end and returns it as it ended.
  Json run(const Json& spec) {
    Json job = submit(spec);
    EXPECT_TRUE(wait_final(job["id"]));
    return this->job(job["id"]);
  }
  Json run_t2v(const Json& params = {{"prompt", "x"}}) { return run({{"model", "wan2.5-t2v-preview"}, {"params", params}}); }
};

std::string output_named(const Json& job, const std::string& name) {
  for (const auto& o : job["outputs"])
    if (std::filesystem::path(o.get<std::string>()).filename() == name) return o;
  return "";
}

#define SKIP_WITHOUT_PLUGIN() \
  if (!std::filesystem::exists(kPlugin)) GTEST_SKIP() << kPlugin << " was not built (libcurl not installed)"

// A PCM WAV of `seconds` at 8 kHz, 8-bit mono.
std::string wav(double seconds) {
  auto le = [](uint32_t v, int n) {
    std::string s;
    for (int i = 0; i < n; ++i) s += char((v >> (8 * i)) & 0xFF);
    return s;
  };
  uint32_t bytes = uint32_t(seconds * 8000);
  return "RIFF" + le(36 + bytes, 4) + "WAVE" + "fmt " + le(16, 4) + le(1, 2) + le(1, 2) + le(8000, 4) + le(8000, 4) +
         le(1, 2) + le(8, 2) + "data" + le(bytes, 4) + std::string(bytes, char(0x80));
}

TEST(DashScopePlugin, TextToVideoDownloadsTheVideoAndWritesTheSidecar) {
  SKIP_WITHOUT_PLUGIN();
  FakeDashScope fake(fake_options());
  Harness h(fake);
  Json models = h.c->call("models", Json::object());
  EXPECT_TRUE(has(models.dump(), "wan2.5-t2v-preview")) << models.dump();

  Json job = h.submit({{"model", "wan2.5-t2v-preview"},
                       {"params", {{"prompt", "a red fox in the snow"}, {"duration", 10}, {"seed", 7}, {"size", "832*480"}}}});
  ASSERT_TRUE(h.wait_final(job["id"]));
  Json done = h.job(job["id"]);
  ASSERT_EQ(done["state"], "succeeded") << h.show(job["id"]).dump();

  std::string mp4 = output_named(done, "video.mp4"), sidecar = output_named(done, "video.json");
  ASSERT_FALSE(mp4.empty()) << done.dump();
  ASSERT_FALSE(sidecar.empty()) << done.dump();
  EXPECT_TRUE(read_file(mp4) == fake.video()) << "the downloaded video differs from the served one";
  EXPECT_FALSE(std::filesystem::exists(mp4 + ".part"));

  // Exactly the documented request, once.
  EXPECT_EQ(fake.submissions(), 1);
  auto submits = fake.requests_to("POST", "/api/v1/services/aigc/video-generation/video-synthesis");
  ASSERT_EQ(submits.size(), 1u);
  EXPECT_EQ(submits[0].headers["authorization"], "Bearer " + kKey);
  EXPECT_EQ(submits[0].headers["x-dashscope-async"], "enable");
  EXPECT_EQ(submits[0].headers.count("x-dashscope-ossresourceresolve"), 0u);
  EXPECT_EQ(Json::parse(submits[0].body),
            Json::parse(R"({"model": "wan2.5-t2v-preview", "input": {"prompt": "a red fox in the snow"},
                "parameters": {"size": "832*480", "audio": true, "duration": 10, "prompt_extend": true,
                               "watermark": false, "seed": 7}})"));
  EXPECT_GE(fake.count("GET", "/api/v1/tasks/task-1"), 3);   // PENDING, RUNNING, SUCCEEDED

  Json side = Json::parse(read_file(sidecar));
  EXPECT_EQ(side["model"], "wan2.5-t2v-preview");
  EXPECT_EQ(side["task_id"], "task-1");
  EXPECT_EQ(side["submit_request_id"], "req-submit-task-1");
  EXPECT_EQ(side["usage"]["video_duration"], 10);
  EXPECT_EQ(side["output"]["actual_prompt"], "extended: a red fox in the snow");
  EXPECT_EQ(side["params"]["seed"], 7);
  EXPECT_GE(side["timings"]["polls"].get<int>(), 3);

  // The task id is in the job's events; the key is nowhere reel writes.
  auto remote = h.events(job["id"], "remote_task");
  ASSERT_FALSE(remote.empty());
  EXPECT_TRUE(has(remote[0].dump(), "task-1")) << remote[0].dump();
  EXPECT_FALSE(has(h.show(job["id"]).dump(), kKey));
  EXPECT_FALSE(has(read_file(sidecar), kKey));
  EXPECT_FALSE(has(read_file(h.daemon.log_path()), kKey));
  for (const char* db : {"/reel.db", "/reel.db-wal"})
    if (std::filesystem::exists(h.daemon.state_dir() + db)) {
      EXPECT_FALSE(has(read_file(h.daemon.state_dir() + db), kKey)) << db;
    }
}

TEST(DashScopePlugin, ImageToVideoUploadsLocalFilesFirst) {
  SKIP_WITHOUT_PLUGIN();
  FakeDashScope fake(fake_options());
  Harness h(fake);
  write_file(h.dir.file("frame.png"), std::string("\x89PNG\r\n\x1a\n", 8) + std::string(1000, 'x'));
  write_file(h.dir.file("voice.wav"), wav(4.0));
  Json job = h.submit({{"model", "wan2.5-i2v-preview"},
                       {"params", {{"prompt", "she waves"}, {"resolution", "480P"}}},
                       {"inputs", {{"image", h.dir.file("frame.png")}, {"audio", h.dir.file("voice.wav")}}}});
  ASSERT_TRUE(h.wait_final(job["id"]));
  ASSERT_EQ(h.state(job["id"]), "succeeded") << h.show(job["id"]).dump();

  EXPECT_EQ(fake.count("GET", "/api/v1/uploads?action=getPolicy&model=wan2.5-i2v-preview"), 2);
  auto uploads = fake.requests_to("POST", "/oss");
  ASSERT_EQ(uploads.size(), 2u);
  EXPECT_TRUE(has(uploads[0].body, "frame.png"));
  EXPECT_TRUE(has(uploads[1].body, "voice.wav"));
  auto submits = fake.requests_to("POST", "/api/v1/services/aigc/video-generation/video-synthesis");
  ASSERT_EQ(submits.size(), 1u);
  EXPECT_EQ(submits[0].headers["x-dashscope-ossresourceresolve"], "enable");
  Json body = Json::parse(submits[0].body);
  EXPECT_EQ(body["input"]["img_url"], "oss://dashscope-instant/fake/2026-11-23/abc/frame.png");
  EXPECT_EQ(body["input"]["audio_url"], "oss://dashscope-instant/fake/2026-11-23/abc/voice.wav");
  EXPECT_EQ(body["parameters"]["resolution"], "480P");
}

TEST(DashScopePlugin, ImageToVideoPassesUrlsThrough) {
  SKIP_WITHOUT_PLUGIN();
  FakeDashScope fake(fake_options());
  Harness h(fake);
  Json job = h.submit({{"model", "wan2.5-i2v-preview"},
                       {"params", {{"image_url", "https://example.com/cat.png"}, {"audio", false}}}});
  ASSERT_TRUE(h.wait_final(job["id"]));
  ASSERT_EQ(h.state(job["id"]), "succeeded") << h.show(job["id"]).dump();
  EXPECT_EQ(fake.count("GET", "/api/v1/uploads"), 0);
  auto submits = fake.requests_to("POST", "/api/v1/services/aigc/video-generation/video-synthesis");
  ASSERT_EQ(submits.size(), 1u);
  EXPECT_EQ(submits[0].headers.count("x-dashscope-ossresourceresolve"), 0u);
  Json body = Json::parse(submits[0].body);
  EXPECT_EQ(body["input"]["img_url"], "https://example.com/cat.png");
  EXPECT_EQ(body["parameters"]["audio"], false);
}

TEST(DashScopePlugin, LocalChecksRefuseBeforeAnythingIsSent) {
  SKIP_WITHOUT_PLUGIN();
  FakeDashScope fake(fake_options());
  Harness h(fake);
  write_file(h.dir.file("short.wav"), wav(2.0));
  Json a = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "x"}, {"duration", 7}}}});
  Json b = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "x"}}},
                     {"inputs", {{"audio", h.dir.file("short.wav")}}}});
  // A bad parameter is caught before a (good) file is uploaded.
  write_file(h.dir.file("ok.wav"), wav(4.0));
  Json c = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "x"}, {"duration", 6}}},
                     {"inputs", {{"audio", h.dir.file("ok.wav")}}}});
  ASSERT_TRUE(h.wait_final(c["id"]));
  EXPECT_EQ(h.state(c["id"]), "failed");
  ASSERT_TRUE(h.wait_final(a["id"]));
  ASSERT_TRUE(h.wait_final(b["id"]));
  Json ja = h.job(a["id"]), jb = h.job(b["id"]);
  EXPECT_EQ(ja["state"], "failed");
  EXPECT_TRUE(has(ja.value("error", ""), "5 or 10")) << ja.dump();
  EXPECT_EQ(jb["state"], "failed");
  EXPECT_TRUE(has(jb.value("error", ""), "lasts 2.0 s")) << jb.dump();
  EXPECT_EQ(ja["attempts"], 1) << "a bad parameter is never retried";
  EXPECT_TRUE(fake.requests().empty()) << fake.requests().size() << " requests reached the service";
}

TEST(DashScopePlugin, PollingBacksOff) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.pending_polls = 3;
  o.running_polls = 3;
  FakeDashScope fake(o);
  Harness h(fake);
  Json job = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "x"}}}});
  ASSERT_TRUE(h.wait_final(job["id"]));
  ASSERT_EQ(h.state(job["id"]), "succeeded");
  auto polls = fake.requests_to("GET", "/api/v1/tasks/task-1");
  ASSERT_EQ(polls.size(), 7u);
  // 20 ms, then x1.5 up to 80 ms: 30, 45, 67, 80, 80 between polls.
  const int64_t want[] = {30, 45, 67, 80, 80, 80};
  for (std::size_t i = 1; i < polls.size(); ++i)
    EXPECT_GE(polls[i].at_ms - polls[i - 1].at_ms, want[i - 1] - 5) << "gap before poll " << i;
  EXPECT_GT(polls[6].at_ms - polls[5].at_ms, 2 * 20) << "the interval grew";
}

TEST(DashScopePlugin, RateLimitedSubmissionHonoursRetryAfter) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.submit_429s = 2;
  o.retry_after = "1";
  FakeDashScope fake(o);
  Harness h(fake);
  Json job = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "x"}}}});
  ASSERT_TRUE(h.wait_final(job["id"]));
  ASSERT_EQ(h.state(job["id"]), "succeeded") << h.show(job["id"]).dump();
  auto submits = fake.requests_to("POST", "/api/v1/services/aigc/video-generation/video-synthesis");
  ASSERT_EQ(submits.size(), 3u);
  // REEL_DASHSCOPE_RETRY_MS is 10 ms: only Retry-After explains a second between attempts.
  EXPECT_GE(submits[1].at_ms - submits[0].at_ms, 950);
  EXPECT_GE(submits[2].at_ms - submits[1].at_ms, 950);
  EXPECT_EQ(fake.submissions(), 1);
  auto retries = h.events(job["id"], "retry");
  ASSERT_EQ(retries.size(), 2u);
  EXPECT_TRUE(has(retries[0].dump(), "429")) << retries[0].dump();
}

TEST(DashScopePlugin, FailedTaskQuotesTheServiceAndIsNotRetried) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.final_status = "FAILED";
  o.fail_code = "DataInspectionFailed";
  o.fail_message = "Output data may contain inappropriate content.";
  FakeDashScope fake(o);
  Harness h(fake);
  Json done = h.run_t2v();
  EXPECT_EQ(done["state"], "failed");
  std::string error = done.value("error", "");
  EXPECT_TRUE(has(error, "DataInspectionFailed")) << error;
  EXPECT_TRUE(has(error, "Output data may contain inappropriate content.")) << error;
  EXPECT_TRUE(has(error, "task-1")) << error;
  EXPECT_EQ(fake.submissions(), 1);
}

TEST(DashScopePlugin, RefusedSubmissionQuotesTheService) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.submit_status = 400;
  o.submit_code = "InvalidParameter";
  o.submit_message = "The size is not match the allowed size";
  FakeDashScope fake(o);
  Harness h(fake);
  Json done = h.run_t2v();
  EXPECT_EQ(done["state"], "failed");
  EXPECT_TRUE(has(done.value("error", ""), "InvalidParameter (HTTP 400): The size is not match the allowed size"))
      << done.dump();
  EXPECT_EQ(fake.count("POST", "/api/v1/services"), 1) << "a 400 is not retried";
}

TEST(DashScopePlugin, WrongKeyIsAnAuthError) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.api_key = "another-key";
  FakeDashScope fake(o);
  Harness h(fake);
  Json done = h.run_t2v();
  EXPECT_EQ(done["state"], "failed");
  EXPECT_TRUE(has(done.value("error", ""), "InvalidApiKey")) << done.dump();
  EXPECT_TRUE(has(done.value("error", ""), "check the API key")) << done.dump();
}

TEST(DashScopePlugin, MissingKeyFailsWithoutContactingTheService) {
  SKIP_WITHOUT_PLUGIN();
  FakeDashScope fake(fake_options());
  Harness h(fake, {}, /*with_key=*/false);
  Json done = h.run_t2v();
  EXPECT_EQ(done["state"], "failed");
  EXPECT_TRUE(has(done.value("error", ""), "REEL_DASHSCOPE_API_KEY_FILE")) << done.dump();
  EXPECT_TRUE(fake.requests().empty());
}

TEST(DashScopePlugin, KeyFromAFile) {
  SKIP_WITHOUT_PLUGIN();
  FakeDashScope fake(fake_options());
  TempDir keys;
  write_file(keys.file("key"), kKey + "\n");
  Harness h(fake, {"REEL_DASHSCOPE_API_KEY_FILE=" + keys.file("key")}, /*with_key=*/false);
  Json job = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "x"}}}});
  ASSERT_TRUE(h.wait_final(job["id"]));
  EXPECT_EQ(h.state(job["id"]), "succeeded") << h.show(job["id"]).dump();
}

TEST(DashScopePlugin, BrokenDownloadResumesWithRange) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.break_first_download = true;
  FakeDashScope fake(o);
  Harness h(fake);
  Json done = h.run_t2v();
  ASSERT_EQ(done["state"], "succeeded") << h.show(done["id"]).dump();
  EXPECT_TRUE(read_file(output_named(done, "video.mp4")) == fake.video());
  auto downloads = fake.requests_to("GET", "/video/");
  ASSERT_EQ(downloads.size(), 2u);
  EXPECT_EQ(downloads[0].headers.count("range"), 0u);
  EXPECT_EQ(downloads[1].headers["range"], "bytes=" + std::to_string(fake.video().size() / 2) + "-");
}

TEST(DashScopePlugin, ExpiredResultUrlIsAClearError) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.download_status = 403;
  FakeDashScope fake(o);
  Harness h(fake);
  Json done = h.run_t2v();
  EXPECT_EQ(done["state"], "failed");
  std::string error = done.value("error", "");
  EXPECT_TRUE(has(error, "HTTP 403")) << error;
  EXPECT_TRUE(has(error, "expire")) << error;
  EXPECT_EQ(fake.submissions(), 1);
}

TEST(DashScopePlugin, DaemonKilledMidPollResumesTheSameTask) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.hold = true;   // RUNNING until released
  FakeDashScope fake(o);
  Harness h(fake);
  Json job = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "x"}}}});
  ASSERT_TRUE(wait_until([&] { return fake.count("GET", "/api/v1/tasks/task-1") >= 3; }));
  h.daemon.kill9();
  h.start();
  ASSERT_TRUE(wait_until([&] { return fake.count("GET", "/api/v1/tasks/task-1") >= 5; }, 30s));
  o.hold = false;
  fake.set_options(o);
  ASSERT_TRUE(h.wait_final(job["id"]));
  ASSERT_EQ(h.state(job["id"]), "succeeded") << h.show(job["id"]).dump();
  EXPECT_EQ(fake.submissions(), 1);
  EXPECT_EQ(fake.count("POST", "/api/v1/services"), 1) << "the restarted run submitted again";
  bool resumed = false;
  for (const auto& e : h.events(job["id"], "remote_task")) resumed = resumed || has(e.dump(), "\"resumed\":true");
  EXPECT_TRUE(resumed) << h.show(job["id"]).dump();
}

TEST(DashScopePlugin, PoolSlotsLimitConcurrentTasks) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.hold = true;
  FakeDashScope fake(o);
  Harness h(fake, {"REEL_DASHSCOPE_MAX_CONCURRENT=1"});
  Json a = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "a"}}}});
  Json b = h.submit({{"model", "wan2.5-i2v-preview"}, {"params", {{"image_url", "https://example.com/b.png"}}}});
  ASSERT_TRUE(wait_until([&] { return fake.count("GET", "/api/v1/tasks/task-1") >= 3; }));
  EXPECT_EQ(fake.submissions(), 1) << "the second job started although the pool has one slot";
  EXPECT_EQ(h.state(b["id"]), "queued");
  Json shown = h.show(a["id"]);
  bool on_pool = false;
  for (const auto& e : shown["events"]) on_pool = on_pool || (e["kind"] == "scheduled" && e["data"]["device"] == "remote:dashscope");
  EXPECT_TRUE(on_pool) << shown.dump();
  o.hold = false;
  fake.set_options(o);
  ASSERT_TRUE(h.wait_final(a["id"]));
  ASSERT_TRUE(h.wait_final(b["id"]));
  EXPECT_EQ(h.state(a["id"]), "succeeded");
  EXPECT_EQ(h.state(b["id"]), "succeeded");
  EXPECT_EQ(fake.submissions(), 2);
}

TEST(DashScopePlugin, RemoteWorkersLeaveLocalModelsResident) {
  SKIP_WITHOUT_PLUGIN();
  FakeDashScope fake(fake_options());
  Harness h(fake, {}, true, "[scheduler]\nmax_resident_models = 1\nkeep_alive_seconds = 600.0\n");
  Json local = h.run({{"model", "memtest"}, {"params", {{"megabytes", 1}, {"steps", 1}, {"step_ms", 1}}}});
  ASSERT_EQ(local["state"], "succeeded") << local.dump();
  Json remote = h.run_t2v();
  ASSERT_EQ(remote["state"], "succeeded") << remote.dump();
  Json status = h.c->call("status", Json::object())["result"];
  std::string workers = status["workers"].dump();
  EXPECT_TRUE(has(workers, "memtest")) << "the remote job's worker evicted the local model: " << workers;
  EXPECT_TRUE(has(workers, "remote:dashscope")) << workers;
  EXPECT_FALSE(has(read_file(h.daemon.log_path()), "max_resident_models reached"));
}

// TLS is verified: an https endpoint with a self-signed certificate (openssl s_server on
// loopback) is refused before any request is sent.
TEST(DashScopePlugin, UntrustedCertificateIsRefused) {
  SKIP_WITHOUT_PLUGIN();
  if (run_command({"/bin/sh", "-c", "command -v openssl"}).exit_code != 0) GTEST_SKIP() << "no openssl command";
  TempDir tls;
  CommandResult made = run_command({"/usr/bin/env", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout",
                                    tls.file("key.pem"), "-out", tls.file("cert.pem")});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  int port = 0;
  {
    boost::asio::io_context io;
    boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }
  pid_t server = fork();
  if (server == 0) {
    execlp("openssl", "openssl", "s_server", "-quiet", "-www", "-accept", ("127.0.0.1:" + std::to_string(port)).c_str(),
           "-cert", tls.file("cert.pem").c_str(), "-key", tls.file("key.pem").c_str(), (char*)nullptr);
    _exit(127);
  }
  struct Reap {
    pid_t pid;
    ~Reap() {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  } reap{server};
  ASSERT_TRUE(wait_until([&] {
    boost::asio::io_context io;
    boost::asio::ip::tcp::socket s(io);
    boost::system::error_code ec;
    s.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)}, ec);
    return !ec;
  }));
  FakeDashScope unused(fake_options());
  Harness h(unused, {"REEL_DASHSCOPE_ENDPOINT=https://127.0.0.1:" + std::to_string(port), "REEL_DASHSCOPE_RETRIES=1"});
  Json done = h.run_t2v();
  EXPECT_EQ(done["state"], "failed");
  EXPECT_TRUE(has(done.value("error", ""), "certificate")) << done.dump();
  EXPECT_TRUE(unused.requests().empty());
}

TEST(DashScopePlugin, CancelWhilePendingCancelsRemotely) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.pending_polls = 1000000;
  FakeDashScope fake(o);
  Harness h(fake);
  Json job = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "x"}}}});
  ASSERT_TRUE(wait_until([&] { return fake.count("GET", "/api/v1/tasks/task-1") >= 1; }));
  Json r = h.c->call("cancel", {{"id", job["id"]}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  ASSERT_TRUE(h.wait_final(job["id"]));
  Json done = h.job(job["id"]);
  EXPECT_EQ(done["state"], "cancelled");
  EXPECT_EQ(fake.count("POST", "/api/v1/tasks/task-1/cancel"), 1);
  EXPECT_TRUE(has(h.show(job["id"]).dump(), "nothing billed")) << h.show(job["id"]).dump();
}

TEST(DashScopePlugin, CancelWhileRunningSaysItIsBilled) {
  SKIP_WITHOUT_PLUGIN();
  auto o = fake_options();
  o.pending_polls = 0;
  o.hold = true;
  FakeDashScope fake(o);
  Harness h(fake);
  Json job = h.submit({{"model", "wan2.5-t2v-preview"}, {"params", {{"prompt", "x"}}}});
  ASSERT_TRUE(wait_until([&] { return fake.count("GET", "/api/v1/tasks/task-1") >= 1; }));
  ASSERT_TRUE(h.c->call("cancel", {{"id", job["id"]}})["ok"].get<bool>());
  ASSERT_TRUE(h.wait_final(job["id"]));
  EXPECT_EQ(h.state(job["id"]), "cancelled");
  EXPECT_EQ(fake.count("POST", "/api/v1/tasks/task-1/cancel"), 0) << "a RUNNING task cannot be cancelled remotely";
  std::string shown = h.show(job["id"]).dump();
  EXPECT_TRUE(has(shown, "will finish and be billed")) << shown;

  // `reelctl retry` picks up the task that was billed anyway instead of paying again.
  o.hold = false;
  fake.set_options(o);
  Json r = h.c->call("retry", {{"id", job["id"]}});
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  ASSERT_TRUE(h.wait_final(job["id"]));
  EXPECT_EQ(h.state(job["id"]), "succeeded") << h.show(job["id"]).dump();
  EXPECT_EQ(fake.submissions(), 1);
}

}  // namespace
}  // namespace reel::test
