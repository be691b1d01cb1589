// The JSON the web UI needs beyond the CLI's views: a run's one-line
// summary for the runs list, every trial's metric history of a stage in one
// answer, and a trial with the run and stage it belongs to.
#include <map>
#include <set>

#include "api/internal/views.h"
#include "common/error.h"
#include "common/vocabulary.h"
#include "orchestrator/stage_spec.h"

namespace baton::api {

int64_t EffectiveStageId(const store::StageRecord& s) { return s.cached_from != 0 ? s.cached_from : s.id; }

Json StageObjective(const store::StageRecord& s) { return orchestrator::RecordedObjective(s.spec, s.resolved).ToJson(); }

Json RunSummaryJson(StoreHandle& store, const store::RunRecord& run) {
  Json out = {{"stages_total", 0}, {"stages_finished", 0}, {"stages", Json::array()}, {"best", nullptr},
              {"init_from", nullptr}};
  int total = 0, finished = 0;
  for (const auto& s : store.db->GetStages(run.id)) {
    ++total;
    finished += StageFinished(s.status) ? 1 : 0;
    out["stages"].push_back({{"name", s.name}, {"type", s.type}, {"status", s.status}});
    if (Is(s.type, StageType::kTune) && out["best"].is_null()) {
      const Json objective = StageObjective(s);
      for (const auto& v : RankedTrials(store, s)) {
        if (!v.has_final) continue;
        out["best"] = {{"stage", s.name}, {"metric", objective["metric"]}, {"mode", objective["mode"]},
                       {"value", Is(v.trial.status, TrialStatus::kSucceeded) ? v.final_value : v.best_value},
                       {"trial_id", v.trial.id}, {"trial_number", v.trial.number}};
        break;
      }
    }
    if (Is(s.type, StageType::kTrain) && s.resolved.contains("init_from") && s.resolved["init_from"].is_object()) {
      const Json& from = s.resolved["init_from"];
      out["init_from"] = {{"stage", from.value("stage", "")}, {"trial_id", from.value("trial_id", Json())},
                          {"trial_number", from.value("trial_number", Json())}, {"epoch", from.value("epoch", Json())},
                          {"checkpoint", from.value("checkpoint", "")}};
    }
  }
  out["stages_total"] = total;
  out["stages_finished"] = finished;
  return out;
}

Json StageMetricsJson(StoreHandle& store, const store::StageRecord& stage) {
  const bool asha = Is(stage.type, StageType::kTune) &&
                    orchestrator::ParseStageSpec(stage.name, stage.spec).pruner.type == "asha";
  Json out = {{"run_id", stage.run_id}, {"stage", stage.name}, {"objective", StageObjective(stage)},
              {"metrics", Json::array()}, {"trials", Json::array()}};
  std::set<std::string> names;
  for (const auto& t : store.db->GetTrials(EffectiveStageId(stage))) {
    const auto epochs = store.db->GetEpochs(t.id);
    std::map<std::string, Json> values;
    for (const auto& e : epochs) {
      for (const auto& [k, v] : e.metrics.items()) {
        if (!values.count(k)) values[k] = Json::array();
        names.insert(k);
      }
    }
    Json row = {{"trial_id", t.id}, {"number", t.number}, {"status", t.status}, {"reason", t.reason},
                {"hyperparameters", t.hyperparameters}, {"epochs", Json::array()}, {"seconds", Json::array()},
                {"values", Json::object()}, {"promotions", Json::array()}};
    if (t.task.contains("variant")) row["variant"] = t.task["variant"];
    if (t.task.contains("repeat")) row["repeat"] = t.task["repeat"];
    for (const auto& e : epochs) {
      row["epochs"].push_back(e.epoch);
      row["seconds"].push_back(e.seconds);
      for (auto& [k, column] : values) column.push_back(e.metrics.contains(k) ? e.metrics[k] : Json());
    }
    for (auto& [k, column] : values) row["values"][k] = std::move(column);
    if (asha) {
      for (const auto& edge : store.db->Upstream("trial:" + std::to_string(t.id), 1)) {
        if (edge.kind == "resumed_from" && edge.attrs.value("promoted", false)) {
          row["promotions"].push_back(edge.attrs.value("start_epoch", 0));
        }
      }
    }
    out["trials"].push_back(std::move(row));
  }
  for (const auto& n : names) out["metrics"].push_back(n);
  return out;
}

Json TrialPageJson(StoreHandle& store, int64_t trial_id) {
  auto trial = store.db->GetTrial(trial_id);
  if (!trial) throw Error(ErrorCode::kNotFound, "no trial " + std::to_string(trial_id));
  auto stage = store.db->GetStage(trial->stage_id);
  if (!stage) throw Error(ErrorCode::kNotFound, "trial " + std::to_string(trial_id) + " has no stage");
  // The stage's ranking decides final/best objective; take this trial's row.
  for (const auto& v : RankedTrials(store, *stage)) {
    if (v.trial.id != trial_id) continue;
    Json out = TrialJson(v);
    out["run_id"] = stage->run_id;
    out["stage"] = stage->name;
    out["stage_type"] = stage->type;
    out["objective"] = StageObjective(*stage);
    out["started_at"] = v.trial.started_at;
    out["finished_at"] = v.trial.finished_at;
    return out;
  }
  throw Error(ErrorCode::kNotFound, "no trial " + std::to_string(trial_id));
}

}  // namespace baton::api
