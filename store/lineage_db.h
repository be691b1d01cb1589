#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/json_util.h"

namespace baton::store {

// Times are seconds since the Unix epoch (double, sub-second precision);
// 0 means "not yet". Statuses and stage types are the words of
// common/vocabulary.h (the lists below are checked against it by
// common.Vocabulary.TheLineageDbDocumentsEveryWord).

struct RunRecord {
  std::string id;           // e.g. "20261128-165501-3fa2"
  std::string pipeline_id;  // digest of the pipeline's canonical JSON
  std::string name;         // the pipeline's name
  std::string status;       // pending | running | succeeded | failed | cancelled | interrupted
  double created_at = 0;
  double finished_at = 0;
  std::string error;
};

struct StageRecord {
  int64_t id = 0;  // assigned by AddStage
  std::string run_id;
  std::string name;    // key in the pipeline's "stages" map
  std::string type;    // prepare | tune | ablate | train | command
  std::string status;  // pending | running | succeeded | failed | cached | skipped | cancelled | interrupted
  std::string cache_key;
  int64_t cached_from = 0;  // stage whose results this one reuses; 0 if none
  std::string output;       // digest of the stage's output blob ("" until done)
  Json spec = Json::object();      // the stage's resolved spec
  Json resolved = Json::object();  // what selectors resolved to (init_from, ...)
  double started_at = 0;
  double finished_at = 0;
  std::string error;
};

struct TrialRecord {
  int64_t id = 0;  // assigned by AddTrial; also the worker task id
  int64_t stage_id = 0;
  int number = 0;  // 0-based within the stage
  std::string kind;  // prepare | train | command
  Json hyperparameters = Json::object();
  Json task = Json::object();  // the task sent to a worker
  int64_t seed = 0;
  std::string status;  // pending | running | succeeded | failed | diverged | pruned | skipped | cancelled
  int attempts = 0;
  std::string reason;              // why it failed, diverged or was pruned
  std::string initial_checkpoint;  // weights before the first epoch
  std::string output;              // final checkpoint or dataset artifact
  double started_at = 0;
  double finished_at = 0;
  // Where each attempt ran, one object per attempt in order: {"attempt",
  // "worker", "executor", "started_at"} and what the executor adds (Slurm:
  // "slurm_job_id").
  Json placements = Json::array();
};

struct EpochRecord {
  int64_t trial_id = 0;
  int epoch = 0;  // 0-based
  Json metrics = Json::object();
  std::string checkpoint;  // manifest digest
  double seconds = 0;      // wall time of this epoch's training + evaluation
  double created_at = 0;
};

// A lineage edge: `src` was made from / by `dst`. Node ids are typed strings:
// "run:<id>", "stage:<id>", "trial:<id>", "checkpoint:<digest>",
// "artifact:<digest>". Kinds: derived_from, initialized_from, trained_on,
// hyperparameters_from, part_of, model_from (a stage or trial whose model is
// a TorchScript file -> that file's artifact, kind "model_file").
struct Edge {
  std::string src;
  std::string dst;
  std::string kind;
  Json attrs = Json::object();
};

// Disk use of one stage's checkpoints and artifacts.
struct StageUsage {
  int64_t stage_id = 0;
  std::string run_id;
  std::string stage_name;
  uint64_t checkpoints = 0;        // distinct checkpoints recorded
  uint64_t referenced_bytes = 0;   // distinct blobs they reference
  uint64_t new_bytes = 0;          // blobs first stored by this stage
};

// Lineage metadata in SQLite (WAL, synchronous=FULL, busy timeout 10 s,
// versioned migrations applied on Open). One LineageDb may be used from many
// threads: writes are serialised internally; reads run alongside each other
// and alongside writes, each seeing what was committed when it began (reads
// on the thread inside InTransaction see that transaction's writes too).
// Several processes may open the same file; SQLite's locking applies.
class LineageDb {
 public:
  static std::unique_ptr<LineageDb> Open(const std::filesystem::path& file);
  virtual ~LineageDb() = default;

  // Runs `fn` in one transaction (nested calls join the outer one). If `fn`
  // throws, everything it wrote is rolled back and the exception rethrown.
  virtual void InTransaction(const std::function<void()>& fn) = 0;
  // Runs `fn` with every read that this thread makes through this LineageDb
  // on one snapshot: what was committed when the first of them began. That
  // makes the reads of, e.g., one API request agree with each other, and
  // costs less than a snapshot per call. Writes are not held up; those made
  // inside `fn`, by this thread too, are not seen by its later reads. Inside
  // InTransaction (reads see the transaction) or nested, just runs `fn`.
  virtual void ReadSnapshot(const std::function<void()>& fn) = 0;
  virtual int SchemaVersion() = 0;

