// The `wan` plugin (plugins/wan/wan_plugin.cpp) through the real daemon and worker
// processes: the tiny random-weight model end to end (MP4 + sidecar), a bad frames
// value, and a real model whose checkpoint folder is empty; image-to-video through reelctl
// (size from the image's aspect, an undecodable image) and through a watched media set. Skipped when the plugin was
// not built (no LibTorch or no FFmpeg on this machine).
#include <algorithm>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "sdk/plugin_host.hpp"
#include "support/test_support.hpp"

#ifdef REEL_HAVE_MEDIA
#include "media/video_writer.hpp"
#endif

namespace reel::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string kPluginDir = built_plugin_dir();
const std::string kWanPlugin = kPluginDir + "/libwan.so";

using Harness = BuiltPluginHarness;


#define SKIP_WITHOUT_WAN()                                                                  \
  if (!std::filesystem::exists(kWanPlugin))                                                 \
  GTEST_SKIP() << kWanPlugin << " was not built (LibTorch or FFmpeg not installed)"

#ifndef REEL_HAVE_MEDIA
#undef SKIP_WITHOUT_WAN
#define SKIP_WITHOUT_WAN() GTEST_SKIP() << "reel_media (FFmpeg) not built: the wan plugin is not either"
#endif

TEST(WanPlugin, TinyModelWritesAnMp4AndASidecar) {
  SKIP_WITHOUT_WAN();
  Harness h;
  Json job = h.submit({{"model", "wan2.1-t2v-tiny"}, {"params", {{"prompt", "a red fox in the snow"}}}});
  ASSERT_TRUE(h.wait_final(job["id"]));
  Json done = h.job(job["id"]);
  ASSERT_EQ(done["state"], "succeeded") << done.dump();

  std::string mp4, sidecar;
  for (const auto& o : done["outputs"]) {
    std::string p = o.get<std::string>();
    if (ends_with(p, ".mp4")) mp4 = p;
    if (ends_with(p, ".json")) sidecar = p;
  }
  ASSERT_FALSE(mp4.empty()) << done.dump();
  ASSERT_FALSE(sidecar.empty()) << done.dump();

#ifdef REEL_HAVE_MEDIA
  media::VideoInfo info = media::read_video_info(mp4);
  EXPECT_EQ(info.width, 64);
  EXPECT_EQ(info.height, 64);
  EXPECT_EQ(info.frames, 9);
  EXPECT_NEAR(info.fps, 16.0, 1e-6);
#endif

  Json side = Json::parse(read_file(sidecar));
  ASSERT_TRUE(side.contains("seed")) << side.dump();
  EXPECT_GE(side["seed"].get<int64_t>(), 0);
  EXPECT_EQ(side["model"], "wan2.1-t2v-tiny");
  EXPECT_EQ(side["random_weights"], true);
  EXPECT_EQ(side["prompt"], "a red fox in the snow");
  EXPECT_EQ(side["steps"], 4);
  EXPECT_EQ(side["frames"], 9);
  EXPECT_EQ(side["rung"], "cpu") << "a CPU-only host runs the cpu rung";
  EXPECT_EQ(side["precision"], "fp32");
  EXPECT_TRUE(side["fallbacks"].is_array() && side["fallbacks"].empty()) << side.dump();
  EXPECT_GT(side["peak_rss_bytes"].get<int64_t>(), 0);

  // The denoised latent was checkpointed in work_dir.
  Json shown = h.c->call("show", {{"id", job["id"]}})["result"];
  bool checkpointed = false;
  for (const auto& e : shown["events"])
    if (e["kind"] == "checkpoint" && e.dump().find("\"reused\":false") != std::string::npos) checkpointed = true;
  EXPECT_TRUE(checkpointed) << shown["events"].dump();
}

