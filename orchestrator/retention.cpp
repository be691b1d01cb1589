#include "orchestrator/retention.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "common/vocabulary.h"
#include "orchestrator/stage_spec.h"

namespace baton::orchestrator {
namespace {

// The stages a recorded stage takes weights or hyperparameters from, each
// with the key its resolution is recorded under in StageRecord::resolved.
std::vector<std::pair<std::string, std::string>> Selectors(const store::StageRecord& s) {
  std::vector<std::pair<std::string, std::string>> out;
  const StageSpec spec = ParseStageSpec(s.name, s.spec);
  if (spec.init_from) out.emplace_back(spec.init_from->trial.stage, "init_from");
  if (spec.hyperparameters_from) {
    out.emplace_back(spec.hyperparameters_from->stage,
                     spec.type == StageType::kAblate ? "base" : "hyperparameters_from");
  }
  return out;
}

// A tune or ablate stage's checkpoints.keep, if it has one.
std::optional<StageSpec::Keep> KeepPolicy(const store::StageRecord& s) {
  if (!Is(s.type, StageType::kTune) && !Is(s.type, StageType::kAblate)) return std::nullopt;
  return ParseStageSpec(s.name, s.spec).keep;
}

void AddString(const Json& v, std::unordered_set<std::string>* out) {
  if (v.is_string() && !v.get<std::string>().empty()) out->insert(v.get<std::string>());
}

constexpr const char* kCheckpointPrefix = "checkpoint:";

}  // namespace

const char* KeptBecauseName(KeptBecause why) {
  switch (why) {
    case KeptBecause::kRunUnfinished: return "run_unfinished";
    case KeptBecause::kPinned: return "pinned";
    case KeptBecause::kNoPolicy: return "no_policy";
    case KeptBecause::kStageUnfinished: return "stage_unfinished";
    case KeptBecause::kDemanded: return "demanded";
    case KeptBecause::kBest: return "best_k";
    case KeptBecause::kLast: return "last_k";
    case KeptBecause::kInitFrom: return "init_from";
    case KeptBecause::kAblationOutput: return "ablation_output";
  }
  return "unknown";
}

std::set<int> EpochsToKeep(const std::vector<store::EpochRecord>& epochs, const std::string& metric,
                           const std::string& mode, int best_k, int last_k) {
  std::set<int> keep;
  std::vector<int> numbers;
  for (const auto& e : epochs) numbers.push_back(e.epoch);
  std::sort(numbers.begin(), numbers.end());
  for (int i = 0; i < last_k && i < static_cast<int>(numbers.size()); ++i) {
    keep.insert(numbers[numbers.size() - 1 - i]);
  }
  std::vector<std::pair<double, int>> ranked;  // (value, epoch)
  for (const auto& e : epochs) {
    if (!e.metrics.contains(metric) || !e.metrics[metric].is_number()) continue;
    const double v = e.metrics[metric].get<double>();
    if (std::isfinite(v)) ranked.emplace_back(v, e.epoch);
  }
  const bool max = mode != "min";
  std::sort(ranked.begin(), ranked.end(), [max](const auto& a, const auto& b) {
    if (a.first != b.first) return max ? a.first > b.first : a.first < b.first;
    return a.second < b.second;
  });
  for (int i = 0; i < best_k && i < static_cast<int>(ranked.size()); ++i) keep.insert(ranked[i].second);
  return keep;
}

RetentionPlan PlanRetention(store::LineageDb& db, const std::unordered_set<std::string>* explain) {
  RetentionPlan plan;
  auto because = [&](const std::string& digest, KeptBecause why) {
    if (explain != nullptr && explain->count(digest)) plan.kept_because[digest].insert(why);
  };
  const std::vector<store::RunRecord> runs = db.ListRuns(/*limit=*/0);
  const std::vector<std::string> pinned_list = db.PinnedRuns();
  const std::unordered_set<std::string> pinned(pinned_list.begin(), pinned_list.end());

  std::map<std::string, std::vector<store::StageRecord>> stages;  // by run id
  std::unordered_map<int64_t, const store::StageRecord*> by_id;
  for (const auto& run : runs) stages[run.id] = db.GetStages(run.id);
  for (const auto& [run_id, list] : stages) {
    for (const auto& s : list) by_id[s.id] = &s;
  }

  // Demand: stages that an unfinished run's stage still has to resolve a
  // selector against, followed through cache hits to the stage that ran.
  std::unordered_set<int64_t> demanded;
  std::unordered_set<std::string> protect;  // checkpoint digests kept whatever the policy
  for (const auto& run : runs) {
    const auto& list = stages[run.id];
    for (const auto& d : list) {
      const Json& r = d.resolved;
      if (r.is_object() && r.contains("init_from") && r["init_from"].is_object()) {
        AddString(r["init_from"].value("checkpoint", Json()), &protect);
      }
      if (r.is_object() && r.contains("compare") && r["compare"].is_object() && r["compare"].contains("variants")) {
        for (const auto& v : r["compare"]["variants"]) {
          if (v.is_object()) AddString(v.value("checkpoint", Json()), &protect);
        }
      }
      if (RunFinished(run.status)) continue;
      for (const auto& [upstream, resolved_key] : Selectors(d)) {
        // Resolved when the stage starts (in the transaction that marks it
        // running); a stage that ended without resolving never will.
        const bool unresolved =
            Is(d.status, StageStatus::kPending) || (Is(d.status, StageStatus::kRunning) && !d.resolved.contains(resolved_key));
        if (!unresolved) continue;
        for (const auto& u : list) {
          if (u.name != upstream) continue;
          int64_t id = u.id;
          for (int hops = 0; hops < 64 && by_id.count(id) && by_id[id]->cached_from != 0; ++hops) {
            id = by_id[id]->cached_from;
          }
          demanded.insert(id);
        }
      }
    }
  }
  for (const auto& e : db.EdgesOfKind("initialized_from")) {
    if (e.dst.rfind(kCheckpointPrefix, 0) == 0) protect.insert(e.dst.substr(std::string(kCheckpointPrefix).size()));
  }

  std::unordered_set<std::string> kept;
  std::vector<ReleasedCheckpoint> candidates;
  for (const auto& run : runs) {
    const bool keep_run = !RunFinished(run.status) || pinned.count(run.id) > 0;
    for (const auto& s : stages[run.id]) {
      const std::optional<StageSpec::Keep> keep_policy = KeepPolicy(s);
      const bool policy = keep_policy.has_value();
      const bool keep_all = keep_run || !policy || !StageFinished(s.status) || demanded.count(s.id) > 0;
      // Every reason that keeps all of this stage's checkpoints.
      std::vector<KeptBecause> all_because;
      if (!RunFinished(run.status)) all_because.push_back(KeptBecause::kRunUnfinished);
      if (pinned.count(run.id)) all_because.push_back(KeptBecause::kPinned);
      if (!policy) all_because.push_back(KeptBecause::kNoPolicy);
      if (!StageFinished(s.status)) all_because.push_back(KeptBecause::kStageUnfinished);
      if (demanded.count(s.id)) all_because.push_back(KeptBecause::kDemanded);
      const Objective objective = RecordedObjective(s.spec, s.resolved);
      const std::string &metric = objective.metric, &mode = objective.mode;
      const int best_k = policy ? keep_policy->best_k : 0, last_k = policy ? keep_policy->last_k : 0;
      for (const auto& t : db.GetTrials(s.id)) {
        const std::vector<store::EpochRecord> epochs = db.GetEpochs(t.id);
        // Only where they decide something: gc keeps every epoch of a
        // keep_all stage without ranking them.
        std::set<int> best, last;
        if (policy && (!keep_all || explain != nullptr)) {
          best = EpochsToKeep(epochs, metric, mode, best_k, 0);
          last = EpochsToKeep(epochs, metric, mode, 0, last_k);
        }
        auto consider = [&](const std::string& digest, int epoch, bool keep) {
          if (digest.empty()) return;
          if (keep_all || keep) {
            kept.insert(digest);
          } else {
            candidates.push_back({digest, run.id, s.name, t.id, t.number, epoch});
          }
          for (KeptBecause why : all_because) because(digest, why);
        };
        consider(t.initial_checkpoint, -1, false);
        for (const auto& e : epochs) {
          const bool is_best = best.count(e.epoch) > 0, is_last = last.count(e.epoch) > 0;
          consider(e.checkpoint, e.epoch, is_best || is_last);
          if (is_best) because(e.checkpoint, KeptBecause::kBest);
          if (is_last) because(e.checkpoint, KeptBecause::kLast);
        }
        // An ablation variant's output is the model it trained.
        if (Is(s.type, StageType::kAblate) && !t.output.empty()) {
          consider(t.output, epochs.empty() ? -1 : epochs.back().epoch, true);
          because(t.output, KeptBecause::kAblationOutput);
        }
      }
    }
  }

  const std::vector<std::string> released_list = db.ReleasedCheckpoints();
  const std::unordered_set<std::string> released(released_list.begin(), released_list.end());
  for (const std::string& d : protect) because(d, KeptBecause::kInitFrom);
  std::unordered_set<std::string> planned;
  for (auto& c : candidates) {
    if (kept.count(c.digest) || protect.count(c.digest) || released.count(c.digest)) continue;
    if (planned.insert(c.digest).second) plan.release.push_back(std::move(c));
  }
  // Reasons are only given where a digest is kept, so none is planned; a
  // released one has none (recording it again would keep it again).
  for (auto it = plan.kept_because.begin(); it != plan.kept_because.end();) {
    it = released.count(it->first) ? plan.kept_because.erase(it) : std::next(it);
  }
  for (const std::string& d : db.ListCheckpoints()) plan.kept += planned.count(d) ? 0 : 1;
  return plan;
}

}  // namespace baton::orchestrator
