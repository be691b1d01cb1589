#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/json_util.h"

namespace baton::orchestrator {

// A seed derived from `base` and a label (stage name, trial number, ...):
// stable across platforms and runs, different for different labels.
uint64_t DeriveSeed(uint64_t base, const std::string& label);

// The hyperparameters of every trial of a tune stage, in trial order, each
// the stage's fixed "hyperparameters" merged with one point of its
// "search_space". Deterministic for a given `seed`.
// - random: max_trials independent draws (Optuna's semantics for float/int
//   with log and step, categorical uniform).
// - grid: the Cartesian product of every parameter's values (parameters in
//   name order, the last varying fastest), cut to max_trials.
std::vector<Json> SampleTrials(const Json& tune_stage, uint64_t seed);

// The model with every "$name" field replaced by hyperparameters[name].
// Throws Error(kInvalidArgument) for an unknown name.
Json SubstituteModel(const Json& model, const Json& hyperparameters);

}  // namespace baton::orchestrator
