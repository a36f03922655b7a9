// The real reeld, driven over its real socket: protocol handling, job lifecycle,
// cancel, worker crashes, signals, reload and systemd notification.
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <poll.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace reel::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

Json sleep_job(double seconds, int steps = 10, Json extra = Json::object()) {
  Json params = {{"seconds", seconds}, {"steps", steps}};
  params.update(extra);
  return Json{{"model", "sleep"}, {"params", params}};
}

std::string submit(RawClient& c, const Json& job) {
  Json r = c.call("submit", {{"job", job}});
  EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
  return r["result"]["job"]["id"].get<std::string>();
}

Json show(RawClient& c, const std::string& id) {
  Json r = c.call("show", {{"id", id}});
  EXPECT_TRUE(r["ok"].get<bool>()) << r.dump();
  return r["result"];
}

std::string state_of(RawClient& c, const std::string& id) { return show(c, id)["job"]["state"]; }

bool wait_state(RawClient& c, const std::string& id, const std::string& state, std::chrono::milliseconds t = 20s) {
  return wait_until([&] { return state_of(c, id) == state; }, t);
}

std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream f(e.path() / "stat");
    std::string line;
    std::getline(f, line);
    auto close_paren = line.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(line.substr(close_paren + 2));
    char state;
    pid_t ppid;
    rest >> state >> ppid;
    if (ppid == pid && state != 'Z') out.push_back(std::stoi(name));
  }
  return out;
}

// The pid of the worker process running `job_id` once it is past loading (from status;
// planner processes are children of reeld too).
pid_t worker_of(RawClient& c, const std::string& job_id) {
  Json status = c.call("status");
  for (const auto& w : status["result"]["workers"])
    if (w["job"] == job_id && w["state"] == "busy") return w["pid"].get<pid_t>();
  return -1;
}

class DaemonTest : public ::testing::Test {
 protected:
  TempDir dir;
};

TEST_F(DaemonTest, RequiresHelloAndMatchingProtocol) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  Json r = c.call("status");
  EXPECT_FALSE(r["ok"].get<bool>());
  EXPECT_EQ(r["error"]["code"], "hello_required");
  r = c.call("hello", {{"protocol", 99}});
  EXPECT_EQ(r["error"]["code"], "protocol_mismatch");
  r = c.call("hello", {{"protocol", "1"}});
  EXPECT_EQ(r["error"]["code"], "bad_request");
  r = c.hello();
  ASSERT_TRUE(r["ok"].get<bool>()) << r.dump();
  EXPECT_EQ(r["result"]["protocol"], 1);
  EXPECT_EQ(r["result"]["server"], "reeld");
  EXPECT_TRUE(c.call("status")["ok"].get<bool>());
}

