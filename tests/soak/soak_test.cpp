// Soak (docs/RELIABILITY.md): REEL_SOAK_JOBS submissions (default 10,000) from 8
// concurrent clients through the real socket, while reeld is SIGKILLed and restarted
// at random REEL_SOAK_DAEMON_KILLS times (default 20) and a model worker is SIGKILLed
// at random REEL_SOAK_WORKER_KILLS times (default 20). Each submission carries an
// idempotency key; a client that loses its connection before the answer reconnects
// and sends the same submission again, so every submission ends acknowledged or
// refused. Some are refused on purpose (an unknown model). When no job is running at
// the moment a worker kill is due, the chaos thread submits a 2-second "victim" job
// (checked like every other) and kills its worker. At the end, read from the
// database itself: every acknowledged job exists exactly once and is final, and no
// refused one exists. Loopback only; bounded by REEL_SOAK_TIMEOUT_S (default 900).
// Prints "soak: N acknowledged, L lost, D duplicated".
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "store/sqlite_job_store.hpp"
#include "support/test_support.hpp"

namespace reel::test {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

struct Outcomes {
  std::mutex mu;
  std::set<std::string> acknowledged, refused;
  int reconnects = 0;
  size_t answered() {
    std::lock_guard<std::mutex> lock(mu);
    return acknowledged.size() + refused.size();
  }
};

// One client: submits its share, reconnecting (and resending the same key) whenever
// the daemon goes away before answering.
void run_client(int client, int count, const std::string& socket, Clock::time_point deadline, Outcomes& out) {
  std::unique_ptr<RawClient> c;
  int reconnects = 0;
  for (int i = 0; i < count && Clock::now() < deadline; ++i) {
    const std::string key = "soak-" + std::to_string(client) + "-" + std::to_string(i);
    // Every 50th is refused on purpose: it must never be stored.
    const bool refuse = i % 50 == 49;
    Json job = {{"model", refuse ? "no-such-model" : "sleep"},
                {"params", {{"seconds", 0}, {"steps", 1}}},
                {"idempotency_key", key}};
    for (;;) {
      if (Clock::now() >= deadline) return;
      try {
        if (!c) {
          c = std::make_unique<RawClient>(socket);
          c->hello();
        }
        Json r = c->call("submit", {{"job", job}});
        std::lock_guard<std::mutex> lock(out.mu);
        (r.value("ok", false) ? out.acknowledged : out.refused).insert(key);
        break;
      } catch (const std::exception&) {
        // No answer: the daemon died (or is starting). The submission may or may not
        // be stored; the same key again settles it.
        c.reset();
        ++reconnects;
        std::this_thread::sleep_for(20ms);
      }
    }
  }
  std::lock_guard<std::mutex> lock(out.mu);
  out.reconnects += reconnects;
}

// Submits one job like a client does: retried with the same key until answered.
// Returns whether it was acknowledged; false when the deadline passed first.
bool submit_until_answered(const std::string& socket, const Json& job, Clock::time_point deadline) {
  while (Clock::now() < deadline) {
    try {
      RawClient c(socket);
      c.hello();
      return c.call("submit", {{"job", job}}).value("ok", false);
    } catch (const std::exception&) {
      std::this_thread::sleep_for(20ms);
    }
  }
  return false;
}

// The pids of reeld's model workers, from its own status.
std::vector<pid_t> worker_pids(const std::string& socket) {
  std::vector<pid_t> pids;
  try {
    RawClient c(socket);
    c.hello();
    Json status = c.call("status");   // kept: ranging over a part of a temporary dangles
    for (const auto& w : status["result"]["workers"])
      if (w.value("pid", 0) > 0 && (w["state"] == "busy" || w["state"] == "starting")) pids.push_back(w["pid"].get<pid_t>());
  } catch (const std::exception&) {
  }
  return pids;
}

TEST(Soak, EveryAcknowledgedJobExistsOnceAndFinishesThroughKills) {
  const int total = env_int("REEL_SOAK_JOBS", 10000);
  const int clients = 8;
  const int daemon_kills = env_int("REEL_SOAK_DAEMON_KILLS", 20);
  const int worker_kills = env_int("REEL_SOAK_WORKER_KILLS", 20);
  const auto deadline = Clock::now() + std::chrono::seconds(env_int("REEL_SOAK_TIMEOUT_S", 900));
  const auto t0 = Clock::now();

  // The soak proves exactly-once across process kills, which the page cache survives;
  // power loss is a different promise (fsync, docs/DURABILITY.md). On a disk with slow
  // fsync each job's transactions dominate, so the state goes to a tmpfs when there is
  // one (REEL_SOAK_DIR picks another folder).
  const char* soak_dir = std::getenv("REEL_SOAK_DIR");
  const std::string base = soak_dir && *soak_dir ? soak_dir : ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "";
  if (!base.empty()) ::setenv("TMPDIR", base.c_str(), 1);
  TempDir dir;
  // Two jobs at a time; max_crashes high enough that the worker kills rarely make poison
  // (a poisoned job is failed, which is final, so it would still count).
  Daemon d(dir.path(), "max_concurrent_jobs = 2\n[jobs]\nmax_crashes = 5\n");
  d.start();

  Outcomes out;
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i)
    threads.emplace_back(run_client, i, total / clients + (i < total % clients ? 1 : 0), d.socket(), deadline,
                         std::ref(out));

