#pragma once

#include <cstdint>
#include <string>

#include "common/json_util.h"

namespace baton::orchestrator {

// Something that happened in a run. One stream of these feeds the CLI's
// progress lines, logs and (later) the server's event stream alike.
struct Event {
  std::string type;  // run_started | stage_started | stage_cached | stage_finished |
                     // trial_started | epoch | trial_finished | run_finished
  std::string run_id;
  std::string stage;       // stage name, "" for run events
  int64_t trial_id = 0;    // 0 when not about a trial
  int trial_number = -1;
  Json data = Json::object();  // type-specific: status, metrics, reason, ...
  double time = 0;             // seconds since the Unix epoch
};

// Receives events. Called with the coordinator's lock held, from worker
// request threads: implementations must be quick and must not call back into
// the coordinator.
class Observer {
 public:
  virtual ~Observer() = default;
  virtual void OnEvent(const Event& event) = 0;
};

}  // namespace baton::orchestrator
