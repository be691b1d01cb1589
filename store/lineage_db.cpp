#include "store/lineage_db.h"

#include <chrono>
#include <mutex>
#include <set>

#include "common/digest.h"
#include "common/error.h"
#include "store/lineage_schema.h"
#include "store/sql_connection.h"

namespace baton::store {
namespace {

using BlobList = std::vector<std::pair<std::string, uint64_t>>;

double Now() {
  return std::chrono::duration<double>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void RequireDigest(const std::string& digest, const std::string& what) {
  if (!IsDigest(digest)) {
    throw Error(ErrorCode::kInvalidArgument,
                what + " \"" + digest + "\" is not a SHA-256 digest");
  }
}

using lineage_rows::kRunCols;
using lineage_rows::kStageCols;
using lineage_rows::kTrialCols;
using lineage_rows::ReadRun;
using lineage_rows::ReadStage;
using lineage_rows::ReadTrial;
using sql::Statement;

class SqliteLineageDb : public LineageDb {
 public:
  explicit SqliteLineageDb(std::unique_ptr<sql::Connection> connection)
      : connection_(std::move(connection)), file_(connection_->file()) {}

  // Brings the schema to the newest version, in one transaction.
  void Migrate() {
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

  void InTransaction(const std::function<void()>& fn) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    connection_->Transaction(fn);
  }

  int SchemaVersion() override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare("PRAGMA user_version", "reading the schema version");
    s.Step();
    return static_cast<int>(s.ColInt(0));
  }

  void PutPipeline(const std::string& id, const std::string& name,
                   const Json& spec) override {
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

  std::optional<Json> GetPipeline(const std::string& id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare("SELECT spec FROM pipelines WHERE id = ?",
                          "reading pipeline " + id);
    s.Text(1, id);
    if (!s.Step()) return std::nullopt;
    return s.ColJson(0);
  }

  std::vector<PipelineSummary> ListPipelines(int limit, int offset) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(
        "SELECT id, name, created_at FROM pipelines "
        "ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
        "listing pipelines");
    s.Int(1, limit).Int(2, offset);
    std::vector<PipelineSummary> out;
    while (s.Step()) out.push_back({s.ColText(0), s.ColText(1), s.ColReal(2)});
    return out;
  }

  void CreateRun(const RunRecord& run) override {
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

  void UpdateRun(const RunRecord& run) override {
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

  std::optional<RunRecord> GetRun(const std::string& id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s =
        Prepare(std::string("SELECT ") + kRunCols + " FROM runs WHERE id = ?",
                "reading run " + id);
    s.Text(1, id);
    if (!s.Step()) return std::nullopt;
    return ReadRun(s);
  }

  void PutIdempotencyKey(const std::string& key, const std::string& pipeline_id,
                         const std::string& run_id) override {
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

  std::optional<IdempotencyKey> GetIdempotencyKey(const std::string& key) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(
        "SELECT pipeline_id, run_id, created_at FROM idempotency_keys "
        "WHERE key = ?",
        "reading an Idempotency-Key");
    s.Text(1, key);
    if (!s.Step()) return std::nullopt;
    return IdempotencyKey{s.ColText(0), s.ColText(1), s.ColReal(2)};
  }

  std::vector<RunRecord> ListRuns(int limit) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s =
        Prepare(std::string("SELECT ") + kRunCols +
                    " FROM runs ORDER BY created_at DESC, rowid DESC LIMIT ?",
                "listing runs");
    s.Int(1, limit > 0 ? limit : -1);
    std::vector<RunRecord> runs;
    while (s.Step()) runs.push_back(ReadRun(s));
    return runs;
  }

  int64_t AddStage(const StageRecord& stage) override {
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

  void UpdateStage(const StageRecord& stage) override {
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

  std::optional<StageRecord> GetStage(int64_t id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(
        std::string("SELECT ") + kStageCols + " FROM stages WHERE id = ?",
        "reading stage " + std::to_string(id));
    s.Int(1, id);
    if (!s.Step()) return std::nullopt;
    return ReadStage(s);
  }

  std::vector<StageRecord> GetStages(const std::string& run_id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(std::string("SELECT ") + kStageCols +
                              " FROM stages WHERE run_id = ? ORDER BY id",
                          "listing the stages of run " + run_id);
    s.Text(1, run_id);
    std::vector<StageRecord> stages;
    while (s.Step()) stages.push_back(ReadStage(s));
    return stages;
  }

  std::optional<StageRecord> FindCachedStage(
      const std::string& cache_key) override {
    if (cache_key.empty()) return std::nullopt;
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s =
        Prepare(std::string("SELECT ") + kStageCols +
                    " FROM stages WHERE cache_key = ? AND status = 'succeeded' "
                    "AND cached_from = 0 ORDER BY id LIMIT 1",
                "looking up cache key " + cache_key);
    s.Text(1, cache_key);
    if (!s.Step()) return std::nullopt;
    return ReadStage(s);
  }

  int64_t AddTrial(const TrialRecord& trial) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Prepare(
        "INSERT INTO trials (stage_id, number, kind, hyperparameters, task, "
        "seed, status, attempts, reason, initial_checkpoint, output, "
        "started_at, finished_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .Run();
    return connection_->LastInsertId();
  }

  void UpdateTrial(const TrialRecord& trial) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    const std::string id = std::to_string(trial.id);
    const int changed =
        Prepare(
            "UPDATE trials SET hyperparameters = ?, task = ?, seed = ?, "
            "status = ?, attempts = ?, reason = ?, initial_checkpoint = ?, "
            "output = ?, started_at = ?, finished_at = ? WHERE id = ?",
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
            .Int(11, trial.id)
            .Run();
    if (changed == 0) throw NotFound("trial " + id);
  }

  std::optional<TrialRecord> GetTrial(int64_t id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(
        std::string("SELECT ") + kTrialCols + " FROM trials WHERE id = ?",
        "reading trial " + std::to_string(id));
    s.Int(1, id);
    if (!s.Step()) return std::nullopt;
    return ReadTrial(s);
  }

  std::vector<TrialRecord> GetTrials(int64_t stage_id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s =
        Prepare(std::string("SELECT ") + kTrialCols +
                    " FROM trials WHERE stage_id = ? ORDER BY number",
                "listing the trials of stage " + std::to_string(stage_id));
    s.Int(1, stage_id);
    std::vector<TrialRecord> trials;
    while (s.Step()) trials.push_back(ReadTrial(s));
    return trials;
  }

  void RecordEpoch(const EpochRecord& epoch, const BlobList& blobs) override {
    RequireDigest(epoch.checkpoint, "checkpoint");
    if (epoch.epoch < 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "epoch must be >= 0, got " + std::to_string(epoch.epoch));
    }
    const std::string what = "trial " + std::to_string(epoch.trial_id) +
                             " epoch " + std::to_string(epoch.epoch);
    InTransaction([&] {
      const int64_t stage_id = StageOfTrial(epoch.trial_id);
      {
        Statement s = Prepare(
            "SELECT checkpoint FROM epochs WHERE trial_id = ? AND epoch = ?",
            "reading " + what);
        s.Int(1, epoch.trial_id).Int(2, epoch.epoch);
        if (s.Step()) {
          const std::string existing = s.ColText(0);
          if (existing == epoch.checkpoint) return;
          throw Error(ErrorCode::kConflict, what + " already has checkpoint " +
                                                existing + ", not " +
                                                epoch.checkpoint);
        }
      }
      RecordCheckpointRows(epoch.checkpoint, epoch.trial_id, epoch.epoch,
                           stage_id, blobs);
      Prepare(
          "INSERT INTO epochs (trial_id, epoch, metrics, checkpoint, seconds, "
          "created_at) VALUES (?, ?, ?, ?, ?, ?)",
          "recording " + what)
          .Int(1, epoch.trial_id)
          .Int(2, epoch.epoch)
          .JsonText(3, epoch.metrics)
          .Text(4, epoch.checkpoint)
          .Real(5, epoch.seconds)
          .Real(6, epoch.created_at == 0 ? Now() : epoch.created_at)
          .Run();
      AddEdge(Edge{"checkpoint:" + epoch.checkpoint,
                   "trial:" + std::to_string(epoch.trial_id), "derived_from",
                   Json{{"epoch", epoch.epoch}}});
    });
  }

  std::vector<EpochRecord> GetEpochs(int64_t trial_id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(
        "SELECT trial_id, epoch, metrics, checkpoint, seconds, created_at "
        "FROM epochs WHERE trial_id = ? ORDER BY epoch",
        "listing the epochs of trial " + std::to_string(trial_id));
    s.Int(1, trial_id);
    std::vector<EpochRecord> epochs;
    while (s.Step()) {
      epochs.push_back(EpochRecord{s.ColInt(0), static_cast<int>(s.ColInt(1)),
                                   s.ColJson(2), s.ColText(3), s.ColReal(4),
                                   s.ColReal(5)});
    }
    return epochs;
  }

  // The derived_from edge is added only when this is the checkpoint's first
  // recording: a trial that starts from another trial's weights did not
  // produce them (the caller records initialized_from for that).
  void RecordCheckpoint(const std::string& digest, int64_t trial_id, int epoch,
                        const BlobList& blobs) override {
    RequireDigest(digest, "checkpoint");
    if (epoch < -1) {
      throw Error(ErrorCode::kInvalidArgument,
                  "epoch must be >= -1, got " + std::to_string(epoch));
    }
    InTransaction([&] {
      const int64_t stage_id = StageOfTrial(trial_id);
      if (RecordCheckpointRows(digest, trial_id, epoch, stage_id, blobs)) {
        AddEdge(Edge{"checkpoint:" + digest,
                     "trial:" + std::to_string(trial_id), "derived_from",
                     Json{{"epoch", epoch}}});
      }
    });
  }

  std::optional<std::pair<int64_t, int>> FindCheckpoint(
      const std::string& digest) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s =
        Prepare("SELECT trial_id, epoch FROM checkpoints WHERE digest = ?",
                "looking up checkpoint " + digest);
    s.Text(1, digest);
    if (!s.Step()) return std::nullopt;
    return std::make_pair(s.ColInt(0), static_cast<int>(s.ColInt(1)));
  }

  // The index checkpoint_blobs_by_blob holds (blob, checkpoint), so this
  // reads the first `limit` rows in order without sorting.
  std::vector<std::string> CheckpointsWithBlob(const std::string& blob,
                                               int limit) override {
    if (limit < 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "limit must be >= 0, got " + std::to_string(limit));
    }
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(
        "SELECT checkpoint FROM checkpoint_blobs WHERE blob = ? "
        "ORDER BY checkpoint LIMIT ?",
        "listing the checkpoints that hold blob " + blob);
    s.Text(1, blob).Int(2, limit);
    std::vector<std::string> digests;
    while (s.Step()) digests.push_back(s.ColText(0));
    return digests;
  }

  void PutArtifact(const std::string& digest, const std::string& kind,
                   int64_t stage_id, const Json& meta,
                   const BlobList& blobs) override {
    RequireDigest(digest, "artifact");
    InTransaction([&] {
      const int added =
          Prepare(
              "INSERT OR IGNORE INTO artifacts (digest, kind, stage_id, meta, "
              "created_at) VALUES (?, ?, ?, ?, ?)",
              "storing artifact " + digest)
              .Text(1, digest)
              .Text(2, kind)
              .OptionalId(3, stage_id)
              .JsonText(4, meta)
              .Real(5, Now())
              .Run();
      if (added == 0) return;
      for (const auto& [blob, size] : blobs) {
        AccountBlob(blob, size, stage_id);
        Prepare(
            "INSERT OR IGNORE INTO artifact_blobs (artifact, blob) "
            "VALUES (?, ?)",
            "linking artifact " + digest + " to its blobs")
            .Text(1, digest)
            .Text(2, blob)
            .Run();
      }
    });
  }

  // {"digest", "kind", "stage_id" (0 if none), "meta", "created_at"}.
  std::optional<Json> GetArtifact(const std::string& digest) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(
        "SELECT kind, COALESCE(stage_id, 0), meta, created_at FROM artifacts "
        "WHERE digest = ?",
        "reading artifact " + digest);
    s.Text(1, digest);
    if (!s.Step()) return std::nullopt;
    return Json{{"digest", digest},
                {"kind", s.ColText(0)},
                {"stage_id", s.ColInt(1)},
                {"meta", s.ColJson(2)},
                {"created_at", s.ColReal(3)}};
  }

