// Watched input folders through the real reeld: real inotify (and polling) on temp
// folders, real jobs of the built-in `sleep` model and the test plugin `echo-media`
// (plugins/testing), restarts with SIGTERM and SIGKILL, SIGHUP reloads.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <thread>

#include <gtest/gtest.h>

#include "server/watch_files.hpp"
#include "support/test_support.hpp"

namespace reel::test {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kSleepJob = "model = \"sleep\"\n[params]\nseconds = 0\nsteps = 1\n";

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

std::string watch_config(const std::string& folder, const std::string& extra = "") {
  return "\n[[watch]]\npath = \"" + folder + "\"\nmodel = \"sleep\"\nparams = { seconds = 0, steps = 1 }\n"
         "settle_seconds = 0.3\npoll_interval_seconds = 0.2\n" + extra;
}

// A daemon with one watched folder `in` (and whatever else `config` adds).
class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    in = tmp.file("in");
    fs::create_directories(in);
  }

  void start(const std::string& config) {
    fs::create_directories(tmp.file("d"));
    daemon = std::make_unique<Daemon>(tmp.file("d"), config);
    daemon->start();
  }
  void start_default(const std::string& extra = "") { start(watch_config(in, extra)); }

  Json call(const std::string& method, const Json& params = Json::object()) {
    RawClient c(daemon->socket());
    c.hello();
    Json r = c.call(method, params);
    EXPECT_TRUE(r.value("ok", false)) << r.dump();
    return r.value("result", Json::object());
  }
  Json jobs_from(const std::string& folder) {
    return call("list", {{"source", "watch:" + folder}, {"limit", 10000}})["jobs"];
  }
  Json watch_row(const std::string& folder) {
    Json all = call("watches")["watches"];
    for (const auto& w : all)
      if (w["path"] == folder) return w;
    return Json();
  }
  std::string log() { return read_file(daemon->log_path()); }
  std::string done(const std::string& name) { return in + "/.reel/done/" + name; }
  std::string failed(const std::string& name) { return in + "/.reel/failed/" + name; }

  TempDir tmp;
  std::string in;
  std::unique_ptr<Daemon> daemon;
};

