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
//  - Updates from an executor (progress, events, finish, requeue, fall_back) must
//    carry the job's current lease; a stale lease throws StoreError{lease_mismatch} and
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
    storage,          // the database itself failed: I/O error, corruption, cannot open, locked
    disk_full,        // SQLITE_FULL: no space left; nothing was changed, retry once space is freed
    read_only,        // SQLITE_READONLY: file, folder or mount not writable; nothing was changed
  };
  StoreError(Code c, const std::string& what) : std::runtime_error(what), code(c) {}
  Code code;
};

const char* to_string(StoreError::Code c);
// The database failed (storage, disk_full, read_only), as opposed to a refusal of the
// request itself; the daemon logs these for the operator.
bool is_storage_failure(StoreError::Code c);

struct JobFilter {
  std::optional<JobState> state;
  std::string model;     // empty: any
  std::string source;    // empty: any; exact match ("ctl", "watch:/srv/in")
  int limit = 100;       // newest first
};

struct QueueCounts {
  int64_t queued = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0;
};

// The measured peak memory of runs of one model at one rung on one input shape (e.g.
// "832x480x81"), kept to correct later estimates. Peaks are maxima over all samples.
struct PeakRecord {
  std::string model, rung, shape;
  int64_t estimate_device = 0, estimate_host = 0;   // the plugin's estimate (the latest given)
  int64_t measured_device = 0, measured_host = 0;   // the highest ever measured
  int64_t samples = 0;                              // how many runs were recorded
  int64_t updated_at = 0;                           // ms; the last record_peak
};

class JobStore {
 public:
  virtual ~JobStore() = default;

  struct SubmitResult {
    Job job;
    bool existed = false;   // true: the idempotency key matched an existing job
  };
  // Inserts a queued job (with a "submitted" event) holding spec.policy and `plan`
  // (the per-rung estimates, best first; min_rung starts at 0). With an idempotency
  // key that already exists: same spec.canonical_payload() (policy included) -> the
  // existing job as it is (its plan unchanged), existed = true; different payload ->
  // StoreError{conflict}. `max_queued` > 0 refuses with StoreError{queue_full} when
  // that many jobs are already queued. std::invalid_argument when the policy is not
  // a JSON object or the plan not an array (null counts as empty).
  virtual SubmitResult submit(const JobSpec& spec, int64_t now, int max_queued = 0,
                              const Json& plan = Json::array()) = 0;

  virtual std::optional<Job> get(const std::string& id) = 0;
  virtual std::vector<Job> list(const JobFilter& filter) = 0;
  // Queued jobs in no particular order; the scheduler orders them.
  virtual std::vector<Job> queued() = 0;
  virtual std::vector<Job> running() = 0;
  virtual QueueCounts counts() = 0;

  // Events with seq > after_seq, ascending.
  virtual std::vector<JobEvent> events(const std::string& id, int64_t after_seq = 0) = 0;

  // queued -> running: a fresh lease, attempts + 1, started_at = now, rung recorded
  // (Job::rung, and {"rung"} in the "state" event's data). Throws invalid_state if
  // the job is not queued.
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
  using RequeueCause = reel::RequeueCause;
  // running -> queued (lease cleared) with a "state" event carrying `reason`. When a
  // crash brings crash_count to `max_crashes` the job fails as poison instead.
  // Returns the job as it now is.
  virtual Job requeue(const std::string& id, const std::string& lease, const std::string& reason,
                      RequeueCause cause, int max_crashes, int64_t now) = 0;
  // Out-of-memory fallback: running -> queued, lease cleared, min_rung = new_min_rung,
  // attempts - 1 (an OOM retry is charged neither as an attempt nor as a crash). Appends
  // a "fallback" event with `data` ({"from": rung, "to": rung, "reason": ...}; the store
  // adds "from_index" and "to_index") and then a "state" event "out of memory at rung
  // X; retrying at rung Y". invalid_state unless new_min_rung > the job's min_rung. A
  // job whose cancel was requested is cancelled instead (as requeue does).
  virtual Job fall_back(const std::string& id, const std::string& lease, int new_min_rung,
                        const Json& data, int64_t now) = 0;

  // Client operations.
  // queued -> failed without running (the scheduler found it can never fit): error
  // set, a "state" event carrying `data` (the numbers behind the decision).
  // Anything but queued -> invalid_state.
  virtual Job fail_queued(const std::string& id, const std::string& error, const Json& data, int64_t now) = 0;

  // queued -> cancelled at once; running -> cancel_requested = true (the executor
  // stops it and calls finish(cancelled)); final -> invalid_state.
  virtual Job cancel(const std::string& id, int64_t now) = 0;
  // failed/cancelled -> queued, attempts reset to 0, crash_count reset, error cleared,
  // min_rung back to 0 (the plan is kept; measured peaks still correct it).
  virtual Job retry(const std::string& id, int64_t now) = 0;
  virtual Job set_priority(const std::string& id, int priority, int64_t now) = 0;
  // Replaces a queued job's plan (re-planning after a plugin reload); min_rung is kept.
  // invalid_state unless queued; std::invalid_argument unless `plan` is an array.
  virtual void set_plan(const std::string& id, const Json& plan, int64_t now) = 0;
  // Deletes finished jobs (and their events) finished before `finished_before`.
  virtual int64_t prune(int64_t finished_before) = 0;

  // Start-up recovery: every job left running goes back to queued with a "state"
  // event saying the daemon crashed (crash_count + 1), or fails as poison once
  // crash_count reaches max_crashes. Returns the ids touched.
  virtual std::vector<std::string> recover_interrupted(int max_crashes, int64_t now) = 0;

  // Small persistent key/value settings of the daemon itself (e.g. "paused").
  virtual std::optional<std::string> setting(const std::string& key) = 0;
  virtual void set_setting(const std::string& key, const std::string& value) = 0;

  // Measured peaks. record_peak upserts by (model, rung, shape): measured = max(old,
  // new), estimates = the new ones, samples + 1, updated_at = now (the sample's own
  // samples and updated_at are ignored). peaks("") lists every model's, ordered by
  // model, rung, shape.
  virtual void record_peak(const PeakRecord& sample, int64_t now) = 0;
  virtual std::optional<PeakRecord> peak(const std::string& model, const std::string& rung,
                                         const std::string& shape) = 0;
  virtual std::vector<PeakRecord> peaks(const std::string& model) = 0;
};

}  // namespace reel
