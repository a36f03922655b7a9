// Plugin SDK: the host side (PluginLibrary, LoadedModel, models_from_description,
// rung_estimate_from_json) driven through the real plugin .so files built under
// <build>/lib/reel/plugins and <build>/lib/reel/test-plugins, plus the built-in sleep.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "builtin/builtin_plugins.hpp"
#include "core/model_catalog.hpp"
#include "sdk/plugin_host.hpp"

using namespace reel;
namespace fs = std::filesystem;

namespace {

::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// Test binaries live in <build>/tests; plugins in <build>/lib/reel/{plugins,test-plugins}.
fs::path build_dir() { return fs::read_symlink("/proc/self/exe").parent_path().parent_path(); }
std::string plugin_path(const std::string& name) { return (build_dir() / "lib/reel/plugins" / ("lib" + name + ".so")).string(); }
std::string broken_path(const std::string& name) {
  return (build_dir() / "lib/reel/test-plugins" / ("lib" + name + ".so")).string();
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "reel-plugin-test-XXXXXX").string();
    path = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string sub(const std::string& name) const {
    fs::create_directories(path / name);
    return (path / name).string();
  }
};

struct Recorder : RunHooks {
  struct Progress {
    int64_t step, total;
    std::string stage;
  };
  std::vector<Progress> progress_events;
  std::vector<std::pair<std::string, Json>> events;
  std::vector<std::pair<uint64_t, uint64_t>> samples;
  std::vector<std::string> logs;
  std::atomic<bool> cancel{false};
  int cancel_after_progress = -1;  // >= 0: answer cancelled() once this many progress events arrived
  bool throw_on_progress = false;

  void progress(int64_t step, int64_t total, const std::string& stage) override {
    if (throw_on_progress) throw std::runtime_error("hook broke");
    progress_events.push_back({step, total, stage});
  }
  bool cancelled() override {
    if (cancel_after_progress >= 0 && static_cast<int>(progress_events.size()) >= cancel_after_progress) return true;
    return cancel.load();
  }
  void log(int, const std::string& m) override { logs.push_back(m); }
  void memory_sample(uint64_t d, uint64_t h) override { samples.push_back({d, h}); }
  void event(const std::string& kind, const Json& data) override { events.push_back({kind, data}); }

  std::vector<std::string> stages() const {
    std::vector<std::string> out;
    for (const auto& p : progress_events)
      if (out.empty() || out.back() != p.stage) out.push_back(p.stage);
    return out;
  }
};

Json job(Json params) { return {{"id", "j1"}, {"model", "memtest"}, {"params", std::move(params)}, {"inputs", Json::object()}}; }

class Memtest : public ::testing::Test {
 protected:
  void SetUp() override {
    lib = PluginLibrary::open(plugin_path("memtest"));
    models = models_from_description(lib->describe(), lib->name());
    ASSERT_EQ(models.size(), 1u);
    ladder = models[0].ladder;
  }
  Json rung(const std::string& name) {
    for (const auto& r : ladder)
      if (r["name"] == name) return r;
    ADD_FAILURE() << "no rung " << name;
    return {};
  }
  std::unique_ptr<PluginLibrary> lib;
  std::vector<ModelInfo> models;
  std::vector<Json> ladder;
  TempDir tmp;
};

