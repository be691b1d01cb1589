// Resuming a run whose process ended before the run did: the run's state
// rebuilt from the lineage DB (see Coordinator::ForResume).
#include "orchestrator/internal/run_state.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "orchestrator/internal/pruner.h"

namespace baton::orchestrator {

void RunState::LoadForResume(const Instant& now) {
  now_ = now;
  resumed_ = true;
  effects_.Atomically([&] {
    for (auto& stage : stages_) {
      if (!Is(stage->rec.status, StageStatus::kRunning)) continue;  // pending ones expand as usual
      const std::vector<int> rungs = stage->typed->pruner.type == "asha" ? AshaRungs(stage->asha) : std::vector<int>{};
      std::vector<std::pair<Task*, int>> undecided;  // with their recorded attempts
      for (const auto& rec : reads_.Trials(stage->rec.id)) {
        auto t = std::make_unique<Task>();
        t->rec = rec;
        t->stage = stage.get();
        const std::string trial = "trial " + std::to_string(rec.number) + " of stage " + stage->rec.name;
        const auto epochs = reads_.Epochs(rec.id);
        for (size_t i = 0; i < epochs.size(); ++i) {
          if (epochs[i].epoch != static_cast<int>(i)) {
            throw Error(ErrorCode::kCorrupt, "run " + run_id_ + ": " + trial + " has epoch " +
                                                 std::to_string(epochs[i].epoch) + " where epoch " +
                                                 std::to_string(i) + " belongs");
          }
          if (Is(stage->rec.type, StageType::kTune)) {
            const Json& m = epochs[i].metrics;
            if (!m.contains(stage->objective().metric) || !m[stage->objective().metric].is_number()) {
              throw Error(ErrorCode::kCorrupt, "run " + run_id_ + ": " + trial + " epoch " + std::to_string(i) +
                                                   " lacks the objective metric " + stage->objective().metric);
            }
            t->values.push_back(m[stage->objective().metric].get<double>());
          }
        }
        if (!epochs.empty()) {
          t->last_epoch = epochs.back().epoch;
          t->last_checkpoint = epochs.back().checkpoint;
        }
        // TPE decides a trial's hyperparameters when it first starts.
        t->sampled = !(rec.task.contains("model") && rec.task["model"].is_null());
        if (!rungs.empty()) {
          // ASHA rungs passed: every rung below the epochs it ran, and the rung
          // it stands on unless it is paused there (pruned).
          const int done = static_cast<int>(t->values.size());
          for (int r : rungs) t->promotions += r < done ? 1 : 0;
          for (const auto& e : reads_.Upstream(Node("trial", rec.id), 1)) {
            if (e.kind == "resumed_from" && e.attrs.value("promoted", false)) {
              t->promoted_at = std::max(t->promoted_at, e.attrs.value("start_epoch", 0));
            }
          }
          const bool on_rung = std::find(rungs.begin(), rungs.end(), done) != rungs.end();
          if (on_rung && !TrialFinished(rec.status)) {
            if (t->promoted_at == done) {
              t->promotions += 1;
            } else {
              undecided.push_back({t.get(), rec.attempts});  // decided below, once every trial is known
            }
          }
        }
        if (stage->typed->pruner.type == "median" && !t->values.empty() && !TrialFinished(rec.status)) {
          undecided.push_back({t.get(), rec.attempts});
        }
        if (!TrialFinished(rec.status)) {
          if (t->last_epoch >= 0 && !reads_.HasBlob(t->last_checkpoint)) {
            throw Error(ErrorCode::kCorrupt, "run " + run_id_ + ": " + trial + "'s checkpoint of epoch " +
                                                 std::to_string(t->last_epoch) + " (" + t->last_checkpoint +
                                                 ") is not in the blob store; cannot resume it");
          }
          if (Is(rec.status, TrialStatus::kRunning)) {
            t->rec.attempts = std::max(0, rec.attempts - 1);
            t->rec.reason = "interrupted: its run's process ended; resumed";
          }
          t->rec.status = Name(TrialStatus::kPending);
          UpdateTrial(t->rec);
        }
        stage->tasks.push_back(t.get());
        tasks_[rec.id] = std::move(t);
      }
      // A trial may have been told to stop (the median rule) or to pause on
      // an ASHA rung after its last recorded epoch, and the process ended
      // before it did: the pruner decides again now, from the same epochs.
      for (auto [t, attempts] : undecided) {
        const std::string reason = PruneReason(*stage, *t);
        if (reason.empty()) continue;
        t->rec.status = Name(TrialStatus::kPruned);
        t->rec.attempts = attempts;
        t->rec.reason = reason;
        t->rec.output = t->last_checkpoint;
        t->rec.finished_at = Now();
        UpdateTrial(t->rec);
      }
      if (stage->tasks.empty()) {
        throw Error(ErrorCode::kCorrupt, "run " + run_id_ + ": running stage " + stage->rec.name + " has no tasks");
      }
    }
  });
}

void RunState::EmitResumed() {
  for (auto& stage : stages_) {
    const auto& rec = stage->rec;
    if (Is(rec.status, StageStatus::kCached)) {
      auto from = reads_.Stage(rec.cached_from);
      Emit("stage_cached", rec.name, 0, -1,
           {{"status", Name(StageStatus::kCached)}, {"cached_from_run", from ? from->run_id : ""}, {"output", rec.output}});
    } else if (Is(rec.status, StageStatus::kRunning)) {
      int finished = 0;
      for (const Task* t : stage->tasks) finished += TrialFinished(t->rec.status) ? 1 : 0;
      Emit("stage_started", rec.name, 0, -1,
           {{"type", rec.type}, {"tasks", stage->tasks.size()}, {"max_parallel", stage->max_parallel},
            {"resolved", rec.resolved}, {"resumed", true}, {"finished_before", finished}});
    } else if (!Is(rec.status, StageStatus::kPending)) {
      Json data = {{"status", rec.status}, {"output", rec.output}, {"resumed", true}};
      if (!rec.error.empty()) data["error"] = rec.error;
      Emit("stage_finished", rec.name, 0, -1, data);
    }
  }
}

}  // namespace baton::orchestrator
