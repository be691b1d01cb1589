// Tuning decisions: the pruners' curves, stage budgets, ASHA promotions,
// synchronous rounds, TPE's late sampling and why a trial should stop
// (run_state.h).
#include "orchestrator/internal/run_state.h"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/internal/search.h"

namespace baton::orchestrator {

std::vector<TrialCurve> RunState::Curves(const Stage& stage) {
  std::vector<TrialCurve> curves;
  for (const Task* t : stage.tasks) {
    curves.push_back({t->rec.number, t->rec.status, t->values, t->promotions});
  }
  return curves;
}

void RunState::ApplyTimeout(Stage& stage) {
  const double now = Now();
  if (stage.typed->timeout_seconds <= 0 || stage.timed_out || !Is(stage.rec.status, StageStatus::kRunning)) return;
  if (now < stage.rec.started_at + stage.typed->timeout_seconds) return;
  // Optuna's semantics: no trial starts after the timeout; running ones finish.
  stage.timed_out = true;
  std::vector<Task*> skipped;
  for (Task* t : stage.tasks) {
    if (Is(t->rec.status, TrialStatus::kPending) && t->rec.attempts == 0) skipped.push_back(t);
  }
  Emit("stage_timeout", stage.rec.name, 0, -1, {{"timeout_seconds", stage.typed->timeout_seconds}, {"skipped", skipped.size()}});
  for (Task* t : skipped) {
    t->rec.status = Name(TrialStatus::kSkipped);
    t->rec.reason = "budget.timeout_seconds (" + Json(stage.typed->timeout_seconds).dump() + " s) ran out before it started";
    t->rec.finished_at = now;
    UpdateTrial(t->rec);
  }
  MaybeFinishStage(stage);
}

std::optional<AshaPromotion> RunState::PendingPromotion(const Stage& stage) {
  if (stage.typed->pruner.type != "asha" || stage.timed_out) return std::nullopt;
  auto curves = Curves(stage);
  auto promo = AshaNextPromotion(stage.asha, stage.objective().mode, curves);
  if (!promo) {
    // No more trials will come: if none reached the full budget, the best
    // paused trial of the highest rung goes on, so the study has a winner.
    bool draining = true, any_succeeded = false;
    for (const Task* t : stage.tasks) {
      if (!TrialFinished(t->rec.status)) draining = false;
      if (Is(t->rec.status, TrialStatus::kSucceeded)) any_succeeded = true;
    }
    if (!draining || any_succeeded) return std::nullopt;
    const std::vector<int> rungs = AshaRungs(stage.asha);
    for (int rung = static_cast<int>(rungs.size()) - 1; rung >= 0 && !promo; --rung) {
      const Task* best = nullptr;
      for (const Task* t : stage.tasks) {
        if (!Is(t->rec.status, TrialStatus::kPruned) || t->promotions != rung ||
            t->values.size() != static_cast<size_t>(rungs[rung])) {
          continue;
        }
        if (best == nullptr || stage.objective().Better(t->values.back(), best->values.back())) best = t;
      }
      if (best != nullptr) promo = AshaPromotion{best->rec.number, rung};
    }
  }
  return promo;
}

RunState::Task* RunState::Promotion(Stage& stage) {
  auto promo = PendingPromotion(stage);
  if (!promo) return nullptr;
  for (Task* t : stage.tasks) {
    if (t->rec.number == promo->number) {
      t->promotions = promo->rung + 1;
      t->promoted_at = AshaRungs(stage.asha)[promo->rung];
      t->rec.attempts = 0;  // max_attempts counts afresh for the new segment
      t->rec.reason = "promoted from rung " + std::to_string(promo->rung) + " (" +
                      std::to_string(t->promoted_at) + " epochs)";
      Emit("trial_promoted", stage.rec.name, t->rec.id, t->rec.number,
           {{"rung", promo->rung}, {"epochs", t->promoted_at}, {"checkpoint", t->last_checkpoint}});
      return t;
    }
  }
  return nullptr;
}

RunState::Task* RunState::Runnable(Stage& stage, double* earliest_retry) {
  const double now = Now();
  if (Task* t = Promotion(stage)) return t;
  // Synchronous rounds: the trials numbered [k*P, (k+1)*P) start only once
  // every trial of the earlier rounds has finished.
  int open_round = -1;
  if (stage.typed->synchronous) {
    for (const Task* t : stage.tasks) {
      if (TrialFinished(t->rec.status)) continue;
      int round = t->rec.number / stage.max_parallel;
      if (open_round < 0 || round < open_round) open_round = round;
    }
  }
  for (Task* t : stage.tasks) {
    if (!Is(t->rec.status, TrialStatus::kPending)) continue;
    if (open_round >= 0 && t->rec.number / stage.max_parallel != open_round) continue;
    if (t->not_before > now) {
      if (*earliest_retry == 0 || t->not_before < *earliest_retry) *earliest_retry = t->not_before;
      continue;
    }
    return t;
  }
  return nullptr;
}

void RunState::SampleLazily(Stage& stage, Task& t) {
  std::vector<TpeObservation> observed;
  for (const Task* o : stage.tasks) {
    if (o->values.empty() || (!Is(o->rec.status, TrialStatus::kSucceeded) && !Is(o->rec.status, TrialStatus::kPruned))) continue;
    Json params = Json::object();
    for (const auto& [k, v] : stage.typed->doc.at("search_space").items()) params[k] = o->rec.hyperparameters.at(k);
    observed.push_back({params, o->values.back()});
  }
  const uint64_t seed = DeriveSeed(pipeline_.seed, stage.rec.name + "/tpe/" + std::to_string(t.rec.number));
  Json hp = stage.typed->doc.value("hyperparameters", Json::object());
  Json point = SampleTpe(stage.typed->doc.at("search_space"), observed, stage.objective().mode, seed, stage.tpe);
  for (const auto& [k, v] : point.items()) hp[k] = v;
  t.rec.hyperparameters = hp;
  t.rec.task["hyperparameters"] = hp;
  t.rec.task["model"] = SubstituteModel(stage.typed->doc.at("model"), hp);
  if (AddModelFile(stage, t.rec.task)) {
    AddEdge(Node("trial", t.rec.id), Node("artifact", stage.model_file), "model_from");
  }
  t.sampled = true;
}

std::string RunState::PruneReason(Stage& stage, Task& t) {
  const int done = static_cast<int>(t.values.size());
  const int total = t.rec.task.value("epochs", 0);
  if (done >= total) return "";  // it finishes anyway
  auto fmt = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.4g", v);
    return std::string(buf);
  };
  if (stage.typed->pruner.type == "median") {
    MedianDecision d;
    if (!MedianStops(stage.median, stage.objective().mode, t.rec.number, t.values, Curves(stage), &d)) return "";
    return "median rule: best " + stage.objective().metric + " " + fmt(d.best) + " after " + std::to_string(done) +
           " epochs is worse than the median " + fmt(d.median) + " of " + std::to_string(d.compared) +
           " finished trials at that epoch";
  }
  if (stage.typed->pruner.type == "asha") {
    const std::vector<int> rungs = AshaRungs(stage.asha);
    for (int k = 0; k < static_cast<int>(rungs.size()); ++k) {
      if (rungs[k] != done || t.promotions != k) continue;
      auto curves = Curves(stage);
      if (AshaInTop(stage.asha, stage.objective().mode, t.rec.number, k, curves)) {
        t.promotions = k + 1;
        Emit("trial_promoted", stage.rec.name, t.rec.id, t.rec.number,
             {{"rung", k}, {"epochs", done}, {"checkpoint", t.last_checkpoint}, {"continued", true}});
        return "";
      }
      int reached = 0;
      for (const auto& c : curves) reached += c.values.size() >= static_cast<size_t>(done) ? 1 : 0;
      return "ASHA: paused at rung " + std::to_string(k) + " (" + std::to_string(done) + " epochs, " +
             stage.objective().metric + " " + fmt(t.values.back()) + "): not in the top 1/" +
             std::to_string(stage.asha.reduction_factor) + " of the " + std::to_string(reached) +
             " trials there so far";
    }
  }
  return "";
}

}  // namespace baton::orchestrator
