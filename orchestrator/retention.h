#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "store/lineage_db.h"

namespace baton::orchestrator {

// Which recorded checkpoints the store keeps (DESIGN.md, "Weight
// initialisation from trials", last paragraph). A tune or ablate stage with
//   "checkpoints": {"keep": {"best_k": K, "last_k": L}}
// keeps, per trial, its K best epochs by the stage objective and its L last
// epochs; an absent key counts as 0. Whatever the policy, these are kept:
//  - every checkpoint of a run that has not finished (it may still write,
//    resume or resolve an init_from), and of a pinned run;
//  - every checkpoint of a stage without a keep policy (train stages, and
//    tune or ablate stages that do not ask), and of a stage not finished;
//  - demand: every checkpoint of a stage that a stage of an unfinished run
//    names in init_from, hyperparameters.from or base.from and has not
//    resolved yet (following cache hits to the stage that ran);
//  - references: checkpoints a stage resolved as init_from or a comparison
//    variant, initialized_from edges, and the outputs of ablation variants.
// A trial's initial weights count as its epoch -1: kept only for one of the
// reasons above.

// A checkpoint retention releases, where it was first seen in the lineage.
struct ReleasedCheckpoint {
  std::string digest;
  std::string run_id;
  std::string stage;      // the stage's name
  int64_t trial_id = 0;
  int trial_number = 0;
  int epoch = 0;          // -1: a trial's initial weights
};

// Why a checkpoint stays, as PlanRetention explains it (the words the API
// and the web UI show).
enum class KeptBecause {
  kRunUnfinished,   // "run_unfinished": its run may still write, resume or resolve
  kPinned,          // "pinned": its run is pinned
  kNoPolicy,        // "no_policy": its stage has no checkpoints.keep
  kStageUnfinished, // "stage_unfinished"
  kDemanded,        // "demanded": an unfinished run's stage has yet to choose from its stage
  kBest,            // "best_k": among its trial's best epochs
  kLast,            // "last_k": among its trial's last epochs
  kInitFrom,        // "init_from": a stage started from it (init_from, compare, initialized_from)
  kAblationOutput,  // "ablation_output": the model an ablation variant trained
};
const char* KeptBecauseName(KeptBecause why);

struct RetentionPlan {
  // Checkpoints to release now (none already released), each once: newest
  // run first, then stage, trial and epoch order.
  std::vector<ReleasedCheckpoint> release;
  uint64_t kept = 0;  // distinct recorded checkpoints that stay
  // For the digests PlanRetention was asked to explain that stay (and are
  // not released already): every reason that keeps them.
  std::map<std::string, std::set<KeptBecause>> kept_because;
};

// Reads the lineage and decides; changes nothing. Run it inside
// LineageDb::InTransaction (or ReadSnapshot) to decide on one consistent
// view. `explain`: checkpoint digests whose reasons to stay to collect in
// kept_because (none when null: gc does not need them).
RetentionPlan PlanRetention(store::LineageDb& db, const std::unordered_set<std::string>* explain = nullptr);

// Epoch numbers of one trial that best_k and last_k keep. Epochs whose
// `metric` is missing or not a finite number are never among the best; ties
// keep the earlier epoch. `mode` is "max" or "min".
std::set<int> EpochsToKeep(const std::vector<store::EpochRecord>& epochs, const std::string& metric,
                           const std::string& mode, int best_k, int last_k);

}  // namespace baton::orchestrator