TEST_F(DaemonTest, MalformedRequestsGetErrorsAndTheConnectionStaysUsable) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  c.hello();
  struct Case { std::string line, code; };
  std::vector<Case> cases = {
      {"this is not json\n", "parse_error"},
      {"[1,2]\n", "bad_request"},
      {"{\"id\":1}\n", "bad_request"},
      {"{\"id\":2,\"method\":\"fly\"}\n", "unknown_method"},
      {"{\"id\":3,\"method\":\"show\"}\n", "bad_request"},
      {"{\"id\":4,\"method\":\"show\",\"params\":{\"id\":\"nosuch\"}}\n", "not_found"},
      {"{\"id\":5,\"method\":\"submit\",\"params\":{\"job\":{\"model\":\"nosuch\"}}}\n", "unknown_model"},
      {"{\"id\":6,\"method\":\"submit\",\"params\":{\"job\":{\"model\":\"sleep\",\"params\":{\"seconds\":-1}}}}\n",
       "invalid_params"},
      {"{\"id\":7,\"method\":\"submit\",\"params\":{\"job\":{\"model\":\"sleep\",\"params\":{\"secs\":1}}}}\n",
       "invalid_params"},
      {"{\"id\":8,\"method\":\"submit\",\"params\":{\"job\":\"sleep\"}}\n", "bad_request"},
      {"{\"id\":9,\"method\":\"submit\",\"params\":{\"job\":{\"model\":\"sleep\",\"source\":\"watch:/x\"}}}\n",
       "bad_request"},
      {"{\"id\":10,\"method\":\"list\",\"params\":{\"state\":\"sleeping\"}}\n", "bad_request"},
      {"{\"id\":11,\"method\":\"list\",\"params\":{\"limit\":0}}\n", "bad_request"},
      {"{\"id\":12,\"method\":\"priority\",\"params\":{\"id\":\"x\",\"priority\":5000}}\n", "bad_request"},
      {"{\"id\":13,\"method\":\"prune\",\"params\":{}}\n", "bad_request"},
      {"{\"id\":14,\"method\":\"cancel\",\"params\":{\"id\":\"nosuch\"}}\n", "not_found"},
      {"{\"id\":15,\"method\":\"models\",\"params\":{\"name\":\"nosuch\"}}\n", "unknown_model"},
  };
  for (const auto& c_ : cases) {
    c.send_raw(c_.line);
    auto reply = c.read_json();
    ASSERT_TRUE(reply) << "no reply to " << c_.line;
    EXPECT_FALSE((*reply)["ok"].get<bool>()) << c_.line;
    EXPECT_EQ((*reply)["error"]["code"], c_.code) << c_.line << " -> " << reply->dump();
    EXPECT_FALSE((*reply)["error"]["message"].get<std::string>().empty());
  }
  EXPECT_TRUE(c.call("status")["ok"].get<bool>()) << "connection must survive malformed requests";
  EXPECT_TRUE(d.running());
}

TEST_F(DaemonTest, OversizedLineIsRefusedWithoutHurtingOtherClients) {
  Daemon d(dir.path(), "max_request_bytes = 4096\n");
  d.start();
  RawClient big(d.socket());
  RawClient other(d.socket());
  other.hello();
  big.hello();
  big.send_raw(std::string(20000, 'x'));
  auto reply = big.read_json();
  ASSERT_TRUE(reply);
  EXPECT_EQ((*reply)["error"]["code"], "too_large");
  EXPECT_FALSE(big.read_line(2s).has_value()) << "the connection is closed after too_large";
  EXPECT_TRUE(other.call("status")["ok"].get<bool>());
}

