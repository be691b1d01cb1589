// The SqliteLineageDb members for opening and migrating the lineage DB,
// transactions, pipelines, runs, Idempotency-Keys, stages and trials, and
// the statement helpers that every area uses; LineageDb::Open.
#include "store/lineage_db.h"

#include <chrono>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "store/internal/lineage_schema.h"
#include "store/internal/sql_connection.h"
#include "store/internal/sqlite_lineage_db.h"

namespace baton::store {
namespace detail {

using lineage_rows::kRunCols;
using lineage_rows::kStageCols;
using lineage_rows::kTrialCols;
using lineage_rows::ReadRun;
using lineage_rows::ReadStage;
using lineage_rows::ReadTrial;

double Now() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Brings the schema to the newest version, in one transaction.
void SqliteLineageDb::Migrate() {
  const auto& migrations = LineageMigrations();
  const int newest = static_cast<int>(migrations.size());
  InTransaction([&] {
    const int current = SchemaVersion();
    if (current > newest) {
      throw Error(ErrorCode::kConflict,
                  "lineage db " + file_ + " has schema version " +
                      std::to_string(current) + ", newer than this Baton's " +
                      std::to_string(newest) + "; upgrade Baton");
    }
    for (int v = current; v < newest; ++v) {
      Exec(migrations[v],
           "applying schema migration " + std::to_string(v + 1));
    }
    if (current != newest) {
      Exec("PRAGMA user_version = " + std::to_string(newest),
           "recording schema version");
    }
  });
}

SqliteLineageDb::SqliteLineageDb(std::unique_ptr<sql::Connection> connection,
                                 int busy_timeout_ms)
    : connection_(std::move(connection)), file_(connection_->file()) {
  if (!file_.empty() && file_ != ":memory:") {
    readers_ = std::make_unique<sql::ReaderPool>(file_, busy_timeout_ms,
                                                 kMaxIdleReaders);
  }
}

namespace {

// The reader of each database this thread is inside ReadSnapshot of (rarely
// more than one), innermost last.
thread_local std::vector<std::pair<const SqliteLineageDb*, sql::Connection*>>
    snapshot_readers;

}  // namespace

sql::Connection* SqliteLineageDb::SnapshotReader() const {
  for (const auto& [db, connection] : snapshot_readers) {
    if (db == this) return connection;
  }
  return nullptr;
}

SqliteLineageDb::Reading::Reading(SqliteLineageDb& db) {
  if (db.readers_ == nullptr || db.InTransactionOnThisThread()) {
    lock_ = std::unique_lock<std::recursive_mutex>(db.mu_);
    connection_ = db.connection_.get();
  } else if (sql::Connection* snapshot = db.SnapshotReader()) {
    connection_ = snapshot;
  } else {
    lease_.emplace(db.readers_->Borrow());
    connection_ = &lease_->connection();
  }
}

void SqliteLineageDb::ReadSnapshot(const std::function<void()>& fn) {
  if (readers_ == nullptr || InTransactionOnThisThread() ||
      SnapshotReader() != nullptr) {
    fn();
    return;
  }
  sql::ReaderPool::Lease lease = readers_->Borrow();
  snapshot_readers.emplace_back(this, &lease.connection());
  struct Forget {
    ~Forget() { snapshot_readers.pop_back(); }
  } forget;  // before the lease ends
  lease.connection().ReadTransaction(fn);
}

void SqliteLineageDb::InTransaction(const std::function<void()>& fn) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (transaction_depth_++ == 0) {
    transaction_thread_.store(std::this_thread::get_id());
  }
  // Outermost only: the transaction has committed or rolled back (a rolled
  // back write moves the version too, which costs a rebuilt answer only).
  auto end = [this] {
    if (--transaction_depth_ != 0) return;
    transaction_thread_.store({});
    if (retention_touched_) {
      retention_touched_ = false;
      retention_version_.fetch_add(1);
    }
  };
  try {
    connection_->Transaction(fn);
  } catch (...) {
    end();
    throw;
  }
  end();
}

uint64_t SqliteLineageDb::RetentionVersion() const {
  return retention_version_.load();
}

int SqliteLineageDb::SchemaVersion() {
  Reading read(*this);
  Statement s =
      read.Prepare("PRAGMA user_version", "reading the schema version");
  s.Step();
  return static_cast<int>(s.ColInt(0));
}

void SqliteLineageDb::PutPipeline(const std::string& id,
                                  const std::string& name, const Json& spec) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Prepare(
      "INSERT OR IGNORE INTO pipelines (id, name, spec, created_at) "
      "VALUES (?, ?, ?, ?)",
      "storing pipeline " + id)
      .Text(1, id)
      .Text(2, name)
      .JsonText(3, spec)
      .Real(4, Now())
      .Run();
}

