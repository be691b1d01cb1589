#include "orchestrator/stage_spec.h"

#include "common/error.h"

namespace baton::orchestrator {
namespace {

Objective ObjectiveOf(const Json& j) {
  Objective o;
  if (!j.is_object()) return o;
  o.metric = j.value("metric", o.metric);
  o.mode = j.value("mode", o.mode);
  return o;
}

TrialSelector TrialSelectorOf(const std::string& stage, const Json& trial) {
  TrialSelector t;
  t.stage = stage;
  if (trial.is_number_integer()) t.rank = trial.get<int>();
  if (trial.is_object()) t.number = trial.at("id").get<int>();
  return t;
}

EpochSelector EpochSelectorOf(const Json& epoch) {
  EpochSelector e;
  if (epoch.is_number_integer()) {
    e.kind = EpochSelector::Kind::kNumber;
    e.number = epoch.get<int>();
  } else if (epoch == "initial") {
    e.kind = EpochSelector::Kind::kInitial;
  } else if (epoch == "best") {
    e.kind = EpochSelector::Kind::kBest;
  }
  return e;
}

}  // namespace

Json EpochSelector::ToJson() const {
  switch (kind) {
    case Kind::kInitial: return "initial";
    case Kind::kLast: return "last";
    case Kind::kBest: return "best";
    case Kind::kNumber: return number;
  }
  return nullptr;
}

std::string EpochSelector::Label() const { return kind == Kind::kNumber ? std::to_string(number) : ToJson().get<std::string>(); }

Json StageSpec::Partitioning::ToJson() const {
  return {{"type", type}, {"heuristic", heuristic}, {"warmup_epochs", warmup_epochs}, {"every", every}};
}

StageSpec ParseStageSpec(const std::string& name, const Json& stage) {
  StageSpec s;
  s.name = name;
  s.doc = stage;
  const auto type = ParseStageType(stage.value("type", ""));
  if (!type) throw Error(ErrorCode::kInvalidArgument, "stage " + name + " has no known type", "/stages/" + name);
  s.type = *type;
  for (const auto& d : stage.value("depends_on", Json::array())) s.depends_on.push_back(d.get<std::string>());
  if (stage.contains("seed")) s.seed = stage["seed"].get<uint64_t>();
  if (stage.contains("objective")) {
    s.objective = ObjectiveOf(stage["objective"]);
    s.objective_given = true;
  }
  const Json budget = stage.value("budget", Json::object());
  s.max_trials = budget.value("max_trials", 0);
  s.max_epochs = s.type == StageType::kTune ? budget.value("max_epochs", 0) : stage.value("epochs", 0);
  if (budget.contains("max_parallel")) s.max_parallel = budget["max_parallel"].get<int>();
  if (s.type == StageType::kTrain && stage.contains("compare") && stage["compare"].contains("max_parallel")) {
    s.max_parallel = stage["compare"]["max_parallel"].get<int>();
  }
  s.timeout_seconds = budget.value("timeout_seconds", 0.0);
  s.synchronous = stage.value("scheduling", "asynchronous") == "synchronous";
  const Json sampler = stage.value("sampler", Json::object());
  s.sampler.type = sampler.value("type", s.sampler.type);
  if (sampler.contains("n_startup_trials")) s.sampler.n_startup_trials = sampler["n_startup_trials"].get<int>();
  if (sampler.contains("n_ei_candidates")) s.sampler.n_ei_candidates = sampler["n_ei_candidates"].get<int>();
  const Json pruner = stage.value("pruner", Json::object());
  s.pruner.type = pruner.value("type", s.pruner.type);
  s.pruner.min_resource = pruner.value("min_resource", s.pruner.min_resource);
  s.pruner.max_resource = pruner.value("max_resource", s.max_epochs);
  s.pruner.reduction_factor = pruner.value("reduction_factor", s.pruner.reduction_factor);
  if (pruner.contains("n_startup_trials")) s.pruner.n_startup_trials = pruner["n_startup_trials"].get<int>();
  const Json retry = stage.value("retry", Json::object());
  s.ranks = stage.value("ranks", 1);
  s.device = stage.value("device", "auto");
  const Json partitioning = stage.value("partitioning", Json::object());
  s.partitioning.type = partitioning.value("type", s.partitioning.type);
  s.partitioning.heuristic = partitioning.value("heuristic", s.partitioning.heuristic);
  s.partitioning.warmup_epochs = partitioning.value("warmup_epochs", s.partitioning.warmup_epochs);
  s.partitioning.every = partitioning.value("every", s.partitioning.every);
  s.max_attempts = retry.value("max_attempts", s.max_attempts);
  s.backoff_seconds = retry.value("backoff_seconds", s.backoff_seconds);
  s.repeats = stage.value("repeats", s.repeats);
  if (stage.contains("checkpoints") && stage["checkpoints"].is_object() && stage["checkpoints"].contains("keep") &&
      stage["checkpoints"]["keep"].is_object()) {
    const Json& keep = stage["checkpoints"]["keep"];
    s.keep = StageSpec::Keep{keep.value("best_k", 0), keep.value("last_k", 0)};
  }
  const Json& from = s.type == StageType::kAblate ? stage.value("base", Json::object())
                                                  : stage.value("hyperparameters", Json::object());
  if ((s.type == StageType::kTrain || s.type == StageType::kAblate) && from.is_object() && from.contains("from")) {
    s.hyperparameters_from = TrialSelectorOf(from["from"].get<std::string>(), from.value("trial", Json("best")));
  }
  if (stage.contains("init_from") && stage["init_from"].is_object()) {
    const Json& init = stage["init_from"];
    s.init_from = InitSelector{TrialSelectorOf(init.at("stage").get<std::string>(), init.at("trial")),
                               EpochSelectorOf(init.at("epoch"))};
  }
  if (s.type == StageType::kTrain && stage.contains("compare") && stage["compare"].is_object()) {
    const Json& compare = stage["compare"];
    CompareSpec c;
    c.seeds = compare.at("seeds").get<int>();
    if (compare.contains("epochs_from")) {
      for (const auto& e : compare["epochs_from"]) c.epochs_from.push_back(EpochSelectorOf(e));
    } else if (s.init_from) {
      c.epochs_from.push_back(s.init_from->epoch);
    }
    c.target = compare.value("target", Json{{"fraction_of_baseline_best", 0.99}});
    s.compare = c;
  }
  if (s.type == StageType::kCommand) {
    CommandSpec c;
    c.cmd = stage.at("cmd").get<std::vector<std::string>>();
    for (const auto& d : stage.value("deps", Json::array())) {
      CommandSpec::Dep dep;
      if (d.is_string()) {
        dep.path = d.get<std::string>();
      } else {
        dep.path = d.at("path").get<std::string>();
        const Json& from = d.at("checkpoint");
        dep.checkpoint = InitSelector{TrialSelectorOf(from.at("stage").get<std::string>(), from.at("trial")),
                                      EpochSelectorOf(from.at("epoch"))};
      }
      c.deps.push_back(std::move(dep));
    }
    c.outs = stage.value("outs", std::vector<std::string>{});
    c.params = stage.value("params", Json::object());
    c.env = stage.value("env", std::map<std::string, std::string>{});
    c.timeout_seconds = stage.value("timeout_seconds", 0.0);
    s.command = std::move(c);
  }
  return s;
}

std::string SubstituteParams(const std::string& text, const Json& params) {
  static const std::string kOpen = "${params.";
  std::string out;
  size_t at = 0;
  while (true) {
    const size_t open = text.find(kOpen, at);
    const size_t close = open == std::string::npos ? open : text.find('}', open);
    if (close == std::string::npos) break;
    const std::string name = text.substr(open + kOpen.size(), close - open - kOpen.size());
    if (!params.is_object() || !params.contains(name)) {
      throw Error(ErrorCode::kInvalidArgument, "\"${params." + name + "}\" names no param of this stage");
    }
    const Json& value = params[name];
    out += text.substr(at, open - at);
    out += value.is_string() ? value.get<std::string>() : value.dump();
    at = close + 1;
  }
  return out + text.substr(at);
}

std::map<std::string, StageSpec> ParseStageSpecs(const Json& pipeline_doc) {
  std::map<std::string, StageSpec> specs;
  for (const auto& [name, stage] : pipeline_doc.at("stages").items()) specs.emplace(name, ParseStageSpec(name, stage));
  for (auto& [name, s] : specs) {
    if (s.type != StageType::kAblate || s.objective_given) continue;
    auto from = s.hyperparameters_from ? specs.find(s.hyperparameters_from->stage) : specs.end();
    if (from != specs.end()) s.objective = from->second.objective;
  }
  return specs;
}

Objective RecordedObjective(const Json& spec, const Json& resolved) {
  if (spec.is_object() && spec.contains("objective")) return ObjectiveOf(spec["objective"]);
  if (resolved.is_object() && resolved.contains("objective")) return ObjectiveOf(resolved["objective"]);
  return Objective{};
}

}  // namespace baton::orchestrator