TEST_F(Memtest, IdentityAndDescription) {
  EXPECT_EQ(lib->name(), "memtest");
  EXPECT_EQ(lib->version(), "0.1.0");
  EXPECT_EQ(lib->path(), plugin_path("memtest"));
  const ModelInfo& m = models[0];
  EXPECT_EQ(m.name, "memtest");
  EXPECT_EQ(m.provider, "memtest");
  ASSERT_EQ(m.params.size(), 6u);
  EXPECT_EQ(m.params[0].name, "megabytes");
  EXPECT_EQ(m.params[0].type, ParamSpec::Type::integer);
  EXPECT_EQ(m.params[0].min, 1.0);
  EXPECT_EQ(m.params[0].max, 4096.0);
  EXPECT_EQ(m.params[0].default_value, Json(64));
  EXPECT_EQ(m.params[3].name, "oom_above_mb");
  EXPECT_EQ(m.params[4].name, "decode_oom_above_mb");
  EXPECT_EQ(m.params[5].name, "output_name");   // security_test steers it out of the output folder
  EXPECT_EQ(m.params[5].type, ParamSpec::Type::string);
  ASSERT_EQ(m.inputs.size(), 1u);
  EXPECT_EQ(m.inputs[0].role, "source");
  EXPECT_FALSE(m.inputs[0].required);
  EXPECT_EQ(m.outputs, std::vector<std::string>{"application/json"});
  ASSERT_EQ(ladder.size(), 4u);
  EXPECT_EQ(ladder[0]["name"], "resident");
  EXPECT_EQ(ladder[1]["name"], "offload");
  EXPECT_EQ(ladder[2]["name"], "cpu");
  EXPECT_EQ(ladder[3]["name"], "half-steps");
  EXPECT_EQ(ladder[3]["kind"], "quality");
  EXPECT_EQ(ladder[0]["settings"]["factor"], 1.0);
  // The catalog accepts it and lists ladder and outputs.
  ModelCatalog catalog;
  catalog.add(m);
  JobSpec spec;
  spec.model = "memtest";
  spec.params = {{"megabytes", 8}};
  Json params = catalog.validate(spec);
  EXPECT_EQ(params["steps"], 4);
  Json j = m.to_json();
  EXPECT_EQ(j["ladder"].size(), 4u);
  EXPECT_EQ(j["outputs"], Json::array({"application/json"}));
}

TEST_F(Memtest, EstimatesPerRung) {
  Json params = {{"megabytes", 64}, {"steps", 4}};
  const int64_t MiB = 1 << 20;
  RungEstimate resident = rung_estimate_from_json(lib->estimate(job(params), rung("resident")), rung("resident"), "memtest");
  EXPECT_EQ(resident.rung, "resident");
  EXPECT_FALSE(resident.quality);
  EXPECT_FALSE(resident.cpu_only);
  EXPECT_EQ(resident.device_bytes, 64 * MiB);
  EXPECT_EQ(resident.host_bytes, 16 * MiB + 64 * MiB);
  EXPECT_EQ(resident.relative_time, 1.0);
  EXPECT_EQ(resident.effective["steps"], 4);

  RungEstimate offload = rung_estimate_from_json(lib->estimate(job(params), rung("offload")), rung("offload"), "memtest");
  EXPECT_EQ(offload.device_bytes, 32 * MiB);
  EXPECT_EQ(offload.relative_time, 2.0);

  RungEstimate cpu = rung_estimate_from_json(lib->estimate(job(params), rung("cpu")), rung("cpu"), "memtest");
  EXPECT_TRUE(cpu.cpu_only);
  EXPECT_EQ(cpu.device_bytes, 0);
  EXPECT_EQ(cpu.host_bytes, 16 * MiB + 16 * MiB);
  EXPECT_EQ(cpu.relative_time, 10.0);

  RungEstimate half = rung_estimate_from_json(lib->estimate(job(params), rung("half-steps")), rung("half-steps"), "memtest");
  EXPECT_TRUE(half.quality);
  EXPECT_EQ(half.device_bytes, 16 * MiB);
  EXPECT_EQ(half.effective["steps"], 2);
}

TEST_F(Memtest, UnknownRungIsBadInput) {
  try {
    lib->estimate(job({}), {{"name", "nope"}, {"kind", "placement"}});
    FAIL() << "no error";
  } catch (const PluginCallError& e) {
    EXPECT_EQ(e.status(), REEL_ERR_BAD_INPUT);
    EXPECT_STREQ(e.kind(), "bad_input");
    EXPECT_TRUE(contains(e.message(), "no rung 'nope'"));
  }
}

