#pragma once

// The lineage DB behind LineageDb::Open: SQLite through sql::Connection. Its
// members are defined by area in
//   lineage_db.cpp           Open, Migrate, transactions, pipelines, runs,
//                            Idempotency-Keys, stages, trials
//   lineage_checkpoints.cpp  epochs, checkpoints and their blob accounting,
//                            artifacts, edges, referenced blobs, fsck's
//                            look-ups
//   lineage_retention.cpp    pins, released checkpoints, edges of a kind,
//                            disk use
// Internal to store/.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/json_util.h"
#include "store/lineage_db.h"
#include "store/internal/sql_connection.h"
#include "store/internal/sql_reader_pool.h"

namespace baton::store::detail {

// (digest, size) of every blob of a checkpoint or an artifact.
using BlobList = std::vector<std::pair<std::string, uint64_t>>;
using sql::Statement;

// Seconds since the Unix epoch, now.
double Now();

// The LineageDb of one SQLite file. Safe to call from many threads. Writes
// and transactions use the one writer connection and hold mu_ while they
// do. Reads use read-only connections of their own (WAL: they read the
// last commit while a write goes on, and never wait for mu_), except on
// the thread that is inside InTransaction, whose reads use the writer and
// so see the transaction's own writes; on a thread inside ReadSnapshot they
// use that snapshot's reader; and except for a database that is
// not a file (":memory:" or ""), where another connection would open
// another database: there every call uses the writer.
class SqliteLineageDb : public LineageDb {
 public:
  // Read-only connections kept open between reads (serve's 16 request
  // threads each find one).
  static constexpr size_t kMaxIdleReaders = 16;

  SqliteLineageDb(std::unique_ptr<sql::Connection> connection,
                  int busy_timeout_ms);

  void Migrate();

  // --- lineage_db.cpp ------------------------------------------------------

  void InTransaction(const std::function<void()>& fn) override;
  void ReadSnapshot(const std::function<void()>& fn) override;
  int SchemaVersion() override;

  void PutPipeline(const std::string& id, const std::string& name,
                   const Json& spec) override;
  std::optional<Json> GetPipeline(const std::string& id) override;
  std::vector<PipelineSummary> ListPipelines(int limit, int offset) override;

  void CreateRun(const RunRecord& run) override;
  void UpdateRun(const RunRecord& run) override;
  std::optional<RunRecord> GetRun(const std::string& id) override;
  void PutIdempotencyKey(const std::string& key, const std::string& pipeline_id,
                         const std::string& run_id) override;
  std::optional<IdempotencyKey> GetIdempotencyKey(
      const std::string& key) override;
  std::vector<RunRecord> ListRuns(int limit) override;

  int64_t AddStage(const StageRecord& stage) override;
  void UpdateStage(const StageRecord& stage) override;
  std::optional<StageRecord> GetStage(int64_t id) override;
  std::vector<StageRecord> GetStages(const std::string& run_id) override;
  std::optional<StageRecord> FindCachedStage(
      const std::string& cache_key) override;

  int64_t AddTrial(const TrialRecord& trial) override;
  void UpdateTrial(const TrialRecord& trial) override;
  std::optional<TrialRecord> GetTrial(int64_t id) override;
  std::vector<TrialRecord> GetTrials(int64_t stage_id) override;

  // --- lineage_checkpoints.cpp ---------------------------------------------

  void RecordEpoch(const EpochRecord& epoch, const BlobList& blobs) override;
  std::vector<EpochRecord> GetEpochs(int64_t trial_id) override;
  void RecordCheckpoint(const std::string& digest, int64_t trial_id, int epoch,
                        const BlobList& blobs) override;
  std::optional<std::pair<int64_t, int>> FindCheckpoint(
      const std::string& digest) override;
  std::vector<std::string> CheckpointsWithBlob(const std::string& blob,
                                               int limit) override;

  void PutArtifact(const std::string& digest, const std::string& kind,
                   int64_t stage_id, const Json& meta,
                   const BlobList& blobs) override;
  std::optional<Json> GetArtifact(const std::string& digest) override;

