// Tests of the SQLite job store, its migrations, the lock file and the filesystem
// probe. Everything runs against real SQLite files in temporary directories.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "store/filesystem_probe.hpp"
#include "store/job_id.hpp"
#include "store/lock_file.hpp"
#include "store/migrations.hpp"
#include "store/sqlite_job_store.hpp"
#include "support/test_support.hpp"

namespace reel {
namespace {

using test::TempDir;
// Substring check with the whole text in the failure message (no gmock dependency).
#define EXPECT_CONTAINS(text, part)                                                   \
  do {                                                                                \
    const std::string text_ = (text), part_ = (part);                                 \
    EXPECT_NE(text_.find(part_), std::string::npos) << "\"" << text_ << "\"\n  lacks \"" << part_ << "\""; \
  } while (0)

JobSpec spec(const std::string& model = "sleep", Json params = {{"seconds", 1}}) {
  JobSpec s;
  s.model = model;
  s.params = std::move(params);
  s.max_attempts = 2;
  return s;
}

// A raw connection, for building old databases and looking under the store.
struct RawDb {
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("open " + path);
  }
  ~RawDb() { sqlite3_close(db); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      throw std::runtime_error(sql + ": " + msg);
    }
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) throw std::runtime_error(sql);
    std::string out;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
      out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
  }
  sqlite3* db = nullptr;
};

template <class F>
StoreError::Code error_code(F&& f) {
  try {
    f();
  } catch (const StoreError& e) {
    return e.code;
  }
  ADD_FAILURE() << "expected a StoreError";
  return StoreError::Code::storage;
}

template <class F>
std::string store_error_message(F&& f, StoreError::Code expected) {
  try {
    f();
  } catch (const StoreError& e) {
    EXPECT_EQ(to_string(e.code), std::string(to_string(expected))) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected StoreError " << to_string(expected);
  return {};
}

void expect_contiguous(const std::vector<JobEvent>& ev) {
  for (size_t i = 0; i < ev.size(); ++i) EXPECT_EQ(ev[i].seq, static_cast<int64_t>(i + 1)) << ev[i].kind;
}

class StoreTest : public ::testing::Test {
 protected:
  std::string db_path() const { return dir_.file("reel.db"); }
  std::unique_ptr<SqliteJobStore> open(SqliteOptions o = {}) {
    return std::make_unique<SqliteJobStore>(db_path(), o);
  }
  TempDir dir_;
};

// ---------------------------------------------------------------- migrations

TEST_F(StoreTest, FreshDatabaseIsMigratedToCurrentSchema) {
  auto store = open();
  store.reset();
  RawDb raw(db_path());
  EXPECT_EQ(schema_version(raw.db), kSchemaVersion);
  EXPECT_EQ(raw.text("SELECT name FROM sqlite_master WHERE name = 'settings'"), "settings");
  EXPECT_EQ(raw.text("SELECT name FROM sqlite_master WHERE name = 'jobs_state_priority'"),
            "jobs_state_priority");
  EXPECT_EQ(raw.text("SELECT name FROM sqlite_master WHERE name = 'peaks'"), "peaks");
  EXPECT_EQ(raw.text("SELECT COUNT(*) FROM pragma_table_info('jobs') WHERE name IN ('policy', 'plan', 'min_rung')"),
            "3");
}

TEST_F(StoreTest, MigrateStopsAtTargetAndNeverDowngrades) {
  RawDb raw(db_path());
  migrate(raw.db, 1);
  EXPECT_EQ(schema_version(raw.db), 1);
  EXPECT_EQ(raw.text("SELECT name FROM sqlite_master WHERE name = 'settings'"), "");
  migrate(raw.db, 2);
  EXPECT_EQ(schema_version(raw.db), 2);
  EXPECT_EQ(raw.text("SELECT name FROM sqlite_master WHERE name = 'peaks'"), "");
  migrate(raw.db, 3);
  EXPECT_EQ(schema_version(raw.db), 3);
  EXPECT_EQ(raw.text("SELECT name FROM sqlite_master WHERE name = 'peaks'"), "peaks");
  migrate(raw.db, 1);   // no downgrade
  EXPECT_EQ(schema_version(raw.db), 3);
  EXPECT_THROW(migrate(raw.db, kSchemaVersion + 1), std::invalid_argument);
}

TEST_F(StoreTest, V1DatabaseWithAJobIsMigratedAndKeepsTheJob) {
  {
    RawDb raw(db_path());
    migrate(raw.db, 1);
    raw.exec(
        "INSERT INTO jobs (id, model, params, inputs, priority, state, created_at, max_attempts, source, "
        "idempotency_key, payload) VALUES ('abc234', 'sleep', '{\"seconds\":3}', '{\"image\":\"/a.png\"}', "
        "5, 'queued', 1000, 2, 'ctl', 'k1', 'P')");
    raw.exec("INSERT INTO job_events (job_id, seq, at, kind, data) VALUES ('abc234', 1, 1000, 'submitted', '{}')");
  }
  auto store = open();
  auto job = store->get("abc234");
  ASSERT_TRUE(job);
  EXPECT_EQ(job->model, "sleep");
  EXPECT_EQ(job->params["seconds"], 3);
  EXPECT_EQ(job->inputs.at("image"), "/a.png");
  EXPECT_EQ(job->priority, 5);
  EXPECT_EQ(job->state, JobState::queued);
  EXPECT_EQ(job->idempotency_key, "k1");
  EXPECT_EQ(job->policy, Json::object());
  EXPECT_EQ(job->plan, Json::array());
  EXPECT_EQ(job->min_rung, 0);
  EXPECT_EQ(store->events("abc234").size(), 1u);
  // v2 features work on the migrated database.
  store->set_setting("paused", "1");
  EXPECT_EQ(store->setting("paused"), "1");
  store.reset();
  RawDb raw(db_path());
  EXPECT_EQ(schema_version(raw.db), kSchemaVersion);
}

TEST_F(StoreTest, V2DatabaseWithAJobIsMigratedToV3AndKeepsTheJob) {
  // A key made before policies existed: its payload has no "policy" and must still match.
  JobSpec keyed = spec("sleep", {{"seconds", 3}});
  keyed.idempotency_key = "k2";
  {
    RawDb raw(db_path());
    migrate(raw.db, 2);
    ASSERT_EQ(schema_version(raw.db), 2);
    raw.exec(
        "INSERT INTO jobs (id, model, params, inputs, priority, state, created_at, max_attempts, source, "
        "idempotency_key, payload, attempts, rung) VALUES ('def567', 'sleep', '{\"seconds\":3}', '{}', 1, "
        "'queued', 1000, 2, 'api', 'k2', '" + keyed.canonical_payload() + "', 1, 'gpu')");
    raw.exec("INSERT INTO job_events (job_id, seq, at, kind, data) VALUES ('def567', 1, 1000, 'submitted', '{}')");
    raw.exec("INSERT INTO settings (key, value) VALUES ('paused', '1')");
  }
  auto store = open();
  auto job = store->get("def567");
  ASSERT_TRUE(job);
  EXPECT_EQ(job->model, "sleep");
  EXPECT_EQ(job->params["seconds"], 3);
  EXPECT_EQ(job->priority, 1);
  EXPECT_EQ(job->state, JobState::queued);
  EXPECT_EQ(job->source, "api");
  EXPECT_EQ(job->attempts, 1);
  EXPECT_EQ(job->idempotency_key, "k2");
  EXPECT_EQ(job->policy, Json::object());
  EXPECT_EQ(job->plan, Json::array());
  EXPECT_EQ(job->min_rung, 0);
  EXPECT_EQ(store->events("def567").size(), 1u);
  EXPECT_EQ(store->setting("paused"), "1");
  {
    RawDb raw(db_path());
    EXPECT_EQ(schema_version(raw.db), 3);
    EXPECT_EQ(raw.text("SELECT policy || plan || min_rung FROM jobs WHERE id = 'def567'"), "{}[]0");
  }
  auto again = store->submit(keyed, 2000);
  EXPECT_TRUE(again.existed);
  EXPECT_EQ(again.job.id, "def567");
  // v3 features work on the migrated job and database.
  store->set_plan("def567", Json::array({{{"rung", "a"}}, {{"rung", "b"}}}), 2001);
  std::string lease = store->start("def567", "a", 2002).lease;
  Job back = store->fall_back("def567", lease, 1, {{"from", "a"}, {"to", "b"}, {"reason", "oom"}}, 2003);
  EXPECT_EQ(back.min_rung, 1);
  EXPECT_EQ(back.attempts, 1);
  store->record_peak({"sleep", "a", "1x1"}, 2004);
  EXPECT_TRUE(store->peak("sleep", "a", "1x1"));
}

TEST_F(StoreTest, FailQueuedFailsOnlyAQueuedJobAndRecordsWhy) {
  auto store = open();
  Job job = store->submit(spec(), 1).job;
  Json why = {{"needed_device_bytes", 100}};
  Job failed = store->fail_queued(job.id, "cannot fit", why, 5);
  EXPECT_EQ(failed.state, JobState::failed);
  EXPECT_EQ(failed.error, "cannot fit");
  EXPECT_EQ(failed.attempts, 0);
  EXPECT_EQ(failed.finished_at, 5);
  auto events = store->events(job.id);
  ASSERT_EQ(events.back().kind, "state");
  EXPECT_EQ(events.back().data["to"], "failed");
  EXPECT_EQ(events.back().data["needed_device_bytes"], 100);
  try {
    store->fail_queued(job.id, "again", Json::object(), 6);
    FAIL() << "a failed job cannot be failed again";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.code, StoreError::Code::invalid_state);
  }
  EXPECT_EQ(store->events(job.id).size(), events.size()) << "a refused call changes nothing";
}

