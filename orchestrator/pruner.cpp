#include "common/vocabulary.h"
#include "orchestrator/internal/pruner.h"

#include <algorithm>

namespace baton::orchestrator {
namespace {

bool Better(double a, double b, const std::string& mode) { return mode == "min" ? a < b : a > b; }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

}  // namespace

bool MedianStops(const MedianRule& rule, const std::string& mode, int number,
                 const std::vector<double>& values, const std::vector<TrialCurve>& others,
                 MedianDecision* decision) {
  if (values.empty() || static_cast<int>(values.size()) < rule.min_resource) return false;
  const size_t epoch = values.size() - 1;
  int finished = 0;
  std::vector<double> at_epoch;
  for (const TrialCurve& t : others) {
    if (t.number == number || !Is(t.status, TrialStatus::kSucceeded)) continue;
    ++finished;
    if (t.values.size() > epoch) at_epoch.push_back(t.values[epoch]);
  }
  if (finished < rule.n_startup_trials || at_epoch.empty()) return false;
  double best = values.front();
  for (double v : values) {
    if (Better(v, best, mode)) best = v;
  }
  const double median = Median(at_epoch);
  if (!Better(median, best, mode)) return false;
  if (decision != nullptr) *decision = {best, median, static_cast<int>(at_epoch.size())};
  return true;
}

std::vector<int> AshaRungs(const AshaRule& rule) {
  std::vector<int> rungs;
  for (long r = rule.min_resource; r < rule.max_resource; r *= rule.reduction_factor) {
    rungs.push_back(static_cast<int>(r));
    if (rule.reduction_factor < 2) break;
  }
  return rungs;
}

namespace {

// Trials whose curves reach rung `rung`, best first.
std::vector<const TrialCurve*> RungRanking(const AshaRule& rule, const std::string& mode, int rung,
                                           const std::vector<TrialCurve>& trials) {
  const std::vector<int> rungs = AshaRungs(rule);
  std::vector<const TrialCurve*> ranked;
  if (rung < 0 || rung >= static_cast<int>(rungs.size())) return ranked;
  const size_t epochs = static_cast<size_t>(rungs[rung]);
  for (const TrialCurve& t : trials) {
    if (t.values.size() >= epochs) ranked.push_back(&t);
  }
  std::stable_sort(ranked.begin(), ranked.end(), [&](const TrialCurve* a, const TrialCurve* b) {
    const double va = a->values[epochs - 1], vb = b->values[epochs - 1];
    if (va == vb) return a->number < b->number;
    return Better(va, vb, mode);
  });
  return ranked;
}

}  // namespace

bool AshaInTop(const AshaRule& rule, const std::string& mode, int number, int rung,
               const std::vector<TrialCurve>& trials) {
  auto ranked = RungRanking(rule, mode, rung, trials);
  const size_t top = ranked.size() / static_cast<size_t>(rule.reduction_factor);
  for (size_t i = 0; i < top; ++i) {
    if (ranked[i]->number == number) return true;
  }
  return false;
}

std::optional<AshaPromotion> AshaNextPromotion(const AshaRule& rule, const std::string& mode,
                                               const std::vector<TrialCurve>& trials) {
  const int n_rungs = static_cast<int>(AshaRungs(rule).size());
  for (int rung = n_rungs - 1; rung >= 0; --rung) {
    auto ranked = RungRanking(rule, mode, rung, trials);
    const size_t top = ranked.size() / static_cast<size_t>(rule.reduction_factor);
    for (size_t i = 0; i < top; ++i) {
      const TrialCurve& t = *ranked[i];
      if (Is(t.status, TrialStatus::kPruned) && t.promotions == rung) return AshaPromotion{t.number, rung};
    }
  }
  return std::nullopt;
}

}  // namespace baton::orchestrator
