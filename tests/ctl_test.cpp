// reelctl: pure unit tests (argument parsing, rendering, durations, exit codes), the
// real binary against a missing socket, and the real binary against a real reeld.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <thread>

#include "args.hpp"
#include "client.hpp"
#include "commands.hpp"
#include "core/budget_scheduler.hpp"
#include "core/protocol.hpp"
#include "duration.hpp"
#include "exit_codes.hpp"
#include "progress_view.hpp"
#include "render.hpp"
#include "submit_spec.hpp"
#include "support/test_support.hpp"
#include "views.hpp"

namespace reel::ctl {
namespace {

using test::CommandResult;
using test::Daemon;
using test::TempDir;

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// A table line's cells: the text between runs of two or more spaces.
std::vector<std::string> cells(const std::string& line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    size_t gap = line.find("  ", i);
    if (gap == std::string::npos) gap = line.size();
    out.push_back(line.substr(i, gap - i));
    i = line.find_first_not_of(' ', gap);
    if (i == std::string::npos) break;
  }
  return out;
}

// The first line of `text` that starts with `prefix` (after leading spaces), or "".
std::string line_starting(const std::string& text, const std::string& prefix) {
  for (const auto& l : split_lines(text)) {
    size_t start = l.find_first_not_of(' ');
    if (start != std::string::npos && l.compare(start, prefix.size(), prefix) == 0) return l;
  }
  return "";
}

// The lines of the section headed `title` ("plan:"; also matches "plan (...):") up to the
// next blank line, its table's header first.
std::vector<std::string> section(const std::string& text, const std::string& title) {
  std::vector<std::string> out;
  bool in = false;
  for (const auto& l : split_lines(text)) {
    if (in && l.empty()) break;
    if (in) out.push_back(l);
    if (l == title || (title.back() == ':' && l.rfind(title.substr(0, title.size() - 1) + " (", 0) == 0)) in = true;
  }
  return out;
}

// The row of a section's table whose first cell is `first`.
std::vector<std::string> row(const std::vector<std::string>& lines, const std::string& first) {
  for (const auto& l : lines) {
    auto c = cells(l);
    if (!c.empty() && c[0] == first) return c;
  }
  return {};
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// parse_args must fail with a usage error (exit 2); returns its message.
std::string usage_error(const std::vector<std::string>& args) {
  try {
    parse_args(args);
  } catch (const UsageError& e) {
    EXPECT_EQ(e.exit_code, kExitUsage);
    return e.what();
  }
  ADD_FAILURE() << "no usage error for: " << testing::PrintToString(args);
  return "";
}

// ---------------------------------------------------------------------------------
// Argument parsing

TEST(CtlArgs, GlobalOptionsBeforeAndAfterTheCommand) {
  Command c = parse_args({"--socket", "/s", "--json", "-q", "--no-color", "--timeout", "2.5", "status"});
  EXPECT_EQ(c.kind, CommandKind::status);
  EXPECT_EQ(c.global.socket.value(), "/s");
  EXPECT_TRUE(c.global.json);
  EXPECT_TRUE(c.global.quiet);
  EXPECT_TRUE(c.global.no_color);
  EXPECT_DOUBLE_EQ(c.global.timeout_s, 2.5);

  Command d = parse_args({"ls", "--json", "--socket=/x", "--timeout=3"});
  EXPECT_EQ(d.kind, CommandKind::ls);
  EXPECT_TRUE(d.global.json);
  EXPECT_EQ(d.global.socket.value(), "/x");
  EXPECT_DOUBLE_EQ(d.global.timeout_s, 3);

  Command e = parse_args({"pause"});
  EXPECT_FALSE(e.global.socket);
  EXPECT_DOUBLE_EQ(e.global.timeout_s, 60);
}

TEST(CtlArgs, Submit) {
  Command c = parse_args({"submit", "sleep", "--param", "seconds=2", "-p", "steps=4", "--param=name=hello world",
                          "--input", "image=cat.png", "--priority", "-5", "--max-attempts", "3",
                          "--idempotency-key", "k1", "--wait"});
  ASSERT_EQ(c.kind, CommandKind::submit);
  const SubmitArgs& s = c.submit;
  EXPECT_EQ(s.model, "sleep");
  ASSERT_EQ(s.params.size(), 3u);
  EXPECT_EQ(s.params[0].first, "seconds");
  EXPECT_EQ(s.params[0].second, Json(2));
  EXPECT_EQ(s.params[1].second, Json(4));
  EXPECT_EQ(s.params[2].first, "name");
  EXPECT_EQ(s.params[2].second, Json("hello world"));
  ASSERT_EQ(s.inputs.size(), 1u);
  EXPECT_EQ(s.inputs[0], (std::pair<std::string, std::string>{"image", "cat.png"}));
  EXPECT_EQ(s.priority.value(), -5);
  EXPECT_EQ(s.max_attempts.value(), 3);
  EXPECT_EQ(s.idempotency_key.value(), "k1");
  EXPECT_TRUE(s.wait);
  EXPECT_FALSE(s.file);

  Command f = parse_args({"submit", "--file", "job.toml"});
  EXPECT_EQ(f.submit.file.value(), "job.toml");
  EXPECT_EQ(f.submit.model, "");
  EXPECT_FALSE(f.submit.wait);
}

TEST(CtlArgs, SubmitErrors) {
  EXPECT_NE(usage_error({"submit"}).find("MODEL"), std::string::npos);
  EXPECT_NE(usage_error({"submit", "sleep", "--param", "seconds"}).find("seconds"), std::string::npos);
  usage_error({"submit", "sleep", "--param"});
  usage_error({"submit", "sleep", "--input", "image"});
  usage_error({"submit", "sleep", "--input", "=x"});
  usage_error({"submit", "sleep", "--priority", "1001"});
  usage_error({"submit", "sleep", "--priority", "x"});
  usage_error({"submit", "sleep", "--max-attempts", "0"});
  usage_error({"submit", "sleep", "--wait=yes"});
  usage_error({"submit", "sleep", "extra"});
  usage_error({"submit", "sleep", "--state", "queued"});   // an ls option
}

TEST(CtlArgs, SubmitPolicyFlags) {
  Command c = parse_args({"submit", "wan", "--rung", "t5-cpu", "--allow-degrade", "--degrade-now", "--max-slowdown",
                          "2.5", "--floor", "steps=20", "--floor=precision=bf16", "--floor", "size=480",
                          "--floor", "steps=25"});
  const SubmitArgs& s = c.submit;
  EXPECT_EQ(s.rung.value(), "t5-cpu");
  EXPECT_TRUE(s.allow_degrade);
  EXPECT_FALSE(s.no_quality_loss);
  EXPECT_TRUE(s.degrade_now);
  EXPECT_DOUBLE_EQ(s.max_slowdown.value(), 2.5);
  ASSERT_EQ(s.floor.size(), 4u);
  EXPECT_EQ(s.floor[0], (std::pair<std::string, Json>{"steps", Json(20)}));
  EXPECT_EQ(s.floor[1], (std::pair<std::string, Json>{"precision", Json("bf16")}));
  EXPECT_EQ(s.floor[2], (std::pair<std::string, Json>{"size", Json(480)}));
  EXPECT_TRUE(s.floor[0].second.is_number_integer());

  Command d = parse_args({"submit", "wan", "--no-quality-loss"});
  EXPECT_TRUE(d.submit.no_quality_loss);
  EXPECT_FALSE(d.submit.rung);
  EXPECT_FALSE(d.submit.max_slowdown);
  EXPECT_TRUE(d.submit.floor.empty());

  EXPECT_NE(usage_error({"submit", "wan", "--floor", "colour=red"}).find("steps, frames, size, precision"),
            std::string::npos);
  EXPECT_NE(usage_error({"submit", "wan", "--floor", "precision=fp9"}).find("fp9"), std::string::npos);
  usage_error({"submit", "wan", "--floor", "steps=0"});
  usage_error({"submit", "wan", "--floor", "steps=2.5"});
  usage_error({"submit", "wan", "--floor", "frames="});
  usage_error({"submit", "wan", "--floor", "steps"});
  usage_error({"submit", "wan", "--floor"});
  usage_error({"submit", "wan", "--max-slowdown", "0"});
  usage_error({"submit", "wan", "--max-slowdown", "-2"});
  usage_error({"submit", "wan", "--max-slowdown", "fast"});
  usage_error({"submit", "wan", "--max-slowdown", "inf"});
  usage_error({"submit", "wan", "--rung", ""});
  usage_error({"submit", "wan", "--allow-degrade=yes"});
  EXPECT_NE(usage_error({"submit", "wan", "--allow-degrade", "--no-quality-loss"}).find("contradict"),
            std::string::npos);
  usage_error({"ls", "--rung", "x"});   // a submit option

  std::string help = command_usage("submit");
  for (const char* flag : {"--rung", "--allow-degrade", "--no-quality-loss", "--degrade-now", "--max-slowdown",
                           "--floor"})
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
}

TEST(CtlArgs, ListShowCancelRetryPrio) {
  Command l = parse_args({"ls", "--state", "failed", "--model", "sleep", "--source", "ctl", "--limit", "5"});
  EXPECT_EQ(l.kind, CommandKind::ls);
  EXPECT_EQ(l.list.state.value(), "failed");
  EXPECT_EQ(l.list.model.value(), "sleep");
  EXPECT_EQ(l.list.source.value(), "ctl");
  EXPECT_EQ(l.list.limit.value(), 5);
  EXPECT_EQ(parse_args({"list"}).kind, CommandKind::ls);
  usage_error({"ls", "--state", "done"});
  usage_error({"ls", "--limit", "0"});
  usage_error({"ls", "--limit", "10001"});
  usage_error({"ls", "x"});

  Command s = parse_args({"show", "abc"});
  EXPECT_EQ(s.kind, CommandKind::show);
  EXPECT_EQ(s.ids, std::vector<std::string>{"abc"});
  usage_error({"show"});
  usage_error({"show", "a", "b"});

  Command c = parse_args({"cancel", "a", "b", "c"});
  EXPECT_EQ(c.kind, CommandKind::cancel);
  EXPECT_EQ(c.ids, (std::vector<std::string>{"a", "b", "c"}));
  usage_error({"cancel"});

  EXPECT_EQ(parse_args({"retry", "a"}).kind, CommandKind::retry);
  usage_error({"retry"});

  Command p = parse_args({"prio", "a", "-7"});
  EXPECT_EQ(p.kind, CommandKind::prio);
  EXPECT_EQ(p.ids, std::vector<std::string>{"a"});
  EXPECT_EQ(p.priority, -7);
  EXPECT_EQ(parse_args({"priority", "a", "3"}).priority, 3);
  usage_error({"prio", "a"});
  usage_error({"prio", "a", "high"});
  usage_error({"prio", "a", "2000"});
}

TEST(CtlArgs, DaemonCommandsFollowPruneModels) {
  EXPECT_EQ(parse_args({"pause"}).kind, CommandKind::pause);
  EXPECT_EQ(parse_args({"resume"}).kind, CommandKind::resume);
  EXPECT_EQ(parse_args({"drain"}).kind, CommandKind::drain);
  EXPECT_EQ(parse_args({"status"}).kind, CommandKind::status);
  usage_error({"pause", "now"});
  usage_error({"status", "--state", "x"});

  Command f = parse_args({"follow", "abc", "--from", "12"});
  EXPECT_EQ(f.kind, CommandKind::follow);
  EXPECT_EQ(f.ids, std::vector<std::string>{"abc"});
  EXPECT_EQ(f.from_seq, 12);
  EXPECT_EQ(parse_args({"follow", "abc"}).from_seq, 0);
  usage_error({"follow"});
  usage_error({"follow", "abc", "--from", "-1"});

  EXPECT_EQ(parse_args({"prune", "--older-than", "30d"}).older_than_s.value(), 30 * 86400);
  EXPECT_EQ(parse_args({"prune", "--older-than=0"}).older_than_s.value(), 0);
  usage_error({"prune"});
  usage_error({"prune", "--older-than", "soon"});

  EXPECT_EQ(parse_args({"plugins"}).kind, CommandKind::plugins);
  usage_error({"plugins", "memtest"});

  EXPECT_FALSE(parse_args({"models"}).model_name);
  EXPECT_EQ(parse_args({"models", "sleep"}).model_name.value(), "sleep");
  usage_error({"models", "a", "b"});
}

TEST(CtlArgs, HelpVersionAndBadInput) {
  Command h = parse_args({"--help"});
  EXPECT_EQ(h.kind, CommandKind::help);
  EXPECT_EQ(h.help_topic, "");
  EXPECT_EQ(parse_args({"submit", "-h"}).help_topic, "submit");
  EXPECT_EQ(parse_args({"help", "list"}).help_topic, "ls");
  EXPECT_EQ(parse_args({"--version"}).kind, CommandKind::version);
  EXPECT_NE(usage_error({}).find("no command"), std::string::npos);
  EXPECT_NE(usage_error({"frobnicate"}).find("frobnicate"), std::string::npos);
  EXPECT_NE(usage_error({"--bogus", "ls"}).find("--bogus"), std::string::npos);
  usage_error({"help", "frobnicate"});
  usage_error({"ls", "--timeout", "0"});
  usage_error({"ls", "--timeout", "abc"});
  usage_error({"ls", "--socket"});
  usage_error({"ls", "--json=1"});

  for (const char* name : {"submit", "ls", "show", "cancel", "retry", "prio", "pause", "resume", "drain", "status",
                           "follow", "prune", "models", "plugins"})
    EXPECT_NE(command_usage(name).find(std::string("usage: reelctl ") + name), std::string::npos) << name;
  EXPECT_EQ(command_usage("nope"), "");
  std::string g = global_usage();
  for (const char* code : {"  0  ", "  1  ", "  2  ", "  3  ", "  4  "}) EXPECT_NE(g.find(code), std::string::npos);
}

TEST(CtlArgs, RunReelctlPrintsUsageErrorsWithExit2) {
  std::ostringstream out, err;
  EXPECT_EQ(run_reelctl({"ls", "--bogus"}, out, err, {}), kExitUsage);
  EXPECT_EQ(out.str(), "");
  EXPECT_NE(err.str().find("reelctl: unknown option '--bogus'"), std::string::npos);
  EXPECT_NE(err.str().find("reelctl ls --help"), std::string::npos);

  std::ostringstream out2, err2;
  EXPECT_EQ(run_reelctl({"submit", "--help"}, out2, err2, {}), kExitOk);
  EXPECT_NE(out2.str().find("--idempotency-key"), std::string::npos);
  EXPECT_EQ(err2.str(), "");
}

// ---------------------------------------------------------------------------------
// Submit spec building

TEST(CtlSubmitSpec, FlagsOverrideTheFileAndInputsBecomeAbsolute) {
  TempDir dir;
  test::write_file(dir.file("job.toml"),
                   "model = \"other\"\npriority = 3\nmax_attempts = 2\n[params]\nseconds = 5\nsteps = 2\n"
                   "[inputs]\naudio = \"a.wav\"\n");
  SubmitArgs a;
  a.file = dir.file("job.toml");
  a.model = "sleep";
  a.params = {{"seconds", Json(0.5)}};
  a.inputs = {{"image", "pics/../cat.png"}, {"clip", "https://example.com/x.mp4"}, {"mask", "/abs/m.png"}};
  a.priority = 7;
  JobSpec s = build_submit_spec(a, "/home/u/work");
  EXPECT_EQ(s.model, "sleep");
  EXPECT_EQ(s.params["seconds"], Json(0.5));
  EXPECT_EQ(s.params["steps"], Json(2));
  EXPECT_EQ(s.priority, 7);
  EXPECT_EQ(s.max_attempts, 2);
  EXPECT_EQ(s.source, "ctl");
  EXPECT_EQ(s.inputs["image"], "/home/u/work/cat.png");
  EXPECT_EQ(s.inputs["clip"], "https://example.com/x.mp4");
  EXPECT_EQ(s.inputs["mask"], "/abs/m.png");
  EXPECT_EQ(s.inputs["audio"], dir.file("a.wav"));   // the file's own folder

  Json j = submit_job_json(s);
  EXPECT_EQ(j["max_attempts"], 2);
  SubmitArgs b;
  b.model = "sleep";
  Json plain = submit_job_json(build_submit_spec(b, "/"));
  EXPECT_FALSE(plain.contains("max_attempts"));
  EXPECT_FALSE(plain.contains("policy"));
}

TEST(CtlSubmitSpec, PolicyFlagsOverrideTheJobFilesPolicyKeyByKey) {
  TempDir dir;
  test::write_file(dir.file("job.toml"),
                   "model = \"wan\"\n[policy]\nrung = \"resident\"\nquality_fallback = true\nmax_slowdown = 4\n"
                   "floor = { steps = 10, frames = 33 }\n");
  SubmitArgs a;
  a.file = dir.file("job.toml");
  a.no_quality_loss = true;
  a.max_slowdown = 8;
  a.floor = {{"steps", Json(2)}, {"precision", Json("fp8")}};
  JobSpec s = build_submit_spec(a, "/");
  EXPECT_EQ(s.policy, Json::parse(R"({"rung": "resident", "no_quality_loss": true, "max_slowdown": 8,
                                       "floor": {"steps": 2, "frames": 33, "precision": "fp8"}})"))
      << s.policy.dump();
  EXPECT_TRUE(s.policy["max_slowdown"].is_number_integer()) << "8, not 8.0";

  SubmitArgs b;
  b.file = dir.file("job.toml");
  b.rung = "offload";
  b.degrade_now = true;
  b.max_slowdown = 1.5;
  JobSpec t = build_submit_spec(b, "/");
  EXPECT_EQ(t.policy["rung"], "offload");
  EXPECT_EQ(t.policy["quality_fallback"], true);   // from the file, untouched
  EXPECT_EQ(t.policy["degrade_now"], true);
  EXPECT_EQ(t.policy["max_slowdown"], 1.5);
  EXPECT_EQ(t.policy["floor"], Json::parse(R"({"steps": 10, "frames": 33})"));

  // --allow-degrade replaces a file's no_quality_loss; flags alone make the whole policy.
  test::write_file(dir.file("strict.json"), R"({"model": "wan", "policy": {"no_quality_loss": true}})");
  SubmitArgs c;
  c.file = dir.file("strict.json");
  c.allow_degrade = true;
  c.floor = {{"steps", Json(2)}};
  Json job = submit_job_json(build_submit_spec(c, "/"));
  EXPECT_EQ(job["policy"], Json::parse(R"({"quality_fallback": true, "floor": {"steps": 2}})")) << job.dump();
}

TEST(CtlSubmitSpec, BadFilesAreUsageErrors) {
  TempDir dir;
  SubmitArgs a;
  a.file = dir.file("missing.toml");
  EXPECT_THROW(build_submit_spec(a, "/"), UsageError);
  test::write_file(dir.file("bad.toml"), "model = \n");
  a.file = dir.file("bad.toml");
  EXPECT_THROW(build_submit_spec(a, "/"), UsageError);
}

// ---------------------------------------------------------------------------------
// Durations, exit codes

TEST(CtlDuration, Parse) {
  EXPECT_EQ(parse_duration_seconds("0").value(), 0);
  EXPECT_EQ(parse_duration_seconds("90").value(), 90);
  EXPECT_EQ(parse_duration_seconds("10s").value(), 10);
  EXPECT_EQ(parse_duration_seconds("45m").value(), 2700);
  EXPECT_EQ(parse_duration_seconds("12h").value(), 43200);
  EXPECT_EQ(parse_duration_seconds("30d").value(), 2592000);
  EXPECT_EQ(parse_duration_seconds("1h30m").value(), 5400);
  for (const char* bad : {"", "-1", "1x", "h", "1.5h", "1h30", " 1h", "99999999999999999999s", "1 h"})
    EXPECT_FALSE(parse_duration_seconds(bad)) << bad;
}

TEST(CtlDuration, Format) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(999), "0s");
  EXPECT_EQ(format_duration(-5000), "0s");
  EXPECT_EQ(format_duration(45000), "45s");
  EXPECT_EQ(format_duration(3 * 60000 + 5000), "3m");
  EXPECT_EQ(format_duration(3 * 60000 + 5000, 2), "3m5s");
  EXPECT_EQ(format_duration(3725000, 2), "1h2m");
  EXPECT_EQ(format_duration(7200000, 2), "2h");
  EXPECT_EQ(format_duration(2 * 86400000LL + 3600000, 2), "2d1h");
  EXPECT_EQ(format_clock(4000), "0:04");
  EXPECT_EQ(format_clock(750000), "12:30");
  EXPECT_EQ(format_clock(3723000), "1:02:03");
  EXPECT_EQ(format_clock(1750), "0:02");
  EXPECT_EQ(format_clock(0), "0:00");
}

