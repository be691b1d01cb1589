#include "orchestrator/internal/compare.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "common/vocabulary.h"
#include "orchestrator/internal/stats.h"

namespace baton::orchestrator {
namespace {

Json SummaryJson(const std::vector<double>& xs) {
  const Summary s = Summarize(xs);
  Json j = {{"n", s.n}};
  if (s.n > 0) {
    j["mean"] = s.mean;
    j["sd"] = s.sd;
  }
  return j;
}

Json TestJson(const TestResult& t) {
  Json j = {{"valid", t.valid}, {"note", t.note}};
  if (t.valid && std::isfinite(t.p_value)) j["p_value"] = t.p_value;
  if (std::isfinite(t.statistic)) j["statistic"] = t.statistic;
  return j;
}

double Max(const std::vector<double>& v) {
  double m = -INFINITY;
  for (double x : v) {
    if (std::isfinite(x)) m = std::max(m, x);
  }
  return m;
}

// Time to `target` of one variant over its seeds.
struct Tta {
  std::vector<double> epochs, seconds;  // of the seeds that reached it
  int seeds = 0;
};

Tta TimeTo(const std::vector<const CompareRun*>& runs, double target) {
  Tta t;
  for (const CompareRun* r : runs) {
    ++t.seeds;
    if (auto e = EpochsToTarget(r->val, target, "max")) {
      t.epochs.push_back(*e + 1);  // epochs trained, counting the one that reached it
      t.seconds.push_back(*SecondsToTarget(r->val, r->seconds, target, "max"));
    }
  }
  return t;
}

Json TtaJson(const Tta& t, const Tta& base, int tuning_epochs, bool is_baseline) {
  Json j = {{"reached", t.epochs.size()}, {"seeds", t.seeds}, {"epochs", SummaryJson(t.epochs)},
            {"seconds", SummaryJson(t.seconds)}};
  const bool all = !t.epochs.empty() && static_cast<int>(t.epochs.size()) == t.seeds;
  const bool base_all = !base.epochs.empty() && static_cast<int>(base.epochs.size()) == base.seeds;
  if (!all) j["note"] = "not reached by every seed: no speed-up";
  if (!is_baseline && all && base_all) {
    const double mine = Summarize(t.epochs).mean, theirs = Summarize(base.epochs).mean;
    j["speedup_epochs"] = theirs / mine;
    j["speedup_epochs_with_tuning"] = theirs / (mine + tuning_epochs);
    j["speedup_seconds"] = Summarize(base.seconds).mean / Summarize(t.seconds).mean;
  }
  if (!is_baseline) {
    j["welch_t"] = TestJson(WelchTTest(t.epochs, base.epochs));
    j["mann_whitney_u"] = TestJson(MannWhitneyU(t.epochs, base.epochs));
  }
  return j;
}

}  // namespace

Json CompareResults(const std::vector<CompareRun>& runs, const std::vector<CompareVariant>& variants,
                    const Json& target_spec) {
  std::map<std::string, std::vector<const CompareRun*>> by;
  for (const auto& r : runs) {
    if (Is(r.status, TrialStatus::kSucceeded)) by[r.variant].push_back(&r);
  }
  const std::string baseline = variants.empty() ? "kaiming_uniform" : variants.front().name;
  std::vector<double> base_best, base_best_test;
  for (const CompareRun* r : by[baseline]) {
    base_best.push_back(Max(r->val));
    base_best_test.push_back(Max(r->test));
  }
  const double base_mean = Summarize(base_best).mean;
  double target = 0;
  Json target_json;
  if (target_spec.contains("accuracy")) {
    target = target_spec["accuracy"].get<double>();
    target_json = {{"accuracy", target}};
  } else {
    const double f = target_spec.value("fraction_of_baseline_best", 0.99);
    target = f * base_mean;
    target_json = {{"fraction_of_baseline_best", f}, {"baseline_best_mean", base_mean}};
  }
  target_json["value"] = target;
  const Tta base_tta = TimeTo(by[baseline], target);
  const Tta base_tta_full = TimeTo(by[baseline], base_mean);
  Json rows = Json::array();
  for (const auto& v : variants) {
    const auto& mine = by[v.name];
    std::vector<double> best_val, best_test;
    for (const CompareRun* r : mine) {
      best_val.push_back(Max(r->val));
      best_test.push_back(Max(r->test));
    }
    const bool is_base = v.name == baseline;
    Json row = {{"variant", v.name},
                {"tuning_epochs", v.tuning_epochs},
                {"checkpoint", v.checkpoint},
                {"checkpoint_bytes", v.checkpoint_bytes},
                {"seeds_succeeded", mine.size()},
                {"best_val_accuracy", SummaryJson(best_val)},
                {"best_test_accuracy", SummaryJson(best_test)},
                {"tta", TtaJson(TimeTo(mine, target), base_tta, v.tuning_epochs, is_base)},
                {"tta_100", TtaJson(TimeTo(mine, base_mean), base_tta_full, v.tuning_epochs, is_base)}};
    Json reasons = Json::array();
    for (const auto& r : runs) {
      if (r.variant == v.name && !Is(r.status, TrialStatus::kSucceeded)) reasons.push_back(r.status + ": " + r.reason);
    }
    if (!reasons.empty()) row["failures"] = reasons;
    if (!is_base) {
      row["best_val_welch_t"] = TestJson(WelchTTest(best_val, base_best));
      row["best_val_mann_whitney_u"] = TestJson(MannWhitneyU(best_val, base_best));
      row["best_test_welch_t"] = TestJson(WelchTTest(best_test, base_best_test));
      row["best_test_mann_whitney_u"] = TestJson(MannWhitneyU(best_test, base_best_test));
      if (!best_test.empty() && !base_best_test.empty()) {
        row["best_test_difference"] = Summarize(best_test).mean - Summarize(base_best_test).mean;
      }
    }
    rows.push_back(row);
  }
  return {{"metric", "val_accuracy"}, {"target", target_json}, {"variants", rows}};
}

}  // namespace baton::orchestrator