TEST(WanPlugin, SeedIsRecordedAndContactSheetWritten) {
  SKIP_WITHOUT_WAN();
  Harness h;
  Json job = h.submit({{"model", "wan2.1-t2v-tiny"},
                       {"params", {{"prompt", "waves"}, {"seed", 1234}, {"contact_sheet", true},
                                   {"solver", "euler"}, {"steps", 2}, {"width", 96}, {"frames", 5}}}});
  ASSERT_TRUE(h.wait_final(job["id"]));
  Json done = h.job(job["id"]);
  ASSERT_EQ(done["state"], "succeeded") << done.dump();
  std::string png, sidecar;
  for (const auto& o : done["outputs"]) {
    std::string p = o.get<std::string>();
    if (ends_with(p, ".png")) png = p;
    if (ends_with(p, ".json")) sidecar = p;
  }
  EXPECT_TRUE(std::filesystem::exists(png)) << done.dump();
  ASSERT_FALSE(sidecar.empty());
  Json side = Json::parse(read_file(sidecar));
  EXPECT_EQ(side["seed"], 1234);
  EXPECT_EQ(side["width"], 96);
  EXPECT_EQ(side["height"], 64);
  EXPECT_EQ(side["frames"], 5);
  EXPECT_EQ(side["solver"], "euler");
}

TEST(WanPlugin, FramesThatAreNot4nPlus1FailTheJob) {
  SKIP_WITHOUT_WAN();
  Harness h;
  Json job = h.submit({{"model", "wan2.1-t2v-tiny"}, {"params", {{"prompt", "x"}, {"frames", 10}}}});
  ASSERT_TRUE(h.wait_final(job["id"]));
  Json done = h.job(job["id"]);
  EXPECT_EQ(done["state"], "failed") << done.dump();
  EXPECT_NE(done.value("error", std::string()).find("frames"), std::string::npos) << done.dump();
}

TEST(WanPlugin, MissingCheckpointNamesTheFirstMissingFile) {
  SKIP_WITHOUT_WAN();
  TempDir empty;
  Harness h({"REEL_WAN21_T2V_1_3B_DIR=" + empty.path()});
  // The plugin checks the files when it estimates (planning, at submission), so the
  // submission is refused before anything is queued, naming the missing file.
  Json r = h.c->call("submit", {{"job", {{"model", "wan2.1-t2v-1.3b"}, {"params", {{"prompt", "x"}}}}}});
  ASSERT_FALSE(r["ok"].get<bool>()) << r.dump();
  EXPECT_EQ(r["error"]["code"], "missing_weights");
  std::string error = r["error"]["message"];
  EXPECT_NE(error.find("config.json"), std::string::npos) << r.dump();
  EXPECT_NE(error.find(empty.path()), std::string::npos) << error;
}


#ifdef REEL_HAVE_MEDIA
// Image-to-video through reelctl: the output keeps the image's aspect at the model's
// max_area (a 2:1 landscape at 64*64 gives 80x32: latent 4x10, see wan::i2v_size), and an
// image FFmpeg cannot decode fails the job with an error that says so.
TEST(WanPlugin, TinyImageToVideoFollowsTheImageAspect) {
  SKIP_WITHOUT_WAN();
  Harness h;
  const int W = 100, H = 50;
  std::vector<uint8_t> rgb(static_cast<size_t>(W) * H * 3);
  for (size_t i = 0; i < rgb.size(); ++i) rgb[i] = static_cast<uint8_t>(i * 7);
  const std::string png = h.dir.path() + "/cat.png";
  media::write_png(png, rgb.data(), W, H);

  CommandResult r = h.daemon.ctl({"submit", "wan2.1-i2v-tiny", "--input", "image=" + png, "--param",
                                  "prompt=a cat on a sofa", "--wait"}, std::chrono::seconds(240));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  Json jobs = h.c->call("list")["result"]["jobs"];
  ASSERT_EQ(jobs.size(), 1u) << jobs.dump();
  Json done = h.job(jobs[0]["id"]);
  ASSERT_EQ(done["state"], "succeeded") << done.dump();
  const std::string mp4 = output_ending(done, ".mp4");
  ASSERT_FALSE(mp4.empty()) << done.dump();
  media::VideoInfo info = media::read_video_info(mp4);
  EXPECT_EQ(info.width, 80);
  EXPECT_EQ(info.height, 32);
  EXPECT_EQ(info.frames, 9);
}

