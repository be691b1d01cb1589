#pragma once

// The JSON shapes of runs, stages, trials and lineage, shared by the CLI's
// --json output and the REST API, so both say the same thing.
#include <set>
#include <string>
#include <vector>

#include "api/internal/cli.h"
#include "common/json_util.h"
#include "store/lineage_db.h"

namespace baton::api {

// A trial with its epochs and its objective: the final value and the best so far.
struct TrialView {
  store::TrialRecord trial;
  std::vector<store::EpochRecord> epochs;
  bool has_final = false;
  double final_value = 0;
  double best_value = 0;
  // Checkpoints of these epochs (or the initial weights) that `store gc`
  // released: their rows stay, their weights are gone.
  std::set<std::string> released;
};

// Trials of a stage ranked by its objective: succeeded trials by their final
// value (init_from's ranking), then the rest by their best value so far, then
// those with no epochs. A cached stage shows the trials it reuses.
std::vector<TrialView> RankedTrials(StoreHandle& store, const store::StageRecord& stage);
Json TrialJson(const TrialView& v);
Json RunJson(const store::RunRecord& run);
// The run with every stage (StageJson).
Json RunDetailJson(StoreHandle& store, const store::RunRecord& run);
// A stage's state, what its selectors resolved to (init_from), its model
// (train) and comparison (train with compare).
Json StageJson(StoreHandle& store, const store::StageRecord& stage);
// StageJson plus the ablation table (ablate) and the ranked trials.
Json StageDetailJson(StoreHandle& store, const store::StageRecord& stage);
// An ablation stage's results, or {} before it finished.
Json AblationJson(StoreHandle& store, const store::StageRecord& stage);
// A train stage's comparison of initialisations, or null.
Json ComparisonJson(StoreHandle& store, const store::StageRecord& stage);
// Lineage of `id` (a typed node id, a run id, or a checkpoint or artifact
// digest): {node, direction, edges, nodes, initialized_from}.
Json LineageJson(StoreHandle& store, const std::string& id, bool downstream, int depth);

// The stage whose trials a stage shows: the one it reused on a cache hit.
int64_t EffectiveStageId(const store::StageRecord& stage);
// The stage's objective with its default ({"metric": "val_accuracy", "mode": "max"}).
Json StageObjective(const store::StageRecord& stage);
// For the web UI (web_views.cpp). A run's summary for the runs list: stage
// counts and states, the best objective of its first tune stage and where
// its train stage's weights came from.
Json RunSummaryJson(StoreHandle& store, const store::RunRecord& run);
// Every trial of a stage with its metric history as columns, one answer
// for all trials (a tune stage's curves and parallel coordinates).
Json StageMetricsJson(StoreHandle& store, const store::StageRecord& stage);
// A command stage's logs (cli_logs.cpp): {"run_id", "stage", "type",
// "status", "attempt", "cached_from_run" (on a cache hit), "stdout",
// "stderr" (the last 8 MiB of each, invalid UTF-8 replaced), "stdout_blob",
// "stderr_blob", "stdout_bytes", "stderr_bytes"}. Error(kNotFound) for a
// stage that kept none.
Json StageLogsJson(StoreHandle& store, const store::StageRecord& stage);
// A trial as in its stage's trial list, with its run, stage and objective.
Json TrialPageJson(StoreHandle& store, int64_t trial_id);

}  // namespace baton::api
