// SqliteJobStore: the JobStore on one local SQLite file (<state_dir>/reel.db).
//
// Durability: every mutation runs in a BEGIN IMMEDIATE transaction together with the
// events it implies, with synchronous=FULL by default, so a returned call survives
// SIGKILL and power loss. The journal is WAL, except that journal_mode "auto" falls
// back to DELETE (with a warning) when the database directory is on a network
// filesystem, where WAL's shared memory is unsafe. See docs/DURABILITY.md.
// Invariants: the schema is at kSchemaVersion after construction (older ones are
// migrated, newer ones refused); a failed transaction is rolled back, so a storage
// error (disk full, read-only, I/O) changes nothing and the store keeps working once
// the cause is fixed.
// Thread-safety: one connection guarded by a mutex; every method may be called from
// any thread. Calls are serialized.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/config.hpp"
#include "store/job_store.hpp"

struct sqlite3;

namespace reel {

struct SqliteOptions {
  std::string journal_mode = "auto";   // "auto" | "wal" | "delete"
  int busy_timeout_ms = 5000;          // how long a write waits for another process's lock
  std::string synchronous = "full";    // "full" | "normal"

  // Test seam: returns statfs's f_type for a directory (nullopt: unknown). Empty:
  // the real statfs(2) (filesystem_probe.hpp).
  std::function<std::optional<unsigned long>(const std::string& dir)> probe_filesystem;

  static SqliteOptions from_config(const Config::Storage& s) {
    SqliteOptions o;
    o.journal_mode = s.journal_mode;
    o.busy_timeout_ms = s.busy_timeout_ms;
    o.synchronous = s.synchronous;
    return o;
  }
};

class SqliteJobStore final : public JobStore {
 public:
  // Opens (creating if needed) and migrates the database. Throws StoreError{storage}
  // when it cannot be opened or its schema is newer than this build, and
  // std::invalid_argument for an unknown journal_mode or synchronous value.
  SqliteJobStore(const std::string& db_path, const SqliteOptions& options = {});
  ~SqliteJobStore() override;
  SqliteJobStore(const SqliteJobStore&) = delete;
  SqliteJobStore& operator=(const SqliteJobStore&) = delete;

  // The journal mode in effect: "wal" or "delete" (lower case).
  const std::string& journal_mode() const { return journal_mode_; }
  const std::string& path() const { return path_; }

  SubmitResult submit(const JobSpec& spec, int64_t now, int max_queued = 0,
                      const Json& plan = Json::array()) override;
  std::optional<Job> get(const std::string& id) override;
  std::vector<Job> list(const JobFilter& filter) override;
  std::vector<Job> queued() override;
  std::vector<Job> running() override;
  QueueCounts counts() override;
  std::vector<JobEvent> events(const std::string& id, int64_t after_seq = 0) override;

  Job start(const std::string& id, const std::string& rung, int64_t now) override;
  void progress(const std::string& id, const std::string& lease, const JobProgress& p,
                int64_t now) override;
  void add_event(const std::string& id, const std::string& lease, const std::string& kind,
                 const Json& data, int64_t now) override;
  Job finish(const std::string& id, const std::string& lease, JobState final_state,
             const std::string& error, const std::vector<std::string>& outputs, int64_t now) override;
  // A job whose cancel was requested is cancelled instead of re-queued: the user's
  // cancel wins. max_crashes <= 0 means crashes never make a job poison.
  Job requeue(const std::string& id, const std::string& lease, const std::string& reason,
              RequeueCause cause, int max_crashes, int64_t now) override;
  Job fall_back(const std::string& id, const std::string& lease, int new_min_rung, const Json& data,
                int64_t now) override;

  Job fail_queued(const std::string& id, const std::string& error, const Json& data, int64_t now) override;
  Job cancel(const std::string& id, int64_t now) override;
  Job retry(const std::string& id, int64_t now) override;
  // Queued or running jobs only (a finished job has nothing left to order): invalid_state.
  Job set_priority(const std::string& id, int priority, int64_t now) override;
  // Appends a "plan" event ({"rungs": n}) when the plan changes; an identical plan
  // writes nothing.
  void set_plan(const std::string& id, const Json& plan, int64_t now) override;
  int64_t prune(int64_t finished_before) override;
  std::vector<std::string> recover_interrupted(int max_crashes, int64_t now) override;

  std::optional<std::string> setting(const std::string& key) override;
  void set_setting(const std::string& key, const std::string& value) override;

  void record_peak(const PeakRecord& sample, int64_t now) override;
  std::optional<PeakRecord> peak(const std::string& model, const std::string& rung,
                                 const std::string& shape) override;
  std::vector<PeakRecord> peaks(const std::string& model) override;

  // For tests only: runs SQL on the store's connection under its lock (e.g.
  // "PRAGMA max_page_count" to simulate a full disk, "PRAGMA query_only" a
  // read-only one). Throws StoreError{storage} on failure.
  void TEST_exec(const std::string& sql);

 private:
  void open(const SqliteOptions& options);
  std::string choose_journal_mode(const SqliteOptions& options) const;
  // Helpers below expect mu_ held and (for writes) a WriteTxn open.
  std::optional<Job> load(const std::string& id);
  Job load_or_throw(const std::string& id);
  Job load_with_lease(const std::string& id, const std::string& lease);
  void append_event(const std::string& id, const std::string& kind, const Json& data, int64_t now);
  void append_state_event(const Job& before, JobState to, const std::string& reason, int64_t now,
                          Json extra = Json::object());
  Job fail_or_requeue(Job job, const std::string& reason, RequeueCause cause, int max_crashes, int64_t now);

  std::string path_;
  std::string journal_mode_;
  std::mutex mu_;
  sqlite3* db_ = nullptr;
};

}  // namespace reel