TEST_F(StoreTest, NewerSchemaIsRefusedUntouched) {
  {
    RawDb raw(db_path());
    raw.exec("CREATE TABLE future (x); PRAGMA user_version = 99");
  }
  std::string msg = store_error_message([&] { open(); }, StoreError::Code::storage);
  EXPECT_CONTAINS(msg, "database schema v99 is newer than this reeld supports (v3); upgrade reeld");
  RawDb raw(db_path());
  EXPECT_EQ(schema_version(raw.db), 99);
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "delete");   // not switched to WAL either
  EXPECT_EQ(raw.text("SELECT name FROM sqlite_master WHERE name = 'jobs'"), "");
}

// ---------------------------------------------------------------- journal mode

TEST_F(StoreTest, AutoUsesWalOnLocalDisk) {
  auto store = open();
  EXPECT_EQ(store->journal_mode(), "wal");
  RawDb raw(db_path());
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
}

TEST_F(StoreTest, AutoFallsBackToDeleteOnNetworkFilesystem) {
  SqliteOptions o;
  std::string probed;
  o.probe_filesystem = [&](const std::string& dir) -> std::optional<unsigned long> {
    probed = dir;
    return 0x6969UL;   // NFS
  };
  auto store = open(o);
  EXPECT_EQ(probed, dir_.path());
  EXPECT_EQ(store->journal_mode(), "delete");
  store->submit(spec(), 1);
  RawDb raw(db_path());
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "delete");
}

TEST_F(StoreTest, ExplicitModesAreHonoured) {
  SqliteOptions o;
  o.probe_filesystem = [](const std::string&) -> std::optional<unsigned long> { return 0xFF534D42UL; };
  o.journal_mode = "wal";
  EXPECT_EQ(open(o)->journal_mode(), "wal");   // told so: warned, but honoured
  SqliteOptions d;
  d.journal_mode = "delete";
  d.synchronous = "normal";
  EXPECT_EQ(open(d)->journal_mode(), "delete");
}

TEST_F(StoreTest, InvalidOptionsAreRejected) {
  SqliteOptions o;
  o.journal_mode = "memory";
  EXPECT_THROW(open(o), std::invalid_argument);
  SqliteOptions s;
  s.synchronous = "off";
  EXPECT_THROW(open(s), std::invalid_argument);
}

TEST(StoreFilesystemProbe, ClassifiesNetworkFilesystems) {
  for (unsigned long t : {0x6969UL, 0x517BUL, 0xFF534D42UL, 0xFE534D42UL, 0x65735546UL, 0x00C36400UL,
                          0x01021997UL, 0x5346414FUL})
    EXPECT_TRUE(is_network_filesystem(t)) << std::hex << t;
  for (unsigned long t : {0xEF53UL /*ext4*/, 0x58465342UL /*xfs*/, 0x9123683EUL /*btrfs*/,
                          0x01021994UL /*tmpfs*/, 0UL, 0x12345678UL})
    EXPECT_FALSE(is_network_filesystem(t)) << std::hex << t;
  // A sign-extended f_type (signed word ABIs) still matches.
  EXPECT_TRUE(is_network_filesystem(static_cast<unsigned long>(static_cast<long>(static_cast<int32_t>(0xFF534D42)))));
  EXPECT_EQ(filesystem_type_name(0x6969UL), "nfs");
  EXPECT_EQ(filesystem_type_name(0x12345678UL), "0x12345678");
}

TEST(StoreFilesystemProbe, ProbesARealDirectory) {
  TempDir dir;
  auto t = filesystem_type(dir.path());
  ASSERT_TRUE(t);
  EXPECT_NE(*t, 0UL);
  EXPECT_FALSE(filesystem_type(dir.file("missing/deeper")));
}

// ---------------------------------------------------------------- ids

