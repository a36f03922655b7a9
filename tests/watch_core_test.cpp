// The pure part of watched folders (core/watch_input.hpp) and the [[watch]] config
// tables: classification, media-set grouping, the idempotency key, job specs,
// output names, stability.
#include <algorithm>
#include <sstream>

#include <gtest/gtest.h>

#include "args.hpp"
#include "core/config.hpp"
#include "core/watch_input.hpp"
#include "exit_codes.hpp"
#include "views.hpp"
#include "support/test_support.hpp"

namespace reel {
namespace {

struct ClassifyCase {
  const char* name;
  const char* watch_kind;
  WatchFileKind kind;
  const char* role;
  const char* stem;
};

TEST(WatchCore, ClassifiesFileNames) {
  const ClassifyCase cases[] = {
      {".hidden.toml", "auto", WatchFileKind::ignored, "", ""},
      {"job.toml.part", "auto", WatchFileKind::ignored, "", ""},
      {"job.TMP", "auto", WatchFileKind::ignored, "", ""},
      {"movie.mp4.crdownload", "auto", WatchFileKind::ignored, "", ""},
      {"", "auto", WatchFileKind::ignored, "", ""},
      {"job.toml", "auto", WatchFileKind::job_file, "", "job"},
      {"job.JSON", "job_file", WatchFileKind::job_file, "", "job"},
      {"job.toml", "media_set", WatchFileKind::other, "", "job"},
      {"job.toml", "prompt_file", WatchFileKind::other, "", "job"},
      {"idea.txt", "prompt_file", WatchFileKind::prompt_file, "", "idea"},
      {"idea.txt", "job_file", WatchFileKind::other, "", "idea"},
      {"anna.txt", "media_set", WatchFileKind::media_member, "prompt", "anna"},
      {"anna.txt", "auto", WatchFileKind::media_member, "prompt", "anna"},
      {"anna.png", "auto", WatchFileKind::media_member, "image", "anna"},
      {"anna.v2.JPEG", "media_set", WatchFileKind::media_member, "image", "anna.v2"},
      {"anna.webp", "media_set", WatchFileKind::media_member, "image", "anna"},
      {"anna.jpg", "prompt_file", WatchFileKind::other, "", "anna"},
      {"anna.wav", "auto", WatchFileKind::media_member, "audio", "anna"},
      {"anna.mp3", "media_set", WatchFileKind::media_member, "audio", "anna"},
      {"anna.m4a", "media_set", WatchFileKind::media_member, "audio", "anna"},
      {"anna.flac", "media_set", WatchFileKind::media_member, "audio", "anna"},
      {"anna.wav", "job_file", WatchFileKind::other, "", "anna"},
      {"README", "auto", WatchFileKind::other, "", ""},
      {"video.mp4", "auto", WatchFileKind::other, "", "video"},
  };
  for (const auto& c : cases) {
    WatchFileClass got = classify_watch_file(c.name, c.watch_kind);
    EXPECT_EQ(got.kind, c.kind) << c.name << " in " << c.watch_kind;
    EXPECT_EQ(got.role, c.role) << c.name;
    if (c.kind != WatchFileKind::ignored) EXPECT_EQ(got.stem, c.stem) << c.name;
  }
}

TEST(WatchCore, MediaSetsSettleAfterTheirLastMember) {
  MediaSetGrouper g(1000);
  g.add(classify_watch_file("anna.png", "media_set"), "anna.png", 0);
  g.add(classify_watch_file("bob.wav", "media_set"), "bob.wav", 100);
  EXPECT_EQ(g.next_deadline(), 1000);
  g.add(classify_watch_file("anna.wav", "media_set"), "anna.wav", 800);   // late member moves the deadline
  EXPECT_TRUE(g.take_due(999).empty());
  auto due = g.take_due(1100);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].stem, "bob");
  EXPECT_TRUE(g.contains("anna.png"));
  EXPECT_FALSE(g.contains("bob.wav"));
  g.add(classify_watch_file("anna.txt", "media_set"), "anna.txt", 1200);
  g.add(classify_watch_file("anna.jpg", "media_set"), "anna.jpg", 1300);   // a second image
  EXPECT_TRUE(g.take_due(2299).empty());
  due = g.take_due(2300);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].members, (std::map<std::string, std::string>{
                                {"image", "anna.png"}, {"audio", "anna.wav"}, {"prompt", "anna.txt"}}));
  EXPECT_EQ(due[0].duplicates, std::vector<std::string>{"anna.jpg"});
  EXPECT_EQ(due[0].files(), (std::vector<std::string>{"anna.jpg", "anna.png", "anna.txt", "anna.wav"}));
  EXPECT_TRUE(due[0].has_media());
  EXPECT_EQ(g.size(), 0u);
  EXPECT_FALSE(g.next_deadline());
}