TEST_F(DaemonTest, AStuckClientDoesNotStallOthers) {
  Daemon d(dir.path());
  d.start();
  RawClient stuck(d.socket());
  stuck.hello();
  stuck.send_raw("{\"id\":1,\"method\":\"sta");   // half a request, never finished
  RawClient never_reads(d.socket());
  never_reads.hello();
  for (int i = 0; i < 200; ++i) never_reads.send_raw("{\"id\":1,\"method\":\"status\"}\n");  // replies pile up
  RawClient c(d.socket());
  c.hello();
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(c.call("status")["ok"].get<bool>());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(DaemonTest, SocketIsCreatedWithMode0660) {
  Daemon d(dir.path());
  d.start();
  struct stat st{};
  ASSERT_EQ(stat(d.socket().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(DaemonTest, JobRunsToSuccessWithProgressEventsAndAnOutput) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  c.hello();
  std::string id = submit(c, sleep_job(0.5, 5));
  EXPECT_EQ(id.size(), 6u);
  c.send_raw(Json{{"id", 42}, {"method", "follow"}, {"params", {{"id", id}}}}.dump() + "\n");
  std::vector<Json> events;
  Json final_reply;
  while (auto j = c.read_json(20s)) {
    ASSERT_EQ((*j)["id"], 42);
    if (j->contains("event")) events.push_back((*j)["event"]);
    else { final_reply = *j; break; }
  }
  ASSERT_TRUE(final_reply["ok"].get<bool>()) << final_reply.dump();
  Json job = final_reply["result"]["job"];
  EXPECT_EQ(job["state"], "succeeded");
  EXPECT_EQ(job["attempts"], 1);
  EXPECT_GT(job["finished_at"].get<int64_t>(), 0);
  ASSERT_EQ(job["outputs"].size(), 1u);
  EXPECT_TRUE(std::filesystem::exists(job["outputs"][0].get<std::string>()));
  ASSERT_GE(events.size(), 4u);
  for (size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i]["seq"], static_cast<int64_t>(i + 1));
  EXPECT_EQ(events.front()["kind"], "submitted");
  bool saw_final_progress = false, saw_running = false;
  for (const auto& e : events) {
    if (e["kind"] == "progress" && e["data"]["step"] == 5 && e["data"]["total"] == 5) saw_final_progress = true;
    if (e["kind"] == "state" && e["data"]["to"] == "running") saw_running = true;
  }
  EXPECT_TRUE(saw_final_progress);
  EXPECT_TRUE(saw_running);
  EXPECT_EQ(events.back()["kind"], "state");
  EXPECT_EQ(events.back()["data"]["to"], "succeeded");

  // A follower that reconnects with the last seq it saw gets only what came after.
  RawClient again(d.socket());
  again.hello();
  int64_t after = events[events.size() - 2]["seq"];
  again.send_raw(Json{{"id", 1}, {"method", "follow"}, {"params", {{"id", id}, {"after_seq", after}}}}.dump() + "\n");
  auto ev = again.read_json();
  ASSERT_TRUE(ev && ev->contains("event"));
  EXPECT_EQ((*ev)["event"]["seq"], after + 1);
  auto done = again.read_json();
  ASSERT_TRUE(done);
  EXPECT_EQ((*done)["result"]["job"]["state"], "succeeded");
}

TEST_F(DaemonTest, IdempotencyKeyReturnsTheSameJobOrRefusesADifferentPayload) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  c.hello();
  Json job = sleep_job(0.1);
  job["idempotency_key"] = "batch-7";
  Json a = c.call("submit", {{"job", job}});
  Json b = c.call("submit", {{"job", job}});
  ASSERT_TRUE(a["ok"].get<bool>() && b["ok"].get<bool>());
  EXPECT_FALSE(a["result"]["existed"].get<bool>());
  EXPECT_TRUE(b["result"]["existed"].get<bool>());
  EXPECT_EQ(a["result"]["job"]["id"], b["result"]["job"]["id"]);
  job["params"]["seconds"] = 0.2;
  Json conflict = c.call("submit", {{"job", job}});
  EXPECT_EQ(conflict["error"]["code"], "conflict");
  EXPECT_EQ(c.call("list")["result"]["jobs"].size(), 1u);
}

TEST_F(DaemonTest, PauseHoldsTheQueueAcrossRestartsAndResumeRunsIt) {
  Daemon d(dir.path());
  d.start();
  {
    RawClient c(d.socket());
    c.hello();
    EXPECT_EQ(c.call("pause")["result"]["paused"], true);
    std::string id = submit(c, sleep_job(0.1));
    std::this_thread::sleep_for(500ms);
    EXPECT_EQ(state_of(c, id), "queued");
  }
  d.kill9();
  d.start();
  RawClient c(d.socket());
  c.hello();
  EXPECT_EQ(c.call("status")["result"]["paused"], true);
  std::string id = c.call("list")["result"]["jobs"][0]["id"];
  EXPECT_EQ(state_of(c, id), "queued");
  c.call("resume");
  EXPECT_TRUE(wait_state(c, id, "succeeded"));
}

TEST_F(DaemonTest, CancelQueuedAndRunningJobs) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  c.hello();
  std::string running = submit(c, sleep_job(60, 600));
  ASSERT_TRUE(wait_state(c, running, "running"));
  std::string queued = submit(c, sleep_job(60));
  Json r = c.call("cancel", {{"id", queued}});
  EXPECT_EQ(r["result"]["job"]["state"], "cancelled");
  r = c.call("cancel", {{"id", running}});
  EXPECT_EQ(r["result"]["job"]["cancel_requested"], true);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(wait_state(c, running, "cancelled", 10s));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << "a cooperative cancel should not need the grace period";
  EXPECT_EQ(c.call("cancel", {{"id", running}})["error"]["code"], "invalid_state");
  // A finished job's priority is fixed; a cancelled job can be retried and re-prioritised.
  EXPECT_EQ(c.call("priority", {{"id", queued}, {"priority", 10}})["error"]["code"], "invalid_state");
  Json retried = c.call("retry", {{"id", queued}});
  EXPECT_EQ(retried["result"]["job"]["state"], "queued");
  EXPECT_EQ(c.call("priority", {{"id", queued}, {"priority", 10}})["result"]["job"]["priority"], 10);
}