TEST(StoreJobId, ShortTypableAndRandom) {
  std::set<std::string> seen;
  for (int i = 0; i < 2000; ++i) {
    std::string id = new_job_id();
    ASSERT_EQ(id.size(), 6u);
    EXPECT_TRUE(looks_like_job_id(id)) << id;
    EXPECT_EQ(id.find_first_of("01ilo"), std::string::npos) << id;
    seen.insert(id);
  }
  EXPECT_GT(seen.size(), 1990u);
  EXPECT_FALSE(looks_like_job_id("abc10x"));
  EXPECT_FALSE(looks_like_job_id("abc23"));
  std::string lease = new_lease_token();
  EXPECT_EQ(lease.size(), 32u);
  EXPECT_EQ(lease.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(lease, new_lease_token());
}

TEST(StoreErrorCode, Names) {
  EXPECT_STREQ(to_string(StoreError::Code::not_found), "not_found");
  EXPECT_STREQ(to_string(StoreError::Code::conflict), "conflict");
  EXPECT_STREQ(to_string(StoreError::Code::invalid_state), "invalid_state");
  EXPECT_STREQ(to_string(StoreError::Code::lease_mismatch), "lease_mismatch");
  EXPECT_STREQ(to_string(StoreError::Code::queue_full), "queue_full");
  EXPECT_STREQ(to_string(StoreError::Code::storage), "storage");
  EXPECT_STREQ(to_string(StoreError::Code::disk_full), "disk_full");
  EXPECT_STREQ(to_string(StoreError::Code::read_only), "read_only");
}

// ---------------------------------------------------------------- submit & queries

TEST_F(StoreTest, SubmitGetListCounts) {
  auto store = open();
  JobSpec a = spec("sleep");
  a.inputs["image"] = "/in/a.png";
  a.priority = 3;
  a.source = "watch:/srv/in";
  auto ra = store->submit(a, 100);
  EXPECT_FALSE(ra.existed);
  EXPECT_TRUE(looks_like_job_id(ra.job.id));
  EXPECT_EQ(ra.job.state, JobState::queued);
  EXPECT_EQ(ra.job.created_at, 100);
  EXPECT_EQ(ra.job.max_attempts, 2);
  auto rb = store->submit(spec("wan"), 200);
  auto rc = store->submit(spec("sleep"), 300);

  auto got = store->get(ra.job.id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->inputs.at("image"), "/in/a.png");
  EXPECT_EQ(got->priority, 3);
  EXPECT_EQ(got->source, "watch:/srv/in");
  EXPECT_EQ(got->params, a.params);
  EXPECT_FALSE(store->get("zzzzzz"));

  auto all = store->list({});
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].id, rc.job.id);   // newest first
  EXPECT_EQ(all[2].id, ra.job.id);
  JobFilter by_model;
  by_model.model = "sleep";
  EXPECT_EQ(store->list(by_model).size(), 2u);
  JobFilter by_source;
  by_source.source = "watch:/srv/in";
  ASSERT_EQ(store->list(by_source).size(), 1u);
  EXPECT_EQ(store->list(by_source)[0].id, ra.job.id);
  JobFilter limited;
  limited.limit = 2;
  EXPECT_EQ(store->list(limited).size(), 2u);

  store->start(rb.job.id, "gpu", 400);
  JobFilter running;
  running.state = JobState::running;
  ASSERT_EQ(store->list(running).size(), 1u);
  EXPECT_EQ(store->list(running)[0].id, rb.job.id);
  EXPECT_EQ(store->running().size(), 1u);
  EXPECT_EQ(store->queued().size(), 2u);
  auto c = store->counts();
  EXPECT_EQ(c.queued, 2);
  EXPECT_EQ(c.running, 1);
  EXPECT_EQ(c.succeeded + c.failed + c.cancelled, 0);

  auto ev = store->events(ra.job.id);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].kind, "submitted");
  EXPECT_EQ(ev[0].data["source"], "watch:/srv/in");
  EXPECT_EQ(ev[0].data["model"], "sleep");
}

TEST_F(StoreTest, ZeroMaxAttemptsIsStoredAsOne) {
  auto store = open();
  JobSpec s = spec();
  s.max_attempts = 0;
  EXPECT_EQ(store->submit(s, 1).job.max_attempts, 1);
}

TEST_F(StoreTest, IdempotencySamePayloadReturnsExistingJob) {
  auto store = open();
  JobSpec s = spec();
  s.idempotency_key = "render-42";
  auto first = store->submit(s, 1);
  s.source = "api";   // who sent it is not part of the payload
  auto again = store->submit(s, 2);
  EXPECT_FALSE(first.existed);
  EXPECT_TRUE(again.existed);
  EXPECT_EQ(again.job.id, first.job.id);
  EXPECT_EQ(store->counts().queued, 1);
  EXPECT_EQ(store->events(first.job.id).size(), 1u);
}

TEST_F(StoreTest, IdempotencyDifferentPayloadConflicts) {
  auto store = open();
  JobSpec s = spec();
  s.idempotency_key = "render-42";
  auto first = store->submit(s, 1);
  s.params["seconds"] = 2;
  std::string msg = store_error_message([&] { store->submit(s, 2); }, StoreError::Code::conflict);
  EXPECT_CONTAINS(msg, "render-42");
  EXPECT_CONTAINS(msg, first.job.id);
  EXPECT_EQ(store->counts().queued, 1);
  // Jobs without a key never collide with each other.
  JobSpec n = spec();
  EXPECT_NE(store->submit(n, 3).job.id, store->submit(n, 4).job.id);
}

TEST_F(StoreTest, QueueFull) {
  auto store = open();
  JobSpec keyed = spec();
  keyed.idempotency_key = "k";
  auto first = store->submit(keyed, 1, 2);
  store->submit(spec(), 2, 2);
  std::string msg = store_error_message([&] { store->submit(spec(), 3, 2); }, StoreError::Code::queue_full);
  EXPECT_CONTAINS(msg, "queue is full: 2 jobs queued (daemon.max_queued_jobs); wait or raise the limit");
  EXPECT_EQ(store->counts().queued, 2);
  // A resubmission of an existing job is not new work, so a full queue does not refuse it.
  EXPECT_TRUE(store->submit(keyed, 4, 2).existed);
  // 0 means no limit; running jobs do not count toward it.
  store->submit(spec(), 5, 0);
  store->start(first.job.id, "", 6);
  EXPECT_NO_THROW(store->submit(spec(), 7, 3));
}

// A plan of three rungs, best first, as the planner writes it (RungEstimate as JSON).
Json three_rung_plan() {
  return Json::array({
      {{"rung", "resident"}, {"quality", false}, {"device_bytes", 9000}, {"host_bytes", 100}},
      {{"rung", "t5-cpu"}, {"quality", false}, {"device_bytes", 6000}, {"host_bytes", 4000}},
      {{"rung", "steps-75"}, {"quality", true}, {"device_bytes", 6000}, {"host_bytes", 4000},
       {"effective", {{"steps", 22}}}},
  });
}

TEST_F(StoreTest, PolicyAndPlanRoundTrip) {
  std::string id;
  const Json policy = {{"quality_fallback", true}, {"floor", {{"steps", 20}, {"precision", "bf16"}}}};
  {
    auto store = open();
    JobSpec s = spec("wan");
    s.policy = policy;
    auto r = store->submit(s, 1, 0, three_rung_plan());
    id = r.job.id;
    EXPECT_EQ(r.job.policy, policy);
    EXPECT_EQ(r.job.plan, three_rung_plan());
    EXPECT_EQ(r.job.min_rung, 0);
    ASSERT_EQ(store->queued().size(), 1u);
    EXPECT_EQ(store->queued()[0].plan, three_rung_plan());
    ASSERT_EQ(store->list({}).size(), 1u);
    EXPECT_EQ(store->list({}).at(0).policy, policy);
    // Defaults: no policy, no plan.
    Job plain = store->submit(spec(), 2).job;
    EXPECT_EQ(plain.policy, Json::object());
    EXPECT_EQ(plain.plan, Json::array());
    EXPECT_EQ(store->get(plain.id)->plan, Json::array());
    // Null counts as empty; other wrong types are refused and nothing is written.
    EXPECT_EQ(store->submit(spec(), 3, 0, Json()).job.plan, Json::array());
    EXPECT_THROW(store->submit(spec(), 4, 0, Json::object()), std::invalid_argument);
    JobSpec bad = spec();
    bad.policy = Json::array();
    EXPECT_THROW(store->submit(bad, 5), std::invalid_argument);
    EXPECT_EQ(store->counts().queued, 3);
  }
  auto store = open();   // durable
  Job j = *store->get(id);
  EXPECT_EQ(j.policy, policy);
  EXPECT_EQ(j.plan, three_rung_plan());
  EXPECT_EQ(j.to_json()["plan"], three_rung_plan());
  EXPECT_EQ(j.to_json()["policy"], policy);
}

