#include "store/sqlite_job_store.hpp"

#include <sqlite3.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <stdexcept>
#include <utility>

#include "store/filesystem_probe.hpp"
#include "store/job_id.hpp"
#include "store/migrations.hpp"
#include "store/sqlite_statement.hpp"

namespace reel {

using sqlite::Statement;
using sqlite::WriteTxn;
using Code = StoreError::Code;

namespace {

// Column order read by read_job(); keep the two in step.
constexpr const char* kJobColumns =
    "id, model, params, inputs, priority, state, created_at, started_at, finished_at, attempts, "
    "max_attempts, crash_count, source, idempotency_key, outputs, rung, error, progress_step, "
    "progress_total, progress_stage, lease, cancel_requested, policy, plan, min_rung";

constexpr const char* kFinalStates = "('succeeded', 'failed', 'cancelled')";

// A random id collides with probability ~n/8.9e8; 16 tries in a row means something
// else is wrong, and the constraint error is then reported as is.
constexpr int kMaxIdTries = 16;

std::string dump(const Json& j) {
  // Worker output can carry invalid UTF-8; replace it rather than lose the event.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json parse_or(const std::string& text, Json fallback) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? std::move(fallback) : j;
}

Job read_job(const Statement& q) {
  Job job;
  job.id = q.text(0);
  job.model = q.text(1);
  job.params = parse_or(q.text(2), Json::object());
  Json inputs = parse_or(q.text(3), Json::object());
  if (inputs.is_object())
    for (auto it = inputs.begin(); it != inputs.end(); ++it)
      if (it.value().is_string()) job.inputs[it.key()] = it.value().get<std::string>();
  job.priority = static_cast<int>(q.int64(4));
  job.state = parse_job_state(q.text(5)).value_or(JobState::failed);
  job.created_at = q.int64(6);
  job.started_at = q.int64(7);
  job.finished_at = q.int64(8);
  job.attempts = static_cast<int>(q.int64(9));
  job.max_attempts = static_cast<int>(q.int64(10));
  job.crash_count = static_cast<int>(q.int64(11));
  job.source = q.text(12);
  job.idempotency_key = q.text(13);
  Json outputs = parse_or(q.text(14), Json::array());
  if (outputs.is_array())
    for (const auto& o : outputs)
      if (o.is_string()) job.outputs.push_back(o.get<std::string>());
  job.rung = q.text(15);
  job.error = q.text(16);
  job.progress.step = q.int64(17);
  job.progress.total = q.int64(18);
  job.progress.stage = q.text(19);
  job.lease = q.text(20);
  job.cancel_requested = q.int64(21) != 0;
  job.policy = parse_or(q.text(22), Json::object());
  if (!job.policy.is_object()) job.policy = Json::object();
  job.plan = parse_or(q.text(23), Json::array());
  if (!job.plan.is_array()) job.plan = Json::array();
  job.min_rung = static_cast<int>(q.int64(24));
  return job;
}

// Column order read by read_peak().
constexpr const char* kPeakColumns =
    "model, rung, shape, estimate_device, estimate_host, measured_device, measured_host, samples, updated_at";

PeakRecord read_peak(const Statement& q) {
  PeakRecord p;
  p.model = q.text(0);
  p.rung = q.text(1);
  p.shape = q.text(2);
  p.estimate_device = q.int64(3);
  p.estimate_host = q.int64(4);
  p.measured_device = q.int64(5);
  p.measured_host = q.int64(6);
  p.samples = q.int64(7);
  p.updated_at = q.int64(8);
  return p;
}

// The JSON a job column holds: null means empty; any other wrong type is the caller's bug.
Json checked_policy(const Json& policy) {
  if (policy.is_null()) return Json::object();
  if (!policy.is_object()) throw std::invalid_argument("a job's policy must be a JSON object, not " + policy.dump());
  return policy;
}

Json checked_plan(const Json& plan) {
  if (plan.is_null()) return Json::array();
  if (!plan.is_array()) throw std::invalid_argument("a job's plan must be a JSON array, not " + plan.dump());
  return plan;
}

// The name of rung `index` of a plan ("" when the plan has no such entry).
std::string plan_rung(const Json& plan, int index) {
  if (index < 0 || !plan.is_array() || static_cast<size_t>(index) >= plan.size()) return "";
  const Json& e = plan[static_cast<size_t>(index)];
  if (e.is_object()) {
    auto it = e.find("rung");
    if (it != e.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

// The index of the rung named `rung` in a plan, or -1.
int plan_index(const Json& plan, const std::string& rung) {
  if (rung.empty() || !plan.is_array()) return -1;
  for (size_t i = 0; i < plan.size(); ++i)
    if (plan_rung(plan, static_cast<int>(i)) == rung) return static_cast<int>(i);
  return -1;
}

std::vector<Job> read_jobs(Statement& q) {
  std::vector<Job> out;
  while (q.step()) out.push_back(read_job(q));
  return out;
}

std::string state_str(JobState s) { return std::string(to_string(s)); }

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string poison_error(const Job& job, int crashes, int max_crashes) {
  return "poison: the job crashed its run " + std::to_string(crashes) + " times (max_crashes=" +
         std::to_string(max_crashes) + "); inspect it with `reelctl show " + job.id +
         "`, fix the cause, then `reelctl retry " + job.id + "`";
}

}  // namespace

SqliteJobStore::SqliteJobStore(const std::string& db_path, const SqliteOptions& options) : path_(db_path) {
  if (options.journal_mode != "auto" && options.journal_mode != "wal" && options.journal_mode != "delete")
    throw std::invalid_argument("storage.journal_mode must be \"auto\", \"wal\" or \"delete\", not \"" +
                                options.journal_mode + "\"");
  if (options.synchronous != "full" && options.synchronous != "normal")
    throw std::invalid_argument("storage.synchronous must be \"full\" or \"normal\", not \"" +
                                options.synchronous + "\"");
  try {
    open(options);
  } catch (...) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw;
  }
}

SqliteJobStore::~SqliteJobStore() { sqlite3_close_v2(db_); }

void SqliteJobStore::open(const SqliteOptions& options) {
  int rc = sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    // Report the path we were given: a failed handle may not know its file name.
    throw StoreError(Code::storage, "cannot open database " + path_ + " (" +
                                        (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc)) +
                                        "): check that daemon.state_dir exists and is writable by "
                                        "reeld's user");
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, options.busy_timeout_ms);
  sqlite::exec(db_, "PRAGMA foreign_keys = ON", "opening the job database");
  sqlite::exec(db_, options.synchronous == "normal" ? "PRAGMA synchronous = NORMAL" : "PRAGMA synchronous = FULL",
               "opening the job database");
  // Migrate before touching the journal mode, so a newer schema is refused first.
  migrate(db_, kSchemaVersion);