TEST_F(Memtest, RunsStagesAndReusesTheCheckpoint) {
  std::string work = tmp.sub("work"), out = tmp.sub("out");
  auto model = lib->load("memtest", rung("resident"), "cuda:0");
  EXPECT_EQ(model->device(), "cuda:0");
  EXPECT_EQ(model->rung(), "resident");
  Json params = {{"megabytes", 8}, {"steps", 4}, {"step_ms", 1}};

  Recorder first;
  Json result = model->run(job(params), rung("resident"), work, out, first);
  ASSERT_EQ(result["outputs"].size(), 1u);
  std::string output = result["outputs"][0];
  EXPECT_EQ(output, out + "/memtest.json");
  ASSERT_TRUE(fs::exists(output));
  EXPECT_EQ(first.stages(), (std::vector<std::string>{"denoise", "decode"}));
  EXPECT_EQ(first.progress_events.front().step, 0);
  EXPECT_EQ(first.progress_events[4].step, 4);  // denoise: 0..4 of 4
  EXPECT_EQ(first.progress_events[4].total, 4);
  EXPECT_EQ(first.progress_events.back().stage, "decode");
  ASSERT_EQ(first.events.size(), 1u);
  EXPECT_EQ(first.events[0].first, "checkpoint");
  EXPECT_EQ(first.events[0].second, Json::parse(R"({"stage": "denoise", "reused": false})"));
  ASSERT_FALSE(first.samples.empty());
  EXPECT_EQ(first.samples[0].first, 8u << 20);  // denoise at resident: all 8 MiB
  EXPECT_TRUE(fs::exists(work + "/denoise.ckpt"));
  Json written = Json::parse(std::ifstream(output));
  EXPECT_EQ(written["rung"], "resident");
  EXPECT_EQ(written["stages_run"], Json::parse(R"(["denoise", "decode"])"));
  EXPECT_EQ(written["denoise_reused"], false);
  EXPECT_EQ(result["info"]["device"], "cuda:0");

  // A second attempt (same work_dir) skips denoise.
  Recorder second;
  Json again = model->run(job(params), rung("resident"), work, out, second);
  EXPECT_EQ(second.stages(), std::vector<std::string>{"decode"});
  ASSERT_EQ(second.events.size(), 1u);
  EXPECT_EQ(second.events[0].second, Json::parse(R"({"stage": "denoise", "reused": true})"));
  Json rewritten = Json::parse(std::ifstream(output));
  EXPECT_EQ(rewritten["stages_run"], Json::parse(R"(["decode"])"));
  EXPECT_EQ(rewritten["denoise_reused"], true);
}

TEST_F(Memtest, OomAboveTheLimitThenFitsOneRungLower) {
  std::string work = tmp.sub("work"), out = tmp.sub("out");
  Json params = {{"megabytes", 64}, {"steps", 2}, {"step_ms", 1}, {"oom_above_mb", 40}};
  {
    auto model = lib->load("memtest", rung("resident"), "cuda:0");
    Recorder hooks;
    try {
      model->run(job(params), rung("resident"), work, out, hooks);
      FAIL() << "no OOM";
    } catch (const PluginCallError& e) {
      EXPECT_EQ(e.status(), REEL_ERR_OOM);
      EXPECT_STREQ(e.kind(), "oom");
      EXPECT_TRUE(contains(e.message(), "above the 40 MiB limit"));
      EXPECT_TRUE(contains(e.what(), "plugin 'memtest' run of 'memtest' failed (oom)"));
    }
    EXPECT_FALSE(fs::exists(work + "/denoise.ckpt"));
  }
  // offload: 32 MiB fits.
  auto model = lib->load("memtest", rung("offload"), "cuda:0");
  Recorder hooks;
  Json result = model->run(job(params), rung("offload"), work, out, hooks);
  EXPECT_EQ(result["info"]["rung"], "offload");
}

TEST_F(Memtest, DecodeOomKeepsTheDenoiseCheckpoint) {
  std::string work = tmp.sub("work"), out = tmp.sub("out");
  Json params = {{"megabytes", 64}, {"steps", 2}, {"step_ms", 1}, {"decode_oom_above_mb", 20}};
  auto model = lib->load("memtest", rung("resident"), "cuda:0");
  Recorder first;
  try {
    model->run(job(params), rung("resident"), work, out, first);
    FAIL() << "no OOM";
  } catch (const PluginCallError& e) {
    EXPECT_EQ(e.status(), REEL_ERR_OOM);
    EXPECT_TRUE(contains(e.message(), "decode"));
  }
  EXPECT_TRUE(fs::exists(work + "/denoise.ckpt"));
  // One rung lower decode needs 16 MiB and the denoise checkpoint is reused.
  auto lower = lib->load("memtest", rung("offload"), "cuda:0");
  Recorder second;
  Json result = lower->run(job(params), rung("offload"), work, out, second);
  EXPECT_EQ(result["info"]["denoise_reused"], true);
  EXPECT_EQ(second.stages(), std::vector<std::string>{"decode"});
}