TEST_F(StoreTest, IdempotencyPayloadIncludesPolicy) {
  auto store = open();
  JobSpec s = spec();
  s.idempotency_key = "render-7";
  s.policy = {{"quality_fallback", true}};
  auto first = store->submit(s, 1, 0, three_rung_plan());
  // Same policy: the same job, whatever plan is given now (the plan is not the work).
  auto again = store->submit(s, 2, 0, Json::array());
  EXPECT_TRUE(again.existed);
  EXPECT_EQ(again.job.id, first.job.id);
  EXPECT_EQ(again.job.plan, three_rung_plan());
  // A different policy, or none, is different work.
  JobSpec other = s;
  other.policy = {{"quality_fallback", false}};
  EXPECT_EQ(error_code([&] { store->submit(other, 3); }), StoreError::Code::conflict);
  other.policy = Json::object();
  std::string msg = store_error_message([&] { store->submit(other, 4); }, StoreError::Code::conflict);
  EXPECT_CONTAINS(msg, "render-7");
  EXPECT_EQ(store->counts().queued, 1);
}

TEST_F(StoreTest, StartRecordsTheRungInTheJobAndItsStateEvent) {
  auto store = open();
  auto id = store->submit(spec(), 1, 0, three_rung_plan()).job.id;
  Job run = store->start(id, "t5-cpu", 2);
  EXPECT_EQ(run.rung, "t5-cpu");
  EXPECT_EQ(store->get(id)->rung, "t5-cpu");
  auto ev = store->events(id);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1].kind, "state");
  EXPECT_EQ(ev[1].data["from"], "queued");
  EXPECT_EQ(ev[1].data["to"], "running");
  EXPECT_EQ(ev[1].data["rung"], "t5-cpu");
  EXPECT_EQ(ev[1].data["attempt"], 1);
}

TEST_F(StoreTest, FallBackRequeuesOneRungLowerWithoutChargingAnAttempt) {
  auto store = open();
  auto id = store->submit(spec(), 1, 0, three_rung_plan()).job.id;
  std::string lease = store->start(id, "resident", 2).lease;
  store->progress(id, lease, {3, 30, "denoise"}, 3);
  Job back = store->fall_back(id, lease, 1,
                              {{"from", "resident"}, {"to", "t5-cpu"}, {"reason", "CUDA out of memory"}}, 4);
  EXPECT_EQ(back.state, JobState::queued);
  EXPECT_TRUE(back.lease.empty());
  EXPECT_EQ(back.min_rung, 1);
  EXPECT_EQ(back.attempts, 0);      // not charged
  EXPECT_EQ(back.crash_count, 0);   // not a crash
  EXPECT_EQ(back.finished_at, 0);
  EXPECT_EQ(back.plan, three_rung_plan());
  EXPECT_EQ(store->get(id)->min_rung, 1);

  auto ev = store->events(id);
  ASSERT_EQ(ev.size(), 5u);
  expect_contiguous(ev);
  EXPECT_EQ(ev[3].kind, "fallback");
  EXPECT_EQ(ev[3].at, 4);
  EXPECT_EQ(ev[3].data, (Json{{"from", "resident"}, {"to", "t5-cpu"}, {"reason", "CUDA out of memory"},
                              {"from_index", 0}, {"to_index", 1}}));
  EXPECT_EQ(ev[4].kind, "state");
  EXPECT_EQ(ev[4].data["from"], "running");
  EXPECT_EQ(ev[4].data["to"], "queued");
  EXPECT_EQ(ev[4].data["reason"], "out of memory at rung resident; retrying at rung t5-cpu");
  EXPECT_EQ(ev[4].data["min_rung"], 1);

  // The old lease is worthless now; a new run gets a new one.
  EXPECT_EQ(error_code([&] { store->fall_back(id, lease, 2, {}, 5); }), StoreError::Code::lease_mismatch);
  std::string lease2 = store->start(id, "t5-cpu", 6).lease;
  EXPECT_EQ(store->get(id)->attempts, 1);
  EXPECT_EQ(error_code([&] { store->fall_back(id, lease, 2, {}, 7); }), StoreError::Code::lease_mismatch);
  // It must go lower: the same or a better rung is refused and changes nothing.
  const size_t n = store->events(id).size();
  EXPECT_EQ(error_code([&] { store->fall_back(id, lease2, 1, {}, 7); }), StoreError::Code::invalid_state);
  EXPECT_EQ(error_code([&] { store->fall_back(id, lease2, 0, {}, 7); }), StoreError::Code::invalid_state);
  EXPECT_EQ(error_code([&] { store->fall_back("nosuch", lease2, 2, {}, 7); }), StoreError::Code::not_found);
  Job still = *store->get(id);
  EXPECT_EQ(still.state, JobState::running);
  EXPECT_EQ(still.lease, lease2);
  EXPECT_EQ(still.min_rung, 1);
  EXPECT_EQ(store->events(id).size(), n);

  // Without from/to the store fills them from the run's rung and the plan.
  back = store->fall_back(id, lease2, 2, {{"reason", "host OOM"}}, 8);
  EXPECT_EQ(back.min_rung, 2);
  EXPECT_EQ(back.attempts, 0);
  ev = store->events(id);
  ASSERT_EQ(ev.size(), n + 2);
  expect_contiguous(ev);
  EXPECT_EQ(ev[n].data, (Json{{"from", "t5-cpu"}, {"to", "steps-75"}, {"reason", "host OOM"}, {"from_index", 1},
                              {"to_index", 2}}));
  EXPECT_EQ(ev[n + 1].data["reason"], "out of memory at rung t5-cpu; retrying at rung steps-75");

  Job done = store->finish(id, store->start(id, "steps-75", 9).lease, JobState::succeeded, "", {}, 10);
  EXPECT_EQ(done.attempts, 1);
  EXPECT_EQ(done.min_rung, 2);
}

TEST_F(StoreTest, FallBackOfACancelRequestedJobCancelsIt) {
  auto store = open();
  auto id = store->submit(spec(), 1, 0, three_rung_plan()).job.id;
  std::string lease = store->start(id, "resident", 2).lease;
  store->cancel(id, 3);
  Job j = store->fall_back(id, lease, 1, {{"from", "resident"}, {"to", "t5-cpu"}}, 4);
  EXPECT_EQ(j.state, JobState::cancelled);
  EXPECT_EQ(j.finished_at, 4);
  EXPECT_TRUE(j.lease.empty());
  EXPECT_EQ(j.min_rung, 0);   // no fallback happened
  auto ev = store->events(id);
  expect_contiguous(ev);
  for (const auto& e : ev) EXPECT_NE(e.kind, "fallback");
  EXPECT_EQ(ev.back().kind, "state");
  EXPECT_EQ(ev.back().data["from"], "running");
  EXPECT_EQ(ev.back().data["to"], "cancelled");
  EXPECT_CONTAINS(ev.back().data["reason"].get<std::string>(), "out of memory at rung resident");
  EXPECT_CONTAINS(ev.back().data["reason"].get<std::string>(), "cancelled instead of re-queued");
}

TEST_F(StoreTest, FallBackWithoutAPlanNamesRungsByIndex) {
  auto store = open();
  auto id = store->submit(spec(), 1).job.id;
  std::string lease = store->start(id, "", 2).lease;
  Job j = store->fall_back(id, lease, 1, Json(), 3);
  EXPECT_EQ(j.state, JobState::queued);
  EXPECT_EQ(j.min_rung, 1);
  auto ev = store->events(id);
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[2].data, (Json{{"from", ""}, {"to", ""}, {"from_index", 0}, {"to_index", 1}}));
  EXPECT_EQ(ev[3].data["reason"], "out of memory at rung #0; retrying at rung #1");
}

