// daemon_bench: the daemon's own costs, measured through the real reeld, each next to a
// baseline taken in the same run where one exists (docs/BENCHMARKS.md):
//   - submits/s and p50/p99 submit latency through the socket from 1 and from 8
//     clients (queue paused, so only the submit path is measured: parse, validate, plan
//     in the planner process, durable insert, reply) vs a raw SQLite INSERT loop with
//     the same durability (WAL, synchronous=FULL, one transaction per row);
//   - schedule_jobs() decision time with 10, 1,000 and 10,000 queued jobs (pure);
//   - start-up to READY (the socket accepts; READY=1 follows at once) with 10,000 jobs
//     in the database vs with an empty one;
//   - idle RSS and CPU of reeld over a quiet interval.
//
//   daemon_bench [submits]      (default 2000; files under $TMPDIR, removed at the end)
#include <sqlite3.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/budget_scheduler.hpp"
#include "store/sqlite_job_store.hpp"
#include "support/test_support.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;
using reel::test::Daemon;
using reel::test::RawClient;
using reel::test::TempDir;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
  return v[i];
}

struct Row {
  std::string what;
  std::string value;      // formatted measurement
  std::string baseline;   // what it is compared with, or "-"
  std::string ratio;      // value / baseline, or "-"
};

std::string num(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// Latencies (ms) of n single-row autocommit INSERTs, WAL + synchronous=FULL.
std::vector<double> raw_inserts(const std::string& path, int n, double& seconds) {
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db,
               "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
               "CREATE TABLE jobs(id TEXT PRIMARY KEY, model TEXT, spec TEXT, created_at INTEGER);",
               nullptr, nullptr, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "INSERT INTO jobs VALUES(?,?,?,?)", -1, &st, nullptr);
  const std::string spec = R"({"model":"sleep","params":{"seconds":1}})";
  std::vector<double> lat;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto t = Clock::now();
    std::string id = "job" + std::to_string(i);
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, "sleep", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, spec.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, reel::now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db));
    sqlite3_reset(st);
    lat.push_back(seconds_since(t) * 1000);
  }
  seconds = seconds_since(t0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return lat;
}

