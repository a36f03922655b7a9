// The VRAM-budget scheduler's decision, as a pure function.
//
// Input: the queued jobs (each with its plan: the model's ladder with an estimate per
// rung, best first), what is running, which models are resident in which worker, the
// budget of every device (GPUs and the host's RAM), and the policy. Output: an ordered
// list of decisions — evict an idle resident model, start a job on a device at a rung,
// fail a job that cannot fit even an empty device at its floor — plus, for each job
// left waiting, why. No Asio, SQLite, CUDA or clock inside: the daemon passes `now`.
//
// Rules (docs/SCHEDULER.md has the full text):
//  - Jobs are considered in effective-priority order (priority + aging, then age).
//  - A job's allowed rungs: from its min_rung (raised by run-time OOM fallbacks) on;
//    only its pinned rung if it pins one; quality rungs only when quality fallback is
//    allowed, and never past its floor. Placement rungs always come first.
//  - Target rung: the best allowed rung that fits some device when nothing else runs
//    there. None -> fail now, stating needed vs available.
//  - If the target fits now (counting idle resident models as evictable, least
//    recently used first) -> evict what is needed and start. Otherwise the job waits
//    and reserves that device, so lower-priority work cannot starve it there —
//    unless degrade_now, in which case the best allowed rung that fits now is used.
//  - Several jobs start in one decision when they fit; one job per model worker.
//  - A job of a remote model (PlannedJob::remote_pool) needs no memory: it starts on the
//    pseudo-device "remote:<pool>" when its pool has a free slot (max_concurrent) and
//    has not started requests_per_minute jobs in the last minute; it never evicts,
//    reserves or counts against max_concurrent_jobs, and waits without holding anything.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/job.hpp"

namespace reel {

// One rung of a job's plan: the plugin's estimate for this job at this rung.
struct RungEstimate {
  std::string rung;              // ladder entry name, e.g. "resident", "t5-cpu", "steps-75"
  bool quality = false;          // a quality rung (different output) vs placement (same output)
  bool cpu_only = false;         // runs entirely on the host: needs host RAM, no device memory
  int64_t device_bytes = 0;      // peak on the GPU, weights included
  int64_t host_bytes = 0;        // peak host RAM of the worker
  int64_t resident_device_bytes = 0;  // what stays on the GPU while the model idles (weights)
  int64_t resident_host_bytes = 0;
  double relative_time = 1.0;    // vs the model's best rung
  Json effective = Json::object();  // the output this rung produces: steps, frames, width, height, precision
};

// What the job allows (parsed from JobSpec::policy; see job.hpp).
struct JobPolicy {
  std::string pin_rung;          // non-empty: only this rung
  bool quality_fallback = false; // may lower quality (opt-in per job or per config)
  bool degrade_now = false;      // prefer a worse rung now over waiting for running work
  std::optional<int64_t> min_steps, min_frames, min_size;  // floor; size = the shorter side in pixels
  std::string min_precision;     // floor: "fp32" > "bf16" = "fp16" > "fp8" = "int8"
  double max_slowdown = 0;       // > 0: skip rungs with relative_time above this
};

struct PlannedJob {
  Job job;                       // id, model, priority, created_at, min_rung ...
  std::vector<RungEstimate> plan;
  JobPolicy policy;
  int min_rung = 0;              // index into plan; raised by OOM fallback
  std::string remote_pool;       // non-empty: a remote model, scheduled by this pool's slots
};

// The limits of a remote pool (from the models' "budget", docs/PLUGINS.md) and the
// times (ms) of its recent job starts, for the per-minute limit.
struct RemotePoolBudget {
  std::string name;
  int max_concurrent = 1;
  int requests_per_minute = 0;   // 0: no limit
  std::vector<int64_t> recent_starts;
};

// The pseudo-device a remote pool's jobs run on: "remote:<pool>".
std::string remote_device(const std::string& pool);
bool is_remote_device(const std::string& device);

struct DeviceBudget {
  std::string id;                // "cuda:0", "cuda:1", ... or "cpu" (the host's RAM)
  bool gpu = true;
  int64_t total_bytes = 0;
  int64_t reserve_bytes = 0;     // kept free: driver, desktop, inference margin
  int64_t foreign_bytes = 0;     // used by processes that are not ours (probed)
  int64_t per_worker_overhead = 0;  // CUDA context of each worker process
};

struct ResidentModel {
  std::string model, device, rung;
  int64_t device_bytes = 0, host_bytes = 0;   // held while idle
  bool busy = false;             // running a job
  int64_t last_used = 0;         // ms; for LRU eviction
};

struct RunningJob {
  std::string job_id, model, device, rung;
  int64_t device_bytes = 0, host_bytes = 0;   // the estimate it was started with (peak)
};

struct SchedulerPolicy {
  int max_concurrent_jobs = 1;
  double aging_seconds = 300;
  bool paused = false, draining = false;
  // Once the concurrency cap is reached, no further local job can start this round.
  // The first `explained_waiting_jobs` of those are still evaluated in full (a failure
  // when they cannot fit even on an idle device, a reason and an explanation); the rest
  // only get "waiting for a free slot" and are evaluated when they move up. This keeps
  // a round with thousands queued about as cheap as one with a hundred.
  int explained_waiting_jobs = 100;
};

struct SchedulerInput {
  std::vector<PlannedJob> queued;
  std::vector<RunningJob> running;
  std::vector<ResidentModel> resident;
  std::vector<DeviceBudget> devices;   // "cpu" is always present: host RAM
  std::vector<RemotePoolBudget> pools; // remote pools; a pool not listed gets one slot
  SchedulerPolicy policy;
  int64_t now = 0;
};

struct Decision {
  enum class Kind { evict, start, fail } kind = Kind::start;
  std::string job_id;            // start, fail
  std::string model;             // evict: the model; start: the job's model
  std::string device;            // evict, start
  std::string rung;              // start: the chosen rung; evict: the resident's rung
  int rung_index = -1;           // start: index into the job's plan
  // Why: the numbers behind the decision, for the job's event log and `reelctl show`:
  // {"needed_device_bytes", "available_device_bytes", "needed_host_bytes",
  //  "available_host_bytes", "considered": [{"rung", "device", "fits", "why"}], ...}
  Json explain = Json::object();
  std::string message;           // fail: the job's error text; evict: the reason
};

struct Waiting {
  std::string job_id;
  std::string reason;            // e.g. "waiting for cuda:0: needs 9.1 GiB at 'resident', 3.2 GiB free"
  Json explain = Json::object(); // the same numbers as Decision::explain, for `reelctl show`
};

struct SchedulerOutput {
  std::vector<Decision> decisions;   // apply in order
  std::vector<Waiting> waiting;
};

SchedulerOutput schedule_jobs(const SchedulerInput& in);

// Whether the job may run at plan[index]: at or after its min_rung (the larger of
// PlannedJob::min_rung and Job::min_rung), the pinned rung if it pins one, a quality rung
// only with quality fallback (or when pinned), relative_time within max_slowdown, and a
// quality rung not below the floor. When not, `why` (if non-null) says why. An index
// outside the plan is not allowed. schedule_jobs uses exactly this rule.
bool rung_allowed(const PlannedJob& job, int index, std::string* why);

// Parses a job's policy object (JobSpec::policy); throws std::invalid_argument naming
// the field on a wrong type or value.
JobPolicy parse_job_policy(const Json& policy, bool default_quality_fallback);

// "9.1 GiB" etc., for messages.
std::string format_bytes(int64_t bytes);

}  // namespace reel
