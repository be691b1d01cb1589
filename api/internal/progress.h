#pragma once

#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/vocabulary.h"
#include "orchestrator/events.h"
#include "orchestrator/stage_spec.h"

namespace baton::api {

// Shows a run's progress: on a terminal one live line per stage (tasks done,
// best metric, elapsed, ETA), redrawn in place; otherwise one log line per
// event. Thread-safe: OnEvent comes from request threads, Tick from the main
// thread.
class ProgressPrinter : public orchestrator::Observer {
 public:
  // `specs`: the pipeline's stages (their objectives).
  ProgressPrinter(std::FILE* out, bool live, std::map<std::string, orchestrator::StageSpec> specs,
                  std::vector<std::string> stage_order);
  void OnEvent(const orchestrator::Event& event) override;
  // Redraws the live lines (elapsed and ETA move even without events).
  void Tick();
  // Leaves the live block in place and stops redrawing.
  void Finish();

 private:
  struct StageLine {
    std::string type;
    std::string status{Name(StageStatus::kPending)};
    int tasks = 0;
    int done = 0;
    int running = 0;
    int failed = 0;
    int pruned = 0;
    int skipped = 0;
    long epochs_total = 0;
    long epochs_done = 0;
    bool has_best = false;
    double best = 0;
    double started = 0;
    double finished = 0;
  };
  void Redraw();
  // The stage's objective (the default for a stage it was not given).
  orchestrator::Objective Objective(const std::string& stage) const {
    auto it = objectives_.find(stage);
    return it == objectives_.end() ? orchestrator::Objective{} : it->second;
  }
  std::string Line(const std::string& name, const StageLine& s, double now);
  void Log(const orchestrator::Event& e);

  std::mutex mu_;
  std::FILE* out_;
  bool live_;
  bool finished_ = false;
  int drawn_ = 0;
  double run_started_ = 0;
  std::map<std::string, orchestrator::Objective> objectives_;
  std::vector<std::string> order_;
  std::map<std::string, StageLine> stages_;
};

}  // namespace baton::api
