#include "orchestrator/internal/search.h"

#include <cmath>
#include <random>

#include "common/digest.h"
#include "common/error.h"

namespace baton::orchestrator {
namespace {

double Uniform(std::mt19937_64& rng, double low, double high) {
  return std::uniform_real_distribution<double>(low, high)(rng);
}

Json SampleParam(const Json& p, std::mt19937_64& rng) {
  const std::string type = p.at("type").get<std::string>();
  if (type == "categorical") {
    const Json& values = p.at("values");
    std::uniform_int_distribution<size_t> pick(0, values.size() - 1);
    return values[pick(rng)];
  }
  const double low = p.at("low").get<double>();
  const double high = p.at("high").get<double>();
  const bool log = p.value("log", false);
  if (type == "int") {
    const int64_t step = p.contains("step") ? static_cast<int64_t>(p["step"].get<double>()) : 1;
    if (log) {
      double v = std::exp(Uniform(rng, std::log(low - 0.5), std::log(high + 0.5)));
      int64_t r = std::llround(v);
      return std::min<int64_t>(std::max<int64_t>(r, static_cast<int64_t>(low)), static_cast<int64_t>(high));
    }
    const int64_t n = (static_cast<int64_t>(high) - static_cast<int64_t>(low)) / step;
    std::uniform_int_distribution<int64_t> pick(0, n);
    return static_cast<int64_t>(low) + pick(rng) * step;
  }
  if (log) return std::exp(Uniform(rng, std::log(low), std::log(high)));
  if (p.contains("step")) {
    const double step = p["step"].get<double>();
    const int64_t n = static_cast<int64_t>(std::floor((high - low) / step + 1e-9));
    std::uniform_int_distribution<int64_t> pick(0, n);
    return low + static_cast<double>(pick(rng)) * step;
  }
  return Uniform(rng, low, high);
}

std::vector<Json> GridValues(const Json& p) {
  const std::string type = p.at("type").get<std::string>();
  std::vector<Json> out;
  if (type == "categorical") {
    for (const auto& v : p.at("values")) out.push_back(v);
    return out;
  }
  const double low = p.at("low").get<double>();
  const double high = p.at("high").get<double>();
  if (type == "int") {
    const int64_t step = p.contains("step") ? static_cast<int64_t>(p["step"].get<double>()) : 1;
    for (int64_t v = static_cast<int64_t>(low); v <= static_cast<int64_t>(high); v += step) out.push_back(v);
    return out;
  }
  const double step = p.at("step").get<double>();
  const int64_t n = static_cast<int64_t>(std::floor((high - low) / step + 1e-9));
  for (int64_t i = 0; i <= n; ++i) out.push_back(low + static_cast<double>(i) * step);
  return out;
}

}  // namespace

Json SampleRandomPoint(const Json& search_space, std::mt19937_64& rng) {
  Json point = Json::object();
  for (const auto& [name, p] : search_space.items()) point[name] = SampleParam(p, rng);
  return point;
}

uint64_t DeriveSeed(uint64_t base, const std::string& label) {
  const std::string digest = Sha256Hex(std::to_string(base) + "/" + label);
  // 15 hex digits: fits in int64 and in SQLite's INTEGER.
  return std::stoull(digest.substr(0, 15), nullptr, 16);
}

std::vector<Json> SampleTrials(const Json& stage, uint64_t seed) {
  const Json& space = stage.at("search_space");
  const Json fixed = stage.value("hyperparameters", Json::object());
  const int64_t max_trials = stage.at("budget").at("max_trials").get<int64_t>();
  const std::string sampler =
      stage.contains("sampler") ? stage["sampler"].value("type", "random") : "random";
  std::vector<Json> trials;
  if (sampler == "grid") {
    std::vector<std::pair<std::string, std::vector<Json>>> axes;
    for (const auto& [name, p] : space.items()) axes.push_back({name, GridValues(p)});
    std::vector<size_t> index(axes.size(), 0);
    while (static_cast<int64_t>(trials.size()) < max_trials) {
      Json hp = fixed;
      for (size_t a = 0; a < axes.size(); ++a) hp[axes[a].first] = axes[a].second[index[a]];
      trials.push_back(hp);
      // Advance the odometer, last axis fastest.
      size_t a = axes.size();
      while (a > 0) {
        --a;
        if (++index[a] < axes[a].second.size()) break;
        index[a] = 0;
        if (a == 0) return trials;
      }
      if (axes.empty()) break;
    }
    return trials;
  }
  if (sampler != "random") {
    throw Error(ErrorCode::kInvalidArgument, "unknown sampler " + sampler);
  }
  std::mt19937_64 rng(seed);
  for (int64_t t = 0; t < max_trials; ++t) {
    Json hp = fixed;
    hp.update(SampleRandomPoint(space, rng));
    trials.push_back(hp);
  }
  return trials;
}

namespace {

// Replaces the "$name" fields of each layer of `layers` (and of the layers
// and shortcut of a residual block, recursively); `prefix` is the block's
// dotted name for messages.
void SubstituteLayers(Json& layers, const Json& hyperparameters, const std::string& prefix) {
  if (!layers.is_array()) return;
  for (auto& layer : layers) {
    if (!layer.is_object()) continue;
    const std::string label = prefix + layer.value("name", "?");
    for (auto& [key, value] : layer.items()) {
      if (key == "layers" || key == "shortcut") {
        SubstituteLayers(value, hyperparameters, label + (key == "shortcut" ? ".shortcut." : "."));
        continue;
      }
      if (key == "name" || key == "type" || !value.is_string()) continue;
      const std::string ref = value.get<std::string>();
      if (ref.size() < 2 || ref[0] != '$') continue;
      const std::string name = ref.substr(1);
      if (!hyperparameters.contains(name)) {
        throw Error(ErrorCode::kInvalidArgument,
                    "layer " + label + " field " + key + " names unknown hyperparameter " + ref);
      }
      value = hyperparameters[name];
    }
  }
}

}  // namespace

Json SubstituteModel(const Json& model, const Json& hyperparameters) {
  Json out = model;
  if (!out.contains("layers")) return out;  // a TorchScript model: hyperparameters reach it in the task
  SubstituteLayers(out.at("layers"), hyperparameters, "");
  return out;
}

}  // namespace baton::orchestrator