  // Chaos, on this thread. The kills are spread over the whole run whatever its speed:
  // each is due once a random share of the submissions has been answered.
  std::mt19937 rng(env_int("REEL_SOAK_SEED", 12345));
  std::vector<std::pair<size_t, bool>> kills;   // (answered submissions, daemon?)
  for (int i = 0; i < daemon_kills + worker_kills; ++i)
    kills.emplace_back(std::uniform_int_distribution<size_t>(0, static_cast<size_t>(total) * 95 / 100)(rng),
                       i < daemon_kills);
  std::sort(kills.begin(), kills.end());
  int daemon_killed = 0, worker_killed = 0, victims = 0;
  Clock::duration submitting_took{};
  std::thread waiter([&] {
    for (auto& t : threads) t.join();
    submitting_took = Clock::now() - t0;
  });
  for (const auto& [due, kill_daemon] : kills) {
    while (out.answered() < due && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
    if (Clock::now() >= deadline) break;
    if (kill_daemon) {
      d.kill9();
      d.start();
      ++daemon_killed;
    } else {
      auto pids = worker_pids(d.socket());
      if (pids.empty()) {
        // Nothing running right now: give the worker something to be killed in.
        const std::string key = "victim-" + std::to_string(victims++);
        Json job = {{"model", "sleep"}, {"params", {{"seconds", 2}, {"steps", 4}}}, {"idempotency_key", key}};
        if (submit_until_answered(d.socket(), job, deadline)) {
          std::lock_guard<std::mutex> lock(out.mu);
          out.acknowledged.insert(key);
        }
        wait_until([&] { return !(pids = worker_pids(d.socket())).empty(); }, 10s);
        if (pids.empty()) continue;   // counted as missing at the end
      }
      ::kill(pids[std::uniform_int_distribution<size_t>(0, pids.size() - 1)(rng)], SIGKILL);
      ++worker_killed;
    }
  }
  waiter.join();

  // Let every acknowledged job finish.
  bool settled = wait_until([&] {
    try {
      RawClient c(d.socket());
      c.hello();
      Json counts = c.call("status")["result"]["counts"];
      return counts["queued"] == 0 && counts["running"] == 0;
    } catch (const std::exception&) {
      return false;
    }
  }, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  ASSERT_EQ(d.terminate(), 0);

  // The database itself is the judge.
  SqliteJobStore store(d.state_dir() + "/reel.db", {});
  JobFilter all;
  all.limit = 1 << 30;
  std::map<std::string, int> copies;
  std::map<std::string, JobState> state;
  for (const auto& j : store.list(all)) {
    copies[j.idempotency_key]++;
    state[j.idempotency_key] = j.state;
  }
  int lost = 0, duplicated = 0, unfinished = 0, refused_stored = 0;
  for (const auto& key : out.acknowledged) {
    if (copies[key] == 0) ++lost;
    if (copies[key] > 1) ++duplicated;
    if (copies[key] >= 1 && !is_final(state[key])) ++unfinished;
  }
  for (const auto& key : out.refused)
    if (copies.count(key) && copies[key] > 0 && !out.acknowledged.count(key)) ++refused_stored;
  const size_t stored = store.list(all).size();

  std::printf("soak: %zu acknowledged, %d lost, %d duplicated\n", out.acknowledged.size(), lost, duplicated);
  std::printf("soak: %zu refused (%d stored), %zu jobs in the database, %d unfinished; %d daemon kills, %d worker "
              "kills (%d victim jobs), %d client reconnects; submitting took %.1f s, everything %.1f s\n",
              out.refused.size(), refused_stored, stored, unfinished, daemon_killed, worker_killed, victims,
              out.reconnects,
              std::chrono::duration<double>(submitting_took).count(),
              std::chrono::duration<double>(Clock::now() - t0).count());
  EXPECT_TRUE(settled) << "jobs were still queued or running at the deadline";
  EXPECT_EQ(out.acknowledged.size() + out.refused.size(), static_cast<size_t>(total + victims))
      << "some clients ran out of time";
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(unfinished, 0);
  EXPECT_EQ(refused_stored, 0);
  EXPECT_EQ(stored, out.acknowledged.size()) << "the database holds jobs nobody was told about";
  EXPECT_EQ(daemon_killed, daemon_kills);
  EXPECT_EQ(worker_killed, worker_kills);
}

}  // namespace
}  // namespace reel::test