TEST_F(WatchTest, DroppedJobFileBecomesOneJobWithItsOutputNamedAfterIt) {
  start_default();
  write_file(in + "/anna.toml", kSleepJob);
  ASSERT_TRUE(wait_until([&] { return exists(done("anna.toml")); }, 20s)) << log();
  EXPECT_TRUE(exists(in + "/out/anna.json")) << "the sleep model's result.json, named after the input";
  EXPECT_FALSE(exists(in + "/anna.toml"));
  EXPECT_TRUE(sorted_names(in + "/.reel/processing").empty());
  Json jobs = jobs_from(in);
  ASSERT_EQ(jobs.size(), 1u) << jobs.dump();
  EXPECT_EQ(jobs[0]["state"], "succeeded");
  EXPECT_EQ(jobs[0]["source"], "watch:" + in);
  EXPECT_EQ(Json::parse(read_file(in + "/out/anna.json"))["job"], jobs[0]["id"]);

  // reelctl watch ls: the folder, its counts, no error.
  CommandResult ls = daemon->ctl({"watch", "ls"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_NE(ls.out.find("PATH"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find(in + "  inotify"), std::string::npos) << ls.out;
  Json row = watch_row(in);
  EXPECT_EQ(row["done"], 1) << row.dump();
  EXPECT_EQ(row["failed"], 0);
  EXPECT_EQ(row["pending"], 0);
  EXPECT_EQ(row["processing"], 0);
  EXPECT_EQ(row["last_error"], "");
}

TEST_F(WatchTest, SlowPartialWriteIsTakenOnlyAfterClose) {
  start_default();
  int fd = ::open((in + "/slow.toml").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  for (const char* chunk : {"model = \"sleep\"\n", "[params]\n", "seconds = 0\n", "steps = 3\n"}) {
    ASSERT_EQ(::write(fd, chunk, std::strlen(chunk)), static_cast<ssize_t>(std::strlen(chunk)));
    std::this_thread::sleep_for(400ms);   // the writer is slow on purpose: the file is incomplete meanwhile
    EXPECT_TRUE(jobs_from(in).empty()) << "taken while still open for writing";
    EXPECT_TRUE(exists(in + "/slow.toml"));
  }
  ::close(fd);
  ASSERT_TRUE(wait_until([&] { return exists(done("slow.toml")); }, 20s)) << log();
  Json jobs = jobs_from(in);
  ASSERT_EQ(jobs.size(), 1u) << jobs.dump();
  EXPECT_EQ(jobs[0]["params"]["steps"], 3) << "the whole file, including the last chunk";
}

TEST_F(WatchTest, RenamedInFilesAreTakenAndPartialNamesIgnored) {
  start_default();
  // A download in progress under an ignored name, renamed when complete.
  write_file(in + "/a.toml.part", kSleepJob);
  write_file(in + "/.hidden.toml", kSleepJob);
  // A file written elsewhere on the same filesystem and moved in.
  fs::create_directories(tmp.file("staging"));
  write_file(tmp.file("staging/b.toml"), kSleepJob);
  ASSERT_EQ(std::rename(tmp.file("staging/b.toml").c_str(), (in + "/b.toml").c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return exists(done("b.toml")); }, 20s)) << log();
  EXPECT_EQ(jobs_from(in).size(), 1u) << "the .part and the dotfile are not inputs";
  EXPECT_TRUE(exists(in + "/a.toml.part"));
  EXPECT_TRUE(exists(in + "/.hidden.toml"));

  ASSERT_EQ(std::rename((in + "/a.toml.part").c_str(), (in + "/a.toml").c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return exists(done("a.toml")); }, 20s)) << log();
  EXPECT_EQ(jobs_from(in).size(), 2u);
  EXPECT_TRUE(exists(in + "/out/a.json"));
  EXPECT_TRUE(exists(in + "/out/b.json"));
}

TEST_F(WatchTest, BurstOf200FilesBecomesExactly200Jobs) {
  start_default();
  for (int i = 0; i < 200; ++i) write_file(in + "/job" + std::to_string(i) + ".toml", kSleepJob);
  ASSERT_TRUE(wait_until([&] { return sorted_names(in + "/.reel/done").size() == 200; }, 240s))
      << sorted_names(in + "/.reel/done").size() << " done\n" << log();
  Json jobs = jobs_from(in);
  ASSERT_EQ(jobs.size(), 200u);
  std::set<std::string> keys;
  for (const auto& j : jobs) {
    EXPECT_EQ(j["state"], "succeeded") << j.dump();
    keys.insert(j["idempotency_key"].get<std::string>());
  }
  EXPECT_EQ(keys.size(), 200u);
  EXPECT_EQ(sorted_names(in + "/out").size(), 200u);
  EXPECT_TRUE(sorted_names(in + "/.reel/failed").empty());
  EXPECT_EQ(watch_row(in)["done"], 200);
}

TEST_F(WatchTest, InotifyQueueOverflowIsFollowedByAFullScan) {
  // reeld is stopped while more events arrive than the kernel queues for it (closes of
  // two ignored dotfiles, alternating so the kernel cannot merge them), then a real
  // input: its event is lost in the overflow, and only the scan that follows finds it.
  int64_t queue = std::stoll(read_file("/proc/sys/fs/inotify/max_queued_events"));
  if (queue > 200000) GTEST_SKIP() << "max_queued_events is " << queue << ": too many events to overflow quickly";
  start_default();
  ASSERT_EQ(watch_row(in)["mode"], "inotify");   // answered: start-up, watches included, is over
  daemon->signal(SIGSTOP);
  for (int64_t i = 0; i < queue + 100; ++i) write_file(in + (i % 2 ? "/.a" : "/.b"), "x");
  write_file(in + "/late.toml", kSleepJob);
  daemon->signal(SIGCONT);
  ASSERT_TRUE(wait_until([&] { return exists(done("late.toml")); }, 30s)) << log();
  EXPECT_NE(log().find("the inotify queue overflowed; scanning the whole folder"), std::string::npos);
  EXPECT_EQ(jobs_from(in).size(), 1u);
}

TEST_F(WatchTest, RestartResumesPendingAndHalfProcessedInputsExactlyOnce) {
  start_default();
  // Half-processed: its job is running when reeld is killed.
  write_file(in + "/long.toml", "model = \"sleep\"\n[params]\nseconds = 2\nsteps = 4\n");
  // Past its first step: the worker has exec'd, so no half-started child still holds the
  // state folder's lock when the next reeld starts.
  ASSERT_TRUE(wait_until([&] {
    Json jobs = jobs_from(in);
    return jobs.size() == 1 && jobs[0]["state"] == "running" && jobs[0]["progress"]["step"].get<int>() >= 1;
  }, 20s)) << log();
  EXPECT_TRUE(exists(in + "/.reel/processing/long.toml"));
  daemon->kill9();

  // Pending: dropped while reeld is down. Claimed but never submitted (as if reeld died
  // between the move and the submission): sitting in processing/ with no job.
  write_file(in + "/p1.toml", kSleepJob);
  write_file(in + "/p2.toml", kSleepJob);
  write_file(in + "/.reel/processing/orphan.toml", kSleepJob);

  daemon->start();
  for (const char* name : {"long.toml", "p1.toml", "p2.toml", "orphan.toml"})
    ASSERT_TRUE(wait_until([&] { return exists(done(name)); }, 30s)) << name << "\n" << log();
  Json jobs = jobs_from(in);
  EXPECT_EQ(jobs.size(), 4u) << "one job per input, the interrupted one resumed, not doubled: " << jobs.dump();
  for (const auto& j : jobs) EXPECT_EQ(j["state"], "succeeded") << j.dump();
  for (const char* out : {"long.json", "p1.json", "p2.json", "orphan.json"}) EXPECT_TRUE(exists(in + "/out/" + out)) << out;

  // A clean restart re-scans everything and makes nothing new.
  EXPECT_EQ(daemon->terminate(), 0);
  daemon->start();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(jobs_from(in).size(), 4u);

  // Finished while reeld was down: it died after p1's job ended but before the input
  // moved on. The next start finds the job final and finishes the input, no new job.
  EXPECT_EQ(daemon->terminate(), 0);
  ASSERT_EQ(std::rename(done("p1.toml").c_str(), (in + "/.reel/processing/p1.toml").c_str()), 0);
  fs::remove(in + "/out/p1.json");
  daemon->start();
  ASSERT_TRUE(wait_until([&] { return exists(done("p1.toml")) && exists(in + "/out/p1.json"); }, 20s)) << log();
  EXPECT_EQ(jobs_from(in).size(), 4u);
  EXPECT_TRUE(sorted_names(in + "/.reel/processing").empty());
}

TEST_F(WatchTest, MalformedJobFilesFailWithAnErrorRecordAndTheWatchGoesOn) {
  start_default();
  write_file(in + "/bad.json", "{ \"model\": ");
  write_file(in + "/typo.toml", "modle = \"sleep\"\n");
  write_file(in + "/nomodel.toml", "model = \"no-such-model\"\n");
  ASSERT_TRUE(wait_until([&] { return exists(failed("nomodel.toml.error.json")); }, 20s)) << log();
  ASSERT_TRUE(wait_until([&] { return exists(failed("typo.toml.error.json")) && exists(failed("bad.json.error.json")); }, 20s));
  Json bad = Json::parse(read_file(failed("bad.json.error.json")));
  EXPECT_NE(bad["error"].get<std::string>().find("invalid JSON"), std::string::npos) << bad.dump();
  EXPECT_EQ(bad["files"], Json::array({"bad.json"}));
  EXPECT_FALSE(bad["at"].get<std::string>().empty());
  EXPECT_NE(read_file(failed("typo.toml.error.json")).find("did you mean 'model'"), std::string::npos);
  EXPECT_NE(read_file(failed("nomodel.toml.error.json")).find("unknown model 'no-such-model'"), std::string::npos);
  EXPECT_TRUE(exists(failed("bad.json")));

  // A job that runs and fails: its input goes to failed/ with the job's error.
  write_file(in + "/fails.toml", "model = \"sleep\"\nmax_attempts = 1\n[params]\nseconds = 0\nsteps = 1\nfail_at_step = 1\n");
  ASSERT_TRUE(wait_until([&] { return exists(failed("fails.toml.error.json")); }, 20s)) << log();
  Json fails = Json::parse(read_file(failed("fails.toml.error.json")));
  EXPECT_EQ(fails["jobs"].size(), 1u);
  EXPECT_NE(fails["error"].get<std::string>().find("fail_at_step"), std::string::npos) << fails.dump();

  // The watch and the daemon carry on.
  write_file(in + "/good.toml", kSleepJob);
  ASSERT_TRUE(wait_until([&] { return exists(done("good.toml")); }, 20s)) << log();
  EXPECT_TRUE(daemon->running());
  Json row = watch_row(in);
  EXPECT_EQ(row["failed"], 4) << row.dump();
  EXPECT_EQ(row["done"], 1);
  EXPECT_NE(row["last_error"].get<std::string>().find("failed"), std::string::npos) << row.dump();
  CommandResult ls = daemon->ctl({"watch", "ls"});
  EXPECT_NE(ls.out.find("ago: "), std::string::npos) << ls.out;
}

TEST_F(WatchTest, MediaSetWithALateMemberBecomesOneJobWithAllOfThem) {
  start("\n[[watch]]\npath = \"" + in + "\"\nkind = \"media_set\"\nmodel = \"echo-media\"\nsettle_seconds = 1.5\n");
  write_file(in + "/anna.png", "PNG-bytes");
  std::this_thread::sleep_for(700ms);    // the audio arrives late, within the settle time
  EXPECT_TRUE(jobs_from(in).empty()) << "a set waits for its members";
  write_file(in + "/anna.wav", "WAV-bytes!");
  write_file(in + "/anna.txt", "a woman talking\n");
  ASSERT_TRUE(wait_until([&] { return exists(done("anna.png")); }, 20s)) << log();
  Json jobs = jobs_from(in);
  ASSERT_EQ(jobs.size(), 1u) << jobs.dump();
  EXPECT_EQ(jobs[0]["inputs"]["image"], in + "/.reel/processing/anna.png");
  EXPECT_EQ(jobs[0]["inputs"]["audio"], in + "/.reel/processing/anna.wav");
  EXPECT_EQ(jobs[0]["params"]["prompt"], "a woman talking");
  Json sidecar = Json::parse(read_file(in + "/out/anna.json"));
  EXPECT_EQ(sidecar["inputs"]["image"]["size"], 9);
  EXPECT_EQ(sidecar["inputs"]["audio"]["size"], 10);
  EXPECT_EQ(read_file(in + "/out/anna.mp4"), "ECHO\nWAV-bytes!PNG-bytes");
  EXPECT_EQ(sorted_names(in + "/.reel/done"), (std::vector<std::string>{"anna.png", "anna.txt", "anna.wav"}));
}

TEST_F(WatchTest, SymlinksAndInputsOutsideTheFolderAreRefused) {
  write_file(tmp.file("secret.png"), "SECRET");
  start_default();
  ASSERT_EQ(::symlink("/etc/passwd", (in + "/evil.toml").c_str()), 0);
  ASSERT_TRUE(wait_until([&] { return exists(failed("evil.toml.error.json")); }, 20s)) << log();
  struct stat st {};
  ASSERT_EQ(::lstat(failed("evil.toml").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link itself is moved aside, its target is untouched";
  EXPECT_NE(read_file(failed("evil.toml.error.json")).find("symbolic link"), std::string::npos);

  // A job file naming an input outside the folder.
  write_file(in + "/escape.toml", "model = \"echo-media\"\n[inputs]\nimage = \"../secret.png\"\n");
  ASSERT_TRUE(wait_until([&] { return exists(failed("escape.toml.error.json")); }, 20s)) << log();
  EXPECT_NE(read_file(failed("escape.toml.error.json")).find("not a file inside the watched folder"), std::string::npos);
  EXPECT_TRUE(jobs_from(in).empty());
  EXPECT_EQ(read_file("/etc/passwd").empty(), false);

  // ... while one inside it is fine.
  fs::create_directories(in + "/img");
  write_file(in + "/img/cat.png", "CAT");
  write_file(in + "/inside.toml", "model = \"echo-media\"\n[inputs]\nimage = \"img/cat.png\"\n");
  ASSERT_TRUE(wait_until([&] { return exists(done("inside.toml")); }, 20s)) << log();
  EXPECT_EQ(read_file(in + "/out/inside.mp4"), "ECHO\nCAT");
}

TEST_F(WatchTest, FilesOverTheSizeLimitAreRefused) {
  start_default("max_file_bytes = 64\n");
  write_file(in + "/big.toml", std::string(kSleepJob) + "# " + std::string(100, 'x') + "\n");
  write_file(in + "/small.toml", kSleepJob);
  ASSERT_TRUE(wait_until([&] { return exists(failed("big.toml.error.json")); }, 20s)) << log();
  EXPECT_NE(read_file(failed("big.toml.error.json")).find("over this watch's max_file_bytes (64)"), std::string::npos);
  ASSERT_TRUE(wait_until([&] { return exists(done("small.toml")); }, 20s)) << log();
  EXPECT_EQ(jobs_from(in).size(), 1u);
}

TEST_F(WatchTest, UnusableFoldersAreReportedAndRetriedOnReload) {
  std::string not_a_folder = tmp.file("plain-file");
  write_file(not_a_folder, "x");
  std::string blocked = tmp.file("blocked");   // root can write anywhere, but not where .reel is a file
  fs::create_directories(blocked);
  write_file(blocked + "/.reel", "not a folder");
  std::string missing = tmp.file("missing");
  start(watch_config(not_a_folder) + watch_config(blocked) + watch_config(missing));

  EXPECT_TRUE(daemon->running()) << "an unusable folder does not stop reeld";
  Json file_row = watch_row(not_a_folder), blocked_row = watch_row(blocked), missing_row = watch_row(missing);
  EXPECT_EQ(file_row["mode"], "stopped");
  EXPECT_NE(file_row["last_error"].get<std::string>().find("it is not a folder"), std::string::npos) << file_row.dump();
  EXPECT_NE(blocked_row["last_error"].get<std::string>().find("cannot use " + blocked + "/.reel/processing"),
            std::string::npos) << blocked_row.dump();
  EXPECT_NE(missing_row["last_error"].get<std::string>().find("No such file or directory"), std::string::npos);
  EXPECT_NE(log().find("watch " + missing + ": cannot watch the folder"), std::string::npos) << log();
  CommandResult ls = daemon->ctl({"watch", "ls"});
  EXPECT_NE(ls.out.find("stopped"), std::string::npos) << ls.out;

  // Fixed, then SIGHUP: the watch starts and takes what is there.
  fs::remove(blocked + "/.reel");
  write_file(blocked + "/x.toml", kSleepJob);
  daemon->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return exists(blocked + "/.reel/done/x.toml"); }, 20s)) << log();
  EXPECT_EQ(watch_row(blocked)["mode"], "inotify");
  EXPECT_EQ(watch_row(not_a_folder)["mode"], "stopped") << "still reported after the reload";
}

TEST_F(WatchTest, ReloadAddsAndRemovesWatches) {
  start("");
  EXPECT_TRUE(call("watches")["watches"].empty());
  EXPECT_NE(daemon->ctl({"watch", "ls"}).out.find("no watched folders"), std::string::npos);
  write_file(daemon->config_path(), read_file(daemon->config_path()) + watch_config(in));
  daemon->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return watch_row(in).is_object(); }, 10s)) << log();
  write_file(in + "/a.toml", kSleepJob);
  ASSERT_TRUE(wait_until([&] { return exists(done("a.toml")); }, 20s)) << log();

  std::string text = read_file(daemon->config_path());
  write_file(daemon->config_path(), text.substr(0, text.find("\n[[watch]]")));
  daemon->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return call("watches")["watches"].empty(); }, 10s)) << log();
  write_file(in + "/b.toml", kSleepJob);
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(exists(in + "/b.toml")) << "no longer watched";
}