TEST(WatchCore, Fnv1a64KnownValues) {
  // The published FNV-1a 64 test vectors.
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(fnv1a64("foobar", 6), 0x85944171f73967e8ull);
  EXPECT_EQ(fnv1a64("bar", 3, fnv1a64("foo", 3)), fnv1a64("foobar", 6)) << "streaming";
  EXPECT_EQ(hex64(0xaf63dc4c8601ec8cull), "af63dc4c8601ec8c");
  EXPECT_EQ(hex64(1), "0000000000000001");
}

TEST(WatchCore, IdempotencyKeyDependsOnEveryPartOfTheInput) {
  WatchedFile a{"anna.png", 10, 1000, 42}, b{"anna.wav", 20, 2000, 43};
  std::string key = watch_idempotency_key("/in", {a, b});
  EXPECT_EQ(key, watch_idempotency_key("/in", {b, a})) << "member order does not matter";
  EXPECT_EQ(key.rfind("watch:", 0), 0u);
  EXPECT_LE(key.size(), 60u);
  EXPECT_NE(key, watch_idempotency_key("/in2", {a, b}));
  EXPECT_NE(key, watch_idempotency_key("/in", {a}));
  const WatchedFile variants[] = {{"anna2.png", 10, 1000, 42}, {"anna.png", 11, 1000, 42},
                                  {"anna.png", 10, 1001, 42}, {"anna.png", 10, 1000, 44}};
  for (const auto& v : variants) EXPECT_NE(key, watch_idempotency_key("/in", {v, b})) << v.name;
  EXPECT_EQ(watch_idempotency_key("/in", {a}, "line3"), watch_idempotency_key("/in", {a}) + ":line3");
}

TEST(WatchCore, PromptsFromText) {
  using P = std::vector<std::pair<int, std::string>>;
  EXPECT_EQ(watch_prompts("  a cat\nsitting  \n", false), (P{{0, "a cat\nsitting"}}));
  EXPECT_EQ(watch_prompts(" \n\t\n", false), P{});
  EXPECT_EQ(watch_prompts("a cat\n\n  a dog \r\n", true), (P{{1, "a cat"}, {3, "a dog"}}));
  EXPECT_EQ(watch_prompts("", true), P{});
}

TEST(WatchCore, SpecsTakeTheWatchDefaults) {
  Config::Watch w;
  w.path = "/in";
  w.model = "wan";
  w.params = {{"steps", 20}, {"size", 480}};
  w.policy = {{"quality_fallback", true}};
  w.priority = 5;
  JobSpec media = watch_media_spec(w, {{"image", "/in/.reel/processing/a.png"}}, "hello");
  EXPECT_EQ(media.model, "wan");
  EXPECT_EQ(media.params, (Json{{"steps", 20}, {"size", 480}, {"prompt", "hello"}}));
  EXPECT_EQ(media.inputs.at("image"), "/in/.reel/processing/a.png");
  EXPECT_EQ(media.priority, 5);
  EXPECT_EQ(media.source, "watch:/in");
  EXPECT_EQ(media.policy, w.policy);
  EXPECT_FALSE(watch_media_spec(w, {}, "").params.contains("prompt"));

  JobSpec file;
  file.model = "wan";
  file.params = {{"steps", 30}};
  file.priority = -2;
  file.policy = {{"rung", "t5-cpu"}};
  apply_watch_defaults(w, file, false);
  EXPECT_EQ(file.params, (Json{{"steps", 30}, {"size", 480}})) << "the file's own params win";
  EXPECT_EQ(file.priority, -2) << "job files keep their priority";
  EXPECT_EQ(file.policy, (Json{{"rung", "t5-cpu"}}));

  JobSpec other;
  other.model = "sleep";
  apply_watch_defaults(w, other, false);
  EXPECT_EQ(other.params, Json::object()) << "the watch's defaults are for its own model";
  EXPECT_EQ(other.source, "watch:/in");
}