std::optional<Json> SqliteLineageDb::GetPipeline(const std::string& id) {
  Reading read(*this);
  Statement s = read.Prepare("SELECT spec FROM pipelines WHERE id = ?",
                             "reading pipeline " + id);
  s.Text(1, id);
  if (!s.Step()) return std::nullopt;
  return s.ColJson(0);
}

std::vector<LineageDb::PipelineSummary> SqliteLineageDb::ListPipelines(
    int limit, int offset) {
  Reading read(*this);
  Statement s = read.Prepare(
      "SELECT id, name, created_at FROM pipelines "
      "ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
      "listing pipelines");
  s.Int(1, limit).Int(2, offset);
  std::vector<PipelineSummary> out;
  while (s.Step()) out.push_back({s.ColText(0), s.ColText(1), s.ColReal(2)});
  return out;
}

void SqliteLineageDb::CreateRun(const RunRecord& run) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Prepare(
      "INSERT INTO runs (id, pipeline_id, name, status, created_at, "
      "finished_at, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
      "creating run " + run.id)
      .Text(1, run.id)
      .Text(2, run.pipeline_id)
      .Text(3, run.name)
      .Text(4, run.status)
      .Real(5, run.created_at == 0 ? Now() : run.created_at)
      .Real(6, run.finished_at)
      .Text(7, run.error)
      .Run();
}

void SqliteLineageDb::UpdateRun(const RunRecord& run) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const int changed = Prepare(
                          "UPDATE runs SET status = ?, finished_at = ?, "
                          "error = ? WHERE id = ?",
                          "updating run " + run.id)
                          .Text(1, run.status)
                          .Real(2, run.finished_at)
                          .Text(3, run.error)
                          .Text(4, run.id)
                          .Run();
  if (changed == 0) throw NotFound("run " + run.id);
}

std::optional<RunRecord> SqliteLineageDb::GetRun(const std::string& id) {
  Reading read(*this);
  Statement s = read.Prepare(
      std::string("SELECT ") + kRunCols + " FROM runs WHERE id = ?",
      "reading run " + id);
  s.Text(1, id);
  if (!s.Step()) return std::nullopt;
  return ReadRun(s);
}

void SqliteLineageDb::PutIdempotencyKey(const std::string& key,
                                        const std::string& pipeline_id,
                                        const std::string& run_id) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Prepare(
      "INSERT OR IGNORE INTO idempotency_keys "
      "(key, pipeline_id, run_id, created_at) VALUES (?, ?, ?, ?)",
      "recording the Idempotency-Key of run " + run_id)
      .Text(1, key)
      .Text(2, pipeline_id)
      .Text(3, run_id)
      .Real(4, Now())
      .Run();
}

std::optional<LineageDb::IdempotencyKey> SqliteLineageDb::GetIdempotencyKey(
    const std::string& key) {
  Reading read(*this);
  Statement s = read.Prepare(
      "SELECT pipeline_id, run_id, created_at FROM idempotency_keys "
      "WHERE key = ?",
      "reading an Idempotency-Key");
  s.Text(1, key);
  if (!s.Step()) return std::nullopt;
  return IdempotencyKey{s.ColText(0), s.ColText(1), s.ColReal(2)};
}

