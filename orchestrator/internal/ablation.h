#pragma once

#include <string>
#include <vector>

#include "common/json_util.h"

namespace baton::orchestrator {

// One variant of an ablation study: the base model and data minus some
// layers or some dataset features.
struct AblationVariant {
  std::string name;                   // "base", a layer or group name, "prefix*", "feature:NAME"
  std::string kind;                   // base | component | feature
  std::vector<std::string> layers;    // layers removed
  std::vector<std::string> features;  // dataset columns left out
};

// "base" first, then one variant per component (a layer name, {"prefix"} or
// {"name", "layers"}) in the order given, then one per feature. Throws
// Error(kInvalidArgument) for a component that names no layer of `model`.
std::vector<AblationVariant> AblationVariants(const Json& ablate_stage, const Json& model);

// `model` without the named layers; the rest keep their order and fields.
// A residual block named stays, marked "removed": true, so that the worker
// leaves it out only after checking that its output has its input's shape,
// and otherwise says which block could not be left out (stages/model.h).
Json RemoveLayers(const Json& model, const std::vector<std::string>& layers);

// What one task of an ablation study ended with.
struct AblationRun {
  std::string variant;
  int repeat = 0;
  std::string status;  // succeeded | failed | diverged | pending | running ...
  std::string reason;
  bool has_value = false;
  double value = 0;    // the objective at the final epoch
  int epochs = 0;
  double seconds = 0;  // sum of the epochs' train + evaluation seconds
};

// Per variant: the objective's mean and sample standard deviation over
// repeats, its change against the base (paired by repeat: variant - base;
// mean and standard deviation), the impact (how much worse than the base:
// base - variant for "max", variant - base for "min"), epochs and seconds
// (means), statuses and reasons. {"objective": {...}, "base": {...},
// "variants": [...]} with variants sorted by impact, largest first; those
// without a value last. Standard deviations appear only with 2 or more
// repeats.
Json AblationResults(const std::vector<AblationRun>& runs, const std::vector<AblationVariant>& variants,
                     const std::string& metric, const std::string& mode);

}  // namespace baton::orchestrator