TEST(CtlExitCodes, MapFromErrorCodes) {
  EXPECT_EQ(exit_code_for_error(err::not_found), 4);
  for (const char* c : {err::parse_error, err::bad_request, err::too_large, err::unknown_method, err::hello_required,
                        err::protocol_mismatch, err::unknown_model, err::invalid_params})
    EXPECT_EQ(exit_code_for_error(c), 2) << c;
  for (const char* c : {err::conflict, err::invalid_state, err::queue_full, err::storage, err::draining,
                        err::internal, "something_new"})
    EXPECT_EQ(exit_code_for_error(c), 1) << c;
  EXPECT_EQ(RemoteError("not_found", "").exit_code, 4);
  EXPECT_STREQ(RemoteError("not_found", "").what(), "not_found");
}

TEST(CtlExitCodes, ConnectErrorMessages) {
  std::string enoent = connect_error_message("/run/x.sock", ENOENT, "");
  EXPECT_NE(enoent.find("/run/x.sock"), std::string::npos);
  EXPECT_NE(enoent.find("reeld"), std::string::npos);
  EXPECT_NE(enoent.find("--socket"), std::string::npos);
  EXPECT_NE(enoent.find("REEL_SOCKET"), std::string::npos);
  std::string eacces = connect_error_message("/run/x.sock", EACCES, "reel");
  EXPECT_NE(eacces.find("/run/x.sock"), std::string::npos);
  EXPECT_NE(eacces.find("permission denied: add yourself to the socket's group"), std::string::npos);
  EXPECT_NE(eacces.find("usermod -aG reel"), std::string::npos);
  EXPECT_EQ(eacces.find("Is reeld running"), std::string::npos);
  EXPECT_NE(connect_error_message("/x", ECONNREFUSED, "").find("refused"), std::string::npos);
}

