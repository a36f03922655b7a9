// The budget scheduler and run-time fallback through the real daemon, real worker
// processes and the real test plugin `memtest` (plugins/testing), which allocates
// the memory its estimate names and throws out-of-memory above a limit a job sets.
// GPUs are simulated ([gpu] simulate), so this runs on machines without one.
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace reel::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kPluginDir = std::string(REEL_BINARY_DIR) + "/lib/reel/plugins";
const std::string kBrokenPluginDir = std::string(REEL_BINARY_DIR) + "/lib/reel/test-plugins";

std::string config_with(const std::string& gpus, const std::string& extra = "") {
  return "[gpu]\nsimulate = [" + gpus + "]\nreserve = \"0B\"\ninference_margin = \"0B\"\nworker_overhead = \"0B\"\n" +
         "[plugins]\ndirs = [\"" + kPluginDir + "\"]\n" + extra;
}

Json memtest(Json params, Json policy = Json::object()) {
  Json job = {{"model", "memtest"}, {"params", std::move(params)}};
  if (!policy.empty()) job["policy"] = std::move(policy);
  return job;
}

struct Harness : JobHarness {
  // `daemon_keys` go into the generated [daemon] table; `config` is appended after it.
  explicit Harness(const std::string& config, const std::string& daemon_keys = "") : JobHarness(daemon_keys) {
    add_config(config);
    start();
  }
  Json output(const std::string& id) {
    Json job = show(id)["job"];
    return Json::parse(read_file(job["outputs"][0].get<std::string>()));
  }
};

TEST(Fallback, PlanIsMadeAtSubmissionFromThePluginsLadder) {
  Harness h(config_with("\"8GiB\""));
  Json job = h.submit(memtest({{"megabytes", 64}}));
  ASSERT_GE(job["plan"].size(), 4u);
  EXPECT_EQ(job["plan"][0]["rung"], "resident");
  EXPECT_EQ(job["plan"][0]["device_bytes"], 64 << 20);
  EXPECT_EQ(job["plan"][1]["rung"], "offload");
  EXPECT_LT(job["plan"][1]["device_bytes"].get<int64_t>(), job["plan"][0]["device_bytes"].get<int64_t>());
  ASSERT_TRUE(h.wait_final(job["id"]));
  auto scheduled = h.events(job["id"], "scheduled");
  ASSERT_EQ(scheduled.size(), 1u);
  EXPECT_EQ(scheduled[0]["data"]["rung"], "resident");
  EXPECT_EQ(scheduled[0]["data"]["device"], "cuda:0");
  EXPECT_TRUE(scheduled[0]["data"]["explain"].contains("available_device_bytes")) << scheduled[0].dump();
}

TEST(Fallback, OutOfMemoryAtTheFirstRungSucceedsOneRungLowerWithTheEventRecorded) {
  Harness h(config_with("\"8GiB\""));
  std::string id = h.submit(memtest({{"megabytes", 64}, {"oom_above_mb", 40}}))["id"];
  ASSERT_TRUE(h.wait_final(id));
  Json job = h.show(id)["job"];
  ASSERT_EQ(job["state"], "succeeded") << job.dump();
  EXPECT_EQ(job["rung"], "offload");
  EXPECT_EQ(job["crash_count"], 0);
  EXPECT_EQ(job["attempts"], 1) << "an out-of-memory retry is not charged as an attempt";
  auto fallbacks = h.events(id, "fallback");
  ASSERT_EQ(fallbacks.size(), 1u);
  EXPECT_EQ(fallbacks[0]["data"]["from"], "resident");
  EXPECT_EQ(fallbacks[0]["data"]["to"], "offload");
  EXPECT_EQ(h.output(id)["rung"], "offload");
}

TEST(Fallback, ADecodeOutOfMemoryResumesFromTheDenoiseCheckpoint) {
  Harness h(config_with("\"8GiB\""));
  std::string id = h.submit(memtest({{"megabytes", 64}, {"decode_oom_above_mb", 20}}))["id"];
  ASSERT_TRUE(h.wait_final(id));
  ASSERT_EQ(h.show(id)["job"]["state"], "succeeded");
  Json out = h.output(id);
  EXPECT_EQ(out["rung"], "offload");
  EXPECT_TRUE(out["denoise_reused"].get<bool>()) << out.dump();
  auto checkpoints = h.events(id, "checkpoint");
  ASSERT_EQ(checkpoints.size(), 2u);
  EXPECT_FALSE(checkpoints[0]["data"]["reused"].get<bool>());
  EXPECT_TRUE(checkpoints[1]["data"]["reused"].get<bool>()) << "the retry skipped the finished denoise";
}