TEST_F(StoreTest, RetryStartsAgainFromTheBestRung) {
  auto store = open();
  auto id = store->submit(spec(), 1, 0, three_rung_plan()).job.id;
  store->fall_back(id, store->start(id, "resident", 2).lease, 2, {}, 3);
  store->finish(id, store->start(id, "steps-75", 4).lease, JobState::failed, "still too big", {}, 5);
  EXPECT_EQ(store->get(id)->min_rung, 2);
  Job r = store->retry(id, 6);
  EXPECT_EQ(r.min_rung, 0);
  EXPECT_EQ(r.plan, three_rung_plan());
}

TEST_F(StoreTest, SetPlanOfAQueuedJob) {
  auto store = open();
  auto id = store->submit(spec(), 1).job.id;
  store->set_plan(id, three_rung_plan(), 2);
  EXPECT_EQ(store->get(id)->plan, three_rung_plan());
  auto ev = store->events(id);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1].kind, "plan");
  EXPECT_EQ(ev[1].data["rungs"], 3);
  EXPECT_EQ(ev[1].at, 2);
  store->set_plan(id, three_rung_plan(), 3);   // unchanged: no event
  EXPECT_EQ(store->events(id).size(), 2u);
  EXPECT_THROW(store->set_plan(id, Json::object(), 4), std::invalid_argument);
  store->set_plan(id, Json(), 5);   // null: an empty plan
  EXPECT_EQ(store->get(id)->plan, Json::array());
  EXPECT_EQ(store->events(id).back().data["rungs"], 0);

  std::string lease = store->start(id, "", 6).lease;
  EXPECT_EQ(error_code([&] { store->set_plan(id, three_rung_plan(), 7); }), StoreError::Code::invalid_state);
  store->finish(id, lease, JobState::succeeded, "", {}, 8);
  EXPECT_EQ(error_code([&] { store->set_plan(id, three_rung_plan(), 9); }), StoreError::Code::invalid_state);
  EXPECT_EQ(error_code([&] { store->set_plan("nosuch", three_rung_plan(), 9); }), StoreError::Code::not_found);
  EXPECT_EQ(store->get(id)->plan, Json::array());
}

// ---------------------------------------------------------------- peaks

PeakRecord peak_sample(const std::string& model, const std::string& rung, const std::string& shape,
                       int64_t est_dev, int64_t est_host, int64_t dev, int64_t host) {
  PeakRecord p;
  p.model = model;
  p.rung = rung;
  p.shape = shape;
  p.estimate_device = est_dev;
  p.estimate_host = est_host;
  p.measured_device = dev;
  p.measured_host = host;
  return p;
}

TEST_F(StoreTest, PeaksKeepTheMaximumAndTheLatestEstimate) {
  {
    auto store = open();
    EXPECT_FALSE(store->peak("wan", "resident", "832x480x81"));
    EXPECT_TRUE(store->peaks("").empty());
    PeakRecord first = peak_sample("wan", "resident", "832x480x81", 9000, 100, 9500, 300);
    first.samples = 42;        // ignored: the store counts
    first.updated_at = 7;      // ignored: `now` is used
    store->record_peak(first, 10);
    auto p = store->peak("wan", "resident", "832x480x81");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->estimate_device, 9000);
    EXPECT_EQ(p->estimate_host, 100);
    EXPECT_EQ(p->measured_device, 9500);
    EXPECT_EQ(p->measured_host, 300);
    EXPECT_EQ(p->samples, 1);
    EXPECT_EQ(p->updated_at, 10);

    // Lower device peak, higher host peak, new estimates.
    store->record_peak(peak_sample("wan", "resident", "832x480x81", 9600, 120, 9100, 400), 20);
    p = store->peak("wan", "resident", "832x480x81");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->estimate_device, 9600);
    EXPECT_EQ(p->estimate_host, 120);
    EXPECT_EQ(p->measured_device, 9500);
    EXPECT_EQ(p->measured_host, 400);
    EXPECT_EQ(p->samples, 2);
    EXPECT_EQ(p->updated_at, 20);

    store->record_peak(peak_sample("wan", "t5-cpu", "832x480x81", 6000, 4000, 6100, 3900), 30);
    store->record_peak(peak_sample("wan", "resident", "1280x720x81", 12000, 100, 12500, 200), 40);
    store->record_peak(peak_sample("flux", "resident", "1024x1024", 20000, 500, 19000, 800), 50);
  }
  auto store = open();   // durable
  auto wan = store->peaks("wan");
  ASSERT_EQ(wan.size(), 3u);   // ordered by rung, then shape
  EXPECT_EQ(wan[0].rung + " " + wan[0].shape, "resident 1280x720x81");
  EXPECT_EQ(wan[1].rung + " " + wan[1].shape, "resident 832x480x81");
  EXPECT_EQ(wan[1].samples, 2);
  EXPECT_EQ(wan[1].measured_device, 9500);
  EXPECT_EQ(wan[2].rung, "t5-cpu");
  EXPECT_EQ(wan[2].measured_host, 3900);
  auto all = store->peaks("");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0].model, "flux");
  EXPECT_EQ(all[0].measured_device, 19000);
  EXPECT_TRUE(store->peaks("nosuch").empty());
  EXPECT_FALSE(store->peak("wan", "resident", "1x1"));
  EXPECT_FALSE(store->peak("wan", "steps-75", "832x480x81"));
}
TEST_F(StoreTest, StartProgressFinishWithLease) {
  auto store = open();
  auto id = store->submit(spec(), 10).job.id;
  Job run = store->start(id, "gpu-fp16", 20);
  EXPECT_EQ(run.state, JobState::running);
  EXPECT_EQ(run.lease.size(), 32u);
  EXPECT_EQ(run.attempts, 1);
  EXPECT_EQ(run.started_at, 20);
  EXPECT_EQ(run.rung, "gpu-fp16");
  EXPECT_EQ(error_code([&] { store->start(id, "", 21); }), StoreError::Code::invalid_state);

  store->progress(id, run.lease, {3, 10, "denoise"}, 30);
  auto mid = store->get(id);
  EXPECT_EQ(mid->progress.step, 3);
  EXPECT_EQ(mid->progress.total, 10);
  EXPECT_EQ(mid->progress.stage, "denoise");
  store->add_event(id, run.lease, "fallback", {{"to", "cpu"}}, 35);

  Job done = store->finish(id, run.lease, JobState::succeeded, "", {"/out/a.mp4", "/out/a.json"}, 40);
  EXPECT_EQ(done.state, JobState::succeeded);
  EXPECT_TRUE(done.lease.empty());
  EXPECT_EQ(done.finished_at, 40);
  EXPECT_EQ(done.outputs, (std::vector<std::string>{"/out/a.mp4", "/out/a.json"}));

  auto ev = store->events(id);
  ASSERT_EQ(ev.size(), 5u);
  expect_contiguous(ev);
  EXPECT_EQ(ev[1].kind, "state");
  EXPECT_EQ(ev[1].data["from"], "queued");
  EXPECT_EQ(ev[1].data["to"], "running");
  EXPECT_EQ(ev[2].kind, "progress");
  EXPECT_EQ(ev[2].data["step"], 3);
  EXPECT_EQ(ev[2].data["stage"], "denoise");
  EXPECT_EQ(ev[3].kind, "fallback");
  EXPECT_EQ(ev[3].data["to"], "cpu");
  EXPECT_EQ(ev[4].data["to"], "succeeded");
  EXPECT_EQ(ev[4].at, 40);
  auto tail = store->events(id, 3);
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0].seq, 4);

  // After finishing, the old lease is worthless.
  EXPECT_EQ(error_code([&] { store->progress(id, run.lease, {4, 10, ""}, 50); }),
            StoreError::Code::lease_mismatch);
  EXPECT_EQ(error_code([&] { store->finish(id, run.lease, JobState::failed, "x", {}, 50); }),
            StoreError::Code::lease_mismatch);
  EXPECT_EQ(store->get(id)->state, JobState::succeeded);
}

