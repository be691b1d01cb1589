#include "store/internal/sql_connection.h"

#include <sqlite3.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "common/error.h"

namespace baton::store::sql {
namespace {

ErrorCode CodeFor(int extended) {
  switch (extended & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
      return ErrorCode::kUnavailable;
    case SQLITE_FULL:
      return ErrorCode::kResourceExhausted;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return ErrorCode::kCorrupt;
    case SQLITE_CONSTRAINT:
      if (extended == SQLITE_CONSTRAINT_FOREIGNKEY) return ErrorCode::kNotFound;
      if (extended == SQLITE_CONSTRAINT_UNIQUE ||
          extended == SQLITE_CONSTRAINT_PRIMARYKEY) {
        return ErrorCode::kConflict;
      }
      return ErrorCode::kInvalidArgument;
    default:
      return ErrorCode::kInternal;
  }
}

}  // namespace

// --- Statement --------------------------------------------------------------

Statement::Statement(const Connection& connection, sqlite3_stmt* stmt,
                     std::string purpose)
    : connection_(connection), stmt_(stmt), purpose_(std::move(purpose)) {}

Statement::~Statement() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Statement& Statement::Int(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) {
    connection_.Fail(purpose_);
  }
  return *this;
}

Statement& Statement::Real(int index, double value) {
  if (sqlite3_bind_double(stmt_, index, value) != SQLITE_OK) {
    connection_.Fail(purpose_);
  }
  return *this;
}

Statement& Statement::Text(int index, const std::string& value) {
  if (sqlite3_bind_text(stmt_, index, value.data(),
                        static_cast<int>(value.size()),
                        SQLITE_TRANSIENT) != SQLITE_OK) {
    connection_.Fail(purpose_);
  }
  return *this;
}

Statement& Statement::JsonText(int index, const Json& value) {
  return Text(index, CanonicalJson(value));
}

Statement& Statement::OptionalId(int index, int64_t id) {
  if (id != 0) return Int(index, id);
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) connection_.Fail(purpose_);
  return *this;
}

bool Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  connection_.Fail(purpose_);
}

int Statement::Run() {
  while (Step()) {
  }
  return sqlite3_changes(sqlite3_db_handle(stmt_));
}

int64_t Statement::ColInt(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

double Statement::ColReal(int col) const {
  return sqlite3_column_double(stmt_, col);
}

std::string Statement::ColText(int col) const {
  const auto* text = sqlite3_column_text(stmt_, col);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

Json Statement::ColJson(int col) const {
  try {
    return Json::parse(ColText(col));
  } catch (const Json::exception& e) {
    throw Error(ErrorCode::kCorrupt,
                "lineage db " + connection_.file() + ": " + purpose_ +
                    ": stored JSON is malformed: " + e.what());
  }
}

// --- Connection -------------------------------------------------------------

std::unique_ptr<Connection> Connection::Open(const std::filesystem::path& file,
                                             int busy_timeout_ms) {
  const std::string name = file.string();
  if (file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    if (ec) {
      throw Error(
          ErrorCode::kUnavailable,
          "lineage db " + name + ": cannot create its folder: " + ec.message());
    }
  }
  std::unique_ptr<Connection> connection = OpenWith(
      name, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, busy_timeout_ms,
      "cannot open");
  connection->Exec("PRAGMA foreign_keys = ON", "enabling foreign keys");
  {
    Statement s =
        connection->Prepare("PRAGMA journal_mode = WAL", "switching to WAL");
    if (!s.Step() || s.ColText(0) != "wal") {
      throw Error(ErrorCode::kUnavailable,
                  "lineage db " + name + ": cannot switch to WAL mode");
    }
  }
  connection->Exec("PRAGMA synchronous = FULL", "setting synchronous=FULL");
  return connection;
}

std::unique_ptr<Connection> Connection::OpenReadOnly(
    const std::filesystem::path& file, int busy_timeout_ms) {
  return OpenWith(file.string(), SQLITE_OPEN_READONLY, busy_timeout_ms,
                  "cannot open for reading");
}

std::unique_ptr<Connection> Connection::OpenWith(const std::string& name,
                                                 int flags,
                                                 int busy_timeout_ms,
                                                 const char* failure) {
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(name.c_str(), &db,
                                 flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    const std::string message =
        db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    throw Error(CodeFor(rc),
                "lineage db " + name + ": " + failure + ": " + message);
  }
  std::unique_ptr<Connection> connection(new Connection(db, name));
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, busy_timeout_ms);
  return connection;
}

Connection::Connection(sqlite3* db, std::string file)
    : db_(db), file_(std::move(file)) {}

Connection::~Connection() {
  for (auto& entry : statements_) sqlite3_finalize(entry.second);
  sqlite3_close_v2(db_);
}

Statement Connection::Prepare(const std::string& sql,
                              const std::string& purpose) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                           SQLITE_PREPARE_PERSISTENT, &stmt,
                           nullptr) != SQLITE_OK) {
      sqlite3_finalize(stmt);
      Fail(purpose);
    }
    it = statements_.emplace(sql, stmt).first;
  }
  return Statement(*this, it->second, purpose);
}

