// Command stages: their params, paths, checkpoint dependencies and outputs
// (pipeline_checks.h).
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "common/vocabulary.h"
#include "orchestrator/internal/pipeline_checks.h"
#include "orchestrator/stage_spec.h"

namespace baton::orchestrator {
namespace spec_detail {
namespace {

// The path as compared with other stages' paths: lexically normal, no
// trailing '/'.
std::string NormalPath(const std::string& path) {
  std::string p = std::filesystem::path(path).lexically_normal().generic_string();
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// Whether `inner` is `outer` or lies under it.
bool Within(const std::string& inner, const std::string& outer) {
  return inner == outer || (inner.size() > outer.size() && inner.compare(0, outer.size(), outer) == 0 &&
                            (outer == "/" || inner[outer.size()] == '/'));
}

// A relative path that stays inside the working directory.
bool Inside(const std::string& path) {
  const std::filesystem::path p = std::filesystem::path(path).lexically_normal();
  return !p.is_absolute() && !p.empty() && *p.begin() != ".." && p != ".";
}

void CheckParamRefs(const std::string& pointer, const std::string& text, const Json& params, Issues& issues) {
  try {
    SubstituteParams(text, params);
  } catch (const Error& e) {
    issues.push_back({pointer, e.what()});
  }
}

}  // namespace

bool IsCommandOut(const Json& stages, const std::set<std::string>& upstream, const std::string& path) {
  const std::string p = NormalPath(path);
  for (const auto& u : upstream) {
    const Json& stage = stages.at(u);
    if (!Is(stage.value("type", ""), StageType::kCommand)) continue;
    for (const auto& out : stage.value("outs", Json::array())) {
      if (Within(p, NormalPath(out.get<std::string>()))) return true;
    }
  }
  return false;
}

void CheckCommand(const Json& stages, const std::string& name, const std::set<std::string>& upstream,
                  Issues& issues) {
  const std::string sp = StagePtr(name);
  const Json& stage = stages.at(name);
  const Json params = stage.value("params", Json::object());
  const Json& cmd = stage["cmd"];
  for (size_t i = 0; i < cmd.size(); ++i) {
    CheckParamRefs(PointerAppend(sp + "/cmd", std::to_string(i)), cmd[i].get<std::string>(), params, issues);
  }
  const Json env = stage.value("env", Json::object());
  for (const auto& [k, v] : env.items()) {
    CheckParamRefs(PointerAppend(sp + "/env", k), v.get<std::string>(), params, issues);
  }
  if (cmd.size() > 0 && cmd[0].get<std::string>().empty()) {
    issues.push_back({sp + "/cmd/0", "names no program"});
  }
  const Json outs = stage.value("outs", Json::array());
  std::vector<std::string> out_paths;
  for (size_t i = 0; i < outs.size(); ++i) {
    const std::string op = PointerAppend(sp + "/outs", std::to_string(i));
    if (!Inside(outs[i].get<std::string>())) {
      issues.push_back({op, "must be a path inside the run's working directory (relative, without \"..\"): "
                            "outputs are restored there from the store"});
      continue;
    }
    out_paths.push_back(NormalPath(outs[i].get<std::string>()));
  }
  for (size_t i = 0; i < out_paths.size(); ++i) {
    for (size_t j = 0; j < out_paths.size(); ++j) {
      if (i != j && Within(out_paths[j], out_paths[i]) && out_paths[i] != out_paths[j]) {
        issues.push_back({PointerAppend(sp + "/outs", std::to_string(j)),
                          Quote(out_paths[j]) + " lies inside another out, " + Quote(out_paths[i])});
      }
    }
  }
  const Json deps = stage.value("deps", Json::array());
  for (size_t i = 0; i < deps.size(); ++i) {
    const std::string dp = PointerAppend(sp + "/deps", std::to_string(i));
    const bool checkpoint = deps[i].is_object();
    const std::string path = NormalPath(checkpoint ? deps[i]["path"].get<std::string>() : deps[i].get<std::string>());
    for (const auto& out : out_paths) {
      if (Within(path, out) || Within(out, path)) {
        issues.push_back({checkpoint ? dp + "/path" : dp,
                          Quote(path) + " is both a dependency and an output (" + Quote(out) +
                              ") of this stage: a command cannot read what it writes"});
      }
    }
    if (checkpoint && !Inside(deps[i]["path"].get<std::string>())) {
      issues.push_back({dp + "/path", "must be a path inside the run's working directory (relative, without "
                                      "\"..\"): Baton writes the checkpoint there"});
    }
    if (checkpoint) {
      const Json& from = deps[i]["checkpoint"];
      const std::string ref = from["stage"].get<std::string>();
      if (CheckTuneRef(stages, name, ref, upstream, dp + "/checkpoint/stage", issues) &&
          from["epoch"].is_number_integer()) {
        const int64_t max_epochs = stages.at(ref)["budget"]["max_epochs"].get<int64_t>();
        if (from["epoch"].get<int64_t>() >= max_epochs) {
          issues.push_back({dp + "/checkpoint/epoch", "epoch " + from["epoch"].dump() + " does not exist: stage " +
                                                          Quote(ref) + " trains epochs 0.." +
                                                          std::to_string(max_epochs - 1) + " (0-based)"});
        }
      }
    } else {
      CheckWrittenUpstream(stages, name, upstream, path, dp, issues);
    }
  }
}

void CheckWrittenUpstream(const Json& stages, const std::string& name, const std::set<std::string>& upstream,
                          const std::string& path, const std::string& pointer, Issues& issues) {
  for (const auto& [other, s] : stages.items()) {
    if (other == name || upstream.count(other) || !Is(s.value("type", ""), StageType::kCommand)) continue;
    if (IsCommandOut(stages, {other}, path)) {
      issues.push_back({pointer, Quote(NormalPath(path)) + " is an output of stage " + Quote(other) +
                                     ", which is not upstream of " + Quote(name) + "; add it to depends_on"});
    }
  }
}

void CheckCommandOutsUnique(const Json& stages, Issues& issues) {
  std::map<std::string, std::string> owner;  // out -> stage
  for (const auto& [name, stage] : stages.items()) {
    if (!Is(stage.value("type", ""), StageType::kCommand)) continue;
    const Json outs = stage.value("outs", Json::array());
    for (size_t i = 0; i < outs.size(); ++i) {
      const std::string out = NormalPath(outs[i].get<std::string>());
      for (const auto& [other_out, other] : owner) {
        if (other != name && (Within(out, other_out) || Within(other_out, out))) {
          issues.push_back({PointerAppend(StagePtr(name) + "/outs", std::to_string(i)),
                            Quote(out) + " is also an output of stage " + Quote(other) +
                                " (" + Quote(other_out) + "); each path has one stage that writes it"});
        }
      }
      owner.emplace(out, name);
    }
  }
}

}  // namespace spec_detail
}  // namespace baton::orchestrator
