#include "store/migrations.hpp"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <string>

#include "store/sqlite_statement.hpp"

namespace reel {

namespace {

struct Migration {
  int version;       // the user_version after this step
  const char* sql;
};

// Append-only. Times are ms since the epoch (0: not yet); JSON columns hold compact
// JSON text; idempotency_key is NULL when the job has none.
constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE jobs (
  id               TEXT PRIMARY KEY,
  model            TEXT NOT NULL,
  params           TEXT NOT NULL DEFAULT '{}',
  inputs           TEXT NOT NULL DEFAULT '{}',
  priority         INTEGER NOT NULL DEFAULT 0,
  state            TEXT NOT NULL
                   CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
  created_at       INTEGER NOT NULL,
  started_at       INTEGER NOT NULL DEFAULT 0,
  finished_at      INTEGER NOT NULL DEFAULT 0,
  attempts         INTEGER NOT NULL DEFAULT 0,
  max_attempts     INTEGER NOT NULL DEFAULT 1,
  crash_count      INTEGER NOT NULL DEFAULT 0,
  source           TEXT NOT NULL DEFAULT 'ctl',
  idempotency_key  TEXT,
  payload          TEXT NOT NULL,
  outputs          TEXT NOT NULL DEFAULT '[]',
  rung             TEXT NOT NULL DEFAULT '',
  error            TEXT NOT NULL DEFAULT '',
  progress_step    INTEGER NOT NULL DEFAULT 0,
  progress_total   INTEGER NOT NULL DEFAULT 0,
  progress_stage   TEXT NOT NULL DEFAULT '',
  lease            TEXT NOT NULL DEFAULT '',
  cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs(idempotency_key)
  WHERE idempotency_key IS NOT NULL AND idempotency_key <> '';
CREATE TABLE job_events (
  job_id TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
  seq    INTEGER NOT NULL,
  at     INTEGER NOT NULL,
  kind   TEXT NOT NULL,
  data   TEXT NOT NULL DEFAULT '{}',
  PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
)sql"},
    {2, R"sql(
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX jobs_state_priority ON jobs(state, priority, created_at);
)sql"},
    {3, R"sql(
ALTER TABLE jobs ADD COLUMN policy   TEXT NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN plan     TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN min_rung INTEGER NOT NULL DEFAULT 0;
CREATE TABLE peaks (
  model           TEXT NOT NULL,
  rung            TEXT NOT NULL,
  shape           TEXT NOT NULL,
  estimate_device INTEGER NOT NULL DEFAULT 0,
  estimate_host   INTEGER NOT NULL DEFAULT 0,
  measured_device INTEGER NOT NULL DEFAULT 0,
  measured_host   INTEGER NOT NULL DEFAULT 0,
  samples         INTEGER NOT NULL DEFAULT 0,
  updated_at      INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (model, rung, shape)
) WITHOUT ROWID;
)sql"},
};

static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSchemaVersion,
              "one migration step per schema version");

[[noreturn]] void refuse_newer(int found) {
  throw StoreError(StoreError::Code::storage,
                   "database schema v" + std::to_string(found) + " is newer than this reeld supports (v" +
                       std::to_string(kSchemaVersion) + "); upgrade reeld");
}

}  // namespace

int schema_version(sqlite3* db) {
  sqlite::Statement q(db, "PRAGMA user_version");
  return q.step() ? static_cast<int>(q.int64(0)) : 0;
}

void migrate(sqlite3* db, int target_version) {
  if (target_version < 1 || target_version > kSchemaVersion)
    throw std::invalid_argument("unknown schema version " + std::to_string(target_version));
  // Cheap check outside the write lock: a newer database is refused without writing.
  int before = schema_version(db);
  if (before > kSchemaVersion) refuse_newer(before);
  if (before >= target_version) return;

  sqlite::WriteTxn txn(db);
  // Read again under the lock: another process may have migrated meanwhile.
  int current = schema_version(db);
  if (current > kSchemaVersion) refuse_newer(current);
  if (current >= target_version) return;
  for (const Migration& m : kMigrations) {
    if (m.version <= current || m.version > target_version) continue;
    sqlite::exec(db, m.sql, "migrating the database schema to v" + std::to_string(m.version));
  }
  // user_version lives in the database header, so it commits (or not) with the steps.
  sqlite::exec(db, ("PRAGMA user_version = " + std::to_string(target_version)).c_str(),
               "recording the schema version");
  txn.commit();
  if (current == 0)
    spdlog::info("database {}: created (schema v{})", sqlite::db_path(db), target_version);
  else
    spdlog::info("database {}: schema migrated from v{} to v{}", sqlite::db_path(db), current, target_version);
}

}  // namespace reel