  // Pipelines: stored by id (digest of canonical JSON); idempotent.
  virtual void PutPipeline(const std::string& id, const std::string& name,
                           const Json& spec) = 0;
  virtual std::optional<Json> GetPipeline(const std::string& id) = 0;
  // Stored pipelines, newest first, `limit` of them after skipping `offset`.
  struct PipelineSummary {
    std::string id;
    std::string name;
    double created_at = 0;
  };
  virtual std::vector<PipelineSummary> ListPipelines(int limit, int offset = 0) = 0;

  // Runs.
  virtual void CreateRun(const RunRecord& run) = 0;
  virtual void UpdateRun(const RunRecord& run) = 0;  // status, finished_at, error
  virtual std::optional<RunRecord> GetRun(const std::string& id) = 0;
  // Newest first.
  virtual std::vector<RunRecord> ListRuns(int limit = 100) = 0;
  // An Idempotency-Key and the run it created (of pipeline `pipeline_id`).
  // A key names one run for good: putting it again keeps the first run.
  struct IdempotencyKey {
    std::string pipeline_id;
    std::string run_id;
    double created_at = 0;
  };
  virtual void PutIdempotencyKey(const std::string& key, const std::string& pipeline_id,
                                 const std::string& run_id) = 0;
  virtual std::optional<IdempotencyKey> GetIdempotencyKey(const std::string& key) = 0;

  // Stages.
  virtual int64_t AddStage(const StageRecord& stage) = 0;
  virtual void UpdateStage(const StageRecord& stage) = 0;  // all mutable fields
  virtual std::optional<StageRecord> GetStage(int64_t id) = 0;
  virtual std::vector<StageRecord> GetStages(const std::string& run_id) = 0;
  // The oldest succeeded stage (not itself a cache hit) with this cache key.
  virtual std::optional<StageRecord> FindCachedStage(const std::string& cache_key) = 0;

  // Trials (one per task: a tuning trial, a prepare task, a training run).
  virtual int64_t AddTrial(const TrialRecord& trial) = 0;
  virtual void UpdateTrial(const TrialRecord& trial) = 0;  // all mutable fields
  virtual std::optional<TrialRecord> GetTrial(int64_t id) = 0;
  virtual std::vector<TrialRecord> GetTrials(int64_t stage_id) = 0;  // by number

  // Records one finished epoch of a trial and its checkpoint: the epoch row,
  // the checkpoint row, byte accounting of its blobs (`blobs` = (digest, size)
  // of every tensor blob plus the manifest blob itself) and the edge
  // checkpoint -> trial (derived_from). Idempotent for the same
  // (trial_id, epoch, checkpoint); a different checkpoint for an existing
  // epoch throws Error(kConflict).
  virtual void RecordEpoch(const EpochRecord& epoch,
                           const std::vector<std::pair<std::string, uint64_t>>& blobs) = 0;
  virtual std::vector<EpochRecord> GetEpochs(int64_t trial_id) = 0;  // by epoch

  // Records a checkpoint outside an epoch (a trial's initial weights) with the
  // same accounting as RecordEpoch. Idempotent. The derived_from edge is added
  // only on the checkpoint's first recording (weights copied from another
  // trial stay derived from that trial; link them with initialized_from).
  virtual void RecordCheckpoint(const std::string& digest, int64_t trial_id,
                                int epoch,  // -1 for initial weights
                                const std::vector<std::pair<std::string, uint64_t>>& blobs) = 0;
  // (trial_id, epoch) of a checkpoint's first recording, if known.
  virtual std::optional<std::pair<int64_t, int>> FindCheckpoint(const std::string& digest) = 0;
  // Digests of the recorded checkpoints whose blobs include `blob` (a tensor
  // blob, or a manifest: each checkpoint lists its own), sorted, at most
  // `limit` of them. Throws Error(kInvalidArgument) for a negative limit.
  virtual std::vector<std::string> CheckpointsWithBlob(const std::string& blob, int limit) = 0;

  // Artifacts (prepared datasets, TorchScript model files): idempotent by digest.
  virtual void PutArtifact(const std::string& digest, const std::string& kind,
                           int64_t stage_id, const Json& meta,
                           const std::vector<std::pair<std::string, uint64_t>>& blobs) = 0;
  // {"digest", "kind", "stage_id" (0 if none), "meta", "created_at"}.
  virtual std::optional<Json> GetArtifact(const std::string& digest) = 0;