  void AddEdge(const Edge& edge) override;
  std::vector<Edge> Upstream(const std::string& node, int depth) override;
  std::vector<Edge> Downstream(const std::string& node, int depth) override;

  std::pair<uint64_t, uint64_t> CheckpointBytes(const std::string& digest,
                                                int64_t stage_id) override;
  uint64_t ArtifactBytes(const std::string& digest) override;
  BlobList CheckpointBlobs(const std::string& digest) override;
  std::vector<std::string> ReferencedBlobs() override;
  std::vector<std::string> ListCheckpoints() override;
  std::vector<std::string> ListArtifacts() override;
  std::vector<std::string> BlobReferrers(const std::string& blob,
                                         int limit) override;

  // --- lineage_retention.cpp -----------------------------------------------

  void PinRun(const std::string& run_id) override;
  void UnpinRun(const std::string& run_id) override;
  std::vector<std::string> PinnedRuns() override;
  void ReleaseCheckpoints(const std::vector<std::string>& digests) override;
  double CheckpointReleasedAt(const std::string& digest) override;
  std::vector<std::string> ReleasedCheckpoints() override;
  uint64_t RetentionVersion() const override;
  std::vector<Edge> EdgesOfKind(const std::string& kind) override;
  std::vector<StageUsage> Usage(const std::string& run_id) override;

 private:
  // The connection of one read call, held for as long as this lives: a
  // borrowed reader, this thread's ReadSnapshot reader, or the writer under
  // mu_ (see the class comment).
  // Statements prepared through it must end before it does.
  class Reading {
   public:
    explicit Reading(SqliteLineageDb& db);
    Statement Prepare(const std::string& sql, const std::string& purpose) {
      return connection_->Prepare(sql, purpose);
    }
    sql::Connection& connection() { return *connection_; }

   private:
    std::unique_lock<std::recursive_mutex> lock_;  // held when on the writer
    std::optional<sql::ReaderPool::Lease> lease_;  // held when on a reader
    sql::Connection* connection_ = nullptr;
  };

  // --- lineage_db.cpp ------------------------------------------------------

  bool InTransactionOnThisThread() const {
    return transaction_thread_.load() == std::this_thread::get_id();
  }
  // This thread's ReadSnapshot reader of this database, or null.
  sql::Connection* SnapshotReader() const;

  // On the writer: callers hold mu_.
  Statement Prepare(const std::string& sql, const std::string& purpose);
  std::vector<std::string> Digests(const std::string& sql,
                                   const std::string& purpose);
  void Exec(const std::string& sql, const std::string& purpose);
  Error NotFound(const std::string& what) const;

  // --- lineage_checkpoints.cpp ---------------------------------------------

  int64_t StageOfTrial(int64_t trial_id);
  void AccountBlob(const std::string& digest, uint64_t size, int64_t stage_id);
  bool RecordCheckpointRows(const std::string& digest, int64_t trial_id,
                            int epoch, int64_t stage_id,
                            const BlobList& blobs);
  std::vector<Edge> Traverse(const std::string& node, int depth,
                             bool upstream);

  std::recursive_mutex mu_;  // serialises every call on the writer
  std::unique_ptr<sql::Connection> connection_;  // the writer
  const std::string file_;
  // The thread inside InTransaction, if any (set and cleared under mu_).
  std::atomic<std::thread::id> transaction_thread_{};
  int transaction_depth_ = 0;  // nested InTransaction calls; guarded by mu_
  // Set by a write to checkpoint rows or pins inside a transaction (under mu_);
  // the outermost InTransaction then moves retention_version_ once the
  // transaction has ended, so no reader sees the new number before the rows.
  bool retention_touched_ = false;
  std::atomic<uint64_t> retention_version_{0};
  // Null for a database that is not a file. Declared after the writer, so
  // that the readers close first.
  std::unique_ptr<sql::ReaderPool> readers_;
};

}  // namespace baton::store::detail