TEST_F(Memtest, CancelStopsQuickly) {
  std::string work = tmp.sub("work"), out = tmp.sub("out");
  auto model = lib->load("memtest", rung("resident"), "cpu");
  Json params = {{"megabytes", 1}, {"steps", 1000}, {"step_ms", 1000}};
  Recorder hooks;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    hooks.cancel = true;
  });
  auto started = std::chrono::steady_clock::now();
  try {
    model->run(job(params), rung("resident"), work, out, hooks);
    FAIL() << "not cancelled";
  } catch (const PluginCallError& e) {
    EXPECT_EQ(e.status(), REEL_ERR_CANCELLED);
    EXPECT_TRUE(contains(e.message(), "cancelled in denoise"));
  }
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
}

TEST_F(Memtest, AHookExceptionStopsThePluginAndIsRethrown) {
  std::string work = tmp.sub("work"), out = tmp.sub("out");
  auto model = lib->load("memtest", rung("resident"), "cpu");
  Recorder hooks;
  hooks.throw_on_progress = true;
  Json params = {{"megabytes", 1}, {"steps", 1000}, {"step_ms", 1000}};
  auto started = std::chrono::steady_clock::now();
  try {
    model->run(job(params), rung("resident"), work, out, hooks);
    FAIL() << "no exception";
  } catch (const PluginCallError& e) {
    FAIL() << "the plugin's error instead of the hook's: " << e.what();
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "hook broke");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
}

// Peak resident set of this process, from /proc/self/status (VmHWM, kB).
int64_t peak_rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

TEST_F(Memtest, ReallyAllocatesTheEstimate) {
  std::string work = tmp.sub("work"), out = tmp.sub("out");
  const int64_t MiB = 1 << 20;
  ASSERT_LT(peak_rss_bytes(), 200 * MiB) << "run this test in a fresh process";
  auto model = lib->load("memtest", rung("resident"), "cpu");
  Recorder hooks;
  model->run(job({{"megabytes", 256}, {"steps", 1}, {"step_ms", 0}}), rung("resident"), work, out, hooks);
  EXPECT_GE(peak_rss_bytes(), 256 * MiB);
}

TEST_F(Memtest, UnknownModelIsBadInput) {
  try {
    lib->load("nope", rung("resident"), "cpu");
    FAIL() << "no error";
  } catch (const PluginCallError& e) {
    EXPECT_EQ(e.status(), REEL_ERR_BAD_INPUT);
    EXPECT_TRUE(contains(e.message(), "no model 'nope'"));
  }
}

TEST_F(Memtest, ModelOutlivesItsLibraryObject) {
  std::string work = tmp.sub("work"), out = tmp.sub("out");
  auto model = lib->load("memtest", rung("cpu"), "cpu");
  lib.reset();  // the LoadedModel keeps the .so open
  Recorder hooks;
  Json result = model->run(job({{"megabytes", 4}, {"step_ms", 0}}), rung("cpu"), work, out, hooks);
  EXPECT_EQ(result["info"]["rung"], "cpu");
}

std::string load_error(const std::string& path) {
  try {
    PluginLibrary::open(path);
  } catch (const PluginLoadError& e) {
    return e.what();
  }
  ADD_FAILURE() << "opened " << path;
  return {};
}

TEST(PluginLoad, AbiMismatchIsRefused) {
  std::string path = broken_path("abi_mismatch");
  EXPECT_EQ(load_error(path), path + ": plugin ABI version 999, this reel speaks 1; rebuild the plugin against this "
                                     "reel's plugins/sdk");
}

TEST(PluginLoad, NotAPluginIsRefused) {
  std::string path = broken_path("not_a_plugin");
  EXPECT_EQ(load_error(path), path + ": no symbol reel_plugin_entry: not a reel plugin");
}

TEST(PluginLoad, MissingFileIsRefused) {
  std::string path = broken_path("does_not_exist");
  EXPECT_EQ(load_error(path), path + ": no such file");
}