TEST_F(DaemonTest, AWorkerThatIgnoresCancelIsKilledAfterTheGrace) {
  Daemon d(dir.path(), "cancel_grace_seconds = 0.5\n");
  d.start();
  RawClient c(d.socket());
  c.hello();
  std::string id = submit(c, sleep_job(60, 600));
  ASSERT_TRUE(wait_state(c, id, "running"));
  pid_t worker = -1;
  ASSERT_TRUE(wait_until([&] { return (worker = worker_of(c, id)) > 0; }));
  kill(worker, SIGSTOP);   // a worker stuck in a long kernel or GPU call cannot answer
  c.call("cancel", {{"id", id}});
  ASSERT_TRUE(wait_state(c, id, "cancelled", 10s));
  auto children = children_of(d.pid());
  EXPECT_EQ(std::find(children.begin(), children.end(), worker), children.end()) << "the stuck worker is gone";
  EXPECT_NE(read_file(d.log_path()).find("did not stop within the cancel grace"), std::string::npos);
}

TEST_F(DaemonTest, AWorkerKilledMidJobIsACrashAndTheJobRunsAgain) {
  Daemon d(dir.path(), "[jobs]\nmax_crashes = 2\n");
  d.start();
  RawClient c(d.socket());
  c.hello();
  std::string id = submit(c, sleep_job(2, 20));
  ASSERT_TRUE(wait_state(c, id, "running"));
  pid_t worker = -1;
  ASSERT_TRUE(wait_until([&] { return (worker = worker_of(c, id)) > 0; }));
  kill(worker, SIGKILL);
  ASSERT_TRUE(wait_until([&] { return show(c, id)["job"]["crash_count"] == 1; }));
  EXPECT_TRUE(wait_state(c, id, "succeeded", 30s)) << "re-queued after the crash, then completed";
  Json shown = show(c, id);
  EXPECT_EQ(shown["job"]["attempts"], 1) << "a crash is counted in crash_count, not as a failed attempt";
  bool saw_crash_event = false;
  for (const auto& e : shown["events"])
    if (e["kind"] == "state" && e["data"]["to"] == "queued" &&
        e["data"]["reason"].get<std::string>().find("signal 9") != std::string::npos)
      saw_crash_event = true;
  EXPECT_TRUE(saw_crash_event) << shown["events"].dump();

  // Crashing max_crashes times makes the job poison.
  std::string poison = submit(c, sleep_job(60, 600));
  for (int crash = 1; crash <= 2; ++crash) {
    ASSERT_TRUE(wait_state(c, poison, "running"));
    ASSERT_TRUE(wait_until([&] { return (worker = worker_of(c, poison)) > 0; }));
    kill(worker, SIGKILL);
    ASSERT_TRUE(wait_until([&] { return show(c, poison)["job"]["crash_count"] == crash; }));
  }
  ASSERT_TRUE(wait_state(c, poison, "failed"));
  EXPECT_NE(show(c, poison)["job"]["error"].get<std::string>().find("poison"), std::string::npos);
  EXPECT_TRUE(d.running());
}

