#pragma once

#include <optional>
#include <string>
#include <vector>

namespace baton::orchestrator {

// One trial of a study as the pruners see it.
struct TrialCurve {
  int number = 0;
  std::string status;          // pending | running | succeeded | pruned | failed | diverged
  std::vector<double> values;  // the objective after each epoch; index = epoch (0-based)
  // ASHA: how many rungs the trial has been allowed past (promoted from).
  int promotions = 0;
};

// The median stopping rule (Optuna's MedianPruner, Maggy's early stopping):
// once the trial has run `min_resource` epochs and `n_startup_trials` trials
// of the study have finished, stop it if its best value so far is worse than
// the median of the finished trials' values at the same epoch.
struct MedianRule {
  int min_resource = 1;
  int n_startup_trials = 5;
};
// `values` are the trial's own values up to the epoch just reported;
// `others` the rest of the study (the trial itself may be among them; it is
// skipped by `number`).
// What the rule compared, for the trial's reason; filled when it stops.
struct MedianDecision {
  double best = 0;    // the trial's best value so far
  double median = 0;  // of the finished trials at this epoch
  int compared = 0;   // how many finished trials reached this epoch
};
bool MedianStops(const MedianRule& rule, const std::string& mode, int number,
                 const std::vector<double>& values, const std::vector<TrialCurve>& others,
                 MedianDecision* decision = nullptr);

// Asynchronous successive halving (Li et al., "A System for Massively
// Parallel Hyperparameter Tuning"): rungs at min_resource * eta^k epochs
// below max_resource. A trial reaching a rung continues if it is in the top
// 1/eta of every trial that reached that rung so far, and pauses (status
// pruned) otherwise; a paused trial is promoted later, from its rung
// checkpoint, once enough trials reached the rung to put it in the top 1/eta.
struct AshaRule {
  int min_resource = 1;
  int max_resource = 1;
  int reduction_factor = 3;
};
// Epoch counts of the rungs, ascending, all < max_resource.
std::vector<int> AshaRungs(const AshaRule& rule);
// True if trial `number` is in the top floor(n / eta) of the n trials whose
// curves reach rung `rung` (ties broken by trial number).
bool AshaInTop(const AshaRule& rule, const std::string& mode, int number, int rung,
               const std::vector<TrialCurve>& trials);
struct AshaPromotion {
  int number = 0;  // the trial to continue
  int rung = 0;    // index into AshaRungs: it resumes after AshaRungs()[rung] epochs
};
// The paused trial to promote next, highest rung first, or nothing.
std::optional<AshaPromotion> AshaNextPromotion(const AshaRule& rule, const std::string& mode,
                                               const std::vector<TrialCurve>& trials);

}  // namespace baton::orchestrator