TEST(PluginLoad, DlopenFailureIsRefused) {
  TempDir tmp;
  std::string path = (tmp.path / "libgarbage.so").string();
  std::ofstream(path) << "not an ELF file\n";
  std::string err = load_error(path);
  EXPECT_TRUE(contains(err, path + ": dlopen failed: "));
}

TEST(PluginLoad, AThrowingDescribeIsAnInternalError) {
  auto lib = PluginLibrary::open(broken_path("describe_throws"));
  EXPECT_EQ(lib->name(), "describe_throws");
  try {
    lib->describe();
    FAIL() << "no error";
  } catch (const PluginCallError& e) {
    EXPECT_EQ(e.status(), REEL_ERR_INTERNAL);
    EXPECT_EQ(e.message(), "broken on purpose");
    EXPECT_TRUE(contains(e.what(), "plugin 'describe_throws' describe failed (internal): broken on purpose"));
  }
  // Still usable afterwards: the exception did not cross the ABI.
  EXPECT_THROW(lib->estimate(job({}), {{"name", "x"}}), PluginCallError);
}

TEST(PluginLoad, NullTableIsRefused) {
  EXPECT_THROW(PluginLibrary::from_table(nullptr, "builtin:none"), PluginLoadError);
}

TEST(PluginLoad, OpeningTwiceSharesOneInstanceSafely) {
  auto a = PluginLibrary::open(plugin_path("memtest"));
  auto b = PluginLibrary::open(plugin_path("memtest"));
  a.reset();
  EXPECT_EQ(b->describe()["models"][0]["name"], "memtest");
}

// ---- built-in sleep ----

TEST(BuiltinSleep, DescribesTheSameModelAsTheCatalog) {
  auto lib = PluginLibrary::from_table(reel_builtin_sleep_entry(REEL_PLUGIN_ABI_VERSION), "builtin:sleep");
  EXPECT_EQ(lib->name(), "builtin");
  EXPECT_EQ(lib->path(), "builtin:sleep");
  std::vector<ModelInfo> models = models_from_description(lib->describe(), "builtin");
  ASSERT_EQ(models.size(), 1u);
  Json mine = models[0].to_json();
  Json theirs = sleep_model_info().to_json();
  EXPECT_EQ(mine["params"], theirs["params"]);
  EXPECT_EQ(mine["name"], theirs["name"]);
  EXPECT_EQ(mine["description"], theirs["description"]);
  EXPECT_EQ(mine["provider"], "builtin");
  EXPECT_EQ(mine["ladder"], Json::parse(R"([{"name": "default", "kind": "placement",
      "help": "runs on the host; no device memory", "settings": {}}])"));
  RungEstimate e = rung_estimate_from_json(lib->estimate({{"params", {{"steps", 3}}}}, models[0].ladder[0]),
                                           models[0].ladder[0], "builtin");
  EXPECT_TRUE(e.cpu_only);
  EXPECT_EQ(e.device_bytes, 0);
  EXPECT_GT(e.host_bytes, 0);
}

TEST(BuiltinSleep, RunsFailsAndCancels) {
  auto lib = PluginLibrary::from_table(reel_builtin_sleep_entry(REEL_PLUGIN_ABI_VERSION), "builtin:sleep");
  Json rung = {{"name", "default"}, {"kind", "placement"}, {"settings", Json::object()}};
  auto model = lib->load("sleep", rung, "cpu");
  TempDir tmp;
  std::string work = tmp.sub("work"), out = tmp.sub("out");
  Json j = {{"id", "s1"}, {"model", "sleep"}, {"params", {{"seconds", 0.05}, {"steps", 5}, {"fail_at_step", 0}}}};

  Recorder ok;
  Json result = model->run(j, rung, work, out, ok);
  ASSERT_EQ(result["outputs"].size(), 1u);
  EXPECT_EQ(result["outputs"][0], out + "/result.json");
  Json written = Json::parse(std::ifstream(out + "/result.json"));
  EXPECT_EQ(written["model"], "sleep");
  EXPECT_EQ(written["job"], "s1");
  ASSERT_EQ(ok.progress_events.size(), 6u);
  EXPECT_EQ(ok.progress_events.back().step, 5);
  EXPECT_EQ(ok.progress_events.back().stage, "sleeping");

  Recorder failing;
  j["params"]["fail_at_step"] = 2;
  try {
    model->run(j, rung, work, out, failing);
    FAIL() << "no failure";
  } catch (const PluginCallError& e) {
    EXPECT_EQ(e.status(), REEL_ERR_INTERNAL);
    EXPECT_EQ(e.message(), "sleep: failing at step 2 as asked (fail_at_step)");
  }

  Recorder cancelling;
  j["params"] = {{"seconds", 60}, {"steps", 1}, {"fail_at_step", 0}};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    cancelling.cancel = true;
  });
  auto started = std::chrono::steady_clock::now();
  try {
    model->run(j, rung, work, out, cancelling);
    FAIL() << "not cancelled";
  } catch (const PluginCallError& e) {
    EXPECT_EQ(e.status(), REEL_ERR_CANCELLED);
  }
  canceller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(100 + 500));
}

