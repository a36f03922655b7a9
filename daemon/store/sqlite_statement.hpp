// Thin RAII helpers over the SQLite C API used by the store and its migrations.
//
// Statement owns one prepared sqlite3_stmt (finalized on destruction, so no statement
// outlives a call and none keeps a read transaction open). Every SQLite failure
// becomes StoreError{storage} whose message says what happened at which database
// and what the operator should do (storage_error()). WriteTxn is BEGIN IMMEDIATE
// that rolls back unless commit() was reached, so a failed mutation leaves nothing
// half-written and the connection usable for the next call.
// Thread-safety: none; the caller serializes use of the connection.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "store/job_store.hpp"

namespace reel::sqlite {

// The StoreError{storage} for result code `rc` on `db`; `context` says what reeld was doing.
StoreError storage_error(sqlite3* db, int rc, std::string_view context);
// Runs SQL without results (several statements allowed); throws storage_error.
void exec(sqlite3* db, const char* sql, std::string_view context);
// The database's file name ("" for in-memory).
std::string db_path(sqlite3* db);

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are 1-based, as in SQLite.
  Statement& bind(int i, int64_t v);
  Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Statement& bind(int i, std::string_view v);
  Statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
  Statement& bind_null(int i);

  // true: a row is available; false: done. Throws storage_error on failure.
  bool step();
  // Like step() but returns SQLite's result code instead of throwing, for callers
  // that handle a specific failure (a primary-key collision) themselves.
  int step_rc();
  void reset();

  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string text(int col) const;
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class WriteTxn {
 public:
  explicit WriteTxn(sqlite3* db);
  ~WriteTxn();
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;
  void commit();

 private:
  sqlite3* db_;
  bool done_ = false;
};

}  // namespace reel::sqlite