TEST_F(StoreTest, FinishWithNonFinalStateIsRefused) {
  auto store = open();
  auto id = store->submit(spec(), 1).job.id;
  auto lease = store->start(id, "", 2).lease;
  EXPECT_EQ(error_code([&] { store->finish(id, lease, JobState::queued, "", {}, 3); }),
            StoreError::Code::invalid_state);
  EXPECT_EQ(store->get(id)->state, JobState::running);
}

TEST_F(StoreTest, StaleLeaseAfterRequeueChangesNothing) {
  auto store = open();
  auto id = store->submit(spec(), 1).job.id;
  std::string old_lease = store->start(id, "", 2).lease;
  Job back = store->requeue(id, old_lease, "worker lost", JobStore::RequeueCause::failed_attempt, 3, 3);
  EXPECT_EQ(back.state, JobState::queued);
  EXPECT_TRUE(back.lease.empty());
  EXPECT_EQ(back.crash_count, 0);   // not a crash
  std::string new_lease = store->start(id, "", 4).lease;
  EXPECT_NE(new_lease, old_lease);

  const size_t events_before = store->events(id).size();
  EXPECT_EQ(error_code([&] { store->progress(id, old_lease, {9, 9, "x"}, 5); }), StoreError::Code::lease_mismatch);
  EXPECT_EQ(error_code([&] { store->add_event(id, old_lease, "log", {}, 5); }), StoreError::Code::lease_mismatch);
  EXPECT_EQ(error_code([&] { store->finish(id, old_lease, JobState::failed, "old", {}, 5); }),
            StoreError::Code::lease_mismatch);
  EXPECT_EQ(error_code([&] { store->requeue(id, old_lease, "old", JobStore::RequeueCause::crash, 3, 5); }),
            StoreError::Code::lease_mismatch);
  EXPECT_EQ(error_code([&] { store->progress(id, "", {1, 1, ""}, 5); }), StoreError::Code::lease_mismatch);
  EXPECT_EQ(error_code([&] { store->progress("nosuch", old_lease, {1, 1, ""}, 5); }),
            StoreError::Code::not_found);
  Job now = *store->get(id);
  EXPECT_EQ(now.state, JobState::running);
  EXPECT_EQ(now.lease, new_lease);
  EXPECT_EQ(now.progress.step, 0);
  EXPECT_EQ(now.crash_count, 0);
  EXPECT_EQ(store->events(id).size(), events_before);
  // The current lease still works.
  store->progress(id, new_lease, {1, 2, "a"}, 6);
  EXPECT_EQ(store->get(id)->progress.step, 1);
}

TEST_F(StoreTest, CrashedRequeueBecomesPoisonAtMaxCrashes) {
  auto store = open();
  auto id = store->submit(spec(), 1).job.id;
  Job j = store->requeue(id, store->start(id, "", 2).lease, "worker crashed (SIGSEGV)", JobStore::RequeueCause::crash, 3, 3);
  EXPECT_EQ(j.state, JobState::queued);
  EXPECT_EQ(j.crash_count, 1);
  j = store->requeue(id, store->start(id, "", 4).lease, "worker crashed (SIGSEGV)", JobStore::RequeueCause::crash, 3, 5);
  EXPECT_EQ(j.state, JobState::queued);
  EXPECT_EQ(j.crash_count, 2);
  j = store->requeue(id, store->start(id, "", 6).lease, "worker crashed (SIGSEGV)", JobStore::RequeueCause::crash, 3, 7);
  EXPECT_EQ(j.state, JobState::failed);
  EXPECT_EQ(j.crash_count, 3);
  EXPECT_EQ(j.finished_at, 7);
  EXPECT_TRUE(j.lease.empty());
  EXPECT_CONTAINS(j.error, "poison");
  EXPECT_CONTAINS(j.error, "3 times (max_crashes=3)");
  EXPECT_CONTAINS(j.error, "reelctl retry " + id);
  auto ev = store->events(id);
  expect_contiguous(ev);
  EXPECT_EQ(ev.back().data["to"], "failed");
  EXPECT_EQ(ev.back().data["cause"], "worker crashed (SIGSEGV)");
  EXPECT_EQ(ev[2].data["reason"], "worker crashed (SIGSEGV)");   // first requeue
}

TEST_F(StoreTest, RecoverInterruptedAfterReopen) {
  std::string a, b, c;
  {
    auto store = open();
    a = store->submit(spec(), 1).job.id;
    b = store->submit(spec(), 2).job.id;
    c = store->submit(spec(), 3).job.id;
    store->start(a, "", 4);
    store->start(b, "", 5);
    // "Crash": the store goes away with a and b running.
  }
  {
    RawDb raw(db_path());
    raw.exec("UPDATE jobs SET crash_count = 2 WHERE id = '" + b + "'");   // b crashed twice before
  }
  auto store = open();
  EXPECT_EQ(store->running().size(), 2u);
  auto touched = store->recover_interrupted(3, 100);
  std::sort(touched.begin(), touched.end());
  std::vector<std::string> expected{a, b};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(touched, expected);

  Job ja = *store->get(a);
  EXPECT_EQ(ja.state, JobState::queued);
  EXPECT_EQ(ja.crash_count, 1);
  EXPECT_TRUE(ja.lease.empty());
  auto ev = store->events(a);
  expect_contiguous(ev);
  EXPECT_EQ(ev.back().data["reason"], "reeld stopped while the job was running (crash 1 of 3); re-queued");

  Job jb = *store->get(b);
  EXPECT_EQ(jb.state, JobState::failed);
  EXPECT_EQ(jb.crash_count, 3);
  EXPECT_CONTAINS(jb.error, "poison");
  EXPECT_EQ(store->get(c)->state, JobState::queued);
  EXPECT_EQ(store->get(c)->crash_count, 0);
  EXPECT_TRUE(store->recover_interrupted(3, 101).empty());   // nothing left running
}

// ---------------------------------------------------------------- client side

TEST_F(StoreTest, CancelQueuedRunningAndFinal) {
  auto store = open();
  auto q = store->submit(spec(), 1).job.id;
  Job cq = store->cancel(q, 10);
  EXPECT_EQ(cq.state, JobState::cancelled);
  EXPECT_EQ(cq.finished_at, 10);
  EXPECT_EQ(store->events(q).back().data["to"], "cancelled");

  auto r = store->submit(spec(), 2).job.id;
  std::string lease = store->start(r, "", 3).lease;
  Job cr = store->cancel(r, 11);
  EXPECT_EQ(cr.state, JobState::running);
  EXPECT_TRUE(cr.cancel_requested);
  EXPECT_EQ(store->events(r).back().kind, "cancel_requested");
  const size_t n = store->events(r).size();
  store->cancel(r, 12);   // asking twice records it once
  EXPECT_EQ(store->events(r).size(), n);
  Job fin = store->finish(r, lease, JobState::cancelled, "", {}, 13);
  EXPECT_EQ(fin.state, JobState::cancelled);

  EXPECT_EQ(error_code([&] { store->cancel(q, 14); }), StoreError::Code::invalid_state);
  EXPECT_EQ(error_code([&] { store->cancel(r, 14); }), StoreError::Code::invalid_state);
  EXPECT_EQ(error_code([&] { store->cancel("nosuch", 14); }), StoreError::Code::not_found);
}

