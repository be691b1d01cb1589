#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>

#include "common/json_util.h"

// SQLite's types, declared so that only sql_connection.cpp includes sqlite3.h.
struct sqlite3;
struct sqlite3_stmt;

namespace baton::store::sql {

class Connection;

// A cached prepared statement, borrowed for one use: bound, stepped, and
// reset (bindings cleared) when it goes out of scope. Failures throw
// baton::Error naming the connection's file and the statement's purpose.
class Statement {
 public:
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binders take 1-based parameter indexes and return *this for chaining.
  Statement& Int(int index, int64_t value);
  Statement& Real(int index, double value);
  Statement& Text(int index, const std::string& value);
  Statement& JsonText(int index, const Json& value);  // canonical JSON text
  Statement& OptionalId(int index, int64_t id);       // NULL for 0

  // Steps once; true when a row is available.
  bool Step();
  // Runs a statement that returns no rows; returns the rows it changed.
  int Run();

  // Columns of the current row, 0-based. NULL reads as 0 or "".
  int64_t ColInt(int col) const;
  double ColReal(int col) const;
  std::string ColText(int col) const;
  // Throws Error(kCorrupt) if the stored text is not JSON.
  Json ColJson(int col) const;

 private:
  friend class Connection;
  Statement(const Connection& connection, sqlite3_stmt* stmt,
            std::string purpose);

  const Connection& connection_;
  sqlite3_stmt* stmt_;
  std::string purpose_;
};

// One SQLite connection in WAL mode with synchronous=FULL, foreign keys on
// and a busy timeout, or (OpenReadOnly) a read-only one to a file that such
// a connection has set up. Not thread-safe: the owner serialises calls.
// Error codes: SQLITE_BUSY/LOCKED or a read-only file -> kUnavailable; a
// full disk or quota -> kResourceExhausted; a damaged file -> kCorrupt; a
// foreign key -> kNotFound; a unique key -> kConflict; other constraints ->
// kInvalidArgument; anything else -> kInternal.
class Connection {
 public:
  static std::unique_ptr<Connection> Open(const std::filesystem::path& file,
                                          int busy_timeout_ms);
  // A connection that only reads `file`, which must exist and be in WAL mode
  // already (Open made it so): it reads while another connection writes,
  // seeing what was committed when each statement (or ReadTransaction)
  // began. Does not create the file or its folder.
  static std::unique_ptr<Connection> OpenReadOnly(
      const std::filesystem::path& file, int busy_timeout_ms);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Prepares `sql` once and keeps it; `purpose` says what it is for in
  // error messages (e.g. "reading run 42"). A statement must not be
  // borrowed again while a previous borrow of it is alive.
  Statement Prepare(const std::string& sql, const std::string& purpose);
  // Runs one or more statements that return no rows.
  void Exec(const std::string& sql, const std::string& purpose);

  // Runs `fn` in a transaction: BEGIN IMMEDIATE at the outermost level, a
  // SAVEPOINT when nested. If `fn` throws, its writes are rolled back and the
  // exception rethrown.
  void Transaction(const std::function<void()>& fn);
  // Runs `fn`, which only reads, on one snapshot: a deferred transaction at
  // the outermost level; inside Transaction, that transaction (which sees
  // its own writes).
  void ReadTransaction(const std::function<void()>& fn);

  int64_t LastInsertId() const;
  const std::string& file() const { return file_; }

  [[noreturn]] void Fail(const std::string& purpose) const;

 private:
  Connection(sqlite3* db, std::string file);
  // sqlite3_open_v2 with `flags` (plus NOMUTEX), extended result codes and
  // the busy timeout; throws "lineage db NAME: <failure>: <sqlite's words>".
  static std::unique_ptr<Connection> OpenWith(const std::string& name,
                                              int flags, int busy_timeout_ms,
                                              const char* failure);
  void RollBack(const std::string& savepoint);

  sqlite3* db_;
  const std::string file_;
  int depth_ = 0;  // open transaction levels
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

}  // namespace baton::store::sql
