// store_bench: what durable submission costs. N submits through SqliteJobStore
// (WAL, synchronous=FULL, one transaction per job: the job row and its "submitted"
// event) against a raw SQLite INSERT loop with the same durability in the same run,
// plus a synchronous=NORMAL baseline for context. On this kind of workload the fsync
// per commit dominates, so the ratio shows the store's own overhead.
//
//   store_bench [N]     (default 2000; files under $TMPDIR, removed at the end)
#include <sqlite3.h>
#include <stdlib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "core/job.hpp"
#include "store/sqlite_job_store.hpp"

namespace {

using Clock = std::chrono::steady_clock;

void check(sqlite3* db, int rc, const char* what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
    throw std::runtime_error(std::string(what) + ": " + sqlite3_errmsg(db));
}

// N single-row INSERTs, each its own (autocommit) transaction.
double raw_inserts(const std::string& path, const char* synchronous, int n) {
  sqlite3* db = nullptr;
  if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("open " + path);
  std::string setup = std::string("PRAGMA journal_mode=WAL; PRAGMA synchronous=") + synchronous +
                      "; CREATE TABLE jobs(id TEXT PRIMARY KEY, model TEXT, spec TEXT, created_at INTEGER);";
  check(db, sqlite3_exec(db, setup.c_str(), nullptr, nullptr, nullptr), "setup");
  sqlite3_stmt* st = nullptr;
  check(db, sqlite3_prepare_v2(db, "INSERT INTO jobs VALUES(?,?,?,?)", -1, &st, nullptr), "prepare");
  const std::string spec = R"({"model":"sleep","params":{"seconds":2}})";
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    std::string id = "job" + std::to_string(i);
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, "sleep", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, spec.c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, reel::now_ms());
    check(db, sqlite3_step(st), "insert");
    sqlite3_reset(st);
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  sqlite3_finalize(st);
  sqlite3_close(db);
  return s;
}

double store_submits(const std::string& path, int n) {
  reel::SqliteOptions opts;
  opts.journal_mode = "wal";
  opts.synchronous = "full";
  reel::SqliteJobStore store(path, opts);
  reel::JobSpec spec;
  spec.model = "sleep";
  spec.params = {{"seconds", 2}};
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) store.submit(spec, reel::now_ms());
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  if (n <= 0) {
    std::fprintf(stderr, "usage: %s [N > 0]\n", argv[0]);
    return 2;
  }
  spdlog::set_level(spdlog::level::warn);   // no "schema migrated" line in the table
  const char* tmp_env = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp_env && *tmp_env ? tmp_env : "/tmp") + "/reel-store-bench.XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = buf.data();

  struct Row {
    std::string what;
    double seconds;
  };
  std::vector<Row> rows;
  int rc = 0;
  try {
    rows.push_back({"raw INSERT (WAL, synchronous=FULL)", raw_inserts(dir + "/raw_full.db", "FULL", n)});
    rows.push_back({"SqliteJobStore::submit (WAL, FULL)", store_submits(dir + "/store.db", n)});
    rows.push_back({"raw INSERT (WAL, synchronous=NORMAL)", raw_inserts(dir + "/raw_normal.db", "NORMAL", n)});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "store_bench: %s\n", e.what());
    rc = 1;
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (rc != 0) return rc;

  std::printf("store_bench: %d submits each, one transaction per op, in %s (removed)\n\n", n, dir.c_str());
  std::printf("%-38s %7s %9s %10s %12s\n", "what", "ops", "seconds", "ops/s", "vs baseline");
  const double base = rows[0].seconds;
  for (const auto& r : rows)
    std::printf("%-38s %7d %9.3f %10.0f %11.2fx\n", r.what.c_str(), n, r.seconds, n / r.seconds,
                r.seconds / base);
  std::printf("\nvs baseline: time relative to the raw synchronous=FULL loop (lower is faster).\n"
              "On tmpfs fsync is free and the numbers show CPU cost only.\n");
  return 0;
}