  const std::string wanted = choose_journal_mode(options);
  Statement q(db_, wanted == "wal" ? "PRAGMA journal_mode = WAL" : "PRAGMA journal_mode = DELETE");
  journal_mode_ = q.step() ? q.text(0) : wanted;
  for (char& c : journal_mode_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (journal_mode_ != wanted)
    spdlog::warn("database {}: asked SQLite for journal_mode={} but got {}", path_, wanted, journal_mode_);
  spdlog::debug("database {}: schema v{}, journal_mode={}, synchronous={}", path_, kSchemaVersion,
                journal_mode_, options.synchronous);
}

std::string SqliteJobStore::choose_journal_mode(const SqliteOptions& options) const {
  if (options.journal_mode == "delete") return "delete";
  const std::string dir = parent_dir(path_);
  std::optional<unsigned long> fs =
      options.probe_filesystem ? options.probe_filesystem(dir) : filesystem_type(dir);
  const bool network = fs && is_network_filesystem(*fs);
  if (!network) return "wal";
  const std::string fs_name = filesystem_type_name(*fs);
  if (options.journal_mode == "wal") {
    spdlog::warn(
        "database directory {} is on a network filesystem ({}) but storage.journal_mode = \"wal\": WAL "
        "relies on shared memory that network filesystems do not provide and can corrupt the database; "
        "put daemon.state_dir on a local disk",
        dir, fs_name);
    return "wal";
  }
  spdlog::warn(
      "database directory {} is on a network filesystem ({}): using journal_mode=DELETE instead of WAL, "
      "whose shared memory is unsafe there; this is slower and not safe if another host opens the "
      "database. Put daemon.state_dir on a local disk (or set storage.journal_mode = \"delete\" to "
      "keep this and silence the warning)",
      dir, fs_name);
  return "delete";
}

// ---- helpers (mu_ held) ----

std::optional<Job> SqliteJobStore::load(const std::string& id) {
  Statement q(db_, std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id = ?1");
  q.bind(1, id);
  if (!q.step()) return std::nullopt;
  return read_job(q);
}

Job SqliteJobStore::load_or_throw(const std::string& id) {
  auto job = load(id);
  if (!job) throw StoreError(Code::not_found, "no job " + id + " (see `reelctl list`)");
  return *job;
}

Job SqliteJobStore::load_with_lease(const std::string& id, const std::string& lease) {
  Job job = load_or_throw(id);
  if (job.state != JobState::running || job.lease.empty() || job.lease != lease)
    throw StoreError(Code::lease_mismatch,
                     "job " + id + ": stale or wrong lease (the job is " + state_str(job.state) +
                         (job.state == JobState::running ? " under another run" : "") +
                         "); the update was ignored");
  return job;
}

void SqliteJobStore::append_event(const std::string& id, const std::string& kind, const Json& data,
                                  int64_t now) {
  // MAX(seq)+1 inside the caller's write transaction: contiguous and gap-free, since
  // no other writer can interleave.
  Statement ins(db_,
                "INSERT INTO job_events (job_id, seq, at, kind, data) "
                "SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4 FROM job_events WHERE job_id = ?1");
  ins.bind(1, id).bind(2, now).bind(3, kind).bind(4, dump(data));
  ins.step();
}

void SqliteJobStore::append_state_event(const Job& before, JobState to, const std::string& reason,
                                        int64_t now, Json extra) {
  Json data = {{"from", state_str(before.state)}, {"to", state_str(to)}, {"reason", reason}};
  for (auto it = extra.begin(); it != extra.end(); ++it) data[it.key()] = it.value();
  append_event(before.id, "state", data, now);
}

Job SqliteJobStore::fail_or_requeue(Job job, const std::string& reason, RequeueCause cause, int max_crashes,
                                    int64_t now) {
  const bool crashed = cause == RequeueCause::crash;
  const int crashes = job.crash_count + (crashed ? 1 : 0);
  // attempts counts runs the job itself failed; start() charged this one in advance.
  const int attempts = cause == RequeueCause::failed_attempt ? job.attempts : std::max(0, job.attempts - 1);
  JobState to = JobState::queued;
  std::string error;
  std::string event_reason = reason;
  if (job.cancel_requested) {
    // The user asked to cancel this run; running it again would ignore them.
    to = JobState::cancelled;
    event_reason = reason + "; its cancel had been requested, so it is cancelled instead of re-queued";
  } else if (crashed && max_crashes > 0 && crashes >= max_crashes) {
    to = JobState::failed;
    error = poison_error(job, crashes, max_crashes);
    event_reason = error;
  }
  Statement up(db_,
               "UPDATE jobs SET state = ?2, lease = '', crash_count = ?3, error = ?4, "
               "finished_at = ?5, attempts = ?6 WHERE id = ?1");
  up.bind(1, job.id).bind(2, state_str(to)).bind(3, crashes);
  up.bind(4, to == JobState::failed ? error : job.error);
  up.bind(5, is_final(to) ? now : int64_t{0});
  up.bind(6, attempts);
  up.step();
  Json extra = {{"crash_count", crashes}};
  if (event_reason != reason) extra["cause"] = reason;
  append_state_event(job, to, event_reason, now, extra);
  return load_or_throw(job.id);
}

// ---- JobStore ----

JobStore::SubmitResult SqliteJobStore::submit(const JobSpec& spec, int64_t now, int max_queued,
                                              const Json& plan) {
  const Json policy_json = checked_policy(spec.policy);
  const Json plan_json = checked_plan(plan);
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  const std::string payload = spec.canonical_payload();

  if (!spec.idempotency_key.empty()) {
    Statement q(db_, "SELECT id, payload FROM jobs WHERE idempotency_key = ?1");
    q.bind(1, spec.idempotency_key);
    if (q.step()) {
      const std::string id = q.text(0);
      if (q.text(1) != payload)
        throw StoreError(Code::conflict,
                         "idempotency key '" + spec.idempotency_key + "' is already used by job " + id +
                             " with a different payload; use another key for different work (see "
                             "`reelctl show " + id + "`)");
      return {load_or_throw(id), true};   // nothing written; the transaction just rolls back
    }
  }

  if (max_queued > 0) {
    Statement q(db_, "SELECT COUNT(*) FROM jobs WHERE state = 'queued'");
    int64_t n = q.step() ? q.int64(0) : 0;
    if (n >= max_queued)
      throw StoreError(Code::queue_full, "queue is full: " + std::to_string(n) +
                                             " jobs queued (daemon.max_queued_jobs); wait or raise the limit");
  }

  const int max_attempts = spec.max_attempts > 0 ? spec.max_attempts : 1;
  std::string id;
  for (int tries = 1;; ++tries) {
    id = new_job_id();
    Statement ins(db_,
                  "INSERT INTO jobs (id, model, params, inputs, priority, state, created_at, max_attempts, "
                  "source, idempotency_key, payload, policy, plan) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8, ?9, ?10, ?11, ?12)");
    ins.bind(1, id).bind(2, spec.model).bind(3, dump(spec.params)).bind(4, dump(Json(spec.inputs)));
    ins.bind(5, spec.priority).bind(6, now).bind(7, max_attempts).bind(8, spec.source);
    if (spec.idempotency_key.empty()) ins.bind_null(9);
    else ins.bind(9, spec.idempotency_key);
    ins.bind(10, payload).bind(11, dump(policy_json)).bind(12, dump(plan_json));
    int rc = ins.step_rc();
    if (rc == SQLITE_DONE) break;
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY && tries < kMaxIdTries) continue;
    throw sqlite::storage_error(db_, rc, "saving the new job");
  }
  append_event(id, "submitted", {{"source", spec.source}, {"model", spec.model}}, now);
  Job job = load_or_throw(id);
  txn.commit();
  return {std::move(job), false};
}

std::optional<Job> SqliteJobStore::get(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  return load(id);
}

std::vector<Job> SqliteJobStore::list(const JobFilter& filter) {
  std::lock_guard<std::mutex> lock(mu_);
  // rowid breaks ties between jobs created in the same millisecond in insertion order.
  Statement q(db_, std::string("SELECT ") + kJobColumns +
                       " FROM jobs WHERE (?1 IS NULL OR state = ?1) AND (?2 = '' OR model = ?2) "
                       "AND (?3 = '' OR source = ?3) ORDER BY created_at DESC, rowid DESC LIMIT ?4");
  if (filter.state) q.bind(1, state_str(*filter.state));
  else q.bind_null(1);
  q.bind(2, filter.model).bind(3, filter.source).bind(4, filter.limit > 0 ? filter.limit : -1);
  return read_jobs(q);
}

std::vector<Job> SqliteJobStore::queued() {
  std::lock_guard<std::mutex> lock(mu_);
  Statement q(db_, std::string("SELECT ") + kJobColumns + " FROM jobs WHERE state = 'queued'");
  return read_jobs(q);
}

std::vector<Job> SqliteJobStore::running() {
  std::lock_guard<std::mutex> lock(mu_);
  Statement q(db_, std::string("SELECT ") + kJobColumns + " FROM jobs WHERE state = 'running'");
  return read_jobs(q);
}

QueueCounts SqliteJobStore::counts() {
  std::lock_guard<std::mutex> lock(mu_);
  Statement q(db_, "SELECT state, COUNT(*) FROM jobs GROUP BY state");
  QueueCounts c;
  while (q.step()) {
    auto st = parse_job_state(q.text(0));
    if (!st) continue;
    int64_t n = q.int64(1);
    switch (*st) {
      case JobState::queued: c.queued = n; break;
      case JobState::running: c.running = n; break;
      case JobState::succeeded: c.succeeded = n; break;
      case JobState::failed: c.failed = n; break;
      case JobState::cancelled: c.cancelled = n; break;
    }
  }
  return c;
}

std::vector<JobEvent> SqliteJobStore::events(const std::string& id, int64_t after_seq) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement q(db_,
              "SELECT seq, at, kind, data FROM job_events WHERE job_id = ?1 AND seq > ?2 ORDER BY seq");
  q.bind(1, id).bind(2, after_seq);
  std::vector<JobEvent> out;
  while (q.step()) {
    JobEvent e;
    e.job_id = id;
    e.seq = q.int64(0);
    e.at = q.int64(1);
    e.kind = q.text(2);
    e.data = parse_or(q.text(3), Json::object());
    out.push_back(std::move(e));
  }
  return out;
}

Job SqliteJobStore::start(const std::string& id, const std::string& rung, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Job job = load_or_throw(id);
  if (job.state != JobState::queued)
    throw StoreError(Code::invalid_state,
                     "job " + id + " is " + state_str(job.state) + "; only a queued job can be started");
  const std::string lease = new_lease_token();
  Statement up(db_,
               "UPDATE jobs SET state = 'running', lease = ?2, attempts = attempts + 1, started_at = ?3, "
               "rung = ?4, progress_step = 0, progress_total = 0, progress_stage = '' WHERE id = ?1");
  up.bind(1, id).bind(2, lease).bind(3, now).bind(4, rung);
  up.step();
  const int attempt = job.attempts + 1;
  std::string reason = "started (attempt " + std::to_string(attempt) + ")";
  if (!rung.empty()) reason = "started on rung " + rung + " (attempt " + std::to_string(attempt) + ")";
  append_state_event(job, JobState::running, reason, now, {{"rung", rung}, {"attempt", attempt}});
  Job out = load_or_throw(id);
  txn.commit();
  return out;
}

void SqliteJobStore::progress(const std::string& id, const std::string& lease, const JobProgress& p,
                              int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  load_with_lease(id, lease);
  Statement up(db_,
               "UPDATE jobs SET progress_step = ?2, progress_total = ?3, progress_stage = ?4 WHERE id = ?1");
  up.bind(1, id).bind(2, p.step).bind(3, p.total).bind(4, p.stage);
  up.step();
  append_event(id, "progress", {{"step", p.step}, {"total", p.total}, {"stage", p.stage}}, now);
  txn.commit();
}

void SqliteJobStore::add_event(const std::string& id, const std::string& lease, const std::string& kind,
                               const Json& data, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  load_with_lease(id, lease);
  append_event(id, kind, data, now);
  txn.commit();
}

Job SqliteJobStore::finish(const std::string& id, const std::string& lease, JobState final_state,
                           const std::string& error, const std::vector<std::string>& outputs, int64_t now) {
  if (!is_final(final_state))
    throw StoreError(Code::invalid_state, "job " + id + ": finish needs a final state, not " +
                                              state_str(final_state));
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Job job = load_with_lease(id, lease);
  Statement up(db_,
               "UPDATE jobs SET state = ?2, lease = '', finished_at = ?3, error = ?4, outputs = ?5 "
               "WHERE id = ?1");
  up.bind(1, id).bind(2, state_str(final_state)).bind(3, now).bind(4, error).bind(5, dump(Json(outputs)));
  up.step();
  std::string reason = error;
  if (reason.empty())
    reason = final_state == JobState::succeeded ? "finished" : final_state == JobState::cancelled ? "cancelled"
                                                                                                  : "failed";
  append_state_event(job, final_state, reason, now);
  Job out = load_or_throw(id);
  txn.commit();
  return out;
}

Job SqliteJobStore::requeue(const std::string& id, const std::string& lease, const std::string& reason,
                            RequeueCause cause, int max_crashes, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Job job = load_with_lease(id, lease);
  Job out = fail_or_requeue(std::move(job), reason, cause, max_crashes, now);
  txn.commit();
  return out;
}

Job SqliteJobStore::fall_back(const std::string& id, const std::string& lease, int new_min_rung,
                              const Json& data, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Job job = load_with_lease(id, lease);
  if (new_min_rung <= job.min_rung)
    throw StoreError(Code::invalid_state, "job " + id + ": a fallback must lower the rung (min_rung " +
                                              std::to_string(job.min_rung) + " -> " +
                                              std::to_string(new_min_rung) + " is not lower)");
  Json event = data.is_object() ? data : Json::object();
  // The rung that ran out of memory: the caller's word, else the one the run started on.
  std::string from = event.contains("from") && event["from"].is_string() ? event["from"].get<std::string>() : job.rung;
  std::string to = event.contains("to") && event["to"].is_string() ? event["to"].get<std::string>()
                                                                   : plan_rung(job.plan, new_min_rung);
  if (!event.contains("from")) event["from"] = from;
  if (!event.contains("to")) event["to"] = to;
  const int from_index = plan_index(job.plan, from);
  event["from_index"] = from_index >= 0 ? from_index : job.min_rung;
  event["to_index"] = new_min_rung;
  const std::string from_name = from.empty() ? "#" + std::to_string(event["from_index"].get<int>()) : from;
  const std::string to_name = to.empty() ? "#" + std::to_string(new_min_rung) : to;
  const std::string reason = "out of memory at rung " + from_name + "; retrying at rung " + to_name;

  if (job.cancel_requested) {
    // The user's cancel wins, as in requeue: no fallback, the job is cancelled.
    Job out = fail_or_requeue(std::move(job), "out of memory at rung " + from_name, RequeueCause::interrupted,
                              /*max_crashes=*/0, now);
    txn.commit();
    return out;
  }
  Statement up(db_,
               "UPDATE jobs SET state = 'queued', lease = '', min_rung = ?2, "
               "attempts = MAX(attempts - 1, 0) WHERE id = ?1");
  up.bind(1, id).bind(2, new_min_rung);
  up.step();
  append_event(id, "fallback", event, now);
  append_state_event(job, JobState::queued, reason, now, {{"min_rung", new_min_rung}});
  Job out = load_or_throw(id);
  txn.commit();
  return out;
}

Job SqliteJobStore::fail_queued(const std::string& id, const std::string& error, const Json& data, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Job job = load_or_throw(id);
  if (job.state != JobState::queued)
    throw StoreError(Code::invalid_state, "job " + id + " is " + state_str(job.state) + ", not queued");
  Statement up(db_, "UPDATE jobs SET state = 'failed', error = ?2, finished_at = ?3 WHERE id = ?1");
  up.bind(1, id).bind(2, error).bind(3, now);
  up.step();
  append_state_event(job, JobState::failed, error, now, data);
  Job out = load_or_throw(id);
  txn.commit();
  return out;
}

Job SqliteJobStore::cancel(const std::string& id, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Job job = load_or_throw(id);
  switch (job.state) {
    case JobState::queued: {
      Statement up(db_, "UPDATE jobs SET state = 'cancelled', finished_at = ?2 WHERE id = ?1");
      up.bind(1, id).bind(2, now);
      up.step();
      append_state_event(job, JobState::cancelled, "cancelled before it started", now);
      break;
    }
    case JobState::running: {
      if (job.cancel_requested) return job;   // already asked; one event is enough
      Statement up(db_, "UPDATE jobs SET cancel_requested = 1 WHERE id = ?1");
      up.bind(1, id);
      up.step();
      append_event(id, "cancel_requested", Json::object(), now);
      break;
    }
    default:
      throw StoreError(Code::invalid_state,
                       "job " + id + " already " + state_str(job.state) + "; there is nothing to cancel");
  }
  Job out = load_or_throw(id);
  txn.commit();
  return out;
}

Job SqliteJobStore::retry(const std::string& id, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Job job = load_or_throw(id);
  if (job.state != JobState::failed && job.state != JobState::cancelled)
    throw StoreError(Code::invalid_state, "job " + id + " is " + state_str(job.state) +
                                              "; only failed or cancelled jobs can be retried");
  Statement up(db_,
               "UPDATE jobs SET state = 'queued', attempts = 0, crash_count = 0, error = '', outputs = '[]', "
               "started_at = 0, finished_at = 0, rung = '', lease = '', cancel_requested = 0, min_rung = 0, "
               "progress_step = 0, progress_total = 0, progress_stage = '' WHERE id = ?1");
  up.bind(1, id);
  up.step();
  append_state_event(job, JobState::queued, "retried", now);
  Job out = load_or_throw(id);
  txn.commit();
  return out;
}

Job SqliteJobStore::set_priority(const std::string& id, int priority, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Job job = load_or_throw(id);
  if (is_final(job.state))
    throw StoreError(Code::invalid_state, "job " + id + " already " + state_str(job.state) +
                                              "; priority only matters for queued or running jobs");
  if (job.priority == priority) return job;
  Statement up(db_, "UPDATE jobs SET priority = ?2 WHERE id = ?1");
  up.bind(1, id).bind(2, priority);
  up.step();
  append_event(id, "priority", {{"from", job.priority}, {"to", priority}}, now);
  Job out = load_or_throw(id);
  txn.commit();
  return out;
}

void SqliteJobStore::set_plan(const std::string& id, const Json& plan, int64_t now) {
  const Json plan_json = checked_plan(plan);
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Job job = load_or_throw(id);
  if (job.state != JobState::queued)
    throw StoreError(Code::invalid_state, "job " + id + " is " + state_str(job.state) +
                                              "; only a queued job can be re-planned");
  if (job.plan == plan_json) return;
  Statement up(db_, "UPDATE jobs SET plan = ?2 WHERE id = ?1");
  up.bind(1, id).bind(2, dump(plan_json));
  up.step();
  append_event(id, "plan", {{"rungs", plan_json.size()}}, now);
  txn.commit();
}

int64_t SqliteJobStore::prune(int64_t finished_before) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  const std::string where = std::string("state IN ") + kFinalStates + " AND finished_at < ?1";
  Statement ev(db_, "DELETE FROM job_events WHERE job_id IN (SELECT id FROM jobs WHERE " + where + ")");
  ev.bind(1, finished_before);
  ev.step();
  Statement jobs(db_, "DELETE FROM jobs WHERE " + where);
  jobs.bind(1, finished_before);
  jobs.step();
  const int64_t n = sqlite3_changes(db_);
  txn.commit();
  return n;
}

