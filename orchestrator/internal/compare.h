#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/json_util.h"

namespace baton::orchestrator {

// One training of a train stage's `compare`: the Kaiming-uniform baseline or
// a start from a tuning trial's epoch, for one seed.
struct CompareRun {
  std::string variant;  // "kaiming_uniform" or "epoch:<E>"
  int seed_index = 0;
  std::string status;
  std::string reason;
  std::vector<double> val;      // val_accuracy after each epoch
  std::vector<double> test;     // test_accuracy after each epoch
  std::vector<double> seconds;  // each epoch's train + evaluation seconds
};

struct CompareVariant {
  std::string name;           // "kaiming_uniform" first, then "epoch:<E>"
  int tuning_epochs = 0;      // epochs the tuning trial trained to make the checkpoint
  std::string checkpoint;     // "" for the baseline
  uint64_t checkpoint_bytes = 0;  // what keeping that checkpoint costs in the store
};

// The paper's protocol as a table (see README "Comparing initialisations"):
// per variant, best validation and test accuracy (mean, sd over seeds), time
// to target (TTA: epochs trained until val_accuracy first reaches the target,
// and seconds) at the target and at 100% of the baseline's mean best, the
// speed-up (baseline mean TTA / variant mean TTA, also with the tuning
// epochs counted), Welch t-test and Mann-Whitney U p-values against the
// baseline on best validation accuracy, on best test accuracy (with the
// difference of the means) and on TTA, and the checkpoint's
// bytes. `target` is {"fraction_of_baseline_best": f} (default 0.99) or
// {"accuracy": a}. A variant some seed of which never reaches the target has
// "reached" < seeds and no speed-up.
Json CompareResults(const std::vector<CompareRun>& runs, const std::vector<CompareVariant>& variants,
                    const Json& target);

}  // namespace baton::orchestrator