TEST_F(DaemonTest, FailingJobIsRetriedUpToMaxAttempts) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  c.hello();
  Json job = sleep_job(0.2, 4, {{"fail_at_step", 2}});
  job["max_attempts"] = 2;
  std::string id = submit(c, job);
  ASSERT_TRUE(wait_state(c, id, "failed"));
  Json shown = show(c, id);
  EXPECT_EQ(shown["job"]["attempts"], 2);
  EXPECT_NE(shown["job"]["error"].get<std::string>().find("fail_at_step"), std::string::npos);
  EXPECT_EQ(shown["job"]["crash_count"], 0) << "a model failure is not a crash";
}

TEST_F(DaemonTest, SecondDaemonOnTheSameStateIsRefused) {
  Daemon d(dir.path());
  d.start();
  TempDir other;
  write_file(other.file("reeld.toml"), "[daemon]\nstate_dir = \"" + d.state_dir() + "\"\nsocket_path = \"" +
                                          other.file("s.sock") + "\"\n");
  auto r = run_command({reeld_bin(), "--config", other.file("reeld.toml")}, {}, 20s);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("another reeld"), std::string::npos) << r.err;
  EXPECT_TRUE(d.running());
}

TEST_F(DaemonTest, SighupRejectsAnInvalidConfigAndAppliesAValidOne) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  c.hello();
  std::string original = read_file(d.config_path());
  write_file(d.config_path(), original + "[jobs]\nmax_atempts = 3\n");
  d.signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return read_file(d.log_path()).find("reload rejected") != std::string::npos; }));
  EXPECT_NE(read_file(d.log_path()).find("max_atempts"), std::string::npos) << "the log names the bad key";
  EXPECT_EQ(c.call("status")["result"]["budgets"]["max_concurrent_jobs"], 1);
  write_file(d.config_path(), "[daemon]\nstate_dir = \"" + d.state_dir() + "\"\nsocket_path = \"" + d.socket() +
                                  "\"\nmax_concurrent_jobs = 3\n");
  d.signal(SIGHUP);
  EXPECT_TRUE(wait_until([&] { return c.call("status")["result"]["budgets"]["max_concurrent_jobs"] == 3; }));
  EXPECT_TRUE(d.running());
}

TEST_F(DaemonTest, SigtermLetsTheRunningJobFinishThenExitsZero) {
  Daemon d(dir.path(), "stop_grace_seconds = 30\n");
  d.start();
  std::string id;
  {
    RawClient c(d.socket());
    c.hello();
    id = submit(c, sleep_job(1.5, 10));
    ASSERT_TRUE(wait_state(c, id, "running"));
  }
  EXPECT_EQ(d.terminate(30s), 0);
  EXPECT_FALSE(std::filesystem::exists(d.socket())) << "the socket is removed on a clean exit";
  d.start();
  RawClient c(d.socket());
  c.hello();
  EXPECT_EQ(state_of(c, id), "succeeded");
}

TEST_F(DaemonTest, SigtermAfterTheGraceRequeuesWithoutLosingOrChargingTheJob) {
  Daemon d(dir.path(), "stop_grace_seconds = 0.3\n");
  d.start();
  std::string id;
  {
    RawClient c(d.socket());
    c.hello();
    id = submit(c, sleep_job(60, 600));
    ASSERT_TRUE(wait_state(c, id, "running"));
  }
  EXPECT_EQ(d.terminate(30s), 0);
  d.start();
  RawClient c(d.socket());
  c.hello();
  Json job = show(c, id)["job"];
  EXPECT_TRUE(job["state"] == "queued" || job["state"] == "running") << job.dump();
  EXPECT_EQ(job["crash_count"], 0) << "a clean stop is not a crash";
}

TEST_F(DaemonTest, DrainFinishesRunningJobsStartsNothingAndExits) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  c.hello();
  std::string running = submit(c, sleep_job(1, 5));
  ASSERT_TRUE(wait_state(c, running, "running"));
  std::string waiting = submit(c, sleep_job(1));
  EXPECT_EQ(c.call("drain")["result"]["draining"], true);
  EXPECT_EQ(c.call("submit", {{"job", sleep_job(1)}})["error"]["code"], "draining");
  ASSERT_TRUE(wait_until([&] { return !d.running(); }, 20s));
  d.start();
  RawClient c2(d.socket());
  c2.hello();
  EXPECT_EQ(state_of(c2, running), "succeeded");
  EXPECT_NE(state_of(c2, waiting), "succeeded") << "drain starts nothing new";
}