// ---------------------------------------------------------------------------------
// Rendering

TEST(CtlRender, TableAlignsColumnsWithoutTrailingBlanks) {
  Table t({"ID", "STATE", "NOTE"});
  t.add_row({{"a"}, {"succeeded", Color::green}, {""}});
  t.add_row({{"longer-id"}, {"queued", Color::dim}, {"x"}});
  EXPECT_EQ(t.render(Style{}),
            "ID         STATE      NOTE\n"
            "a          succeeded\n"
            "longer-id  queued     x\n");
  // Colour codes do not count towards the width.
  std::string colored = t.render(Style{true});
  EXPECT_NE(colored.find("\033[32msucceeded\033[0m"), std::string::npos);
  auto lines = split_lines(colored);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_NE(lines[2].find("longer-id  \033[2mqueued\033[0m     x"), std::string::npos) << lines[2];
}

TEST(CtlRender, ProgressBar) {
  EXPECT_EQ(progress_bar(5, 10, "sleeping", 4000), "[#####-----] 5/10 sleeping 50% ETA 0:04");
  EXPECT_EQ(progress_bar(0, 10, "", std::nullopt), "[----------] 0/10 0%");
  EXPECT_EQ(progress_bar(10, 10, "done", 0), "[##########] 10/10 done 100% ETA 0:00");
  EXPECT_EQ(progress_bar(1, 3, "s", std::nullopt), "[###-------] 1/3 s 33%");
  EXPECT_EQ(progress_bar(3, 0, "warming", std::nullopt), "[----------] 3/? warming");
  EXPECT_EQ(progress_bar(12, 10, "", std::nullopt), "[##########] 12/10 100%");
}

TEST(CtlRender, EtaFromTheRateSinceRunning) {
  EtaEstimator e;
  EXPECT_FALSE(e.eta_ms());
  e.on_running(10000);
  EXPECT_FALSE(e.eta_ms());
  e.on_progress(12000, 2, 10);   // 1 s per step, 8 to go
  EXPECT_EQ(e.eta_ms().value(), 8000);
  e.on_progress(15000, 5, 10);
  EXPECT_EQ(e.eta_ms().value(), 5000);
  e.on_running(20000);           // a new attempt starts over
  EXPECT_FALSE(e.eta_ms());
  e.on_progress(20500, 1, 4);
  EXPECT_EQ(e.eta_ms().value(), 1500);
}

TEST(CtlRender, DescribeEvent) {
  EXPECT_EQ(describe_event({{"kind", "state"}, {"data", {{"from", "queued"}, {"to", "running"}}}}),
            "queued -> running");
  EXPECT_EQ(describe_event({{"kind", "state"},
                            {"data", {{"from", "running"}, {"to", "queued"}, {"reason", "daemon restarted"}}}}),
            "running -> queued (daemon restarted)");
  EXPECT_EQ(describe_event({{"kind", "progress"}, {"data", {{"step", 3}, {"total", 10}, {"stage", "s"}}}}), "3/10 s");
  EXPECT_EQ(describe_event({{"kind", "warning"}, {"data", {{"message", "low disk"}}}}), "low disk");
  EXPECT_EQ(describe_event({{"kind", "priority"}, {"data", {{"from", 0}, {"to", 5}}}}), "0 -> 5");
  EXPECT_EQ(describe_event({{"kind", "cancel_requested"}, {"data", Json::object()}}), "");
  EXPECT_EQ(describe_event({{"kind", "submitted"}, {"data", {{"model", "sleep"}, {"source", "ctl"}}}}),
            "model sleep from ctl");
  EXPECT_EQ(describe_event(Json("garbage")), "");
}

Json sample_job(const std::string& id, const std::string& state, int64_t created, int64_t step, int64_t total) {
  Job j;
  j.id = id;
  j.model = "sleep";
  j.state = *parse_job_state(state);
  j.created_at = created;
  j.progress.step = step;
  j.progress.total = total;
  j.source = "ctl";
  return Json(j.to_json());
}

Json event_at(int64_t seq, int64_t at, const std::string& kind, Json data) {
  return {{"job", "j1"}, {"seq", seq}, {"at", at}, {"kind", kind}, {"data", std::move(data)}};
}

