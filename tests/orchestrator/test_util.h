#pragma once

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json_util.h"
#include "orchestrator/clock.h"
#include "orchestrator/pipeline_spec.h"
#include "tests/support/temp_dir.h"

namespace baton::orchestrator::testing {

using baton::testing::TempDir;

// A clock that moves only when a test moves it (CoordinatorOptions::clock),
// starting at the machine's time. Thread-safe.
class ManualClock : public Clock {
 public:
  double Now() const override { return wall_ + static_cast<double>(elapsed_ms_.load()) / 1000.0; }
  std::chrono::steady_clock::time_point Steady() const override {
    return steady_ + std::chrono::milliseconds(elapsed_ms_.load());
  }
  void Advance(std::chrono::milliseconds by) { elapsed_ms_ += by.count(); }

 private:
  const double wall_ = SystemClock().Now();
  const std::chrono::steady_clock::time_point steady_ = SystemClock().Steady();
  std::atomic<int64_t> elapsed_ms_{0};
};

// A small valid pipeline: prepare -> tune -> train with init_from, reading
// "idx" files from `data_dir`.
inline Json SmallPipeline(const std::string& data_dir) {
  Json doc = Json::parse(R"({
    "schema_version": "1", "name": "small", "seed": 3,
    "stages": {
      "prep": {"type": "prepare", "dataset": {"format": "idx", "path": "DATA"}, "train_subset": 100},
      "tune": {"type": "tune", "depends_on": ["prep"],
               "model": {"layers": [{"name": "flat", "type": "flatten"},
                                    {"name": "drop", "type": "dropout", "p": "$dropout"},
                                    {"name": "fc", "type": "linear", "out_features": 10}]},
               "search_space": {"lr": {"type": "float", "low": 0.001, "high": 0.1, "log": true},
                                "dropout": {"type": "float", "low": 0.0, "high": 0.5}},
               "objective": {"metric": "val_accuracy", "mode": "max"},
               "budget": {"max_trials": 4, "max_parallel": 2, "max_epochs": 3}},
      "train": {"type": "train", "depends_on": ["tune"],
                "hyperparameters": {"from": "tune", "trial": "best"},
                "init_from": {"stage": "tune", "trial": "best", "epoch": "last"},
                "epochs": 2}
    }})");
  doc["stages"]["prep"]["dataset"]["path"] = data_dir;
  return doc;
}

// Every problem LoadPipeline finds in `doc`, as "POINTER: message".
inline std::vector<std::string> PipelineIssues(const Json& doc) {
  std::vector<std::string> out;
  try {
    LoadPipeline(doc);
  } catch (const Error& e) {
    for (const auto& d : e.details()) out.push_back(d.pointer + ": " + d.message);
  }
  return out;
}

// True if one of `issues` is at `pointer`.
inline bool HasPointer(const std::vector<std::string>& issues, const std::string& pointer) {
  for (const auto& i : issues) {
    if (i.rfind(pointer + ":", 0) == 0) return true;
  }
  return false;
}

}  // namespace baton::orchestrator::testing