  void AddEdge(const Edge& edge) override {
    if (edge.src.empty() || edge.dst.empty() || edge.kind.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "an edge needs a source, a destination and a kind");
    }
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Prepare(
        "INSERT OR IGNORE INTO edges (src, dst, kind, attrs, created_at) "
        "VALUES (?, ?, ?, ?, ?)",
        "adding edge " + edge.src + " -> " + edge.dst)
        .Text(1, edge.src)
        .Text(2, edge.dst)
        .Text(3, edge.kind)
        .JsonText(4, edge.attrs)
        .Real(5, Now())
        .Run();
  }

  std::vector<Edge> Upstream(const std::string& node, int depth) override {
    return Traverse(node, depth, /*upstream=*/true);
  }

  std::vector<Edge> Downstream(const std::string& node, int depth) override {
    return Traverse(node, depth, /*upstream=*/false);
  }

  std::pair<uint64_t, uint64_t> CheckpointBytes(const std::string& digest, int64_t stage_id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(R"sql(
SELECT COALESCE(SUM(b.size), 0),
       COALESCE(SUM(CASE WHEN b.first_stage_id = ?2 THEN b.size ELSE 0 END), 0)
  FROM checkpoint_blobs cb JOIN blobs b ON b.digest = cb.blob
 WHERE cb.checkpoint = ?1)sql",
                          "computing a checkpoint's bytes");
    s.Text(1, digest);
    s.Int(2, stage_id);
    if (!s.Step()) return {0, 0};
    return {static_cast<uint64_t>(s.ColInt(0)), static_cast<uint64_t>(s.ColInt(1))};
  }

  std::vector<std::string> ReferencedBlobs() override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    // Every accounted blob is linked to a checkpoint or an artifact, so the
    // links (of kept checkpoints) say which blobs are referred to.
    Statement s = Prepare(R"sql(
SELECT cb.blob FROM checkpoint_blobs cb
  JOIN checkpoints c ON c.digest = cb.checkpoint WHERE c.released_at = 0
UNION SELECT digest FROM checkpoints WHERE released_at = 0
UNION SELECT blob FROM artifact_blobs
UNION SELECT digest FROM artifacts
UNION SELECT output FROM stages WHERE output != ''
UNION SELECT output FROM trials WHERE output != ''
 AND output NOT IN (SELECT digest FROM checkpoints WHERE released_at != 0)
UNION SELECT initial_checkpoint FROM trials WHERE initial_checkpoint != ''
 AND initial_checkpoint NOT IN (SELECT digest FROM checkpoints WHERE released_at != 0)
UNION SELECT json_extract(resolved, '$.comparison') FROM stages
 WHERE json_extract(resolved, '$.comparison') IS NOT NULL)sql",
                          "listing the blobs the lineage refers to");
    std::vector<std::string> out;
    while (s.Step()) out.push_back(s.ColText(0));
    return out;
  }

  std::vector<std::string> ListCheckpoints() override {
    return Digests(
        "SELECT digest FROM checkpoints WHERE released_at = 0 ORDER BY digest",
        "listing the recorded checkpoints");
  }

  std::vector<std::string> ListArtifacts() override {
    return Digests("SELECT digest FROM artifacts ORDER BY digest",
                   "listing the recorded artifacts");
  }

  // For a few blobs at a time (fsck's problems): the stage and trial
  // outputs are not indexed, so each call scans those two tables.
  std::vector<std::string> BlobReferrers(const std::string& blob,
                                         int limit) override {
    if (limit < 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "limit must be >= 0, got " + std::to_string(limit));
    }
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(R"sql(
SELECT 'checkpoint:' || checkpoint FROM checkpoint_blobs WHERE blob = ?1
UNION SELECT 'checkpoint:' || digest FROM checkpoints WHERE digest = ?1
UNION SELECT 'trial:' || trial_id FROM checkpoint_records WHERE digest = ?1
UNION SELECT 'artifact:' || artifact FROM artifact_blobs WHERE blob = ?1
UNION SELECT 'artifact:' || digest FROM artifacts WHERE digest = ?1
UNION SELECT 'stage:' || stage_id FROM artifacts
 WHERE digest = ?1 AND stage_id IS NOT NULL
UNION SELECT 'stage:' || id FROM stages
 WHERE output = ?1 OR json_extract(resolved, '$.comparison') = ?1
UNION SELECT 'trial:' || id FROM trials
 WHERE output = ?1 OR initial_checkpoint = ?1
ORDER BY 1 LIMIT ?2)sql",
                          "listing what refers to blob " + blob);
    s.Text(1, blob).Int(2, limit);
    std::vector<std::string> out;
    while (s.Step()) out.push_back(s.ColText(0));
    return out;
  }

  void PinRun(const std::string& run_id) override {
    InTransaction([&] {
      if (!GetRun(run_id)) throw NotFound("run " + run_id);
      Prepare("INSERT OR IGNORE INTO pins (run_id, created_at) VALUES (?, ?)",
              "pinning run " + run_id)
          .Text(1, run_id)
          .Real(2, Now())
          .Run();
    });
  }

  void UnpinRun(const std::string& run_id) override {
    InTransaction([&] {
      if (!GetRun(run_id)) throw NotFound("run " + run_id);
      Prepare("DELETE FROM pins WHERE run_id = ?", "unpinning run " + run_id)
          .Text(1, run_id)
          .Run();
    });
  }

  std::vector<std::string> PinnedRuns() override {
    return Digests("SELECT run_id FROM pins ORDER BY run_id",
                   "listing the pinned runs");
  }

  void ReleaseCheckpoints(const std::vector<std::string>& digests) override {
    const double now = Now();
    InTransaction([&] {
      for (const std::string& digest : digests) {
        Prepare(
            "UPDATE checkpoints SET released_at = ? "
            "WHERE digest = ? AND released_at = 0",
            "releasing checkpoint " + digest)
            .Real(1, now)
            .Text(2, digest)
            .Run();
      }
    });
  }

  double CheckpointReleasedAt(const std::string& digest) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s =
        Prepare("SELECT released_at FROM checkpoints WHERE digest = ?",
                "reading checkpoint " + digest);
    s.Text(1, digest);
    return s.Step() ? s.ColReal(0) : 0;
  }

  std::vector<std::string> ReleasedCheckpoints() override {
    return Digests(
        "SELECT digest FROM checkpoints WHERE released_at != 0 ORDER BY digest",
        "listing the released checkpoints");
  }

  std::vector<Edge> EdgesOfKind(const std::string& kind) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(
        "SELECT src, dst, kind, attrs FROM edges WHERE kind = ? ORDER BY rowid",
        "listing the " + kind + " edges");
    s.Text(1, kind);
    std::vector<Edge> edges;
    while (s.Step()) {
      edges.push_back(Edge{s.ColText(0), s.ColText(1), s.ColText(2), s.ColJson(3)});
    }
    return edges;
  }

  std::vector<StageUsage> Usage(const std::string& run_id) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(R"sql(
SELECT s.id, s.run_id, s.name,
  (SELECT COUNT(DISTINCT cr.digest)
     FROM trials t JOIN checkpoint_records cr ON cr.trial_id = t.id
    WHERE t.stage_id = s.id),
  (SELECT COALESCE(SUM(b.size), 0) FROM blobs b WHERE b.digest IN (
     SELECT cb.blob
       FROM trials t
       JOIN checkpoint_records cr ON cr.trial_id = t.id
       JOIN checkpoint_blobs cb ON cb.checkpoint = cr.digest
      WHERE t.stage_id = s.id
     UNION
     SELECT ab.blob
       FROM artifacts a JOIN artifact_blobs ab ON ab.artifact = a.digest
      WHERE a.stage_id = s.id)),
  (SELECT COALESCE(SUM(b.size), 0) FROM blobs b WHERE b.first_stage_id = s.id)
FROM stages s
WHERE ?1 = '' OR s.run_id = ?1
ORDER BY s.id)sql",
                          "computing disk use");
    s.Text(1, run_id);
    std::vector<StageUsage> usage;
    while (s.Step()) {
      usage.push_back(StageUsage{s.ColInt(0), s.ColText(1), s.ColText(2),
                                 static_cast<uint64_t>(s.ColInt(3)),
                                 static_cast<uint64_t>(s.ColInt(4)),
                                 static_cast<uint64_t>(s.ColInt(5))});
    }
    return usage;
  }

 private:
  Statement Prepare(const std::string& sql, const std::string& purpose) {
    return connection_->Prepare(sql, purpose);
  }

  // The first column of every row of `sql`.
  std::vector<std::string> Digests(const std::string& sql,
                                   const std::string& purpose) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    Statement s = Prepare(sql, purpose);
    std::vector<std::string> out;
    while (s.Step()) out.push_back(s.ColText(0));
    return out;
  }

  void Exec(const std::string& sql, const std::string& purpose) {
    connection_->Exec(sql, purpose);
  }

  Error NotFound(const std::string& what) const {
    return Error(ErrorCode::kNotFound,
                 what + " does not exist in lineage db " + file_);
  }

  int64_t StageOfTrial(int64_t trial_id) {
    Statement s = Prepare("SELECT stage_id FROM trials WHERE id = ?",
                          "looking up a trial");
    s.Int(1, trial_id);
    if (!s.Step()) throw NotFound("trial " + std::to_string(trial_id));
    return s.ColInt(0);
  }

  // Adds the blob to the accounting (first recording wins) and checks that
  // its size agrees with earlier recordings.
  void AccountBlob(const std::string& digest, uint64_t size, int64_t stage_id) {
    RequireDigest(digest, "blob");
    Prepare(
        "INSERT OR IGNORE INTO blobs (digest, size, first_stage_id, "
        "created_at) VALUES (?, ?, ?, ?)",
        "accounting blob " + digest)
        .Text(1, digest)
        .Int(2, static_cast<int64_t>(size))
        .OptionalId(3, stage_id)
        .Real(4, Now())
        .Run();
    Statement s = Prepare("SELECT size FROM blobs WHERE digest = ?",
                          "reading blob " + digest);
    s.Text(1, digest);
    if (s.Step() && static_cast<uint64_t>(s.ColInt(0)) != size) {
      throw Error(ErrorCode::kInvalidArgument,
                  "blob " + digest + " was recorded with " +
                      std::to_string(s.ColInt(0)) + " bytes, now with " +
                      std::to_string(size));
    }
  }

  // Checkpoint row (first recording), this recording, and byte accounting.
  // Returns true if the checkpoint was new. Runs inside a transaction.
  bool RecordCheckpointRows(const std::string& digest, int64_t trial_id,
                            int epoch, int64_t stage_id,
                            const BlobList& blobs) {
    const bool added = Prepare(
                           "INSERT OR IGNORE INTO checkpoints "
                           "(digest, trial_id, epoch, created_at) "
                           "VALUES (?, ?, ?, ?)",
                           "recording checkpoint " + digest)
                           .Text(1, digest)
                           .Int(2, trial_id)
                           .Int(3, epoch)
                           .Real(4, Now())
                           .Run() > 0;
    if (!added) {
      // Recorded again (the same weights from a new epoch): kept again.
      Prepare("UPDATE checkpoints SET released_at = 0 WHERE digest = ?",
              "keeping checkpoint " + digest)
          .Text(1, digest)
          .Run();
    }
    Prepare(
        "INSERT OR IGNORE INTO checkpoint_records (digest, trial_id, epoch) "
        "VALUES (?, ?, ?)",
        "recording checkpoint " + digest)
        .Text(1, digest)
        .Int(2, trial_id)
        .Int(3, epoch)
        .Run();
    for (const auto& [blob, size] : blobs) {
      AccountBlob(blob, size, stage_id);
      Prepare(
          "INSERT OR IGNORE INTO checkpoint_blobs (checkpoint, blob) "
          "VALUES (?, ?)",
          "linking checkpoint " + digest + " to its blobs")
          .Text(1, digest)
          .Text(2, blob)
          .Run();
    }
    return added;
  }

  // Breadth first from `node`; every node is expanded once, so each edge is
  // returned once and cycles end.
  std::vector<Edge> Traverse(const std::string& node, int depth,
                             bool upstream) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    const std::string sql =
        std::string("SELECT src, dst, kind, attrs FROM edges WHERE ") +
        (upstream ? "src" : "dst") + " = ? ORDER BY rowid";
    std::vector<Edge> edges;
    std::set<std::string> visited = {node};
    std::vector<std::string> frontier = {node};
    for (int hop = 0; hop < depth && !frontier.empty(); ++hop) {
      std::vector<std::string> next;
      for (const std::string& current : frontier) {
        Statement s = Prepare(sql, "following the lineage of " + current);
        s.Text(1, current);
        while (s.Step()) {
          Edge edge{s.ColText(0), s.ColText(1), s.ColText(2), s.ColJson(3)};
          const std::string& other = upstream ? edge.dst : edge.src;
          if (visited.insert(other).second) next.push_back(other);
          edges.push_back(std::move(edge));
        }
      }
      frontier = std::move(next);
    }
    return edges;
  }

  std::recursive_mutex mu_;  // serialises every call on the connection
  std::unique_ptr<sql::Connection> connection_;
  const std::string file_;
};

}  // namespace

std::unique_ptr<LineageDb> LineageDb::Open(const std::filesystem::path& file) {
  auto lineage = std::make_unique<SqliteLineageDb>(
      sql::Connection::Open(file, /*busy_timeout_ms=*/10000));
  lineage->Migrate();
  return lineage;
}

}  // namespace baton::store