TEST(CtlRender, JobTable) {
  int64_t now = 1'000'000'000;
  Json jobs = Json::array({sample_job("k3xq9a", "running", now - 125'000, 5, 10),
                           sample_job("b", "queued", now - 3 * 3600'000, 0, 0)});
  jobs[1]["priority"] = -20;
  jobs[1]["source"] = "watch:/srv/in";
  EXPECT_EQ(render_job_table(jobs, now, Style{}),
            "ID      STATE    MODEL  PRIO  PROGRESS  AGE  SOURCE\n"
            "k3xq9a  running  sleep  0     5/10      2m   ctl\n"
            "b       queued   sleep  -20   -         3h   watch:/srv/in\n");
  EXPECT_EQ(render_job_table(Json::array(), now, Style{}), "ID  STATE  MODEL  PRIO  PROGRESS  AGE  SOURCE\n");
  jobs[0]["cancel_requested"] = true;
  EXPECT_NE(render_job_table(jobs, now, Style{}).find("cancelling"), std::string::npos);
  // Malformed entries degrade instead of throwing.
  EXPECT_NO_THROW(render_job_table(Json::array({Json(1), Json::object()}), now, Style{}));
}

TEST(CtlRender, DetailsStatusModelsFinal) {
  int64_t now = 1'000'000'000;
  Json job = sample_job("k3xq9a", "failed", now - 60'000, 2, 10);
  job["error"] = "boom at step 2";
  job["outputs"] = {"/out/a.mp4"};
  Json events = Json::array({{{"job", "k3xq9a"}, {"seq", 1}, {"at", now - 60'000}, {"kind", "submitted"},
                              {"data", {{"model", "sleep"}, {"source", "ctl"}}}},
                             {{"job", "k3xq9a"}, {"seq", 2}, {"at", now - 59'000}, {"kind", "state"},
                              {"data", {{"from", "queued"}, {"to", "running"}}}}});
  std::string d = render_job_details(job, events, now, Style{});
  for (const char* s : {"id:", "k3xq9a", "state:", "failed", "error:", "boom at step 2", "output:", "/out/a.mp4",
                        "events:", "SEQ", "queued -> running", "model sleep from ctl"})
    EXPECT_NE(d.find(s), std::string::npos) << s << "\n" << d;
  // Keys are padded to one column.
  auto lines = split_lines(d);
  EXPECT_EQ(lines[0].find("k3xq9a"), lines[1].find("failed"));

  Json status = {{"version", "0.1.0"}, {"pid", 42}, {"uptime_s", 3725}, {"paused", true}, {"draining", false},
                 {"counts", {{"queued", 3}, {"running", 1}, {"succeeded", 2}, {"failed", 0}, {"cancelled", 0}}},
                 {"running", Json::array({sample_job("r1", "running", now - 1000, 1, 2)})},
                 {"budgets", {{"max_concurrent_jobs", 1}}},
                 {"models", Json::array({{{"name", "sleep"}}})},
                 {"socket", "/run/reel/reeld.sock"},
                 {"state_dir", "/var/lib/reel"}};
  std::string st = render_status(status, now, Style{});
  for (const char* s : {"pid 42", "up 1h2m", "paused", "3 queued, 1 running, 2 succeeded", "sleep",
                        "/run/reel/reeld.sock", "running:", "r1"})
    EXPECT_NE(st.find(s), std::string::npos) << s << "\n" << st;

  Json model = {{"name", "sleep"}, {"provider", "builtin"}, {"description", "naps"},
                {"params", Json::array({{{"name", "seconds"}, {"type", "number"}, {"min", 0}, {"max", 86400},
                                         {"choices", Json::array()}, {"default", 1}, {"help", "how long"}}})},
                {"inputs", Json::array()}};
  std::string ml = render_model_list(Json::array({model}), Style{});
  EXPECT_EQ(split_lines(ml)[1], "sleep  builtin   naps");
  std::string md = render_model_details(model, Style{});
  for (const char* s : {"model:", "sleep", "PARAM", "seconds", "number", "0..86400", "how long"})
    EXPECT_NE(md.find(s), std::string::npos) << s << "\n" << md;
  EXPECT_EQ(md.find("limits:"), std::string::npos) << "no limits, no heading";
  model["limits"] = Json::array({"naps last a day at most"});
  md = render_model_details(model, Style{});
  EXPECT_NE(md.find("limits:\n  naps last a day at most\n"), std::string::npos) << md;

  EXPECT_EQ(render_final(job, Style{}), "k3xq9a failed\n  /out/a.mp4\n");
}

Json event(int64_t seq, int64_t at, const std::string& kind, Json data) {
  return {{"job", "j1"}, {"seq", seq}, {"at", at}, {"kind", kind}, {"data", std::move(data)}};
}

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

TEST(CtlRender, StatusShowsDevicesProbeWorkersAndPlugins) {
  int64_t now = 1'000'000'000;
  Json status = {
      {"version", "0.1.0"}, {"pid", 42}, {"uptime_s", 60}, {"paused", false}, {"draining", false},
      {"counts", {{"queued", 0}, {"running", 1}, {"succeeded", 0}, {"failed", 0}, {"cancelled", 0}}},
      {"running", Json::array()},
      {"models", Json::array({{{"name", "sleep"}}, {{"name", "wan-t2v"}}})},
      {"devices",
       Json::array({{{"id", "cuda:0"}, {"gpu", true}, {"name", "NVIDIA GeForce RTX 4090"}, {"uuid", "GPU-1"},
                     {"simulated", false}, {"total_bytes", 24 * kGiB}, {"reserve_bytes", 1536 * kMiB},
                     {"foreign_bytes", 512 * kMiB}, {"running_bytes", 9 * kGiB + 512 * kMiB},
                     {"idle_resident_bytes", 4 * kGiB}, {"free_bytes", 8 * kGiB + 512 * kMiB}},
                    {{"id", "cuda:1"}, {"gpu", true}, {"name", ""}, {"simulated", true}, {"total_bytes", 8 * kGiB},
                     {"reserve_bytes", 0}, {"foreign_bytes", 0}, {"running_bytes", 0}, {"idle_resident_bytes", 0},
                     {"free_bytes", 8 * kGiB}},
                    {{"id", "cpu"}, {"gpu", false}, {"total_bytes", 64 * kGiB}, {"reserve_bytes", 2 * kGiB},
                     {"foreign_bytes", 10 * kGiB}, {"running_bytes", 3 * kGiB}, {"idle_resident_bytes", 1 * kGiB},
                     {"free_bytes", 48 * kGiB}}})},
      {"device_source", "nvml (libnvidia-ml.so.1)"},
      {"workers",
       Json::array({{{"model", "wan-t2v"}, {"device", "cuda:0"}, {"rung", "resident"}, {"state", "busy"},
                     {"pid", 4242}, {"job", "k3xq9a"}, {"resident_device_bytes", 4 * kGiB},
                     {"rss_bytes", 3 * kGiB}, {"last_used", now}},
                    {{"model", "memtest"}, {"device", "cpu"}, {"rung", "cpu"}, {"state", "idle"}, {"pid", 4343},
                     {"job", ""}, {"resident_device_bytes", 0}, {"rss_bytes", 100 * kMiB}, {"last_used", now},
                     {"keep_alive_left_s", 299}}})},
      {"plugins",
       Json::array({{{"source", "builtin:sleep"}, {"name", "builtin"}, {"version", "0.1.0"}, {"loaded", true},
                     {"error", ""}, {"models", {"sleep"}}},
                    {{"source", "/usr/lib/reel/plugins/libwan.so"}, {"name", "wan"}, {"version", "1.2.0"},
                     {"loaded", true}, {"error", ""}, {"models", {"wan-t2v", "wan-i2v"}}},
                    {{"source", "/usr/lib/reel/plugins/libbroken.so"}, {"name", ""}, {"version", ""},
                     {"loaded", false}, {"error", "no symbol reel_plugin_entry: not a reel plugin"},
                     {"models", Json::array()}}})},
      {"socket", "/run/reel/reeld.sock"}, {"state_dir", "/var/lib/reel"}};
  std::string st = render_status(status, now, Style{});

  auto devices = section(st, "devices:");
  ASSERT_EQ(devices.size(), 4u) << st;
  EXPECT_EQ(cells(devices[0]), (std::vector<std::string>{"DEVICE", "KIND", "TOTAL", "RESERVED", "OTHERS", "RUNNING",
                                                          "IDLE-MODELS", "FREE"}));
  EXPECT_EQ(row(devices, "cuda:0"), (std::vector<std::string>{"cuda:0", "NVIDIA GeForce RTX 4090", "24.0 GiB",
                                                               "1.5 GiB", "512.0 MiB", "9.5 GiB", "4.0 GiB", "8.5 GiB"}));
  EXPECT_EQ(row(devices, "cuda:1")[1], "GPU (simulated)");
  EXPECT_EQ(row(devices, "cpu"), (std::vector<std::string>{"cpu", "host RAM", "64.0 GiB", "2.0 GiB", "10.0 GiB",
                                                            "3.0 GiB", "1.0 GiB", "48.0 GiB"}));
  EXPECT_NE(line_starting(st, "device probe:").find("nvml (libnvidia-ml.so.1)"), std::string::npos) << st;

  auto workers = section(st, "workers:");
  ASSERT_EQ(workers.size(), 3u) << st;
  EXPECT_EQ(cells(workers[0]),
            (std::vector<std::string>{"MODEL", "DEVICE", "RUNG", "STATE", "PID", "JOB", "KEEP-ALIVE"}));
  EXPECT_EQ(row(workers, "wan-t2v"),
            (std::vector<std::string>{"wan-t2v", "cuda:0", "resident", "busy", "4242", "k3xq9a", "-"}));
  EXPECT_EQ(row(workers, "memtest"),
            (std::vector<std::string>{"memtest", "cpu", "cpu", "idle", "4343", "-", "4m59s left"}));

  std::string plugins = line_starting(st, "plugins:");
  EXPECT_NE(plugins.find("2 loaded (builtin, wan)"), std::string::npos) << plugins;
  EXPECT_NE(plugins.find("1 refused (libbroken.so)"), std::string::npos) << plugins;

  // An older daemon's status (no devices, workers, plugins) renders as before.
  Json old = status;
  for (const char* k : {"devices", "device_source", "workers", "plugins"}) old.erase(k);
  std::string o = render_status(old, now, Style{});
  for (const char* absent : {"devices:", "workers", "plugins:", "device probe:"})
    EXPECT_EQ(o.find(absent), std::string::npos) << absent << "\n" << o;
  Json none = status;
  none["workers"] = Json::array();
  EXPECT_NE(render_status(none, now, Style{}).find("\nworkers: none\n"), std::string::npos);
}

TEST(CtlRender, PluginsTable) {
  Json plugins = Json::array(
      {{{"source", "builtin:sleep"}, {"name", "builtin"}, {"version", "0.1.0"}, {"loaded", true}, {"error", ""},
        {"models", {"sleep"}}},
       {{"source", "/usr/lib/reel/plugins/libwan.so"}, {"name", "wan"}, {"version", "1.2.0"}, {"loaded", true},
        {"error", ""}, {"models", {"wan-t2v", "wan-i2v"}}},
       {{"source", "/usr/lib/reel/plugins/libold.so"}, {"name", ""}, {"version", ""}, {"loaded", false},
        {"error", "plugin ABI version 999, this reel speaks 1"}, {"models", Json::array()}}});
  auto lines = split_lines(render_plugins(plugins, Style{}));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(cells(lines[0]), (std::vector<std::string>{"SOURCE", "NAME", "VERSION", "STATE", "MODELS/ERROR"}));
  EXPECT_EQ(cells(lines[1]), (std::vector<std::string>{"builtin:sleep", "builtin", "0.1.0", "loaded", "sleep"}));
  EXPECT_EQ(cells(lines[2]), (std::vector<std::string>{"/usr/lib/reel/plugins/libwan.so", "wan", "1.2.0", "loaded",
                                                        "wan-t2v, wan-i2v"}));
  EXPECT_EQ(cells(lines[3]), (std::vector<std::string>{"/usr/lib/reel/plugins/libold.so", "-", "-", "refused",
                                                        "plugin ABI version 999, this reel speaks 1"}));
  EXPECT_NE(render_plugins(plugins, Style{true}).find("\033[31mrefused\033[0m"), std::string::npos);
}

TEST(CtlRender, ModelDetailsShowOutputsAndTheLadder) {
  Json model = {{"name", "wan-t2v"}, {"provider", "wan"}, {"description", "text to video"},
                {"params", Json::array({{{"name", "steps"}, {"type", "integer"}, {"min", 1}, {"max", 100},
                                         {"choices", Json::array()}, {"default", 50}, {"help", "denoise steps"}},
                                        {{"name", "size"}, {"type", "string"}, {"min", nullptr}, {"max", nullptr},
                                         {"choices", {"480p", "720p"}}, {"default", "480p"}, {"help", "frame size"}},
                                        {{"name", "prompt"}, {"type", "string"}, {"min", nullptr}, {"max", nullptr},
                                         {"choices", Json::array()}, {"default", nullptr}, {"help", "what to draw"}}})},
                {"inputs", Json::array({{{"role", "image"}, {"required", false}, {"help", "first frame"}}})},
                {"outputs", {"video/mp4"}},
                {"ladder", Json::array({{{"name", "resident"}, {"kind", "placement"}, {"help", "all on the GPU"},
                                         {"settings", Json::object()}},
                                        {{"name", "t5-cpu"}, {"kind", "placement"}, {"help", "text encoder on the CPU"},
                                         {"settings", Json::object()}},
                                        {{"name", "steps-75"}, {"kind", "quality"}, {"help", "75% of the steps"},
                                         {"settings", Json::object()}}})}};
  std::string md = render_model_details(model, Style{});
  EXPECT_EQ(cells(line_starting(md, "outputs:")), (std::vector<std::string>{"outputs:", "video/mp4"})) << md;
  auto params = section(md, "params:");
  EXPECT_EQ(cells(params[0]), (std::vector<std::string>{"PARAM", "TYPE", "RANGE", "DEFAULT", "HELP"}));
  EXPECT_EQ(row(params, "steps"), (std::vector<std::string>{"steps", "integer", "1..100", "50", "denoise steps"}));
  EXPECT_EQ(row(params, "size"),
            (std::vector<std::string>{"size", "string", "480p|720p", "\"480p\"", "frame size"}));
  EXPECT_EQ(row(params, "prompt"), (std::vector<std::string>{"prompt", "string", "-", "(required)", "what to draw"}));
  EXPECT_EQ(row(section(md, "inputs:"), "image"), (std::vector<std::string>{"image", "no", "first frame"}));
  auto ladder = section(md, "ladder:");
  ASSERT_EQ(ladder.size(), 4u) << md;
  EXPECT_EQ(cells(ladder[0]), (std::vector<std::string>{"RUNG", "KIND", "HELP"}));
  EXPECT_EQ(cells(ladder[1]), (std::vector<std::string>{"resident", "placement", "all on the GPU"}));
  EXPECT_EQ(cells(ladder[3]), (std::vector<std::string>{"steps-75", "quality", "75% of the steps"}));
}

Json plan_rung(const std::string& name, bool quality, bool cpu_only, int64_t dev, int64_t host, double time,
               Json effective = Json::object()) {
  return {{"rung", name}, {"quality", quality}, {"cpu_only", cpu_only}, {"device_bytes", dev}, {"host_bytes", host},
          {"resident_device_bytes", 0}, {"resident_host_bytes", 0}, {"relative_time", time},
          {"effective", std::move(effective)}};
}

Json memtest_plan() {
  Json offload = plan_rung("offload", false, false, 40 * kMiB, 48 * kMiB, 2);
  offload["estimated_device_bytes"] = 32 * kMiB;
  offload["corrected"] = true;
  return Json::array({plan_rung("resident", false, false, 64 * kMiB, 80 * kMiB, 1), offload,
                      plan_rung("cpu", false, true, 0, 32 * kMiB, 10),
                      plan_rung("half-steps", true, false, 16 * kMiB, 32 * kMiB, 0.5,
                                {{"steps", 2}, {"width", 832}, {"height", 480}, {"precision", "fp8"}})});
}

// The rung history's rows (header left out), as cells.
std::vector<std::vector<std::string>> history_rows(const std::string& shown) {
  auto lines = section(shown, "rung history:");
  std::vector<std::vector<std::string>> out;
  for (size_t i = 1; i < lines.size(); ++i) out.push_back(cells(lines[i]));
  return out;
}

TEST(CtlRender, ShowPlanRungHistoryAndPeaks) {
  int64_t now = 1'000'000'000;
  Json job = sample_job("j1", "running", now - 60'000, 1, 4);
  job["model"] = "memtest";
  job["rung"] = "offload";
  job["min_rung"] = 1;
  job["policy"] = {{"quality_fallback", true}};
  job["plan"] = memtest_plan();
  Json first_start = {{"device", "cuda:0"}, {"rung", "resident"}, {"rung_index", 0},
                      {"explain", {{"rung", "resident"}, {"degraded", false}, {"reuses_worker", false},
                                   {"needed_device_bytes", 64 * kMiB}, {"available_device_bytes", 8 * kGiB},
                                   {"needed_host_bytes", 80 * kMiB}, {"available_host_bytes", 16 * kGiB},
                                   {"evicted", Json::array()}, {"considered", Json::array()}}}};
  Json second_start = {{"device", "cuda:0"}, {"rung", "offload"}, {"rung_index", 1},
                       {"explain", {{"rung", "offload"}, {"target_rung", "resident"}, {"degraded", true},
                                    {"reuses_worker", true}, {"needed_device_bytes", 40 * kMiB},
                                    {"available_device_bytes", 7 * kGiB + 512 * kMiB}, {"needed_host_bytes", 48 * kMiB},
                                    {"available_host_bytes", 15 * kGiB},
                                    {"evicted", Json::array({{{"model", "wan"}, {"device", "cuda:0"}}})}}}};
  Json events = Json::array(
      {event_at(1, now - 60'000, "submitted", {{"model", "memtest"}, {"source", "ctl"}}),
       event_at(2, now - 59'000, "state", {{"from", "queued"}, {"to", "running"}}),
       event_at(3, now - 59'000, "scheduled", first_start),
       event_at(4, now - 58'000, "fallback",
                {{"from", "resident"}, {"to", "offload"}, {"reason", "out of memory at 64 MiB"}, {"quality", false}}),
       event_at(5, now - 58'000, "state", {{"from", "running"}, {"to", "queued"}}),
       event_at(6, now - 57'000, "state", {{"from", "queued"}, {"to", "running"}}),
       event_at(7, now - 57'000, "scheduled", second_start)});
  Json peaks = Json::array(
      {{{"rung", "offload"}, {"shape", "default"}, {"estimate_device_bytes", 32 * kMiB},
        {"measured_device_bytes", 40 * kMiB}, {"estimate_host_bytes", 48 * kMiB}, {"measured_host_bytes", 48 * kMiB},
        {"samples", 3}},
       {{"rung", "some-other-rung"}, {"shape", "default"}, {"estimate_device_bytes", 1}, {"measured_device_bytes", 1},
        {"estimate_host_bytes", 1}, {"measured_host_bytes", 1}, {"samples", 1}}});
  Json result = {{"job", job}, {"events", events}, {"peaks", peaks}, {"waiting", "stale: the job is running"}};
  std::string d = render_show(result, now, Style{});

  EXPECT_EQ(cells(line_starting(d, "rung:")), (std::vector<std::string>{"rung:", "offload on cuda:0 (rung 2 of 4)"}))
      << d;
  EXPECT_EQ(line_starting(d, "waiting:"), "") << "only a queued job is waiting\n" << d;
  EXPECT_EQ(line_starting(d, "quality:"), "") << "no quality fallback happened";

  auto plan = section(d, "plan:");
  ASSERT_EQ(plan.size(), 5u) << d;
  EXPECT_EQ(cells(plan[0]), (std::vector<std::string>{"RUNG", "KIND", "GPU", "HOST", "TIME", "QUALITY", "NOTE"}));
  EXPECT_EQ(row(plan, "resident"), (std::vector<std::string>{"resident", "placement", "64.0 MiB", "80.0 MiB", "1x",
                                                              "full", "ruled out (fallback)"}));
  EXPECT_EQ(row(plan, "offload"),
            (std::vector<std::string>{"offload", "placement", "40.0 MiB (est. 32.0 MiB)", "48.0 MiB", "2x", "full",
                                      "in use; estimate corrected by measured peaks"}));
  EXPECT_EQ(row(plan, "cpu"), (std::vector<std::string>{"cpu", "placement (cpu)", "-", "32.0 MiB", "10x", "full"}));
  EXPECT_EQ(row(plan, "half-steps"), (std::vector<std::string>{"half-steps", "quality", "16.0 MiB", "32.0 MiB",
                                                                "0.5x", "steps 2, 832x480, fp8"}));

  auto history = history_rows(d);
  ASSERT_EQ(history.size(), 3u) << d;
  EXPECT_EQ(history[0], (std::vector<std::string>{format_timestamp(now - 59'000), "scheduled", "resident", "cuda:0",
                                                   "GPU 64.0 MiB needed / 8.0 GiB available; host RAM 80.0 MiB "
                                                   "needed / 16.0 GiB available"}));
  EXPECT_EQ(history[1], (std::vector<std::string>{format_timestamp(now - 58'000), "fallback", "resident -> offload",
                                                   "-", "out of memory at 64 MiB"}));
  EXPECT_EQ(history[2][1], "scheduled");
  EXPECT_EQ(history[2][2], "offload");
  for (const char* s : {"GPU 40.0 MiB needed / 7.5 GiB available", "host RAM 48.0 MiB needed / 15.0 GiB available",
                        "degraded from 'resident'", "reused an idle worker", "evicted 1 idle model"})
    EXPECT_NE(history[2][4].find(s), std::string::npos) << s << "\n" << history[2][4];

  auto peak_lines = section(d, "measured peaks:");
  ASSERT_EQ(peak_lines.size(), 2u) << "only this job's rungs\n" << d;
  EXPECT_EQ(row(peak_lines, "offload"), (std::vector<std::string>{"offload", "default", "3", "32.0 MiB", "40.0 MiB",
                                                                    "1.25x", "48.0 MiB", "48.0 MiB", "1.00x"}));

  // The raw event list stays, with one line per event.
  auto raw = section(d, "events:");
  ASSERT_EQ(raw.size(), 8u) << d;
  EXPECT_EQ(cells(raw[7])[3], "rung offload on cuda:0 (degraded from resident)");
  EXPECT_EQ(cells(raw[4])[3], "resident -> offload (out of memory at 64 MiB)");
}

TEST(CtlRender, ShowFlagsAQualityFallbackLoudlyAndGivesTheWaitingReason) {
  int64_t now = 1'000'000'000;
  Json job = sample_job("j2", "queued", now - 10'000, 0, 0);
  job["model"] = "memtest";
  job["rung"] = "offload";
  job["min_rung"] = 3;
  job["plan"] = memtest_plan();
  Json events = Json::array({event_at(1, now - 9'000, "fallback",
                                      {{"from", "offload"}, {"to", "half-steps"},
                                       {"reason", "out of memory at 32 MiB"}, {"quality", true}})});
  std::string waiting = "waiting for cuda:0: needs 16.0 MiB at 'half-steps', 8.0 MiB free";
  std::string d = render_show({{"job", job}, {"events", events}, {"waiting", waiting}}, now, Style{});
  EXPECT_EQ(cells(line_starting(d, "waiting:")), (std::vector<std::string>{"waiting:", waiting})) << d;
  EXPECT_NE(line_starting(d, "quality:").find("LOWERED"), std::string::npos) << d;
  EXPECT_NE(line_starting(d, "quality:").find("half-steps"), std::string::npos) << d;
  auto history = history_rows(d);
  ASSERT_EQ(history.size(), 1u) << d;
  EXPECT_EQ(history[0], (std::vector<std::string>{format_timestamp(now - 9'000), "QUALITY FALLBACK",
                                                   "offload -> half-steps", "-",
                                                   "OUTPUT QUALITY LOWERED: out of memory at 32 MiB"}));
  auto plan = section(d, "plan:");
  EXPECT_EQ(row(plan, "offload").back(), "ruled out (fallback); estimate corrected by measured peaks");
  EXPECT_EQ(row(plan, "cpu").back(), "ruled out (fallback)");
  EXPECT_EQ(row(plan, "half-steps").size(), 6u) << "not run yet: no note";
  std::string colored = render_show({{"job", job}, {"events", events}}, now, Style{true});
  EXPECT_NE(colored.find("\033[31mQUALITY FALLBACK\033[0m"), std::string::npos);

  // No plan, no history, no peaks: a job of an unplanned model shows as before.
  std::string plain = render_job_details(sample_job("j3", "succeeded", now - 1000, 1, 1), Json::array(), now, Style{});
  for (const char* absent : {"plan:", "rung history:", "measured peaks", "waiting:"})
    EXPECT_EQ(plain.find(absent), std::string::npos) << absent;
}

TEST(CtlRender, DescribeSchedulerEvents) {
  EXPECT_EQ(describe_event({{"kind", "fallback"},
                            {"data", {{"from", "offload"}, {"to", "half-steps"}, {"reason", "oom"}, {"quality", true}}}}),
            "offload -> half-steps (oom) [QUALITY LOWERED]");
  EXPECT_EQ(describe_event({{"kind", "scheduled"},
                            {"data", {{"device", "cpu"}, {"rung", "default"}, {"explain", {{"degraded", false}}}}}}),
            "rung default on cpu");
  EXPECT_EQ(describe_event({{"kind", "peak"},
                            {"data", {{"rung", "offload"}, {"measured_device_bytes", 40 * kMiB},
                                      {"estimate_device_bytes", 32 * kMiB}, {"measured_host_bytes", 1536 * kMiB},
                                      {"estimate_host_bytes", 1 * kGiB}}}}),
            "rung offload: GPU 40.0 MiB (estimate 32.0 MiB), host RAM 1.5 GiB (estimate 1.0 GiB)");
  EXPECT_EQ(bytes_cell(Json{{"b", 512}}, "b"), "512 B");
  EXPECT_EQ(bytes_cell(Json{{"b", "x"}}, "b"), "-");
}

TEST(CtlProgressView, PipeGetsStateLinesAndAtMostOneProgressLinePerTenPercent) {
  std::ostringstream out;
  ProgressView v(out, "j1", /*tty=*/false, Style{});
  int64_t seq = 0, at = 1000;
  v.on_event(event(++seq, at, "submitted", {{"model", "sleep"}, {"source", "ctl"}}));
  v.on_event(event(++seq, at, "state", {{"from", "queued"}, {"to", "running"}}));
  for (int step = 1; step <= 100; ++step)
    v.on_event(event(++seq, at + step * 100, "progress", {{"step", step}, {"total", 100}, {"stage", "sleeping"}}));
  v.on_event(event(++seq, at + 10100, "log", {{"message", "noise"}}));
  v.on_event(event(++seq, at + 10100, "state", {{"from", "running"}, {"to", "succeeded"}}));
  v.finish();
  auto lines = split_lines(out.str());
  ASSERT_EQ(lines.size(), 13u) << out.str();
  EXPECT_EQ(lines[0], "j1: submitted: model sleep from ctl");
  EXPECT_EQ(lines[1], "j1: queued -> running");
  EXPECT_EQ(lines[2], "j1: [#---------] 10/100 sleeping 10% ETA 0:09");
  EXPECT_EQ(lines[11], "j1: [##########] 100/100 sleeping 100% ETA 0:00");
  EXPECT_EQ(lines[12], "j1: running -> succeeded");
  EXPECT_EQ(out.str().find('\r'), std::string::npos);
  EXPECT_EQ(out.str().find("noise"), std::string::npos);
}

TEST(CtlProgressView, StartsAndFallbacksAreLinesAndAQualityFallbackIsLoud) {
  std::ostringstream out;
  ProgressView v(out, "j1", /*tty=*/false, Style{});
  v.on_event(event(1, 1000, "scheduled", {{"device", "cuda:0"}, {"rung", "resident"}}));
  v.on_event(event(2, 2000, "fallback", {{"from", "resident"}, {"to", "offload"}, {"quality", false}}));
  v.on_event(event(3, 3000, "fallback", {{"from", "offload"}, {"to", "half-steps"}, {"quality", true}}));
  v.finish();
  EXPECT_EQ(split_lines(out.str()),
            (std::vector<std::string>{"j1: scheduled: rung resident on cuda:0", "j1: fallback: resident -> offload",
                                      "j1: QUALITY FALLBACK: offload -> half-steps [QUALITY LOWERED]"}));
}

TEST(CtlProgressView, TerminalRedrawsOneBarInPlace) {
  std::ostringstream out;
  ProgressView v(out, "j1", /*tty=*/true, Style{});
  v.on_event(event(1, 1000, "state", {{"from", "queued"}, {"to", "running"}}));
  v.on_event(event(2, 2000, "progress", {{"step", 1}, {"total", 4}, {"stage", "sleeping"}}));
  v.on_event(event(3, 3000, "progress", {{"step", 2}, {"total", 4}, {"stage", "sleeping"}}));
  v.on_event(event(4, 3000, "warning", {{"message", "hot"}}));
  v.finish();
  std::string s = out.str();
  EXPECT_NE(s.find("\r\033[K[#####-----] 2/4 sleeping 50% ETA 0:02"), std::string::npos) << s;
  EXPECT_NE(s.find("j1: warning: hot\n"), std::string::npos) << s;
  EXPECT_EQ(s.substr(s.size() - 4), "\r\033[K");   // the bar is cleared at the end
}

// ---------------------------------------------------------------------------------
// The real binary, no daemon

TEST(CtlBinary, MissingSocketExits3AndNamesThePath) {
  TempDir dir;
  std::string sock = dir.file("nothing-here.sock");
  CommandResult r = test::run_command({test::reelctl_bin(), "--socket", sock, "status"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("reelctl: "), std::string::npos);
  EXPECT_NE(r.err.find(sock), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--socket"), std::string::npos) << r.err;

  // $REEL_SOCKET is honoured when there is no --socket.
  std::string env_sock = dir.file("from-env.sock");
  CommandResult e = test::run_command({test::reelctl_bin(), "ls"}, {"REEL_SOCKET=" + env_sock});
  EXPECT_EQ(e.exit_code, 3);
  EXPECT_NE(e.err.find(env_sock), std::string::npos) << e.err;

  // follow does not wait --timeout for a daemon that was never there.
  auto t0 = std::chrono::steady_clock::now();
  CommandResult f = test::run_command({test::reelctl_bin(), "--socket", sock, "follow", "abc"});
  EXPECT_EQ(f.exit_code, 3);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
}

TEST(CtlBinary, SocketWithoutPermissionExplainsTheGroup) {
  // Root ignores socket permissions: run reelctl as nobody when we are root.
  std::vector<std::string> argv;
  if (geteuid() == 0) {
    if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "root, and no setpriv to drop privileges";
    argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  }
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  std::string sock = dir.file("locked.sock");
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(fd, 4), 0);
  chmod(sock.c_str(), 0);
  argv.insert(argv.end(), {test::reelctl_bin(), "--socket", sock, "status"});
  CommandResult r = test::run_command(argv);
  close(fd);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find(sock), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("permission denied: add yourself to the socket's group"), std::string::npos) << r.err;
}

TEST(CtlBinary, UsageErrorsExit2) {
  CommandResult r = test::run_command({test::reelctl_bin(), "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown command"), std::string::npos);
  CommandResult h = test::run_command({test::reelctl_bin(), "--help"});
  EXPECT_EQ(h.exit_code, 0);
  EXPECT_NE(h.out.find("Exit codes"), std::string::npos);
  CommandResult v = test::run_command({test::reelctl_bin(), "--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out, std::string("reelctl ") + REEL_VERSION + "\n");
}

// ---------------------------------------------------------------------------------
// The real binary against a real reeld

class CtlDaemon : public testing::Test {
 protected:
  void SetUp() override { d.start(); }

  // Runs reelctl, expecting `code`; returns the result for further checks.
  CommandResult ctl(const std::vector<std::string>& args, int code = 0) {
    CommandResult r = d.ctl(args);
    EXPECT_EQ(r.exit_code, code) << testing::PrintToString(args) << "\nstdout: " << r.out << "\nstderr: " << r.err;
    return r;
  }
  Json ctl_json(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"--json"};
    a.insert(a.end(), args.begin(), args.end());
    CommandResult r = ctl(a);
    Json j = Json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }
  std::string submit_quiet(const std::vector<std::string>& extra) {
    std::vector<std::string> a = {"-q", "submit", "sleep"};
    a.insert(a.end(), extra.begin(), extra.end());
    return trim(ctl(a).out);
  }
  std::string state_of(const std::string& id) { return ctl_json({"show", id})["job"]["state"].get<std::string>(); }

  TempDir dir;
  Daemon d{dir.path()};
};

TEST_F(CtlDaemon, SubmitListShowInEveryFormat) {
  std::string id = submit_quiet({"--param", "seconds=0.1", "--param", "steps=2"});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(id.find_first_of(" \n"), std::string::npos) << id;

  // Plain submit prints just the id as well.
  CommandResult plain = ctl({"submit", "sleep", "--param", "seconds=0.1"});
  std::string id2 = trim(plain.out);
  EXPECT_EQ(split_lines(plain.out).size(), 1u);

  Json sub = ctl_json({"submit", "sleep", "--param", "seconds=0.1", "--priority", "4"});
  std::string id3 = sub["job"]["id"];
  EXPECT_EQ(sub["existed"], false);
  EXPECT_EQ(sub["job"]["priority"], 4);
  EXPECT_EQ(sub["job"]["source"], "ctl");

  Json list = ctl_json({"ls"});
  ASSERT_TRUE(list["jobs"].is_array());
  EXPECT_EQ(list["jobs"].size(), 3u);
  auto ids = split_lines(ctl({"-q", "ls"}).out);
  EXPECT_EQ(ids.size(), 3u);
  for (const auto& i : {id, id2, id3}) EXPECT_NE(std::find(ids.begin(), ids.end(), i), ids.end()) << i;

  auto table = split_lines(ctl({"ls"}).out);
  ASSERT_EQ(table.size(), 4u);
  EXPECT_EQ(table[0].rfind("ID", 0), 0u);
  size_t state_col = table[0].find("STATE");
  for (const char* h : {"MODEL", "PRIO", "PROGRESS", "AGE", "SOURCE"}) EXPECT_NE(table[0].find(h), std::string::npos);
  for (size_t i = 1; i < table.size(); ++i) {
    EXPECT_NE(table[i].find("sleep"), std::string::npos) << table[i];
    EXPECT_NE(table[i][state_col], ' ') << "STATE column misaligned:\n" << table[0] << "\n" << table[i];
    EXPECT_EQ(table[i].find('\033'), std::string::npos);   // NO_COLOR and not a tty
  }

  Json shown = ctl_json({"show", id});
  EXPECT_EQ(shown["job"]["id"], id);
  EXPECT_EQ(shown["job"]["params"]["steps"], 2);
  EXPECT_TRUE(shown["events"].is_array());
  EXPECT_EQ(trim(ctl({"-q", "show", id}).out), id);
  std::string details = ctl({"show", id}).out;
  EXPECT_NE(details.find("id:"), std::string::npos);
  EXPECT_NE(details.find(id), std::string::npos);
  EXPECT_NE(details.find("events:"), std::string::npos);
  EXPECT_NE(details.find("submitted"), std::string::npos);

  Json filtered = ctl_json({"ls", "--model", "nope"});
  EXPECT_TRUE(filtered["jobs"].empty());
  EXPECT_EQ(ctl_json({"ls", "--limit", "1"})["jobs"].size(), 1u);
}

TEST_F(CtlDaemon, WaitSucceedsAndFailsWithTheRightExitCode) {
  CommandResult ok = ctl({"submit", "sleep", "--param", "seconds=0.5", "--wait"}, 0);
  auto lines = split_lines(ok.out);
  ASSERT_GE(lines.size(), 1u) << ok.out;
  EXPECT_NE(lines[0].find(" succeeded"), std::string::npos) << ok.out;
  std::string id = lines[0].substr(0, lines[0].find(' '));
  EXPECT_EQ(state_of(id), "succeeded");
  // The pipe gets state lines, never a redrawn bar.
  EXPECT_NE(ok.err.find("queued -> running"), std::string::npos) << ok.err;
  EXPECT_NE(ok.err.find("running -> succeeded"), std::string::npos) << ok.err;
  EXPECT_EQ(ok.err.find('\r'), std::string::npos);

  CommandResult bad =
      ctl({"submit", "sleep", "--param", "seconds=0.3", "--param", "fail_at_step=2", "--max-attempts", "1", "--wait"},
          1);
  EXPECT_NE(bad.out.find(" failed"), std::string::npos) << bad.out;
  EXPECT_NE(bad.err.find("reelctl: job "), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("failed"), std::string::npos) << bad.err;

  Json waited = ctl_json({"submit", "sleep", "--param", "seconds=0.2", "--wait"});
  EXPECT_EQ(waited["job"]["state"], "succeeded");

  CommandResult quiet = ctl({"-q", "submit", "sleep", "--param", "seconds=0.2", "--wait"}, 0);
  EXPECT_EQ(split_lines(quiet.out).size(), 1u);
  EXPECT_EQ(quiet.err, "");
}

TEST_F(CtlDaemon, PipeProgressIsAtMostOneLinePerTenPercent) {
  CommandResult r = ctl({"submit", "sleep", "--param", "seconds=1", "--param", "steps=50", "--wait"}, 0);
  int progress_lines = 0;
  for (const auto& l : split_lines(r.err))
    if (l.find("] ") != std::string::npos && l.find('[') != std::string::npos) ++progress_lines;
  EXPECT_GE(progress_lines, 1) << r.err;
  EXPECT_LE(progress_lines, 10) << r.err;
}

TEST_F(CtlDaemon, ErrorsMapToExitCodes) {
  CommandResult missing = ctl({"show", "nosuchjob"}, 4);
  EXPECT_NE(missing.err.find("reelctl: "), std::string::npos);
  EXPECT_NE(missing.err.find("nosuchjob"), std::string::npos);
  ctl({"follow", "nosuchjob"}, 4);
  ctl({"cancel", "nosuchjob"}, 4);

  CommandResult model = ctl({"submit", "no-such-model"}, 2);
  EXPECT_NE(model.err.find("no-such-model"), std::string::npos) << model.err;
  CommandResult param = ctl({"submit", "sleep", "--param", "seconds=-3"}, 2);
  EXPECT_NE(param.err.find("seconds"), std::string::npos) << param.err;
  CommandResult unknown_param = ctl({"submit", "sleep", "--param", "colour=red"}, 2);
  EXPECT_NE(unknown_param.err.find("colour"), std::string::npos) << unknown_param.err;
  ctl({"submit", "sleep", "--input", "image=cat.png"}, 2);   // sleep takes no inputs
  ctl({"models", "no-such-model"}, 2);
  ctl({"submit", "sleep", "--bogus"}, 2);
  EXPECT_TRUE(ctl_json({"ls"})["jobs"].empty());
}

TEST_F(CtlDaemon, PauseCancelRetryPrioResume) {
  EXPECT_EQ(ctl_json({"pause"})["paused"], true);
  EXPECT_NE(ctl({"pause"}).out.find("paused"), std::string::npos);
  EXPECT_EQ(ctl({"-q", "pause"}).out, "");

  std::string a = submit_quiet({"--param", "seconds=0.1"});
  std::string b = submit_quiet({"--param", "seconds=0.1"});
  std::string c = submit_quiet({"--param", "seconds=0.1"});

  Json p = ctl_json({"prio", a, "7"});
  EXPECT_EQ(p["job"]["priority"], 7);
  EXPECT_NE(ctl({"prio", b, "-3"}).out.find("priority -3"), std::string::npos);
  EXPECT_EQ(trim(ctl({"-q", "prio", c, "1"}).out), c);
  ctl({"prio", a, "5000"}, 2);

  Json cancelled = ctl_json({"cancel", a});
  EXPECT_EQ(cancelled["job"]["state"], "cancelled");
  CommandResult two = ctl({"cancel", b, c});
  EXPECT_NE(two.out.find(b + " cancelled"), std::string::npos) << two.out;
  EXPECT_NE(two.out.find(c + " cancelled"), std::string::npos) << two.out;
  // Cancelling a finished job is refused (1); the other ids are still processed.
  CommandResult again = ctl({"cancel", a, "nosuchjob"}, 1);
  EXPECT_NE(again.err.find("reelctl: "), std::string::npos);
  EXPECT_NE(again.err.find("nosuchjob"), std::string::npos) << again.err;

  Json retried = ctl_json({"retry", a});
  EXPECT_EQ(retried["job"]["state"], "queued");
  EXPECT_EQ(trim(ctl({"-q", "retry", b}).out), b);
  EXPECT_EQ(state_of(b), "queued");

  Json st = ctl_json({"status"});
  EXPECT_EQ(st["paused"], true);
  EXPECT_EQ(st["counts"]["queued"], 2);
  EXPECT_EQ(st["counts"]["cancelled"], 1);
  std::string table = ctl({"status"}).out;
  EXPECT_NE(table.find("paused"), std::string::npos) << table;
  EXPECT_NE(table.find("2 queued"), std::string::npos) << table;

  EXPECT_EQ(ctl_json({"resume"})["paused"], false);
  EXPECT_TRUE(test::wait_until([&] { return state_of(a) == "succeeded" && state_of(b) == "succeeded"; },
                               std::chrono::seconds(20)));
  EXPECT_EQ(ctl_json({"status"})["paused"], false);
  ctl({"retry", a}, 1);   // a succeeded job cannot be retried
}

TEST_F(CtlDaemon, IdempotencyKeyAndJobFiles) {
  std::string id = submit_quiet({"--param", "seconds=0.1", "--idempotency-key", "k-1"});
  CommandResult again = ctl({"submit", "sleep", "--param", "seconds=0.1", "--idempotency-key", "k-1"});
  EXPECT_EQ(trim(again.out), id);
  EXPECT_NE(again.err.find("(already existed)"), std::string::npos) << again.err;
  ctl({"submit", "sleep", "--param", "seconds=0.2", "--idempotency-key", "k-1"}, 1);   // conflict

  test::write_file(dir.file("job.toml"), "model = \"sleep\"\npriority = 9\n[params]\nseconds = 5\nsteps = 3\n");
  Json sub = ctl_json({"submit", "--file", dir.file("job.toml"), "--param", "seconds=0.1"});
  EXPECT_EQ(sub["job"]["priority"], 9);
  EXPECT_EQ(sub["job"]["params"]["seconds"], 0.1);
  EXPECT_EQ(sub["job"]["params"]["steps"], 3);
  test::write_file(dir.file("job.json"), R"({"model": "sleep", "params": {"seconds": 0.1}})");
  CommandResult j = ctl({"submit", "-f", dir.file("job.json"), "--wait"}, 0);
  EXPECT_NE(j.out.find("succeeded"), std::string::npos);
  ctl({"submit", "--file", dir.file("missing.toml")}, 2);
}

TEST_F(CtlDaemon, FollowAndPrune) {
  std::string id = submit_quiet({"--param", "seconds=0.3", "--param", "steps=3"});
  CommandResult f = ctl({"follow", id}, 0);
  EXPECT_EQ(split_lines(f.out)[0], id + " succeeded");
  EXPECT_NE(f.err.find("submitted"), std::string::npos) << f.err;

  // --from skips what was already seen.
  Json shown = ctl_json({"show", id});
  int64_t last = shown["events"].back()["seq"];
  CommandResult tail = ctl({"follow", id, "--from", std::to_string(last)}, 0);
  EXPECT_EQ(tail.err, "");
  EXPECT_EQ(ctl_json({"follow", id})["job"]["state"], "succeeded");

  std::string failed = submit_quiet({"--param", "seconds=0.1", "--param", "fail_at_step=1", "--max-attempts", "1"});
  ctl({"follow", failed}, 1);

  Json none = ctl_json({"prune", "--older-than", "30d"});
  EXPECT_EQ(none["deleted"], 0);
  CommandResult pruned = ctl({"prune", "--older-than", "0"});
  EXPECT_NE(pruned.out.find("pruned 2 finished jobs"), std::string::npos) << pruned.out;
  ctl({"show", id}, 4);
}

TEST_F(CtlDaemon, Models) {
  Json all = ctl_json({"models"});
  ASSERT_TRUE(all["models"].is_array());
  bool has_sleep = false;
  for (const auto& m : all["models"]) has_sleep |= m["name"] == "sleep";
  EXPECT_TRUE(has_sleep);
  std::string table = ctl({"models"}).out;
  EXPECT_EQ(table.rfind("NAME", 0), 0u);
  EXPECT_NE(table.find("sleep"), std::string::npos);
  std::string one = ctl({"models", "sleep"}).out;
  for (const char* s : {"seconds", "steps", "fail_at_step", "integer", "number"})
    EXPECT_NE(one.find(s), std::string::npos) << s << "\n" << one;
  EXPECT_NE(split_lines(ctl({"-q", "models"}).out).size(), 0u);
}

TEST_F(CtlDaemon, FollowReconnectsAcrossADaemonRestart) {
  std::string id = submit_quiet({"--param", "seconds=3", "--param", "steps=6"});
  CommandResult follow;
  std::thread t([&] { follow = d.ctl({"--timeout", "30", "follow", id}); });
  ASSERT_TRUE(test::wait_until([&] { return state_of(id) == "running"; }, std::chrono::seconds(10)));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  d.kill9();
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  d.start();
  t.join();
  EXPECT_EQ(follow.exit_code, 0) << follow.out << follow.err << "\nlog:\n" << test::read_file(d.log_path());
  EXPECT_EQ(split_lines(follow.out)[0], id + " succeeded");
  EXPECT_NE(follow.err.find("reconnect"), std::string::npos) << follow.err;
  // Nothing missed, nothing twice: one state line per state event in the log.
  Json events = ctl_json({"show", id})["events"];
  int state_events = 0;
  for (const auto& e : events) state_events += e["kind"] == "state";
  int state_lines = 0;
  for (const auto& l : split_lines(follow.err)) state_lines += l.find(" -> ") != std::string::npos;
  EXPECT_EQ(state_lines, state_events) << follow.err;
}

TEST_F(CtlDaemon, DrainStopsTheDaemon) {
  EXPECT_NE(ctl({"drain"}).out.find("draining"), std::string::npos);
  EXPECT_TRUE(test::wait_until([&] { return !d.running(); }, std::chrono::seconds(20)));
  ctl({"status"}, 3);
}

// ---------------------------------------------------------------------------------
// The real binary against a real reeld with the test plugins: memtest (plugins/testing;
// allocates what its estimate names and runs out of memory above a limit a job sets)
// and the broken ones the daemon refuses.

// A folder holding only memtest (a symlink to lib/reel/plugins/libmemtest.so): the real
// plugins folder also holds model plugins (wan, when LibTorch is installed), and these
// tests count what loaded. Created once; concurrent test processes may race harmlessly.
std::string memtest_only_plugin_dir() {
  const std::string dir = std::string(REEL_BINARY_DIR) + "/lib/reel/ctl-test-plugins";
  const std::string target = std::string(REEL_BINARY_DIR) + "/lib/reel/plugins/libmemtest.so";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  std::filesystem::create_symlink(target, dir + "/libmemtest.so", ec);  // EEXIST: made by another run
  return dir;
}

const std::string kPluginDir = memtest_only_plugin_dir();
const std::string kBrokenPluginDir = std::string(REEL_BINARY_DIR) + "/lib/reel/test-plugins";

std::string plugin_dirs_config(bool with_broken) {
  return "[plugins]\ndirs = [\"" + kPluginDir + "\"" + (with_broken ? ", \"" + kBrokenPluginDir + "\"" : "") + "]\n";
}

// A simulated GPU (so this runs anywhere) with no reserve, margin or overhead.
std::string simulated_gpu_config(const std::string& size) {
  return "[gpu]\nsimulate = [\"" + size + "\"]\nreserve = \"0B\"\ninference_margin = \"0B\"\nworker_overhead = \"0B\"\n";
}

// `config` is appended to the generated reeld.toml; `daemon_keys` go into its [daemon] table.
class PluginDaemon {
 public:
  explicit PluginDaemon(const std::string& config, const std::string& daemon_keys = "") : d(dir.path(), daemon_keys) {
    test::write_file(d.config_path(), test::read_file(d.config_path()) + config);
    d.start();
  }
  CommandResult ctl(const std::vector<std::string>& args, int code = 0) {
    CommandResult r = d.ctl(args);
    EXPECT_EQ(r.exit_code, code) << testing::PrintToString(args) << "\nstdout: " << r.out << "\nstderr: " << r.err
                                 << "\nlog:\n" << test::read_file(d.log_path());
    return r;
  }
  Json ctl_json(const std::vector<std::string>& args) {
    std::vector<std::string> a = {"--json"};
    a.insert(a.end(), args.begin(), args.end());
    Json j = Json::parse(ctl(a).out, nullptr, false);
    EXPECT_FALSE(j.is_discarded());
    return j;
  }

  TempDir dir;
  Daemon d;
};

// The issue's acceptance check: on a machine without a GPU, `reelctl status` shows the
// host-RAM budget as a device row and the plugins that loaded.
TEST(CtlPlugins, StatusShowsTheHostRamBudgetAndTheLoadedPlugins) {
  PluginDaemon p(plugin_dirs_config(true));
  std::string st = p.ctl({"status"}).out;
  Json js = p.ctl_json({"status"});

  auto devices = section(st, "devices:");
  ASSERT_GE(devices.size(), 2u) << st;
  auto cpu = row(devices, "cpu");
  ASSERT_EQ(cpu.size(), 8u) << st;
  EXPECT_EQ(cpu[1], "host RAM");
  Json cpu_json;
  size_t gpus = 0;
  for (const auto& dev : js["devices"]) {
    if (dev["id"] == "cpu") cpu_json = dev;
    else ++gpus;
  }
  ASSERT_TRUE(cpu_json.is_object()) << js.dump();
  EXPECT_EQ(cpu[2], format_bytes(cpu_json["total_bytes"].get<int64_t>())) << st;
  EXPECT_EQ(cpu[3], format_bytes(cpu_json["reserve_bytes"].get<int64_t>())) << st;
  EXPECT_EQ(devices.size(), 2 + gpus) << "one row per device\n" << st;
  if (gpus == 0) {
    EXPECT_EQ(devices.size(), 2u) << "no GPU: the host RAM row only\n" << st;
  }

  EXPECT_NE(line_starting(st, "device probe:"), "") << st;
  std::string plugins = line_starting(st, "plugins:");
  EXPECT_NE(plugins.find("2 loaded (builtin, memtest)"), std::string::npos) << plugins;
  EXPECT_NE(plugins.find("3 refused ("), std::string::npos) << plugins;
  EXPECT_NE(plugins.find("libabi_mismatch.so"), std::string::npos) << plugins;
  EXPECT_NE(line_starting(st, "models:").find("memtest"), std::string::npos) << st;
  EXPECT_NE(st.find("\nworkers: none\n"), std::string::npos) << st;
}

TEST(CtlPlugins, PluginsListsLoadedAndRefusedPluginsWithTheReason) {
  PluginDaemon p(plugin_dirs_config(true));
  auto lines = split_lines(p.ctl({"plugins"}).out);
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_EQ(cells(lines[0]), (std::vector<std::string>{"SOURCE", "NAME", "VERSION", "STATE", "MODELS/ERROR"}));
  std::map<std::string, std::vector<std::string>> by_file;
  for (size_t i = 1; i < lines.size(); ++i) {
    auto c = cells(lines[i]);
    ASSERT_EQ(c.size(), 5u) << lines[i];
    by_file[std::filesystem::path(c[0]).filename().string()] = c;
  }
  EXPECT_EQ(by_file["builtin:sleep"][3], "loaded");
  EXPECT_EQ(by_file["builtin:sleep"][4], "sleep");
  EXPECT_EQ(by_file["libmemtest.so"][1], "memtest");
  EXPECT_EQ(by_file["libmemtest.so"][3], "loaded");
  EXPECT_EQ(by_file["libmemtest.so"][4], "memtest");
  EXPECT_EQ(by_file["libabi_mismatch.so"][3], "refused");
  EXPECT_NE(by_file["libabi_mismatch.so"][4].find("ABI version"), std::string::npos);
  EXPECT_EQ(by_file["libnot_a_plugin.so"][3], "refused");
  EXPECT_NE(by_file["libnot_a_plugin.so"][4].find("not a reel plugin"), std::string::npos);

  Json j = p.ctl_json({"plugins"});
  ASSERT_TRUE(j["plugins"].is_array());
  EXPECT_EQ(j["plugins"].size(), 5u);
  EXPECT_EQ(split_lines(p.ctl({"-q", "plugins"}).out).size(), 5u);
}

TEST(CtlPlugins, ShowExplainsAnOutOfMemoryFallbackAndSubmitSendsThePolicy) {
  PluginDaemon p(simulated_gpu_config("8GiB") + plugin_dirs_config(false));
  CommandResult run = p.ctl({"submit", "memtest", "-p", "megabytes=64", "-p", "oom_above_mb=40", "--wait"});
  std::string id = run.out.substr(0, run.out.find(' '));
  ASSERT_EQ(split_lines(run.out)[0], id + " succeeded");
  EXPECT_NE(run.err.find("scheduled: rung resident on cuda:0"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("fallback: resident -> offload"), std::string::npos) << run.err;

  std::string shown = p.ctl({"show", id}).out;
  EXPECT_EQ(cells(line_starting(shown, "rung:")),
            (std::vector<std::string>{"rung:", "offload on cuda:0 (rung 2 of 4)"}))
      << shown;
  auto history = history_rows(shown);
  ASSERT_EQ(history.size(), 3u) << shown;
  EXPECT_EQ(history[0][1], "scheduled");
  EXPECT_EQ(history[0][2], "resident");
  EXPECT_EQ(history[0][3], "cuda:0");
  EXPECT_NE(history[0][4].find("GPU 64.0 MiB needed / 8.0 GiB available"), std::string::npos) << history[0][4];
  EXPECT_EQ(history[1][1], "fallback");
  EXPECT_EQ(history[1][2], "resident -> offload");
  EXPECT_NE(history[1][4].find("out of memory"), std::string::npos) << history[1][4];
  EXPECT_EQ(history[2][1], "scheduled");
  EXPECT_EQ(history[2][2], "offload");
  EXPECT_NE(history[2][4].find("GPU 32.0 MiB needed / 8.0 GiB available"), std::string::npos) << history[2][4];

  auto plan = section(shown, "plan:");
  EXPECT_EQ(row(plan, "resident").back(), "ruled out (fallback)") << shown;
  EXPECT_EQ(row(plan, "offload").back(), "used") << shown;
  EXPECT_EQ(row(plan, "half-steps")[1], "quality") << shown;
  auto peaks = section(shown, "measured peaks:");
  auto offload_peak = row(peaks, "offload");
  ASSERT_EQ(offload_peak.size(), 9u) << shown;
  EXPECT_EQ(offload_peak[3], "32.0 MiB");
  EXPECT_EQ(offload_peak[5], "1.00x");
  EXPECT_NE(section(shown, "events:").size(), 0u);

  // The finished job's worker stays resident, idle, for its keep-alive.
  auto workers = section(p.ctl({"status"}).out, "workers:");
  auto memtest = row(workers, "memtest");
  ASSERT_EQ(memtest.size(), 7u) << testing::PrintToString(workers);
  EXPECT_EQ(memtest[1], "cuda:0");
  EXPECT_EQ(memtest[2], "offload");
  EXPECT_EQ(memtest[3], "idle");
  EXPECT_NE(memtest[6].find("left"), std::string::npos);

  // The policy flags reach the daemon as the job's policy.
  std::string id2 = trim(p.ctl({"-q", "submit", "memtest", "-p", "megabytes=8", "--allow-degrade", "--floor",
                                "steps=2"}).out);
  Json job = p.ctl_json({"show", id2})["job"];
  EXPECT_EQ(job["policy"], Json::parse(R"({"quality_fallback": true, "floor": {"steps": 2}})")) << job.dump();
  EXPECT_NE(line_starting(p.ctl({"show", id2}).out, "policy:").find("\"quality_fallback\":true"), std::string::npos);
  CommandResult bad = p.ctl({"submit", "memtest", "--floor", "precision=fp9"}, 2);
  EXPECT_NE(bad.err.find("fp9"), std::string::npos) << bad.err;

  auto ladder = section(p.ctl({"models", "memtest"}).out, "ladder:");
  EXPECT_EQ(row(ladder, "half-steps")[1], "quality");
  EXPECT_EQ(row(ladder, "offload")[1], "placement");
}

TEST(CtlPlugins, ShowGivesTheReasonAQueuedJobWaits) {
  PluginDaemon p(simulated_gpu_config("100MiB") + plugin_dirs_config(false), "max_concurrent_jobs = 4\n");
  std::string first =
      trim(p.ctl({"-q", "submit", "memtest", "-p", "megabytes=64", "-p", "steps=40", "-p", "step_ms=100"}).out);
  ASSERT_TRUE(test::wait_until([&] { return p.ctl_json({"show", first})["job"]["state"] == "running"; }));
  std::string second = trim(p.ctl({"-q", "submit", "memtest", "-p", "megabytes=64"}).out);
  ASSERT_TRUE(test::wait_until([&] { return p.ctl_json({"show", second}).contains("waiting"); }));
  std::string shown = p.ctl({"show", second}).out;
  std::string waiting = line_starting(shown, "waiting:");
  EXPECT_NE(waiting.find("cuda:0"), std::string::npos) << shown;
  EXPECT_EQ(cells(line_starting(shown, "state:")), (std::vector<std::string>{"state:", "queued"})) << shown;
  p.ctl({"cancel", first, second});
}

}  // namespace
}  // namespace reel::ctl
