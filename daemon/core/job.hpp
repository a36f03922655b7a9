// Job: the unit of work reel queues, schedules and runs.
//
// A Job is a plain value: the store owns the durable copy, everything else holds
// snapshots. Times are milliseconds since the Unix epoch; 0 means "not yet".
// Invariants: `lease` is non-empty exactly while state == running; a final state
// (succeeded, failed, cancelled) is never left except by an explicit retry.
// Not thread-safe by itself (it is a value); share copies, not references.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace reel {

using Json = nlohmann::json;

enum class JobState { queued, running, succeeded, failed, cancelled };

std::string_view to_string(JobState s);
std::optional<JobState> parse_job_state(std::string_view s);
bool is_final(JobState s);

// What a client asks for. The same shape comes from reelctl flags, job files
// (TOML/JSON) and, later, watched folders; see job_spec.hpp for parsing.
struct JobSpec {
  std::string model;
  Json params = Json::object();                 // model parameters, validated against the model
  std::map<std::string, std::string> inputs;    // role ("image", "audio", ...) -> absolute path or URL
  int priority = 0;                             // higher runs first
  int max_attempts = 0;                         // 0: the daemon's [jobs] max_attempts
  std::string idempotency_key;                  // empty: none
  std::string source = "ctl";                   // "ctl", "watch:<folder>", "api"
  // How the job may be run when it does not fit (budget_scheduler.hpp, JobPolicy):
  // {"rung": "t5-cpu"} pins a rung; {"quality_fallback": true} allows lower quality;
  // {"floor": {"steps": 20, "frames": 33, "size": 480, "precision": "bf16"}} bounds it;
  // {"no_quality_loss": true}; {"degrade_now": true}; {"max_slowdown": 8}.
  Json policy = Json::object();

  // The canonical payload compared for idempotency: everything that defines the
  // work (model, params, inputs, policy, priority, max_attempts), not who sent it.
  std::string canonical_payload() const;
  Json to_json() const;
};

struct JobProgress {
  int64_t step = 0;
  int64_t total = 0;
  std::string stage;
};

struct Job {
  std::string id;
  std::string model;
  Json params = Json::object();
  std::map<std::string, std::string> inputs;
  int priority = 0;
  JobState state = JobState::queued;
  int64_t created_at = 0;
  int64_t started_at = 0;
  int64_t finished_at = 0;
  int attempts = 0;
  int max_attempts = 3;
  int crash_count = 0;
  std::string source = "ctl";
  std::string idempotency_key;
  std::vector<std::string> outputs;
  std::string rung;
  std::string error;
  JobProgress progress;
  std::string lease;            // the current run's token; empty unless running
  bool cancel_requested = false;
  Json policy = Json::object();  // see JobSpec::policy
  // The plan made at submission: the model's ladder with this job's estimate per rung,
  // best first (budget_scheduler.hpp, RungEstimate as JSON). Empty for unplanned models.
  Json plan = Json::array();
  int min_rung = 0;             // index into plan; raised by each out-of-memory fallback

  Json to_json() const;          // the wire form (lease omitted: it is the executor's secret)
  static Job from_json(const Json& j);
};

// One entry of a job's append-only event log. `seq` is per job, starting at 1,
// strictly increasing with no gaps, so a follower resumes from the last seq it saw.
struct JobEvent {
  std::string job_id;
  int64_t seq = 0;
  int64_t at = 0;
  std::string kind;   // "submitted", "state", "progress", "fallback", "warning", "log", "cancel_requested", ...
  Json data = Json::object();

  Json to_json() const;
  static JobEvent from_json(const Json& j);
};

// Why a run goes back to the queue. Only a failed attempt is charged against
// max_attempts; a crash counts toward max_crashes instead; an interruption (reeld
// stopping, a worker that could not start) is charged to nothing.
enum class RequeueCause { failed_attempt, crash, interrupted };

int64_t now_ms();

}  // namespace reel