TEST(WatchCore, OutputsAreNamedAfterTheInput) {
  using V = std::vector<std::string>;
  EXPECT_EQ(watch_output_names("anna", {"/o/j1/video.mp4", "/o/j1/video.json"}), (V{"anna.mp4", "anna.json"}));
  EXPECT_EQ(watch_output_names("anna", {"/o/a.mp4", "/o/b.mp4"}), (V{"anna.a.mp4", "anna.b.mp4"}));
  EXPECT_EQ(watch_output_names("x.3", {"/o/README"}), (V{"x.3.README"}));
  EXPECT_EQ(watch_output_names("x", {}), V{});
}

TEST(WatchCore, PathIsInsideComparesWholeComponents) {
  EXPECT_TRUE(path_is_inside("/in", "/in"));
  EXPECT_TRUE(path_is_inside("/in", "/in/a.png"));
  EXPECT_TRUE(path_is_inside("/in", "/in/sub/a.png"));
  EXPECT_FALSE(path_is_inside("/in", "/in2/a.png"));
  EXPECT_FALSE(path_is_inside("/in", "/etc/passwd"));
  EXPECT_FALSE(path_is_inside("", "/in"));
  EXPECT_TRUE(path_is_inside("/", "/etc"));
}

TEST(WatchCore, StabilityNeedsAQuietPeriod) {
  StabilityTracker t(1000);
  const int64_t ms = 1000000;   // ns per ms
  EXPECT_TRUE(t.observe("old", 5, 0, 5000)) << "an mtime older than the quiet period: taken at first sight";
  EXPECT_FALSE(t.observe("new", 5, 4800 * ms, 5000));
  EXPECT_FALSE(t.observe("new", 9, 5400 * ms, 5500)) << "grew: the clock restarts";
  EXPECT_FALSE(t.observe("new", 9, 5400 * ms, 6000));
  EXPECT_TRUE(t.observe("new", 9, 5400 * ms, 6500));
  // A file with an mtime in the future (a skewed network clock) still settles.
  EXPECT_FALSE(t.observe("skew", 1, 99999 * ms, 7000));
  EXPECT_TRUE(t.observe("skew", 1, 99999 * ms, 8000));
  t.forget("skew");
  EXPECT_FALSE(t.observe("skew", 1, 99999 * ms, 8000));
}