std::vector<std::string> SqliteJobStore::recover_interrupted(int max_crashes, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  std::vector<Job> jobs;
  {
    Statement q(db_, std::string("SELECT ") + kJobColumns + " FROM jobs WHERE state = 'running'");
    jobs = read_jobs(q);
  }
  std::vector<std::string> ids;
  for (Job& job : jobs) {
    const int crash = job.crash_count + 1;
    std::string reason = "reeld stopped while the job was running (crash " + std::to_string(crash);
    if (max_crashes > 0) reason += " of " + std::to_string(max_crashes);
    reason += ")";
    const bool requeued = !job.cancel_requested && !(max_crashes > 0 && crash >= max_crashes);
    if (requeued) reason += "; re-queued";
    ids.push_back(job.id);
    Job after = fail_or_requeue(std::move(job), reason, RequeueCause::crash, max_crashes, now);
    spdlog::warn("job {}: {}", after.id, after.state == JobState::failed ? after.error : reason);
  }
  txn.commit();
  return ids;
}

std::optional<std::string> SqliteJobStore::setting(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement q(db_, "SELECT value FROM settings WHERE key = ?1");
  q.bind(1, key);
  if (!q.step()) return std::nullopt;
  return q.text(0);
}

void SqliteJobStore::set_setting(const std::string& key, const std::string& value) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Statement up(db_,
               "INSERT INTO settings (key, value) VALUES (?1, ?2) "
               "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  up.bind(1, key).bind(2, value);
  up.step();
  txn.commit();
}

