#include "orchestrator/internal/ablation.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "common/error.h"

namespace baton::orchestrator {
namespace {

struct Stats {
  double mean = 0, sd = 0;
  int n = 0;
};

Stats Describe(const std::vector<double>& v) {
  Stats s;
  s.n = static_cast<int>(v.size());
  if (v.empty()) return s;
  for (double x : v) s.mean += x;
  s.mean /= static_cast<double>(v.size());
  if (v.size() > 1) {
    double ss = 0;
    for (double x : v) ss += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(ss / static_cast<double>(v.size() - 1));
  }
  return s;
}

}  // namespace

std::vector<AblationVariant> AblationVariants(const Json& stage, const Json& model) {
  std::vector<std::string> names;  // none for a TorchScript model
  for (const auto& layer : model.value("layers", Json::array())) names.push_back(layer.at("name").get<std::string>());
  auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  std::vector<AblationVariant> out = {{"base", "base", {}, {}}};
  for (const auto& c : stage.value("components", Json::array())) {
    AblationVariant v;
    v.kind = "component";
    if (c.is_string()) {
      v.name = c.get<std::string>();
      v.layers = {v.name};
    } else if (c.contains("prefix")) {
      const std::string prefix = c["prefix"].get<std::string>();
      v.name = prefix + "*";
      for (const auto& n : names) {
        if (n.rfind(prefix, 0) == 0) v.layers.push_back(n);
      }
    } else {
      v.name = c.at("name").get<std::string>();
      v.layers = c.at("layers").get<std::vector<std::string>>();
    }
    if (v.layers.empty()) throw Error(ErrorCode::kInvalidArgument, "component " + v.name + " names no layer of the model");
    for (const auto& l : v.layers) {
      if (!has(l)) throw Error(ErrorCode::kInvalidArgument, "component " + v.name + ": the model has no layer " + l);
    }
    out.push_back(v);
  }
  for (const auto& f : stage.value("features", Json::array())) {
    out.push_back({"feature:" + f.get<std::string>(), "feature", {}, {f.get<std::string>()}});
  }
  return out;
}

Json RemoveLayers(const Json& model, const std::vector<std::string>& layers) {
  const std::set<std::string> drop(layers.begin(), layers.end());
  if (!model.contains("layers")) return model;  // a TorchScript model: validation allows no component
  Json out = model;
  out["layers"] = Json::array();
  for (const auto& layer : model.at("layers")) {
    if (!drop.count(layer.at("name").get<std::string>())) {
      out["layers"].push_back(layer);
    } else if (layer.value("type", "") == "residual") {
      Json left_out = layer;
      left_out["removed"] = true;
      out["layers"].push_back(left_out);
    }
  }
  return out;
}

Json AblationResults(const std::vector<AblationRun>& runs, const std::vector<AblationVariant>& variants,
                     const std::string& metric, const std::string& mode) {
  std::map<std::string, std::map<int, const AblationRun*>> by_variant;
  for (const auto& r : runs) by_variant[r.variant][r.repeat] = &r;
  const auto& base_runs = by_variant["base"];
  Json rows = Json::array();
  Json base_row;
  for (const auto& v : variants) {
    std::vector<double> values, deltas, epochs, seconds;
    std::map<std::string, int> statuses;
    Json reasons = Json::array();
    for (const auto& [repeat, r] : by_variant[v.name]) {
      statuses[r->status] += 1;
      if (!r->reason.empty() && reasons.size() < 3) reasons.push_back(r->reason);
      if (!r->has_value) continue;
      values.push_back(r->value);
      epochs.push_back(r->epochs);
      seconds.push_back(r->seconds);
      auto b = base_runs.find(repeat);
      if (b != base_runs.end() && b->second->has_value) deltas.push_back(r->value - b->second->value);
    }
    const Stats value = Describe(values), delta = Describe(deltas);
    Json row = {{"variant", v.name}, {"kind", v.kind}, {"removed_layers", v.layers},
                {"dropped_features", v.features}, {"runs", statuses}, {"reasons", reasons},
                {"repeats_with_value", value.n}};
    if (value.n > 0) {
      row["objective_mean"] = value.mean;
      if (value.n > 1) row["objective_sd"] = value.sd;  // one repeat has no spread
      row["epochs_mean"] = Describe(epochs).mean;
      row["seconds_mean"] = Describe(seconds).mean;
    }
    if (v.kind != "base" && delta.n > 0) {
      row["delta_mean"] = delta.mean;  // variant - base, paired by repeat
      if (delta.n > 1) row["delta_sd"] = delta.sd;
      row["impact"] = mode == "min" ? delta.mean : -delta.mean;
    }
    if (v.kind == "base") {
      base_row = row;
    } else {
      rows.push_back(row);
    }
  }
  std::stable_sort(rows.begin(), rows.end(), [](const Json& a, const Json& b) {
    const bool ha = a.contains("impact"), hb = b.contains("impact");
    if (ha != hb) return ha;
    return ha && a["impact"].get<double>() > b["impact"].get<double>();
  });
  return {{"objective", {{"metric", metric}, {"mode", mode}}}, {"base", base_row}, {"variants", rows}};
}

}  // namespace baton::orchestrator