// ---- description validation ----

Json good_model() {
  return Json::parse(R"({"name": "m", "params": [{"name": "n", "type": "integer", "min": 0, "max": 9, "default": 1}],
      "inputs": [{"role": "image", "required": true, "help": "x", "kinds": ["image/png"]}],
      "outputs": ["video/mp4"],
      "ladder": [{"name": "a", "kind": "placement"}, {"name": "b", "kind": "quality", "settings": {"steps": 10}}],
      "budget": "memory"})");
}

std::string description_error(Json model) {
  try {
    models_from_description({{"models", {model}}}, "p");
  } catch (const PluginLoadError& e) {
    return e.what();
  }
  ADD_FAILURE() << "accepted " << model.dump();
  return {};
}

TEST(Description, GoodOneMaps) {
  auto models = models_from_description({{"models", {good_model()}}}, "p");
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].inputs[0].role, "image");
  EXPECT_TRUE(models[0].inputs[0].required);
  EXPECT_EQ(models[0].ladder[1], Json::parse(R"({"name": "b", "kind": "quality", "help": "", "settings": {"steps": 10}})"));
  EXPECT_EQ(models[0].ladder[0]["settings"], Json::object());
  EXPECT_TRUE(models[0].limits.empty());
  Json limited = good_model();
  limited["limits"] = Json::array({"up to 16 s of audio"});
  EXPECT_EQ(models_from_description({{"models", {limited}}}, "p")[0].limits, std::vector<std::string>{"up to 16 s of audio"});
  limited["limits"] = Json::array({16});
  EXPECT_TRUE(contains(description_error(limited), "models[0].limits[0]"));
}