TEST(Fallback, QualityRungsNeedTheJobsConsent) {
  Harness h(config_with("\"8GiB\""));
  // Both GPU placement rungs run out of memory, the CPU rung is too slow for these
  // jobs (max_slowdown), and only the quality rung fits under the limit.
  Json params = {{"megabytes", 64}, {"oom_above_mb", 20}};
  std::string refused = h.submit(memtest(params, {{"max_slowdown", 5}}))["id"];
  std::string allowed = h.submit(memtest(params, {{"max_slowdown", 5}, {"quality_fallback", true}}))["id"];
  ASSERT_TRUE(h.wait_final(refused));
  ASSERT_TRUE(h.wait_final(allowed));
  Json r = h.show(refused)["job"];
  EXPECT_EQ(r["state"], "failed");
  EXPECT_NE(r["error"].get<std::string>().find("quality"), std::string::npos) << r["error"];
  Json a = h.show(allowed)["job"];
  EXPECT_EQ(a["state"], "succeeded") << a.dump();
  EXPECT_EQ(a["rung"], "half-steps");
  bool quality_event = false;
  for (const auto& e : h.events(allowed, "fallback"))
    if (e["data"]["quality"] == true) quality_event = true;
  EXPECT_TRUE(quality_event) << "a quality fallback is never silent";
}

TEST(Fallback, AJobWhoseFloorCannotFitEvenAnEmptyDeviceFailsAtOnceWithTheNumbers) {
  Harness h(config_with("\"1GiB\""));
  std::string id = h.submit(memtest({{"megabytes", 2048}}, {{"rung", "resident"}}))["id"];
  ASSERT_TRUE(h.wait_final(id, 10s));
  Json job = h.show(id)["job"];
  EXPECT_EQ(job["state"], "failed");
  EXPECT_EQ(job["attempts"], 0) << "it never ran";
  std::string error = job["error"];
  EXPECT_NE(error.find("2.0 GiB"), std::string::npos) << error;
  EXPECT_NE(error.find("1.0 GiB"), std::string::npos) << error;
}

TEST(Fallback, AMisspeltPinnedRungIsRefusedAtSubmission) {
  Harness h(config_with("\"8GiB\""));
  Json r = h.c->call("submit", {{"job", memtest({{"megabytes", 8}}, {{"rung", "ofload"}})}});
  EXPECT_EQ(r["error"]["code"], "invalid_params");
  EXPECT_NE(r["error"]["message"].get<std::string>().find("did you mean 'offload'"), std::string::npos) << r.dump();
  EXPECT_TRUE(h.c->call("list")["result"]["jobs"].empty()) << "nothing was queued";
}

TEST(Fallback, AJobThatFitsOnceRunningWorkEndsWaitsInsteadOfDegrading) {
  Harness h(config_with("\"100MiB\""), "max_concurrent_jobs = 4\n");
  std::string first = h.submit(memtest({{"megabytes", 64}, {"steps", 20}, {"step_ms", 100}}))["id"];
  ASSERT_TRUE(wait_until([&] { return h.show(first)["job"]["state"] == "running"; }));
  std::string second = h.submit(memtest({{"megabytes", 64}}))["id"];
  ASSERT_TRUE(wait_until([&] { return h.show(second).contains("waiting"); }));
  EXPECT_EQ(h.show(second)["job"]["state"], "queued");
  EXPECT_NE(h.show(second)["waiting"].get<std::string>().find("cuda:0"), std::string::npos);
  ASSERT_TRUE(h.wait_final(second));
  EXPECT_EQ(h.show(second)["job"]["rung"], "resident") << "it waited for the full-quality, fastest rung";
}

TEST(Fallback, AResidentModelIsReusedThenEvictedAfterItsKeepAlive) {
  Harness h(config_with("\"8GiB\"", "[scheduler]\nkeep_alive_seconds = 2\n"));
  std::string a = h.submit(memtest({{"megabytes", 8}}))["id"];
  ASSERT_TRUE(h.wait_final(a));
  Json workers = h.c->call("status")["result"]["workers"];
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0]["state"], "idle");
  int pid = workers[0]["pid"];
  std::string b = h.submit(memtest({{"megabytes", 8}}))["id"];
  ASSERT_TRUE(h.wait_final(b));
  workers = h.c->call("status")["result"]["workers"];
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0]["pid"], pid) << "the same resident worker ran the second job";
  EXPECT_TRUE(wait_until([&] { return h.c->call("status")["result"]["workers"].empty(); }, 10s))
      << "evicted after keep_alive_seconds";
}