TEST_F(WatchTest, PollingModeTakesFilesOnceStable) {
  start_default("poll = true\n");
  EXPECT_EQ(watch_row(in)["mode"], "poll");
  write_file(in + "/a.toml", kSleepJob);
  ASSERT_TRUE(wait_until([&] { return exists(done("a.toml")); }, 20s)) << log();
  EXPECT_EQ(jobs_from(in).size(), 1u);
}

TEST_F(WatchTest, PromptFilePerLineMakesOneJobPerLine) {
  start("\n[[watch]]\npath = \"" + in + "\"\nkind = \"prompt_file\"\nmodel = \"echo-media\"\nprompt_per_line = true\n"
        "priority = 7\n");
  write_file(in + "/ideas.txt", "a cat\n\na dog\n");
  ASSERT_TRUE(wait_until([&] { return exists(done("ideas.txt")); }, 20s)) << log();
  Json jobs = jobs_from(in);
  ASSERT_EQ(jobs.size(), 2u);
  for (const auto& j : jobs) EXPECT_EQ(j["priority"], 7);
  EXPECT_EQ(Json::parse(read_file(in + "/out/ideas.1.json"))["prompt"], "a cat");
  EXPECT_EQ(Json::parse(read_file(in + "/out/ideas.3.json"))["prompt"], "a dog");
}

}  // namespace
}  // namespace reel::test