TEST(WanPlugin, UndecodableImageFailsTheJobClearly) {
  SKIP_WITHOUT_WAN();
  Harness h;
  const std::string bad = h.dir.path() + "/cat.png";
  write_file(bad, "not a picture, only text that claims to be a png");
  CommandResult r = h.daemon.ctl({"submit", "wan2.1-i2v-tiny", "--input", "image=" + bad, "--param", "prompt=x",
                                  "--wait"}, std::chrono::seconds(240));
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  Json jobs = h.c->call("list")["result"]["jobs"];
  ASSERT_EQ(jobs.size(), 1u) << jobs.dump();
  Json done = h.job(jobs[0]["id"]);
  EXPECT_EQ(done["state"], "failed") << done.dump();
  const std::string error = done.value("error", std::string());
  EXPECT_NE(error.find("not a decodable image"), std::string::npos) << done.dump();
  EXPECT_NE(error.find(bad), std::string::npos) << done.dump();

  // No image at all: refused at submission, naming the input.
  Json none = h.c->call("submit", {{"job", {{"model", "wan2.1-i2v-tiny"}, {"params", {{"prompt", "x"}}}}}});
  ASSERT_FALSE(none["ok"].get<bool>()) << none.dump();
  EXPECT_NE(none["error"]["message"].get<std::string>().find("requires input 'image'"), std::string::npos) << none.dump();
}

// A watched folder with a media set (cat.png + cat.txt) for the i2v model: one job with the
// image as its input and the text as its prompt, and a video at the image's aspect.
TEST(WanPlugin, WatchedMediaSetMakesAnImageToVideoJob) {
  SKIP_WITHOUT_WAN();
  TempDir in_dir;
  const std::string in = in_dir.path();
  Harness h({}, "\n[[watch]]\npath = \"" + in + "\"\nkind = \"media_set\"\nmodel = \"wan2.1-i2v-tiny\"\n"
                "settle_seconds = 0.5\n");
  const int W = 50, H = 100;  // portrait 1:2 -> 32x80
  std::vector<uint8_t> rgb(static_cast<size_t>(W) * H * 3, 128);
  media::write_png(in + "/.cat.png.tmp", rgb.data(), W, H);
  write_file(in + "/cat.txt", "a cat turns its head\n");
  std::filesystem::rename(in + "/.cat.png.tmp", in + "/cat.png");
  Json jobs;
  ASSERT_TRUE(wait_until([&] {
    jobs = h.c->call("list")["result"]["jobs"];
    if (jobs.size() != 1) return false;
    std::string st = jobs[0]["state"];
    return st == "succeeded" || st == "failed";
  }, 240s)) << jobs.dump();
  Json done = h.job(jobs[0]["id"]);
  ASSERT_EQ(done["state"], "succeeded") << done.dump();
  EXPECT_EQ(done["params"]["prompt"], "a cat turns its head");
  EXPECT_TRUE(ends_with(done["inputs"]["image"].get<std::string>(), "cat.png")) << done.dump();
  const std::string mp4 = output_ending(done, ".mp4");
  ASSERT_FALSE(mp4.empty()) << done.dump();
  media::VideoInfo info = media::read_video_info(mp4);
  EXPECT_EQ(info.width, 32);
  EXPECT_EQ(info.height, 80);
}
#endif

// Straight through the plugin ABI (no daemon): a second run in the same work_dir (a retry
// after, say, an OOM in decode) reuses the denoised latent; cancellation is honoured.
struct Hooks : RunHooks {
  std::vector<Json> checkpoints;
  int64_t denoise_steps = 0;
  bool cancel = false;
  void progress(int64_t step, int64_t, const std::string& stage) override {
    if (stage == "denoise" && step > 0) ++denoise_steps;
  }
  bool cancelled() override { return cancel; }
  void log(int, const std::string&) override {}
  void memory_sample(uint64_t, uint64_t) override {}
  void event(const std::string& kind, const Json& data) override {
    if (kind == "checkpoint") checkpoints.push_back(data);
  }
};