void SqliteJobStore::record_peak(const PeakRecord& sample, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  WriteTxn txn(db_);
  Statement up(db_,
               "INSERT INTO peaks (model, rung, shape, estimate_device, estimate_host, measured_device, "
               "measured_host, samples, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8) "
               "ON CONFLICT(model, rung, shape) DO UPDATE SET "
               "estimate_device = excluded.estimate_device, estimate_host = excluded.estimate_host, "
               "measured_device = MAX(measured_device, excluded.measured_device), "
               "measured_host = MAX(measured_host, excluded.measured_host), "
               "samples = samples + 1, updated_at = excluded.updated_at");
  up.bind(1, sample.model).bind(2, sample.rung).bind(3, sample.shape);
  up.bind(4, sample.estimate_device).bind(5, sample.estimate_host);
  up.bind(6, sample.measured_device).bind(7, sample.measured_host).bind(8, now);
  up.step();
  txn.commit();
}

std::optional<PeakRecord> SqliteJobStore::peak(const std::string& model, const std::string& rung,
                                               const std::string& shape) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement q(db_, std::string("SELECT ") + kPeakColumns +
                       " FROM peaks WHERE model = ?1 AND rung = ?2 AND shape = ?3");
  q.bind(1, model).bind(2, rung).bind(3, shape);
  if (!q.step()) return std::nullopt;
  return read_peak(q);
}

std::vector<PeakRecord> SqliteJobStore::peaks(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  Statement q(db_, std::string("SELECT ") + kPeakColumns +
                       " FROM peaks WHERE ?1 = '' OR model = ?1 ORDER BY model, rung, shape");
  q.bind(1, model);
  std::vector<PeakRecord> out;
  while (q.step()) out.push_back(read_peak(q));
  return out;
}

void SqliteJobStore::TEST_exec(const std::string& sql) {
  std::lock_guard<std::mutex> lock(mu_);
  sqlite::exec(db_, sql.c_str(), "TEST_exec");
}

}  // namespace reel