std::vector<RunRecord> SqliteLineageDb::ListRuns(int limit) {
  Reading read(*this);
  Statement s = read.Prepare(
      std::string("SELECT ") + kRunCols +
          " FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?",
      "listing runs");
  s.Int(1, limit > 0 ? limit : -1);
  std::vector<RunRecord> runs;
  while (s.Step()) runs.push_back(ReadRun(s));
  return runs;
}

int64_t SqliteLineageDb::AddStage(const StageRecord& stage) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Prepare(
      "INSERT INTO stages (run_id, name, type, status, cache_key, "
      "cached_from, output, spec, resolved, started_at, finished_at, error) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      "adding stage " + stage.name + " to run " + stage.run_id)
      .Text(1, stage.run_id)
      .Text(2, stage.name)
      .Text(3, stage.type)
      .Text(4, stage.status)
      .Text(5, stage.cache_key)
      .Int(6, stage.cached_from)
      .Text(7, stage.output)
      .JsonText(8, stage.spec)
      .JsonText(9, stage.resolved)
      .Real(10, stage.started_at)
      .Real(11, stage.finished_at)
      .Text(12, stage.error)
      .Run();
  return connection_->LastInsertId();
}

void SqliteLineageDb::UpdateStage(const StageRecord& stage) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const std::string id = std::to_string(stage.id);
  const int changed =
      Prepare(
          "UPDATE stages SET status = ?, cache_key = ?, cached_from = ?, "
          "output = ?, spec = ?, resolved = ?, started_at = ?, "
          "finished_at = ?, error = ? WHERE id = ?",
          "updating stage " + id)
          .Text(1, stage.status)
          .Text(2, stage.cache_key)
          .Int(3, stage.cached_from)
          .Text(4, stage.output)
          .JsonText(5, stage.spec)
          .JsonText(6, stage.resolved)
          .Real(7, stage.started_at)
          .Real(8, stage.finished_at)
          .Text(9, stage.error)
          .Int(10, stage.id)
          .Run();
  if (changed == 0) throw NotFound("stage " + id);
}

std::optional<StageRecord> SqliteLineageDb::GetStage(int64_t id) {
  Reading read(*this);
  Statement s = read.Prepare(
      std::string("SELECT ") + kStageCols + " FROM stages WHERE id = ?",
      "reading stage " + std::to_string(id));
  s.Int(1, id);
  if (!s.Step()) return std::nullopt;
  return ReadStage(s);
}

std::vector<StageRecord> SqliteLineageDb::GetStages(const std::string& run_id) {
  Reading read(*this);
  Statement s = read.Prepare(std::string("SELECT ") + kStageCols +
                                 " FROM stages WHERE run_id = ? ORDER BY id",
                             "listing the stages of run " + run_id);
  s.Text(1, run_id);
  std::vector<StageRecord> stages;
  while (s.Step()) stages.push_back(ReadStage(s));
  return stages;
}

std::optional<StageRecord> SqliteLineageDb::FindCachedStage(
    const std::string& cache_key) {
  if (cache_key.empty()) return std::nullopt;
  Reading read(*this);
  Statement s = read.Prepare(
      std::string("SELECT ") + kStageCols +
          " FROM stages WHERE cache_key = ? AND status = 'succeeded' "
          "AND cached_from = 0 ORDER BY id LIMIT 1",
      "looking up cache key " + cache_key);
  s.Text(1, cache_key);
  if (!s.Step()) return std::nullopt;
  return ReadStage(s);
}