TEST_F(StoreTest, RequeueOfACancelRequestedJobCancelsIt) {
  auto store = open();
  auto id = store->submit(spec(), 1).job.id;
  std::string lease = store->start(id, "", 2).lease;
  store->cancel(id, 3);
  Job j = store->requeue(id, lease, "daemon stopping", JobStore::RequeueCause::interrupted, 3, 4);
  EXPECT_EQ(j.state, JobState::cancelled);
  EXPECT_EQ(j.finished_at, 4);
  EXPECT_TRUE(j.lease.empty());
}

TEST_F(StoreTest, RetryFailedAndCancelled) {
  auto store = open();
  auto id = store->submit(spec(), 1).job.id;
  std::string lease = store->start(id, "gpu", 2).lease;
  store->progress(id, lease, {5, 10, "x"}, 3);
  store->finish(id, lease, JobState::failed, "out of memory", {"/partial"}, 4);
  Job r = store->retry(id, 5);
  EXPECT_EQ(r.state, JobState::queued);
  EXPECT_EQ(r.attempts, 0);
  EXPECT_EQ(r.crash_count, 0);
  EXPECT_TRUE(r.error.empty());
  EXPECT_TRUE(r.outputs.empty());
  EXPECT_EQ(r.started_at, 0);
  EXPECT_EQ(r.finished_at, 0);
  EXPECT_EQ(r.progress.step, 0);
  auto ev = store->events(id);
  expect_contiguous(ev);
  EXPECT_EQ(ev.back().data["from"], "failed");
  EXPECT_EQ(ev.back().data["to"], "queued");

  store->cancel(id, 6);
  EXPECT_EQ(store->retry(id, 7).state, JobState::queued);
  EXPECT_EQ(error_code([&] { store->retry(id, 8); }), StoreError::Code::invalid_state);   // queued
  lease = store->start(id, "", 9).lease;
  EXPECT_EQ(error_code([&] { store->retry(id, 10); }), StoreError::Code::invalid_state);  // running
  store->finish(id, lease, JobState::succeeded, "", {}, 11);
  EXPECT_EQ(error_code([&] { store->retry(id, 12); }), StoreError::Code::invalid_state);  // succeeded
}

TEST_F(StoreTest, SetPriority) {
  auto store = open();
  auto id = store->submit(spec(), 1).job.id;
  Job j = store->set_priority(id, 7, 2);
  EXPECT_EQ(j.priority, 7);
  EXPECT_EQ(store->get(id)->priority, 7);
  auto ev = store->events(id);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1].kind, "priority");
  EXPECT_EQ(ev[1].data["from"], 0);
  EXPECT_EQ(ev[1].data["to"], 7);
  store->set_priority(id, 7, 3);   // unchanged: no event
  EXPECT_EQ(store->events(id).size(), 2u);
  store->cancel(id, 4);
  EXPECT_EQ(error_code([&] { store->set_priority(id, 1, 5); }), StoreError::Code::invalid_state);
  EXPECT_EQ(error_code([&] { store->set_priority("nosuch", 1, 5); }), StoreError::Code::not_found);
}

TEST_F(StoreTest, PruneDeletesOldFinishedJobsAndTheirEvents) {
  auto store = open();
  auto old_done = store->submit(spec(), 1).job.id;
  store->cancel(old_done, 100);
  auto new_done = store->submit(spec(), 2).job.id;
  store->cancel(new_done, 300);
  auto queued = store->submit(spec(), 3).job.id;
  auto running = store->submit(spec(), 4).job.id;
  store->start(running, "", 5);

  EXPECT_EQ(store->prune(200), 1);
  EXPECT_FALSE(store->get(old_done));
  EXPECT_TRUE(store->events(old_done).empty());
  EXPECT_TRUE(store->get(new_done));
  EXPECT_TRUE(store->get(queued));
  EXPECT_TRUE(store->get(running));
  EXPECT_EQ(store->prune(1000000), 1);   // only new_done; queued and running stay
  EXPECT_EQ(store->counts().queued, 1);
  EXPECT_EQ(store->counts().running, 1);
  EXPECT_EQ(store->prune(1000000), 0);
  RawDb raw(db_path());
  EXPECT_EQ(raw.text("SELECT COUNT(*) FROM job_events WHERE job_id NOT IN (SELECT id FROM jobs)"), "0");
}

TEST_F(StoreTest, Settings) {
  {
    auto store = open();
    EXPECT_FALSE(store->setting("paused"));
    store->set_setting("paused", "1");
    store->set_setting("paused", "0");
    store->set_setting("other", "x");
    EXPECT_EQ(store->setting("paused"), "0");
  }
  auto store = open();
  EXPECT_EQ(store->setting("paused"), "0");
  EXPECT_EQ(store->setting("other"), "x");
}

TEST_F(StoreTest, EverythingSurvivesReopen) {
  std::string id, lease;
  {
    auto store = open();
    JobSpec s = spec("wan", {{"prompt", "a cat"}, {"steps", 30}});
    s.idempotency_key = "k";
    id = store->submit(s, 1).job.id;
    lease = store->start(id, "gpu", 2).lease;
    store->progress(id, lease, {10, 30, "denoise"}, 3);
  }
  auto store = open();
  Job j = *store->get(id);
  EXPECT_EQ(j.state, JobState::running);
  EXPECT_EQ(j.lease, lease);
  EXPECT_EQ(j.params["prompt"], "a cat");
  EXPECT_EQ(j.progress.step, 10);
  EXPECT_EQ(j.rung, "gpu");
  EXPECT_EQ(store->events(id).size(), 3u);
  // The idempotency key is durable too.
  JobSpec s = spec("wan", {{"prompt", "a cat"}, {"steps", 30}});
  s.idempotency_key = "k";
  EXPECT_TRUE(store->submit(s, 4).existed);
  // And the event log continues where it left off.
  store->finish(id, lease, JobState::succeeded, "", {}, 5);
  auto ev = store->events(id);
  ASSERT_EQ(ev.size(), 4u);
  expect_contiguous(ev);
}

TEST_F(StoreTest, EventSequenceIsContiguousPerJob) {
  auto store = open();
  auto a = store->submit(spec(), 1).job.id;
  auto b = store->submit(spec(), 1).job.id;
  std::string la = store->start(a, "", 2).lease;
  std::string lb = store->start(b, "", 2).lease;
  for (int i = 0; i < 20; ++i) {
    store->progress(a, la, {i, 20, ""}, 3 + i);
    if (i % 2) store->add_event(b, lb, "log", {{"line", i}}, 3 + i);
  }
  auto ea = store->events(a);
  auto eb = store->events(b);
  EXPECT_EQ(ea.size(), 22u);
  EXPECT_EQ(eb.size(), 12u);
  expect_contiguous(ea);
  expect_contiguous(eb);
  EXPECT_TRUE(store->events(a, 22).empty());
  EXPECT_TRUE(store->events("nosuch").empty());
}

