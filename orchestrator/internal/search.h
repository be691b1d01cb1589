#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "common/json_util.h"

namespace baton::orchestrator {

// A seed derived from `base` and a label (stage name, trial number, ...):
// stable across platforms and runs, different for different labels.
uint64_t DeriveSeed(uint64_t base, const std::string& label);

// One point of `search_space` as the random sampler draws it: one value per
// parameter, parameters in name order, all from `rng` (Optuna's semantics:
// float/int with log and step, categorical uniform). The random sampler of
// SampleTrials is this once per trial from one std::mt19937_64(seed), so a
// fresh std::mt19937_64(seed) gives the point of trial 0.
Json SampleRandomPoint(const Json& search_space, std::mt19937_64& rng);

// The hyperparameters of every trial of a tune stage, in trial order, each
// the stage's fixed "hyperparameters" merged with one point of its
// "search_space". Deterministic for a given `seed`.
// - random: max_trials independent draws (Optuna's semantics for float/int
//   with log and step, categorical uniform).
// - grid: the Cartesian product of every parameter's values (parameters in
//   name order, the last varying fastest), cut to max_trials.
std::vector<Json> SampleTrials(const Json& tune_stage, uint64_t seed);

// The model with every "$name" field replaced by hyperparameters[name],
// inside residual blocks (their "layers" and "shortcut") too.
// Throws Error(kInvalidArgument) for an unknown name.
Json SubstituteModel(const Json& model, const Json& hyperparameters);

}  // namespace baton::orchestrator