int64_t SqliteLineageDb::AddTrial(const TrialRecord& trial) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Prepare(
      "INSERT INTO trials (stage_id, number, kind, hyperparameters, task, "
      "seed, status, attempts, reason, initial_checkpoint, output, "
      "started_at, finished_at, placements) "
      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      "adding trial " + std::to_string(trial.number) + " to stage " +
          std::to_string(trial.stage_id))
      .Int(1, trial.stage_id)
      .Int(2, trial.number)
      .Text(3, trial.kind)
      .JsonText(4, trial.hyperparameters)
      .JsonText(5, trial.task)
      .Int(6, trial.seed)
      .Text(7, trial.status)
      .Int(8, trial.attempts)
      .Text(9, trial.reason)
      .Text(10, trial.initial_checkpoint)
      .Text(11, trial.output)
      .Real(12, trial.started_at)
      .Real(13, trial.finished_at)
      .JsonText(14, trial.placements)
      .Run();
  return connection_->LastInsertId();
}

void SqliteLineageDb::UpdateTrial(const TrialRecord& trial) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const std::string id = std::to_string(trial.id);
  const int changed =
      Prepare(
          "UPDATE trials SET hyperparameters = ?, task = ?, seed = ?, "
          "status = ?, attempts = ?, reason = ?, initial_checkpoint = ?, "
          "output = ?, started_at = ?, finished_at = ?, placements = ? WHERE id = ?",
          "updating trial " + id)
          .JsonText(1, trial.hyperparameters)
          .JsonText(2, trial.task)
          .Int(3, trial.seed)
          .Text(4, trial.status)
          .Int(5, trial.attempts)
          .Text(6, trial.reason)
          .Text(7, trial.initial_checkpoint)
          .Text(8, trial.output)
          .Real(9, trial.started_at)
          .Real(10, trial.finished_at)
          .JsonText(11, trial.placements)
          .Int(12, trial.id)
          .Run();
  if (changed == 0) throw NotFound("trial " + id);
}

std::optional<TrialRecord> SqliteLineageDb::GetTrial(int64_t id) {
  Reading read(*this);
  Statement s = read.Prepare(
      std::string("SELECT ") + kTrialCols + " FROM trials WHERE id = ?",
      "reading trial " + std::to_string(id));
  s.Int(1, id);
  if (!s.Step()) return std::nullopt;
  return ReadTrial(s);
}

std::vector<TrialRecord> SqliteLineageDb::GetTrials(int64_t stage_id) {
  Reading read(*this);
  Statement s =
      read.Prepare(std::string("SELECT ") + kTrialCols +
                       " FROM trials WHERE stage_id = ? ORDER BY number",
                   "listing the trials of stage " + std::to_string(stage_id));
  s.Int(1, stage_id);
  std::vector<TrialRecord> trials;
  while (s.Step()) trials.push_back(ReadTrial(s));
  return trials;
}

Statement SqliteLineageDb::Prepare(const std::string& sql,
                                   const std::string& purpose) {
  return connection_->Prepare(sql, purpose);
}

// The first column of every row of `sql`.
std::vector<std::string> SqliteLineageDb::Digests(const std::string& sql,
                                                  const std::string& purpose) {
  Reading read(*this);
  Statement s = read.Prepare(sql, purpose);
  std::vector<std::string> out;
  while (s.Step()) out.push_back(s.ColText(0));
  return out;
}

void SqliteLineageDb::Exec(const std::string& sql, const std::string& purpose) {
  connection_->Exec(sql, purpose);
}

Error SqliteLineageDb::NotFound(const std::string& what) const {
  return Error(ErrorCode::kNotFound,
               what + " does not exist in lineage db " + file_);
}

}  // namespace detail

std::unique_ptr<LineageDb> LineageDb::Open(const std::filesystem::path& file) {
  constexpr int kBusyTimeoutMs = 10000;
  auto lineage = std::make_unique<detail::SqliteLineageDb>(
      sql::Connection::Open(file, kBusyTimeoutMs), kBusyTimeoutMs);
  lineage->Migrate();  // on the writer, before any reader opens
  return lineage;
}

}  // namespace baton::store