// Latencies (ms) of `count` submits from each of `clients` connections at once.
std::vector<double> socket_submits(const std::string& socket, int clients, int count, double& seconds) {
  std::vector<std::vector<double>> per(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  auto t0 = Clock::now();
  for (int c = 0; c < clients; ++c)
    threads.emplace_back([&, c] {
      RawClient client(socket);
      client.hello();
      for (int i = 0; i < count; ++i) {
        auto t = Clock::now();
        Json r = client.call("submit", {{"job", {{"model", "sleep"}, {"params", {{"seconds", 1}}}}}});
        if (!r.value("ok", false)) throw std::runtime_error("submit refused: " + r.dump());
        per[static_cast<size_t>(c)].push_back(seconds_since(t) * 1000);
      }
    });
  for (auto& t : threads) t.join();
  seconds = seconds_since(t0);
  std::vector<double> all;
  for (auto& v : per) all.insert(all.end(), v.begin(), v.end());
  return all;
}

// schedule_jobs() with n queued jobs of three rungs each, one 24 GiB GPU and the host,
// one job already running; the median of `reps` decisions, in ms. With a free slot
// every queued job waits for memory and is evaluated in full; with the concurrency cap
// reached only the first SchedulerPolicy::explained_waiting_jobs are.
double decision_ms(int n, int reps, bool cap_reached = false) {
  constexpr int64_t GiB = int64_t{1} << 30;
  reel::SchedulerInput in;
  in.devices = {{"cuda:0", true, 24 * GiB, GiB, 0, GiB / 2}, {"cpu", false, 64 * GiB, 0, 0, 0}};
  in.policy.max_concurrent_jobs = cap_reached ? 1 : 2;
  in.now = 1'000'000'000;
  in.running.push_back({"running", "wan", "cuda:0", "resident", 20 * GiB, 4 * GiB});
  for (int i = 0; i < n; ++i) {
    reel::PlannedJob p;
    p.job.id = "j" + std::to_string(i);
    p.job.model = i % 2 ? "wan" : "hunyuan";
    p.job.priority = i % 7;
    p.job.created_at = in.now - i * 1000;
    p.plan = {{"resident", false, false, 18 * GiB, 8 * GiB, 18 * GiB, 2 * GiB, 1.0, Json::object()},
              {"t5-cpu", false, false, 12 * GiB, 20 * GiB, 12 * GiB, 10 * GiB, 1.3, Json::object()},
              {"cpu", false, true, 0, 40 * GiB, 0, 30 * GiB, 20.0, Json::object()}};
    in.queued.push_back(std::move(p));
  }
  std::vector<double> times;
  size_t decisions = 0;
  for (int r = 0; r < reps; ++r) {
    auto t0 = Clock::now();
    auto out = reel::schedule_jobs(in);
    times.push_back(seconds_since(t0) * 1000);
    decisions += out.decisions.size() + out.waiting.size();
  }
  if (decisions == 0) std::fprintf(stderr, "daemon_bench: the scheduler decided nothing (unexpected)\n");
  return percentile(times, 0.5);
}

// Seconds from fork to an accepting socket.
double startup_seconds(Daemon& d) {
  auto t0 = Clock::now();
  d.start();
  return seconds_since(t0);
}

int64_t rss_bytes(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

double cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::istringstream rest(s.substr(s.rfind(')') + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  if (n < 8) {
    std::fprintf(stderr, "usage: %s [submits >= 8]\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);
  std::vector<Row> rows;
  try {
    TempDir dir;

    double raw_s = 0;
    auto raw = raw_inserts(dir.file("raw.db"), n, raw_s);
    const double raw_rate = n / raw_s;
    rows.push_back({"raw SQLite INSERT loop (WAL, FULL)", num("%.0f/s", raw_rate), "-", "-"});
    rows.push_back({"  p50 / p99 latency", num("%.2f ms", percentile(raw, 0.5)) + " / " + num("%.2f ms", percentile(raw, 0.99)), "-", "-"});

    {
      TempDir ddir;
      Daemon d(ddir.path());
      d.start();
      RawClient c(d.socket());
      c.hello();
      c.call("pause");
      for (int clients : {1, 8}) {
        double s = 0;
        auto lat = socket_submits(d.socket(), clients, n / clients, s);
        const double rate = static_cast<double>(lat.size()) / s;
        const std::string who = clients == 1 ? "1 client" : "8 clients";
        rows.push_back({"submits through the socket, " + who, num("%.0f/s", rate), num("%.0f/s", raw_rate),
                        num("%.2fx", rate / raw_rate)});
        rows.push_back({"  p50 latency, " + who, num("%.2f ms", percentile(lat, 0.5)),
                        num("%.2f ms", percentile(raw, 0.5)), num("%.2fx", percentile(lat, 0.5) / percentile(raw, 0.5))});
        rows.push_back({"  p99 latency, " + who, num("%.2f ms", percentile(lat, 0.99)),
                        num("%.2f ms", percentile(raw, 0.99)), num("%.2fx", percentile(lat, 0.99) / percentile(raw, 0.99))});
      }
    }

    const double d10 = decision_ms(10, 200);
    for (int q : {10, 1000, 10000}) {
      double ms = q == 10 ? d10 : decision_ms(q, q == 10000 ? 5 : 20);
      rows.push_back({"schedule_jobs, " + std::to_string(q) + " queued, waiting for memory", num("%.3f ms", ms),
                      q == 10 ? "-" : num("%.3f ms", d10), q == 10 ? "-" : num("%.0fx", ms / d10)});
    }
    for (int q : {1000, 10000}) {
      double ms = decision_ms(q, q == 10000 ? 5 : 20, /*cap_reached=*/true);
      rows.push_back({"schedule_jobs, " + std::to_string(q) + " queued, concurrency cap reached", num("%.3f ms", ms),
                      num("%.3f ms", d10), num("%.0fx", ms / d10)});
    }

    {
      TempDir empty_dir, full_dir;
      Daemon empty(empty_dir.path()), full(full_dir.path());
      {
        // 10,000 queued jobs written through the store (the same schema reeld uses);
        // paused so the daemon does not start running them while being measured.
        std::filesystem::create_directories(full.state_dir());
        reel::SqliteOptions o;
        o.synchronous = "normal";   // only to fill it faster; reeld opens it with its own settings
        reel::SqliteJobStore store(full.state_dir() + "/reel.db", o);
        reel::JobSpec spec;
        spec.model = "sleep";
        spec.params = {{"seconds", 1}};
        for (int i = 0; i < 10000; ++i) store.submit(spec, reel::now_ms());
        store.set_setting("paused", "1");
      }
      const double base = startup_seconds(empty);
      const double loaded = startup_seconds(full);
      rows.push_back({"start-up to READY, empty database", num("%.0f ms", base * 1000), "-", "-"});
      rows.push_back({"start-up to READY, 10,000 queued jobs", num("%.0f ms", loaded * 1000), num("%.0f ms", base * 1000),
                      num("%.2fx", loaded / base)});

      // Idle: no client, nothing running (the full one is paused), 10 s.
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const double cpu0 = cpu_seconds(empty.pid()), cpu0_full = cpu_seconds(full.pid());
      auto t0 = Clock::now();
      std::this_thread::sleep_for(std::chrono::seconds(10));
      const double wall = seconds_since(t0);
      rows.push_back({"idle RSS, empty database", num("%.1f MiB", rss_bytes(empty.pid()) / 1048576.0), "-", "-"});
      rows.push_back({"idle RSS, 10,000 queued (paused)", num("%.1f MiB", rss_bytes(full.pid()) / 1048576.0), "-", "-"});
      rows.push_back({"idle CPU, empty database", num("%.2f%%", 100 * (cpu_seconds(empty.pid()) - cpu0) / wall), "-", "-"});
      rows.push_back({"idle CPU, 10,000 queued (paused)", num("%.2f%%", 100 * (cpu_seconds(full.pid()) - cpu0_full) / wall), "-", "-"});
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "daemon_bench: %s\n", e.what());
    return 1;
  }

  std::printf("| measurement | value | baseline | ratio |\n|---|---:|---:|---:|\n");
  for (const auto& r : rows)
    std::printf("| %s | %s | %s | %s |\n", r.what.c_str(), r.value.c_str(), r.baseline.c_str(), r.ratio.c_str());
  return 0;
}