Json cpu_rung(PluginLibrary& lib, const std::string& model) {
  const Json description = lib.describe();  // kept alive: ranging over part of a temporary dangles
  for (const auto& m : description["models"])
    if (m["name"] == model)
      for (const auto& r : m["ladder"])
        if (r["name"] == "cpu") return r;
  return Json();
}

// What the plugin describes: t2v models take width/height; i2v models take max_area and
// require the input role "image".
TEST(WanPlugin, DescribesImageToVideoInputsAndParams) {
  SKIP_WITHOUT_WAN();
  auto lib = PluginLibrary::open(kWanPlugin);
  const Json description = lib->describe();
  auto model = [&](const std::string& name) {
    for (const auto& m : description["models"])
      if (m["name"] == name) return m;
    return Json();
  };
  auto param_names = [](const Json& m) {
    std::vector<std::string> names;
    for (const auto& p : m["params"]) names.push_back(p["name"]);
    return names;
  };
  const Json t2v = model("wan2.1-t2v-tiny");
  ASSERT_FALSE(t2v.is_null());
  EXPECT_EQ(param_names(t2v).at(2), "width");
  EXPECT_EQ(param_names(t2v).at(3), "height");
  EXPECT_TRUE(t2v["inputs"].empty());
  for (const std::string name : {"wan2.1-i2v-tiny", "wan2.1-i2v-14b-480p", "wan2.1-i2v-14b-720p"}) {
    const Json i2v = model(name);
    ASSERT_FALSE(i2v.is_null()) << name;
    ASSERT_EQ(i2v["inputs"].size(), 1u) << i2v.dump();
    EXPECT_EQ(i2v["inputs"][0]["role"], "image");
    EXPECT_EQ(i2v["inputs"][0]["required"], true);
    const auto names = param_names(i2v);
    EXPECT_NE(std::find(names.begin(), names.end(), "max_area"), names.end()) << name;
    EXPECT_EQ(std::find(names.begin(), names.end(), "width"), names.end()) << name;
  }
}

TEST(WanPlugin, RetryReusesTheDenoisedLatentAndCancelStops) {
  SKIP_WITHOUT_WAN();
  auto lib = PluginLibrary::open(kWanPlugin);
  Json rung = cpu_rung(*lib, "wan2.1-t2v-tiny");
  ASSERT_FALSE(rung.is_null());
  Json est = lib->estimate({{"model", "wan2.1-t2v-tiny"}, {"params", {{"prompt", "x"}}}}, rung);
  EXPECT_EQ(est["cpu_only"], true);
  EXPECT_EQ(est["device_bytes"], 0);
  EXPECT_GT(est["host_bytes"].get<int64_t>(), 0);
  EXPECT_EQ(est["effective"]["frames"], 9);

  auto model = lib->load("wan2.1-t2v-tiny", rung, "cpu");
  TempDir work, out;
  Json job = {{"id", "j1"}, {"model", "wan2.1-t2v-tiny"},
              {"params", {{"prompt", "a cat"}, {"seed", -1}, {"steps", 3}, {"frames", 5}}}};
  Hooks first;
  Json r1 = model->run(job, rung, work.path(), out.path(), first);
  ASSERT_EQ(first.checkpoints.size(), 1u);
  EXPECT_EQ(first.checkpoints[0]["reused"], false);
  EXPECT_EQ(first.denoise_steps, 3);
  EXPECT_TRUE(std::filesystem::exists(work.file("latent.pt")));

  Hooks second;
  Json r2 = model->run(job, rung, work.path(), out.path(), second);
  ASSERT_EQ(second.checkpoints.size(), 1u);
  EXPECT_EQ(second.checkpoints[0]["reused"], true);
  EXPECT_EQ(second.denoise_steps, 0);
  EXPECT_EQ(r2["info"]["seed"], r1["info"]["seed"]);  // the random seed of the first attempt

  TempDir work2;
  Hooks cancelled;
  cancelled.cancel = true;
  try {
    model->run(job, rung, work2.path(), out.path(), cancelled);
    ADD_FAILURE() << "run ignored cancellation";
  } catch (const PluginCallError& e) {
    EXPECT_EQ(std::string(e.kind()), "cancelled") << e.message();
  }
}

}  // namespace
}  // namespace reel::test
