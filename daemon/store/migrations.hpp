// Schema migrations of the SQLite job store, keyed by PRAGMA user_version.
//
// Version N of the schema is what steps 1..N produce; steps are append-only (a
// released step is never edited, a change is a new step). migrate() applies the
// missing steps in one IMMEDIATE transaction together with the new user_version, so
// a crash mid-migration leaves the old version intact and two processes cannot both
// migrate. A database newer than kSchemaVersion is refused rather than guessed at.
// Thread-safety: none; call with exclusive use of the connection.
#pragma once

#include <sqlite3.h>

namespace reel {

inline constexpr int kSchemaVersion = 3;

// PRAGMA user_version of the main database.
int schema_version(sqlite3* db);

// Brings `db` up to `target_version` (1..kSchemaVersion). Does nothing when it is
// already there or beyond (never downgrades). Throws StoreError{storage} when the
// database is newer than kSchemaVersion or SQLite fails; std::invalid_argument for a
// target this code does not know.
void migrate(sqlite3* db, int target_version = kSchemaVersion);

}  // namespace reel