TEST_F(DaemonTest, PruneRemovesOnlyOldFinishedJobs) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  c.hello();
  std::string done = submit(c, sleep_job(0.05, 1));
  ASSERT_TRUE(wait_state(c, done, "succeeded"));
  c.call("pause");
  std::string queued = submit(c, sleep_job(1));
  EXPECT_EQ(c.call("prune", {{"older_than_s", 3600}})["result"]["deleted"], 0);
  EXPECT_EQ(c.call("prune", {{"older_than_s", 0}})["result"]["deleted"], 1);
  EXPECT_EQ(c.call("show", {{"id", done}})["error"]["code"], "not_found");
  EXPECT_EQ(state_of(c, queued), "queued");
}

TEST_F(DaemonTest, StatusReportsCountsModelsAndBudgets) {
  Daemon d(dir.path());
  d.start();
  RawClient c(d.socket());
  c.hello();
  c.call("pause");
  submit(c, sleep_job(1));
  Json s = c.call("status")["result"];
  EXPECT_EQ(s["counts"]["queued"], 1);
  EXPECT_EQ(s["pid"], d.pid());
  EXPECT_EQ(s["models"][0]["name"], "sleep");
  EXPECT_EQ(s["budgets"]["max_concurrent_jobs"], 1);
  Json m = c.call("models", {{"name", "sleep"}})["result"]["models"][0];
  std::vector<std::string> names;
  for (const auto& p : m["params"]) names.push_back(p["name"]);
  EXPECT_NE(std::find(names.begin(), names.end(), "fail_at_step"), names.end());
}

// systemd's notification socket, owned by the test.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) throw std::runtime_error("bind notify socket");
  }
  ~NotifySocket() { close(fd_); }
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return std::nullopt;
    char buf[4096];
    ssize_t n = recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }
  // Waits for a datagram starting with `prefix`, collecting everything seen.
  bool wait_for(const std::string& prefix, std::vector<std::string>& seen, std::chrono::milliseconds t = 15s) {
    auto deadline = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < deadline) {
      auto m = next(std::chrono::milliseconds(200));
      if (!m) continue;
      seen.push_back(*m);
      if (m->rfind(prefix, 0) == 0) return true;
    }
    return false;
  }

 private:
  std::string path_;
  int fd_;
};

TEST_F(DaemonTest, NotifiesSystemdReadyOnlyOnceServingThenWatchdogAndStopping) {
  NotifySocket notify(dir.file("notify.sock"));
  Daemon d(dir.path(), "", {"NOTIFY_SOCKET=" + dir.file("notify.sock"), "WATCHDOG_USEC=400000"});
  d.start(/*wait_for_socket=*/false);
  std::vector<std::string> seen;
  ASSERT_TRUE(notify.wait_for("READY=1", seen));
  // READY=1 promises a usable daemon: at the moment it arrives the socket must
  // already accept and answer.
  RawClient c(d.socket());
  EXPECT_TRUE(c.hello()["ok"].get<bool>());
  EXPECT_TRUE(c.call("list")["ok"].get<bool>());
  ASSERT_TRUE(notify.wait_for("STATUS=", seen));
  ASSERT_TRUE(notify.wait_for("WATCHDOG=1", seen));
  ASSERT_TRUE(notify.wait_for("WATCHDOG=1", seen)) << "the watchdog keeps being fed";
  d.signal(SIGTERM);
  ASSERT_TRUE(notify.wait_for("STOPPING=1", seen));
  EXPECT_EQ(d.terminate(20s), 0);
}

}  // namespace
}  // namespace reel::test
