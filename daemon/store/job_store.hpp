// JobStore: the durable job queue and per-job event log.
//
// This is the storage seam: the daemon talks only to this interface, so the SQLite
// implementation (sqlite_job_store.hpp) can later be joined by a PostgreSQL one for
// fleet mode without touching the scheduler or the server.
//
// Guarantees every implementation gives:
//  - A mutating call returns only after its change is durable (survives SIGKILL and,
//    for SQLite with synchronous=FULL, power loss).
//  - Each mutation and the events it implies commit in one transaction.
//  - Updates from an executor (progress, events, finish, requeue) must carry the
//    job's current lease; a stale lease throws StoreError{lease_mismatch} and
//    changes nothing, so a run the daemon has given up on cannot overwrite a newer one.
// Thread-safety: implementations are safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/job.hpp"

namespace reel {

struct StoreError : std::runtime_error {
  enum class Code {
    not_found,        // no job with that id
    conflict,         // idempotency key reused with a different payload
    invalid_state,    // e.g. cancel of a finished job, retry of a running one
    lease_mismatch,   // executor update with a stale or wrong lease
    queue_full,       // max queued jobs reached
    storage,          // the database itself failed: disk full, read-only, I/O error
  };
  StoreError(Code c, const std::string& what) : std::runtime_error(what), code(c) {}
  Code code;
};

const char* to_string(StoreError::Code c);

struct JobFilter {
  std::optional<JobState> state;
  std::string model;     // empty: any
  std::string source;    // empty: any; exact match ("ctl", "watch:/srv/in")
  int limit = 100;       // newest first
};

struct QueueCounts {
  int64_t queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  struct SubmitResult {
    Job job;
    bool existed = false;   // true: the idempotency key matched an existing job
  };
  // Inserts a queued job (with a "submitted" event). With an idempotency key that
  // already exists: same canonical payload -> the existing job, existed = true;
  // different payload -> StoreError{conflict}. `max_queued` > 0 refuses with
  // StoreError{queue_full} when that many jobs are already queued.
  virtual SubmitResult submit(const JobSpec& spec, int64_t now, int max_queued = 0) = 0;

  virtual std::optional<Job> get(const std::string& id) = 0;
  virtual std::vector<Job> list(const JobFilter& filter) = 0;
  // Queued jobs in no particular order; the scheduler orders them.
  virtual std::vector<Job> queued() = 0;
  virtual std::vector<Job> running() = 0;
  virtual QueueCounts counts() = 0;

  // Events with seq > after_seq, ascending.
  virtual std::vector<JobEvent> events(const std::string& id, int64_t after_seq = 0) = 0;

  // queued -> running: a fresh lease, attempts + 1, started_at = now, rung recorded.
  // Throws invalid_state if the job is not queued.
  virtual Job start(const std::string& id, const std::string& rung, int64_t now) = 0;

  // Executor updates; each throws lease_mismatch unless `lease` is the job's current one.
  virtual void progress(const std::string& id, const std::string& lease, const JobProgress& p,
                        int64_t now) = 0;
  virtual void add_event(const std::string& id, const std::string& lease, const std::string& kind,
                         const Json& data, int64_t now) = 0;
  // running -> succeeded/failed/cancelled, lease cleared, finished_at = now.
  virtual Job finish(const std::string& id, const std::string& lease, JobState final_state,
                     const std::string& error, const std::vector<std::string>& outputs,
                     int64_t now) = 0;
  // running -> queued (lease cleared) with a "state" event carrying `reason`.
  // `crashed` counts toward max_crashes; when crash_count reaches `max_crashes` the
  // job fails as poison instead. Returns the job as it now is.
  virtual Job requeue(const std::string& id, const std::string& lease, const std::string& reason,
                      bool crashed, int max_crashes, int64_t now) = 0;

  // Client operations.
  // queued -> cancelled at once; running -> cancel_requested = true (the executor
  // stops it and calls finish(cancelled)); final -> invalid_state.
  virtual Job cancel(const std::string& id, int64_t now) = 0;
  // failed/cancelled -> queued, attempts reset to 0, crash_count reset, error cleared.
  virtual Job retry(const std::string& id, int64_t now) = 0;
  virtual Job set_priority(const std::string& id, int priority, int64_t now) = 0;
  // Deletes finished jobs (and their events) finished before `finished_before`.
  virtual int64_t prune(int64_t finished_before) = 0;

  // Start-up recovery: every job left running goes back to queued with a "state"
  // event saying the daemon crashed (crash_count + 1), or fails as poison once
  // crash_count reaches max_crashes. Returns the ids touched.
  virtual std::vector<std::string> recover_interrupted(int max_crashes, int64_t now) = 0;

  // Small persistent key/value settings of the daemon itself (e.g. "paused").
  virtual std::optional<std::string> setting(const std::string& key) = 0;
  virtual void set_setting(const std::string& key, const std::string& value) = 0;
};

}  // namespace reel
