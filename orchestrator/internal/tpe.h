#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/json_util.h"

namespace baton::orchestrator {

// One finished trial as the TPE sampler sees it.
struct TpeObservation {
  Json params;   // one point of the search space: {"lr": 0.01, "batch_size": 128, ...}
  double value;  // the trial's objective value; NaN ranks worst
};

struct TpeOptions {
  int n_startup_trials = 10;  // fewer observations than this: sample at random
  int n_ei_candidates = 24;   // candidates drawn from l(x); the best l/g wins
  bool prior = true;          // add the prior component (as Optuna's consider_prior)
};

// One point of `search_space` (the tune stage's "search_space" object, Optuna's
// vocabulary: {"type":"float"|"int","low","high","log"?,"step"?} or
// {"type":"categorical","values":[...]}) given the finished trials so far,
// chosen by a Tree-structured Parzen Estimator (Optuna 3.x's default sampler,
// each parameter independently). mode is "max" or "min".
// Deterministic for a given (search_space, observed, mode, seed, options).
// Returns an object with one entry per parameter; int params are JSON
// integers, values respect low/high/step/log exactly like the random
// sampler's draws.
// - Fewer than options.n_startup_trials observations: the random sampler's
//   point, SampleRandomPoint(search_space, std::mt19937_64(seed)), which is
//   also SampleTrials' first trial for a stage with this space and `seed`.
// - Otherwise the best min(ceil(n / 10), 25) observations are "good"; per
//   parameter, the candidate drawn from the good observations' density l(x)
//   with the highest l(x) / g(x) (g from the others) is returned. An
//   observation that lacks a parameter, or holds a value outside its
//   categorical list, is left out for that parameter.
// Throws Error(kInvalidArgument) for an unknown mode or parameter type, or a
// log parameter whose low is not positive.
Json SampleTpe(const Json& search_space, const std::vector<TpeObservation>& observed,
               const std::string& mode, uint64_t seed, const TpeOptions& options = {});

}  // namespace baton::orchestrator