TEST(WatchCore, ErrorRecord) {
  Json r = watch_error_record({"bad.json"}, {"abc123"}, "invalid JSON", 1700000000123);
  EXPECT_EQ(r["files"], Json::array({"bad.json"}));
  EXPECT_EQ(r["jobs"], Json::array({"abc123"}));
  EXPECT_EQ(r["error"], "invalid JSON");
  EXPECT_EQ(r["at"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(r["at_ms"], 1700000000123);
}

// ---- [[watch]] in reeld.toml ----

std::string config_error(const std::string& text) {
  try {
    parse_config(text, "reeld.toml");
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ConfigError for:\n" << text;
  return "";
}

TEST(WatchConfig, ReadsEveryKey) {
  Config c = parse_config(R"(
[[watch]]
path = "/srv/in"
model = "wan2.1-t2v-1.3b"
params = { steps = 30, size = 480, tags = ["a", "b"] }
policy = { quality_fallback = true, floor = { steps = 20 } }
output_dir = "/srv/out"
priority = 5
kind = "media_set"
prompt_per_line = true
settle_seconds = 2.5
poll = true
poll_interval_seconds = 1
max_file_bytes = "200MiB"

[[watch]]
path = "/srv/jobs"
kind = "job_file"
)", "reeld.toml");
  ASSERT_EQ(c.watches.size(), 2u);
  const auto& w = c.watches[0];
  EXPECT_EQ(w.path, "/srv/in");
  EXPECT_EQ(w.model, "wan2.1-t2v-1.3b");
  EXPECT_EQ(w.params, (Json{{"steps", 30}, {"size", 480}, {"tags", {"a", "b"}}}));
  EXPECT_EQ(w.policy, (Json{{"quality_fallback", true}, {"floor", {{"steps", 20}}}}));
  EXPECT_EQ(w.output_dir, "/srv/out");
  EXPECT_EQ(w.priority, 5);
  EXPECT_EQ(w.kind, "media_set");
  EXPECT_TRUE(w.prompt_per_line);
  EXPECT_EQ(w.settle_seconds, 2.5);
  EXPECT_EQ(w.poll, "true");
  EXPECT_EQ(w.poll_interval_seconds, 1.0);
  EXPECT_EQ(w.max_file_bytes, int64_t{200} << 20);
  const auto& j = c.watches[1];
  EXPECT_EQ(j.kind, "job_file");
  EXPECT_EQ(j.model, "");
  EXPECT_EQ(j.poll, "auto");
  EXPECT_EQ(j.settle_seconds, 5.0);
  EXPECT_EQ(j.max_file_bytes, int64_t{1} << 30);

  // Round trip, and no [[watch]] written when there is none.
  std::string text = to_toml(c);
  EXPECT_EQ(to_toml(parse_config(text, "again.toml")), text);
  EXPECT_EQ(to_toml(Config{}).find("watch"), std::string::npos);
}

TEST(WatchConfig, ProblemsNameTheWatchAndKey) {
  const std::pair<const char*, const char*> cases[] = {
      {"[[watch]]\nmodel = \"sleep\"\n", "watch[0].path: required"},
      {"[[watch]]\npath = \"in\"\nmodel = \"sleep\"\n", "watch[0].path: must be an absolute path"},
      {"[[watch]]\npath = \"/a\"\nmodel = \"sleep\"\n[[watch]]\npath = \"/b\"\nmodle = \"x\"\n",
       "watch[1]: unknown key 'modle' (did you mean 'model'?)"},
      {"[[watch]]\npath = \"/a\"\n", "watch[0].model: required unless kind = \"job_file\""},
      {"[[watch]]\npath = \"/a\"\nmodel = \"m\"\nkind = \"video\"\n", "watch[0].kind: must be one of"},
      {"[[watch]]\npath = \"/a\"\nmodel = \"m\"\npriority = 5000\n", "watch[0].priority: must be between -1000 and 1000"},
      {"[[watch]]\npath = \"/a\"\nmodel = \"m\"\npoll = \"sometimes\"\n", "watch[0].poll: expected true, false or \"auto\""},
      {"[[watch]]\npath = \"/a\"\nmodel = \"m\"\nmax_file_bytes = \"lots\"\n", "watch[0].max_file_bytes: not a size"},
      {"[[watch]]\npath = \"/a\"\nmodel = \"m\"\nparams = 3\n", "watch[0].params: expected a table, got an integer"},
      {"[[watch]]\npath = \"/a\"\nmodel = \"m\"\nparams = { when = 1979-05-27 }\n", "watch[0].params.when: a date"},
      {"[[watch]]\npath = \"/a\"\nmodel = \"m\"\npolicy = { floor = { steps = 0 } }\n", "watch[0].policy: "},
      {"[[watch]]\npath = \"/a\"\nmodel = \"m\"\noutput_dir = \"/a/\"\n", "watch[0].output_dir: must not be the watched folder"},
      {"[[watch]]\npath = \"/a\"\nmodel = \"m\"\n[[watch]]\npath = \"/a/\"\nmodel = \"m\"\n",
       "watch[1].path: '/a/' is already watched by watch[0]"},
      {"watch = 3\n", "watch: expected an array of tables"},
      {"[watch]\npath = \"/a\"\n", "watch: expected an array of tables ([[watch]]), got a table"},
      {"[[watches]]\npath = \"/a\"\n", "'watches' (did you mean 'watch'?)"},
  };
  for (const auto& [text, want] : cases) {
    std::string got = config_error(text);
    EXPECT_NE(got.find(want), std::string::npos) << "config:\n" << text << "\ngot: " << got << "\nwant: " << want;
  }
}

TEST(WatchConfig, ShippedExampleIsValidAndShowsTheDefaults) {
  // config/reeld.toml documents [[watch]] as a commented example; uncommented, it must
  // load, and every key it shows without a comment of its own must be the default.
  std::string text = test::read_file(std::string(REEL_SOURCE_DIR) + "/config/reeld.toml");
  auto at = text.find("# [[watch]]");
  ASSERT_NE(at, std::string::npos);
  std::string example;
  std::istringstream lines(text.substr(at));
  for (std::string line; std::getline(lines, line);) example += line.substr(std::min<std::size_t>(2, line.size())) + "\n";
  Config c = parse_config(example, "example.toml");
  ASSERT_EQ(c.watches.size(), 1u);
  Config::Watch defaults;
  const auto& w = c.watches[0];
  EXPECT_EQ(w.path, "/srv/reel/in");
  EXPECT_EQ(w.kind, defaults.kind);
  EXPECT_EQ(w.policy, defaults.policy);
  EXPECT_EQ(w.output_dir, defaults.output_dir);
  EXPECT_EQ(w.priority, defaults.priority);
  EXPECT_EQ(w.prompt_per_line, defaults.prompt_per_line);
  EXPECT_EQ(w.settle_seconds, defaults.settle_seconds);
  EXPECT_EQ(w.poll, defaults.poll);
  EXPECT_EQ(w.poll_interval_seconds, defaults.poll_interval_seconds);
  EXPECT_EQ(w.max_file_bytes, defaults.max_file_bytes);
}

// ---- reelctl watch ls ----

TEST(WatchCtl, ParsesWatchLs) {
  EXPECT_EQ(ctl::parse_args({"watch", "ls"}).kind, ctl::CommandKind::watch);
  EXPECT_EQ(ctl::parse_args({"--json", "watch", "ls"}).global.json, true);
  EXPECT_THROW(ctl::parse_args({"watch"}), ctl::UsageError);
  EXPECT_THROW(ctl::parse_args({"watch", "add"}), ctl::UsageError);
  EXPECT_THROW(ctl::parse_args({"watch", "ls", "extra"}), ctl::UsageError);
  EXPECT_NE(ctl::command_usage("watch").find("reelctl watch ls"), std::string::npos);
}

TEST(WatchCtl, RendersOneRowPerFolder) {
  Json watches = Json::array({
      {{"path", "/srv/in"}, {"mode", "inotify"}, {"pending", 2}, {"processing", 1}, {"done", 40}, {"failed", 1},
       {"last_error", "bad.toml failed: unknown field"}, {"last_error_at", 1000000}},
      {{"path", "/srv/media"}, {"mode", "stopped"}, {"pending", 0}, {"processing", 0}, {"done", 0}, {"failed", 0},
       {"last_error", ""}, {"last_error_at", 0}},
  });
  std::string out = ctl::render_watches(watches, 1000000 + 180000, ctl::Style{});
  std::istringstream lines(out);
  std::string header, first, second;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_EQ(header.substr(0, 4), "PATH");
  EXPECT_NE(header.find("PENDING  PROCESSING  DONE  FAILED  LAST ERROR"), std::string::npos) << out;
  EXPECT_EQ(first.rfind("/srv/in     inotify  2        1           40    1       3m ago: bad.toml failed", 0), 0u) << out;
  EXPECT_EQ(second.rfind("/srv/media  stopped  0        0           0     0       -", 0), 0u) << out;
  EXPECT_EQ(ctl::render_watches(Json::array(), 0, ctl::Style{}).rfind("no watched folders", 0), 0u);
}

}  // namespace
}  // namespace reel