TEST(Fallback, MaxResidentModelsEndsTheLeastRecentlyUsedIdleWorker) {
  Harness h(config_with("\"8GiB\"", "[scheduler]\nmax_resident_models = 1\n"));
  std::string a = h.submit(memtest({{"megabytes", 8}}, {{"rung", "resident"}}))["id"];
  ASSERT_TRUE(h.wait_final(a));
  Json before = h.c->call("status")["result"]["workers"];
  ASSERT_EQ(before.size(), 1u);
  std::string b = h.submit(memtest({{"megabytes", 8}}, {{"rung", "offload"}}))["id"];
  ASSERT_TRUE(h.wait_final(b));
  EXPECT_EQ(h.show(b)["job"]["state"], "succeeded");
  ASSERT_TRUE(wait_until([&] { return h.c->call("status")["result"]["workers"].size() == 1; }));
  Json after = h.c->call("status")["result"]["workers"];
  EXPECT_EQ(after[0]["rung"], "offload");
  EXPECT_NE(after[0]["pid"], before[0]["pid"]);
  EXPECT_NE(read_file(h.daemon.log_path()).find("max_resident_models reached"), std::string::npos);
}

TEST(Fallback, BrokenPluginsAreRefusedWithTheirReasonWhileTheDaemonServesOn) {
  Harness h("[plugins]\ndirs = [\"" + kPluginDir + "\", \"" + kBrokenPluginDir + "\"]\n");
  Json plugins = h.c->call("plugins")["result"]["plugins"];
  std::map<std::string, Json> by_file;
  for (const auto& p : plugins) by_file[std::filesystem::path(p["source"].get<std::string>()).filename()] = p;
  auto refused = [&](const std::string& file_part, const std::string& reason_part) {
    for (const auto& [file, p] : by_file)
      if (file.find(file_part) != std::string::npos) {
        EXPECT_FALSE(p["loaded"].get<bool>()) << file;
        EXPECT_NE(p["error"].get<std::string>().find(reason_part), std::string::npos) << p.dump();
        return;
      }
    ADD_FAILURE() << "no plugin file matching " << file_part << " in " << plugins.dump();
  };
  refused("abi_mismatch", "999");
  refused("describe_throws", "broken on purpose");
  refused("not_a_plugin", "reel_plugin_entry");
  EXPECT_NE(read_file(h.daemon.log_path()).find("abi_mismatch"), std::string::npos) << "the log names the file";
  std::string id = h.submit(Json{{"model", "sleep"}, {"params", {{"seconds", 0.1}}}})["id"];
  EXPECT_TRUE(h.wait_final(id));
  EXPECT_EQ(h.show(id)["job"]["state"], "succeeded");
}

TEST(Fallback, StatusWithoutAGpuShowsTheHostRamBudgetAndThePlugins) {
  Harness h("");
  Json s = h.c->call("status")["result"];
  ASSERT_FALSE(s["devices"].empty());
  bool cpu = false;
  for (const auto& d : s["devices"])
    if (d["id"] == "cpu") {
      cpu = true;
      EXPECT_GT(d["total_bytes"].get<int64_t>(), 0);
    }
  EXPECT_TRUE(cpu) << s["devices"].dump();
  bool sleep_loaded = false;
  for (const auto& p : s["plugins"])
    if (p["loaded"] == true && p["models"].dump().find("sleep") != std::string::npos) sleep_loaded = true;
  EXPECT_TRUE(sleep_loaded) << s["plugins"].dump();
  auto r = h.daemon.ctl({"status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("cpu"), std::string::npos) << r.out;
}

TEST(Fallback, MeasuredPeaksAreStoredAndShown) {
  Harness h(config_with("\"8GiB\""));
  std::string id = h.submit(memtest({{"megabytes", 16}}))["id"];
  ASSERT_TRUE(h.wait_final(id));
  Json shown = h.show(id);
  ASSERT_FALSE(shown["peaks"].empty()) << shown.dump();
  EXPECT_GE(shown["peaks"][0]["measured_device_bytes"].get<int64_t>(), 16 << 20);
  EXPECT_GT(shown["peaks"][0]["measured_host_bytes"].get<int64_t>(), 16 << 20)
      << "the worker really allocated what it estimated";
}

}  // namespace
}  // namespace reel::test
