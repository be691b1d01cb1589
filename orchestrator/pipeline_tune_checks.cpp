#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "orchestrator/internal/pipeline_checks.h"

namespace baton::orchestrator {
namespace spec_detail {
namespace {

// The most values the grid sampler may enumerate for one parameter, and over
// all parameters together (it materialises each parameter's values; the
// Cartesian product itself is walked lazily and cut to max_trials).
constexpr double kMaxGridValuesPerParam = 100000;
constexpr double kMaxGridValues = 1000000;
// Integers beyond 2^53 do not survive the samplers' arithmetic in doubles.
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53

std::string Count(double n) {
  if (n <= kMaxExactInteger) return std::to_string(static_cast<int64_t>(n));
  std::ostringstream s;
  s << n;
  return s.str();
}

}  // namespace

void CheckSearchSpace(const std::string& sp, const Json& space,
                      const std::string& sampler, Issues& issues) {
  double grid_values = 0;
  for (const auto& [name, param] : space.items()) {
    std::string p = PointerAppend(sp, name);
    std::string type = param.value("type", "");
    if (type == "categorical") {
      grid_values += static_cast<double>(param["values"].size());
      continue;  // values are checked by the schema
    }
    if (!param.contains("low") || !param.contains("high")) continue;  // schema said
    double low = param["low"].get<double>();
    double high = param["high"].get<double>();
    bool log = param.value("log", false);
    if (!(low < high)) {
      issues.push_back({p + "/high", "must be > low (" + param["low"].dump() + ")"});
    }
    if (log && !(low > 0)) {
      issues.push_back({p + "/low", "must be > 0 when log is true"});
    }
    if (log && param.contains("step")) {
      issues.push_back({p + "/step", "cannot be combined with log"});
    }
    if (!std::isfinite(high - low)) {
      issues.push_back({p + "/high", "high - low is beyond the range of a double"});
      continue;
    }
    double values = 0;  // how many values a stepped or int parameter has
    if (type == "int") {
      bool exact = true;
      for (const char* bound : {"low", "high"}) {
        if (!param[bound].is_number_integer()) {
          issues.push_back({p + "/" + bound, "must be an integer for an int parameter"});
          exact = false;
        } else if (const int64_t v = param[bound].get<int64_t>(); v > (int64_t{1} << 53) || v < -(int64_t{1} << 53)) {
          issues.push_back({p + "/" + bound, "must be within +-2^53 (9007199254740992) for an int parameter"});
          exact = false;
        }
      }
      double step = 1;
      if (param.contains("step")) {
        step = param["step"].get<double>();
        if (!param["step"].is_number_integer() || step < 1) {
          issues.push_back({p + "/step", "must be an integer >= 1 for an int parameter"});
          exact = false;
        }
      }
      if (!exact) continue;
      values = std::floor((high - low) / step) + 1;
    } else if (param.contains("step")) {
      const double steps = std::floor((high - low) / param["step"].get<double>());
      if (!(steps <= kMaxExactInteger)) {
        issues.push_back({p + "/step", "gives " + Count(steps) + " steps from low to high; at most 2^53"});
        continue;
      }
      values = steps + 1;
    }
    if (sampler == "grid" && type == "float" && !param.contains("step")) {
      issues.push_back({p, "a float parameter needs \"step\" for the grid sampler"});
    }
    if (sampler == "grid" && values > kMaxGridValuesPerParam) {
      issues.push_back({p, "the grid sampler would enumerate " + Count(values) + " values; at most " +
                               Count(kMaxGridValuesPerParam) + " per parameter (raise step or narrow low..high)"});
    }
    grid_values += values;
  }
  if (sampler == "grid" && grid_values > kMaxGridValues) {
    issues.push_back({sp, "the grid sampler would enumerate " + Count(grid_values) +
                              " values over its parameters; at most " + Count(kMaxGridValues)});
  }
}

// Pruner fields must belong to the pruner type and fit the epoch budget.
void CheckPruner(const std::string& sp, const Json& stage, Issues& issues) {
  if (!stage.contains("pruner") || !stage.contains("budget")) return;
  const Json& pruner = stage["pruner"];
  const std::string pp = sp + "/pruner";
  const std::string type = pruner.value("type", "none");
  const int64_t max_epochs = stage["budget"].value("max_epochs", int64_t{1});
  const std::map<std::string, std::set<std::string>> allowed = {
      {"none", {"type"}},
      {"median", {"type", "min_resource", "n_startup_trials"}},
      {"asha", {"type", "min_resource", "max_resource", "reduction_factor"}}};
  auto it = allowed.find(type);
  if (it == allowed.end()) return;  // the schema names the valid types
  for (const auto& [key, value] : pruner.items()) {
    if (!it->second.count(key)) {
      issues.push_back({PointerAppend(pp, key), "is not a setting of the " + Quote(type) + " pruner"});
    }
  }
  const int64_t min_resource = pruner.value("min_resource", int64_t{1});
  if (type != "none" && min_resource > max_epochs) {
    issues.push_back({pp + "/min_resource", "must be <= budget.max_epochs (" + std::to_string(max_epochs) + ")"});
  }
  if (type == "asha") {
    const int64_t max_resource = pruner.value("max_resource", max_epochs);
    if (max_resource != max_epochs) {
      issues.push_back({pp + "/max_resource",
                        "must equal budget.max_epochs (" + std::to_string(max_epochs) +
                            "): the last rung is the full budget"});
    }
    if (min_resource >= max_resource) {
      issues.push_back({pp + "/min_resource", "must be < max_resource (" + std::to_string(max_resource) + ")"});
    }
    if (stage.value("scheduling", "asynchronous") == "synchronous") {
      issues.push_back({sp + "/scheduling", "ASHA is asynchronous; use \"asynchronous\" or another pruner"});
    }
  }
  if (stage.contains("sampler")) {
    const Json& sampler = stage["sampler"];
    if (sampler.value("type", "random") != "tpe") {
      for (const char* key : {"n_startup_trials", "n_ei_candidates"}) {
        if (sampler.contains(key)) {
          issues.push_back({PointerAppend(sp + "/sampler", key), "is a setting of the \"tpe\" sampler only"});
        }
      }
    }
  }
}

}  // namespace spec_detail
}  // namespace baton::orchestrator
