#include "store/sqlite_statement.hpp"

namespace reel::sqlite {

std::string db_path(sqlite3* db) {
  const char* f = sqlite3_db_filename(db, "main");
  return f && *f ? f : ":memory:";
}

StoreError storage_error(sqlite3* db, int rc, std::string_view context) {
  const std::string path = db ? db_path(db) : "(unopened)";
  const std::string detail = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string what;
  switch (rc & 0xFF) {
    case SQLITE_FULL:
      what = "database is full (disk full?) at " + path +
             ": free space on that filesystem; the change was not saved, nothing already queued was lost";
      break;
    case SQLITE_READONLY:
      what = "database " + path + " is read-only (" + detail +
             "): make the file and its directory writable by reeld's user, or remount the filesystem "
             "read-write; nothing already queued was lost";
      break;
    case SQLITE_IOERR:
      what = "I/O error on database " + path + " (" + detail +
             "): check the disk and the kernel log (dmesg); the change was not saved";
      break;
    case SQLITE_CANTOPEN:
      what = "cannot open database " + path + " (" + detail +
             "): check that daemon.state_dir exists and is writable by reeld's user";
      break;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      what = "database " + path +
             " is locked by another process and stayed locked past storage.busy_timeout_ms: is another "
             "reeld or an sqlite3 shell using it? stop it, or raise storage.busy_timeout_ms";
      break;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      what = "database " + path + " is damaged or not a reel database (" + detail +
             "): stop reeld, move the file aside (or restore a backup) and start again";
      break;
    case SQLITE_PERM:
    case SQLITE_AUTH:
      what = "permission denied on database " + path + " (" + detail +
             "): check the ownership of daemon.state_dir";
      break;
    default:
      what = "database error on " + path + ": " + detail + " (SQLite code " + std::to_string(rc) + ")";
      break;
  }
  if (!context.empty()) what = std::string(context) + ": " + what;
  StoreError::Code code = (rc & 0xFF) == SQLITE_FULL       ? StoreError::Code::disk_full
                          : (rc & 0xFF) == SQLITE_READONLY ? StoreError::Code::read_only
                                                           : StoreError::Code::storage;
  return StoreError(code, what);
}

void exec(sqlite3* db, const char* sql, std::string_view context) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) throw storage_error(db, rc, context);
}

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
    throw storage_error(db, rc, "preparing a query");
  }
}

Statement& Statement::bind(int i, int64_t v) {
  int rc = sqlite3_bind_int64(stmt_, i, v);
  if (rc != SQLITE_OK) throw storage_error(db_, rc, "binding a query parameter");
  return *this;
}

Statement& Statement::bind(int i, std::string_view v) {
  int rc = sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  if (rc != SQLITE_OK) throw storage_error(db_, rc, "binding a query parameter");
  return *this;
}

Statement& Statement::bind_null(int i) {
  int rc = sqlite3_bind_null(stmt_, i);
  if (rc != SQLITE_OK) throw storage_error(db_, rc, "binding a query parameter");
  return *this;
}

int Statement::step_rc() { return sqlite3_step(stmt_); }

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  throw storage_error(db_, rc, "");
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Statement::text(int col) const {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, col));
  if (!p) return {};
  return std::string(p, static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

WriteTxn::WriteTxn(sqlite3* db) : db_(db) {
  // IMMEDIATE takes the write lock up front: a read-then-write transaction can then
  // never fail half-way with SQLITE_BUSY, and busy_timeout applies to the wait.
  exec(db, "BEGIN IMMEDIATE", "starting a transaction");
}

WriteTxn::~WriteTxn() {
  // SQLite may already have rolled back by itself (SQLITE_FULL, SQLITE_IOERR);
  // a second ROLLBACK would only fail, so ask first.
  if (!done_ && !sqlite3_get_autocommit(db_)) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void WriteTxn::commit() {
  exec(db_, "COMMIT", "committing");
  done_ = true;
}

}  // namespace reel::sqlite