void Connection::Exec(const std::string& sql, const std::string& purpose) {
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
    Fail(purpose);
  }
}

void Connection::Transaction(const std::function<void()>& fn) {
  const std::string savepoint = "baton_" + std::to_string(depth_);
  if (depth_ == 0) {
    Exec("BEGIN IMMEDIATE", "starting a transaction");
  } else {
    Exec("SAVEPOINT " + savepoint, "starting a nested transaction");
  }
  ++depth_;
  try {
    fn();
  } catch (...) {
    --depth_;
    RollBack(savepoint);
    throw;
  }
  --depth_;
  try {
    if (depth_ == 0) {
      Exec("COMMIT", "committing a transaction");
    } else {
      Exec("RELEASE " + savepoint, "releasing a nested transaction");
    }
  } catch (...) {
    RollBack(savepoint);
    throw;
  }
}

void Connection::ReadTransaction(const std::function<void()>& fn) {
  if (depth_ > 0) {
    fn();
    return;
  }
  // Prepared once: a request's reads may each start one.
  Prepare("BEGIN DEFERRED", "starting a read transaction").Run();
  ++depth_;
  try {
    fn();
  } catch (...) {
    --depth_;
    RollBack("");
    throw;
  }
  --depth_;
  try {
    Prepare("COMMIT", "ending a read transaction").Run();
  } catch (...) {
    RollBack("");
    throw;
  }
}

// Used while an error is already propagating, so its own failures are not
// reported. A failed statement may have rolled the whole transaction back
// already (SQLite does so on, e.g., a full disk); autocommit mode shows it.
void Connection::RollBack(const std::string& savepoint) {
  if (sqlite3_get_autocommit(db_)) return;
  const std::string sql =
      depth_ == 0 ? std::string("ROLLBACK")
                  : "ROLLBACK TO " + savepoint + "; RELEASE " + savepoint;
  sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
}

int64_t Connection::LastInsertId() const {
  return sqlite3_last_insert_rowid(db_);
}

void Connection::Fail(const std::string& purpose) const {
  const int extended = sqlite3_extended_errcode(db_);
  ErrorCode code = CodeFor(extended);
  std::string message = "lineage db " + file_ + ": " + purpose + ": " +
                        sqlite3_errmsg(db_) + " (" + sqlite3_errstr(extended) +
                        ")";
  // A write or fsync that failed for want of space is an I/O error here.
  const int err = sqlite3_system_errno(db_);
  if ((extended & 0xff) == SQLITE_IOERR &&
      (err == ENOSPC || err == EDQUOT || err == EFBIG)) {
    code = ErrorCode::kResourceExhausted;
    message += ": " + std::string(std::strerror(err));
  }
  if (code == ErrorCode::kResourceExhausted) {
    message +=
        ": out of space; free space on its file system, then retry (a stopped "
        "run: `baton resume RUN`)";
  }
  throw Error(code, message);
}

}  // namespace baton::store::sql