TEST(Description, MalformedOnesNameTheField) {
  Json m = good_model();
  m["params"][0]["type"] = "int";
  EXPECT_EQ(description_error(m),
            "plugin 'p': models[0].params[0].type: expected one of integer, number, boolean, string, got \"int\"");

  m = good_model();
  m["ladder"] = Json::parse(R"([{"name": "a", "kind": "placement"}, {"name": "b", "kind": "quality"},
                                {"name": "c", "kind": "placement"}])");
  EXPECT_TRUE(contains(description_error(m), "plugin 'p': models[0].ladder[2].kind: placement rung 'c' after a quality rung"));

  m = good_model();
  m["ladder"] = Json::parse(R"([{"name": "b", "kind": "quality"}])");
  EXPECT_TRUE(contains(description_error(m), "models[0].ladder[0].kind: the first (best) rung must be a placement rung"));

  m = good_model();
  m.erase("ladder");
  EXPECT_TRUE(contains(description_error(m), "models[0]: missing 'ladder'"));

  m = good_model();
  m["params"][0]["default"] = 12;
  EXPECT_TRUE(contains(description_error(m), "models[0]: model 'm', parameter 'n': default: "));

  m = good_model();
  m["params"][0]["defualt"] = 1;
  EXPECT_TRUE(contains(description_error(m), "models[0].params[0]: unknown field 'defualt'"));
  m["params"][0].erase("defualt");
  m["params"][0]["x-ui"] = "slider";  // extensions are allowed
  EXPECT_NO_THROW(models_from_description({{"models", {m}}}, "p"));

  m = good_model();
  m["ladder"][1]["kind"] = "speed";
  EXPECT_TRUE(contains(description_error(m), "models[0].ladder[1].kind: expected \"placement\" or \"quality\""));

  m = good_model();
  m["ladder"][1]["name"] = "a";
  EXPECT_TRUE(contains(description_error(m), "models[0].ladder[1].name: rung 'a' is listed twice"));

  m = good_model();
  m["inputs"][0]["required"] = "yes";
  EXPECT_TRUE(contains(description_error(m), "models[0].inputs[0].required: expected a boolean"));

  m = good_model();
  m["budget"] = "time";
  EXPECT_TRUE(contains(description_error(m), "models[0].budget"));

  // A remote budget: a pool with slots (docs/PLUGINS.md).
  const std::pair<Json, std::string> remote_budgets[] = {
      {{{"kind", "gpu"}, {"pool", "x"}, {"max_concurrent", 1}}, "models[0].budget.kind: expected \"remote\""},
      {{{"kind", "remote"}, {"max_concurrent", 1}}, "models[0].budget: missing 'pool'"},
      {{{"kind", "remote"}, {"pool", "a b"}, {"max_concurrent", 1}}, "models[0].budget.pool"},
      {{{"kind", "remote"}, {"pool", "x"}}, "models[0].budget: missing 'max_concurrent'"},
      {{{"kind", "remote"}, {"pool", "x"}, {"max_concurrent", 0}}, "models[0].budget.max_concurrent: expected an integer from 1"},
      {{{"kind", "remote"}, {"pool", "x"}, {"max_concurrent", 1}, {"requests_per_minute", 1.5}},
       "models[0].budget.requests_per_minute"},
      {{{"kind", "remote"}, {"pool", "x"}, {"max_concurrent", 1}, {"slots", 3}}, "unknown field 'slots'"},
  };
  for (const auto& [budget, why] : remote_budgets) {
    m = good_model();
    m["budget"] = budget;
    EXPECT_TRUE(contains(description_error(m), why)) << budget.dump() << ": " << description_error(m);
  }
  m = good_model();
  m["budget"] = {{"kind", "remote"}, {"pool", "dashscope"}, {"max_concurrent", 3}, {"requests_per_minute", 20}};
  auto remote = models_from_description({{"models", {m}}}, "p");
  ASSERT_TRUE(remote[0].remote.has_value());
  EXPECT_EQ(remote[0].remote->pool, "dashscope");
  EXPECT_EQ(remote[0].remote->max_concurrent, 3);
  EXPECT_EQ(remote[0].remote->requests_per_minute, 20);
  EXPECT_FALSE(models_from_description({{"models", {good_model()}}}, "p")[0].remote.has_value());

  EXPECT_THROW(models_from_description(Json::array(), "p"), PluginLoadError);
  EXPECT_THROW(models_from_description({{"models", Json::array()}}, "p"), PluginLoadError);
  try {
    models_from_description({{"models", {good_model(), good_model()}}}, "p");
    FAIL() << "duplicate accepted";
  } catch (const PluginLoadError& e) {
    EXPECT_TRUE(contains(e.what(), "plugin 'p': models[1]: model 'm' from 'p' is already provided by 'p'"));
  }
}

TEST(Estimate, MalformedOnesNameTheField) {
  Json rung = {{"name", "a"}, {"kind", "placement"}};
  EXPECT_THROW(rung_estimate_from_json({{"host_bytes", 1}}, rung, "p"), PluginCallError);
  try {
    rung_estimate_from_json({{"device_bytes", -1}, {"host_bytes", 1}}, rung, "p");
    FAIL();
  } catch (const PluginCallError& e) {
    EXPECT_EQ(e.status(), REEL_ERR_INTERNAL);
    EXPECT_TRUE(contains(e.message(), "'device_bytes' must be a non-negative integer"));
  }
  EXPECT_THROW(rung_estimate_from_json({{"device_bytes", 1}, {"host_bytes", 1}, {"relative_time", 0}}, rung, "p"),
               PluginCallError);
  RungEstimate e = rung_estimate_from_json({{"device_bytes", 1}, {"host_bytes", 2}}, rung, "p");
  EXPECT_EQ(e.relative_time, 1.0);
  EXPECT_EQ(e.resident_device_bytes, 0);
  EXPECT_FALSE(e.cpu_only);
}

}  // namespace