  // Edges; AddEdge is idempotent on (src, dst, kind).
  virtual void AddEdge(const Edge& edge) = 0;
  // Edges reachable from `node` following src -> dst (upstream) or
  // dst -> src (downstream), breadth first, at most `depth` hops.
  virtual std::vector<Edge> Upstream(const std::string& node, int depth = 64) = 0;
  virtual std::vector<Edge> Downstream(const std::string& node, int depth = 64) = 0;

  // Bytes of a recorded checkpoint (its tensor blobs and manifest) and how
  // many of them were first recorded by stage `stage_id`, i.e. what storing it
  // there cost. {0, 0} for an unknown checkpoint.
  virtual std::pair<uint64_t, uint64_t> CheckpointBytes(const std::string& digest, int64_t stage_id) = 0;
  // The blobs a recorded checkpoint lists (its manifest and its tensors'
  // blobs, each once) with their sizes, sorted by digest; empty for an
  // unknown one.
  virtual std::vector<std::pair<std::string, uint64_t>> CheckpointBlobs(const std::string& digest) = 0;
  // Bytes of a recorded artifact's blobs (its manifest among them); 0 for
  // an unknown one.
  virtual uint64_t ArtifactBytes(const std::string& digest) = 0;

  // Disk use per stage, oldest first; all runs if `run_id` is empty.
  virtual std::vector<StageUsage> Usage(const std::string& run_id = "") = 0;
  // Every blob digest the lineage refers to: checkpoints (manifests) and
  // their tensor blobs, artifacts and theirs, stage outputs (study and
  // ablation results), resolved comparison tables and command stages'
  // stored stdout and stderr (resolved "logs"). What gc must keep.
  // Released checkpoints (ReleaseCheckpoints) and their blobs are not
  // referred to, unless a kept record also names the blob.
  virtual std::vector<std::string> ReferencedBlobs() = 0;
  // Digests of every recorded checkpoint that is not released, sorted (each
  // names its manifest blob).
  virtual std::vector<std::string> ListCheckpoints() = 0;
  // Digests of every recorded artifact, sorted (each names its manifest blob).
  virtual std::vector<std::string> ListArtifacts() = 0;
  // What in the lineage refers to `blob`, as node ids, sorted, at most
  // `limit` of them: "checkpoint:<digest>" and "artifact:<digest>" (the
  // manifest is that blob or lists it), "trial:<id>" (its output, initial
  // weights or a recorded checkpoint), "stage:<id>" (its output, comparison
  // table or an artifact it made). Empty for a blob nothing refers to.
  // Throws Error(kInvalidArgument) for a negative limit.
  virtual std::vector<std::string> BlobReferrers(const std::string& blob, int limit) = 0;

  // Retention (orchestrator/retention.h decides, `store gc` applies). A
  // pinned run keeps every checkpoint. Pinning is idempotent; both throw
  // Error(kNotFound) for an unknown run.
  virtual void PinRun(const std::string& run_id) = 0;
  virtual void UnpinRun(const std::string& run_id) = 0;
  // Ids of the pinned runs, sorted.
  virtual std::vector<std::string> PinnedRuns() = 0;
  // Marks recorded checkpoints released: their rows stay for history, but
  // ListCheckpoints and ReferencedBlobs leave them out, so gc may free their
  // blobs. Unknown and already released digests are ignored. Recording a
  // released checkpoint again (RecordEpoch, RecordCheckpoint) keeps it again.
  virtual void ReleaseCheckpoints(const std::vector<std::string>& digests) = 0;
  // When a checkpoint was released (seconds since the Unix epoch); 0 if it
  // is kept or unknown.
  virtual double CheckpointReleasedAt(const std::string& digest) = 0;
  // Digests of the released checkpoints, sorted.
  virtual std::vector<std::string> ReleasedCheckpoints() = 0;
  // A number that grows after each committed write that recorded, recorded
  // again or released a checkpoint, or pinned or unpinned a run, through
  // this LineageDb (another process cannot write meanwhile: the blob store
  // is open in one at a time). An answer built from checkpoint rows or pins
  // may be kept while it has not moved; read it before the reads the answer
  // is built from.
  virtual uint64_t RetentionVersion() const = 0;
  // Every edge of `kind` ("initialized_from", ...), in insertion order.
  virtual std::vector<Edge> EdgesOfKind(const std::string& kind) = 0;
};

}  // namespace baton::store
