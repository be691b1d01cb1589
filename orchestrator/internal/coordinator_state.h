#pragma once

// The coordinator's private state and helpers, shared by its source files
// (coordinator.cpp: run and task life cycle; coordinator_expand.cpp: stages
// into tasks and their results; coordinator_tuning.cpp: samplers, pruners,
// schedules). Not for use outside orchestrator/.

#include <chrono>
#include <string>
#include <vector>

#include "common/vocabulary.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/internal/pruner.h"
#include "orchestrator/internal/tpe.h"

namespace baton::orchestrator {
namespace coordinator_detail {

inline std::string Node(const char* kind, const std::string& id) { return std::string(kind) + ":" + id; }
inline std::string Node(const char* kind, int64_t id) { return Node(kind, std::to_string(id)); }

// Better-than for an objective in `mode` ("max" or "min").
inline bool Better(double a, double b, const std::string& mode) { return mode == "min" ? a < b : a > b; }

}  // namespace coordinator_detail

struct Coordinator::Task {
  store::TrialRecord rec;
  Stage* stage = nullptr;
  int worker = -1;
  int last_epoch = -1;
  std::string last_checkpoint;
  double not_before = 0;  // retry backoff
  bool sampled = true;    // hyperparameters decided (TPE decides at the first start)
  std::vector<double> values;  // the objective after each epoch (tune)
  int promotions = 0;          // ASHA rungs passed
  int promoted_at = 0;         // epochs done when last promoted (0: never)
  std::string resume_from;     // the checkpoint the current attempt was given
  bool stop_requested = false;  // answered "stop"; finishes as pruned
  std::string stop_reason;
  // Leases (coordinator_lease.cpp): while running, the attempt lives until
  // lease_until unless its worker reports or sends a heartbeat.
  std::chrono::steady_clock::time_point heard_at, lease_until;
  int fenced_attempt = 0;     // an attempt the coordinator ended; its reports are refused
  std::string fenced_reason;  // why it ended it
  std::string retry_reason;   // why the attempt before the current one failed
};

struct Coordinator::Stage {
  store::StageRecord rec;
  const Json* spec = nullptr;          // as written: model, search space, dataset, selectors
  const StageSpec* typed = nullptr;    // the same, typed with its defaults
  std::vector<Task*> tasks;
  int running = 0;
  int max_parallel = 1;
  int max_attempts = 1;
  double backoff = 1.0;
  // tune stages
  std::string metric, mode;
  std::string sampler = "random";
  TpeOptions tpe;
  std::string pruner = "none";
  MedianRule median;
  AshaRule asha;
  bool synchronous = false;
  double timeout = 0;       // budget.timeout_seconds; 0: none
  bool timed_out = false;
};

}  // namespace baton::orchestrator
