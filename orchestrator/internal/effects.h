#pragma once

// How the run state machine (run_state.h) touches the world: it reads
// committed lineage and blobs through RunReads and changes anything only by
// handing an Effect to an EffectSink, one at a time, in the order it decided
// them. The Coordinator's sink applies each at once (StoreEffects); a test's
// sink may record them too. Not for use outside orchestrator/.
//
// Why effects are applied as they are decided rather than returned as a
// list at the end of a call: SQLite gives a new trial its id, and the next
// decision of the same call names it (edges, the task handed out next); and
// a stage that starts because another just finished ranks that stage's
// trials by the statuses just written. Applying in order keeps both true
// with no placeholder ids and no overlay of unwritten rows.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/json_util.h"
#include "orchestrator/events.h"
#include "store/blob_store.h"
#include "store/lineage_db.h"

namespace baton::orchestrator {

// When a decision is made. `wall`: seconds since the Unix epoch (what the
// lineage records, what retry backoff and stage budgets count in);
// `steady`: never jumps (leases).
struct Instant {
  double wall = 0;
  std::chrono::steady_clock::time_point steady;
};

// The blobs of a checkpoint or dataset manifest with their sizes, the
// manifest first.
using BlobList = std::vector<std::pair<std::string, uint64_t>>;

namespace effect {
struct UpdateRun { store::RunRecord run; };
struct UpdateStage { store::StageRecord stage; };
struct AddTrial { store::TrialRecord trial; };  // applied: the trial's new id
struct UpdateTrial { store::TrialRecord trial; };
struct AddEdge { store::Edge edge; };
struct RecordEpoch { store::EpochRecord epoch; BlobList blobs; };
struct RecordCheckpoint { std::string digest; int64_t trial_id = 0; int epoch = -1; BlobList blobs; };
struct PutArtifact { std::string digest, kind; int64_t stage_id = 0; Json meta; BlobList blobs; };
struct PutBlob { std::string bytes; };  // applied: the blob's digest
struct Emit { Event event; };
struct CrashPoint { const char* name = ""; };  // common/crash_point.h
struct Wake {};  // a NextTask that waits may now find a task or the end
// Puts the files of "files" manifest `manifest` back under folder `dest`
// where they are missing or differ (a cached command stage's outputs).
struct CheckoutFiles { std::string manifest, dest; };
}  // namespace effect

using Effect = std::variant<effect::UpdateRun, effect::UpdateStage, effect::AddTrial, effect::UpdateTrial,
                            effect::AddEdge, effect::RecordEpoch, effect::RecordCheckpoint, effect::PutArtifact,
                            effect::PutBlob, effect::Emit, effect::CrashPoint, effect::Wake, effect::CheckoutFiles>;

// One line naming an effect, for tests and logs: "update_trial 7 running".
std::string Describe(const Effect& effect);

// What applying an effect gave back: AddTrial's id, PutBlob's digest.
struct Applied {
  int64_t id = 0;
  std::string digest;
};

class EffectSink {
 public:
  virtual ~EffectSink() = default;
  // Applies `effect` now. Throws what the store throws (a full disk:
  // Error(kResourceExhausted)).
  virtual Applied Apply(Effect effect) = 0;
  // Applies the effects `fn` hands over as one lineage transaction: all or
  // none. If `fn` or a write throws, the writes are rolled back and the
  // exception is rethrown (events and wakes already applied stay).
  virtual void Atomically(const std::function<void()>& fn) = 0;
};

// Read-only access to what is committed.
class RunReads {
 public:
  virtual ~RunReads() = default;
  virtual std::optional<store::RunRecord> Run(const std::string& id) = 0;
  virtual std::vector<store::StageRecord> Stages(const std::string& run_id) = 0;
  virtual std::optional<store::StageRecord> Stage(int64_t id) = 0;
  virtual std::optional<store::StageRecord> CachedStage(const std::string& cache_key) = 0;
  virtual std::vector<store::TrialRecord> Trials(int64_t stage_id) = 0;  // by number
  virtual std::optional<store::TrialRecord> Trial(int64_t id) = 0;
  virtual std::vector<store::EpochRecord> Epochs(int64_t trial_id) = 0;  // by epoch
  virtual std::vector<store::Edge> Upstream(const std::string& node, int depth) = 0;
  // The bytes of checkpoint `digest` recorded by stage `stage_id`.
  virtual uint64_t CheckpointBytes(const std::string& digest, int64_t stage_id) = 0;
  // When gc released checkpoint `digest`; 0 if it did not.
  virtual double CheckpointReleasedAt(const std::string& digest) = 0;
  virtual bool HasBlob(const std::string& digest) = 0;
  // Error(kNotFound) when the store lacks it.
  virtual std::string Blob(const std::string& digest) = 0;
};

// RunReads over a lineage DB and a blob store.
class StoreReads : public RunReads {
 public:
  StoreReads(store::LineageDb& db, store::BlobStore& blobs) : db_(db), blobs_(blobs) {}
  std::optional<store::RunRecord> Run(const std::string& id) override { return db_.GetRun(id); }
  std::vector<store::StageRecord> Stages(const std::string& run_id) override { return db_.GetStages(run_id); }
  std::optional<store::StageRecord> Stage(int64_t id) override { return db_.GetStage(id); }
  std::optional<store::StageRecord> CachedStage(const std::string& key) override { return db_.FindCachedStage(key); }
  std::vector<store::TrialRecord> Trials(int64_t stage_id) override { return db_.GetTrials(stage_id); }
  std::optional<store::TrialRecord> Trial(int64_t id) override { return db_.GetTrial(id); }
  std::vector<store::EpochRecord> Epochs(int64_t trial_id) override { return db_.GetEpochs(trial_id); }
  std::vector<store::Edge> Upstream(const std::string& node, int depth) override { return db_.Upstream(node, depth); }
  uint64_t CheckpointBytes(const std::string& digest, int64_t stage_id) override {
    return db_.CheckpointBytes(digest, stage_id).first;
  }
  double CheckpointReleasedAt(const std::string& digest) override { return db_.CheckpointReleasedAt(digest); }
  bool HasBlob(const std::string& digest) override { return blobs_.Has(digest); }
  std::string Blob(const std::string& digest) override { return blobs_.Get(digest); }

 private:
  store::LineageDb& db_;
  store::BlobStore& blobs_;
};

// An EffectSink that applies to a lineage DB and a blob store, hands events
// to `on_event`, fires crash points and calls `on_wake`.
class StoreEffects : public EffectSink {
 public:
  StoreEffects(store::LineageDb& db, store::BlobStore& blobs, std::function<void(const Event&)> on_event,
               std::function<void()> on_wake)
      : db_(db), blobs_(blobs), on_event_(std::move(on_event)), on_wake_(std::move(on_wake)) {}
  Applied Apply(Effect effect) override;
  void Atomically(const std::function<void()>& fn) override { db_.InTransaction(fn); }

 private:
  void CheckoutFiles(const std::string& digest, const std::string& dest);

  store::LineageDb& db_;
  store::BlobStore& blobs_;
  std::function<void(const Event&)> on_event_;
  std::function<void()> on_wake_;
};

}  // namespace baton::orchestrator