TEST_F(StoreTest, ConcurrentSubmitsFromFourThreads) {
  auto store = open();
  constexpr int kThreads = 4, kPerThread = 50;
  std::vector<std::vector<std::string>> ids(kThreads);
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        try {
          JobSpec s = spec("sleep", {{"t", t}, {"i", i}});
          if (i % 5 == 0) s.idempotency_key = "t" + std::to_string(t) + "-" + std::to_string(i);
          ids[t].push_back(store->submit(s, 1000 + i).job.id);
          if (i % 10 == 0) store->counts();   // readers interleave with writers
        } catch (...) {
          ++errors;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  std::set<std::string> all;
  for (auto& v : ids) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(store->counts().queued, kThreads * kPerThread);
  for (const auto& id : all) EXPECT_EQ(store->events(id).size(), 1u) << id;
}

// ---------------------------------------------------------------- storage failures

TEST_F(StoreTest, DiskFullIsADiskFullErrorAndTheStoreRecovers) {
  auto store = open();
  auto kept = store->submit(spec(), 1).job.id;
  RawDb raw(db_path());
  const std::string pages = raw.text("PRAGMA page_count");
  store->TEST_exec("PRAGMA max_page_count = " + pages);   // the "disk" is now full
  std::string big(3000, 'x');
  std::string msg;
  int accepted = 0;
  for (int i = 0; i < 200 && msg.empty(); ++i) {
    try {
      store->submit(spec("sleep", {{"pad", big}, {"i", i}}), 2 + i);
      ++accepted;
    } catch (const StoreError& e) {
      EXPECT_EQ(e.code, StoreError::Code::disk_full);
      EXPECT_TRUE(is_storage_failure(e.code));
      msg = e.what();
    }
  }
  ASSERT_FALSE(msg.empty()) << "never ran out of space";
  EXPECT_CONTAINS(msg, "database is full (disk full?) at " + db_path());
  EXPECT_CONTAINS(msg, "free space");
  // The failed submit left nothing half-written: no job, no orphan event.
  EXPECT_EQ(store->counts().queued, 1 + accepted);
  EXPECT_EQ(raw.text("SELECT COUNT(*) FROM job_events WHERE job_id NOT IN (SELECT id FROM jobs)"), "0");
  EXPECT_EQ(raw.text("SELECT COUNT(*) FROM jobs"), std::to_string(1 + accepted));
  // Space comes back: the same store works again without reopening.
  store->TEST_exec("PRAGMA max_page_count = 1073741823");
  auto later = store->submit(spec("sleep", {{"pad", big}}), 500);
  EXPECT_EQ(store->get(later.job.id)->state, JobState::queued);
  EXPECT_TRUE(store->get(kept));
}

TEST_F(StoreTest, ReadOnlyDatabaseIsAReadOnlyError) {
  // Root ignores file modes, so this uses SQLite's query_only switch, which fails
  // writes with the same SQLITE_READONLY a read-only file or mount gives.
  auto store = open();
  auto id = store->submit(spec(), 1).job.id;
  store->TEST_exec("PRAGMA query_only = ON");
  std::string msg = store_error_message([&] { store->submit(spec(), 2); }, StoreError::Code::read_only);
  EXPECT_CONTAINS(msg, "read-only");
  EXPECT_CONTAINS(msg, db_path());
  EXPECT_EQ(error_code([&] { store->cancel(id, 3); }), StoreError::Code::read_only);
  EXPECT_EQ(store->get(id)->state, JobState::queued);   // reads still work, nothing changed
  store->TEST_exec("PRAGMA query_only = OFF");
  EXPECT_EQ(store->cancel(id, 4).state, JobState::cancelled);
  EXPECT_EQ(store->counts().queued, 0);
}

TEST_F(StoreTest, ReadOnlyFileAndDirectoryIsAReadOnlyError) {
  if (geteuid() == 0) GTEST_SKIP() << "running as root: file modes do not restrict root (see ReadOnlyDatabaseIsAReadOnlyError)";
  std::string id;
  {
    auto store = open();
    id = store->submit(spec(), 1).job.id;
  }
  ASSERT_EQ(chmod(db_path().c_str(), 0444), 0);
  ASSERT_EQ(chmod(dir_.path().c_str(), 0555), 0);
  try {
    auto store = open();
    store->submit(spec(), 2);
    ADD_FAILURE() << "a write to a read-only database succeeded";
  } catch (const StoreError& e) {
    EXPECT_EQ(e.code, StoreError::Code::read_only) << e.what();
    EXPECT_CONTAINS(std::string(e.what()), db_path());
    EXPECT_CONTAINS(std::string(e.what()), "is read-only");
  }
  chmod(dir_.path().c_str(), 0755);
  chmod(db_path().c_str(), 0644);
  EXPECT_EQ(open()->get(id)->state, JobState::queued);
}

TEST_F(StoreTest, BusyDatabaseIsAStorageErrorAfterTheTimeout) {
  SqliteOptions o;
  o.busy_timeout_ms = 100;
  auto store = open(o);
  RawDb other(db_path());
  other.exec("BEGIN IMMEDIATE");
  auto t0 = std::chrono::steady_clock::now();
  std::string msg = store_error_message([&] { store->submit(spec(), 1); }, StoreError::Code::storage);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(90));
  EXPECT_CONTAINS(msg, "locked");
  EXPECT_CONTAINS(msg, "busy_timeout_ms");
  other.exec("ROLLBACK");
  EXPECT_NO_THROW(store->submit(spec(), 2));
  EXPECT_EQ(store->counts().queued, 1);
}

TEST_F(StoreTest, UnopenableDatabaseIsAStorageError) {
  std::string msg = store_error_message(
      [&] { SqliteJobStore s(dir_.file("no/such/dir/reel.db"), {}); }, StoreError::Code::storage);
  EXPECT_CONTAINS(msg, "no/such/dir/reel.db");
  EXPECT_CONTAINS(msg, "daemon.state_dir");
}

// ---------------------------------------------------------------- lock file

TEST(StoreLockFile, SecondHolderIsRefusedAndReleaseWorks) {
  TempDir dir;
  const std::string path = dir.file("reeld.lock");
  {
    LockFile lock(path);
    EXPECT_EQ(test::read_file(path), std::to_string(getpid()) + "\n");
    // flock is per open file description: a second open in this process is refused too.
    try {
      LockFile second(path);
      ADD_FAILURE() << "second lock succeeded";
    } catch (const std::runtime_error& e) {
      std::string msg = e.what();
      EXPECT_CONTAINS(msg, "another reeld (pid " + std::to_string(getpid()) + ") is using " + dir.path());
      EXPECT_CONTAINS(msg, "daemon.state_dir");
    }
    // Another process is refused as well.
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      try {
        LockFile other(path);
        _exit(1);
      } catch (const std::runtime_error& e) {
        _exit(std::string(e.what()).find("another reeld (pid " + std::to_string(getppid()) + ")") !=
                      std::string::npos
                  ? 0
                  : 2);
      }
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "1: child got the lock; 2: wrong message";
  }
  // Released on destruction: a new holder (here, a child process) gets it.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      LockFile again(path);
      _exit(0);
    } catch (...) {
      _exit(1);
    }
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_NO_THROW(LockFile mine(path));
}

TEST(StoreLockFile, UnopenablePathNamesIt) {
  TempDir dir;
  try {
    LockFile lock(dir.file("missing/reeld.lock"));
    ADD_FAILURE() << "lock in a missing directory succeeded";
  } catch (const std::runtime_error& e) {
    EXPECT_CONTAINS(std::string(e.what()), "missing/reeld.lock");
  }
}

}  // namespace
}  // namespace reel
