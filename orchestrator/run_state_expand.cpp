// Stages into tasks: a stage's trials with their seeds, hyperparameters and
// selectors resolved (init_from, base, hyperparameters.from); and the
// outputs of finished tune, ablate and compare stages (run_state.h).
#include "orchestrator/internal/run_state.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "common/crash_point.h"
#include "common/error.h"
#include "orchestrator/internal/ablation.h"
#include "orchestrator/internal/compare.h"
#include "orchestrator/internal/search.h"

namespace baton::orchestrator {

void RunState::ExpandStage(Stage& stage) {
  const std::string& name = stage.rec.name;
  std::string dataset;
  if (!Is(stage.rec.type, StageType::kPrepare) && !Is(stage.rec.type, StageType::kCommand)) {
    const std::string& data_stage = pipeline_.data_stage.at(name);
    for (auto& s : stages_) {
      if (s->rec.name == data_stage) dataset = s->rec.output;
    }
    AddEdge(Node("stage", stage.rec.id), Node("artifact", dataset), "trained_on", Json::object());
  }
  StoreModelFile(stage);
  const TaskAdder add_task = [&](int number, Json hp, Json task, uint64_t seed) -> Task& {
    store::TrialRecord t;
    t.stage_id = stage.rec.id;
    t.number = number;
    t.kind = task.at("kind").get<std::string>();
    t.hyperparameters = std::move(hp);
    t.seed = static_cast<int64_t>(seed);
    t.status = Name(TrialStatus::kPending);
    task["seed"] = seed;
    task["stage"] = name;
    // Only when asked: the tasks of pipelines without them stay as they were.
    if (stage.typed->ranks > 1) task["ranks"] = stage.typed->ranks;
    if (stage.typed->device != "auto") task["device"] = stage.typed->device;
    if (stage.typed->partitioning.type != "random") task["partitioning"] = stage.typed->partitioning.ToJson();
    const bool model_file = AddModelFile(stage, task);
    t.task = task;
    t.id = Apply(effect::AddTrial{t}).id;
    AddEdge(Node("trial", t.id), Node("stage", stage.rec.id), "part_of", Json::object());
    if (model_file) AddEdge(Node("trial", t.id), Node("artifact", stage.model_file), "model_from");
    if (!dataset.empty()) {
      AddEdge(Node("trial", t.id), Node("artifact", dataset), "trained_on", Json::object());
    }
    auto task_state = std::make_unique<Task>();
    task_state->rec = t;
    task_state->stage = &stage;
    Task& added = *task_state;
    stage.tasks.push_back(task_state.get());
    tasks_[t.id] = std::move(task_state);
    return added;
  };

  if (stage.typed->type == StageType::kPrepare) {
    LinkCommandOutputs(stage, {stage.typed->doc.at("dataset").value("path", "")});  // a command's out
  }
  switch (stage.typed->type) {
    case StageType::kPrepare: ExpandPrepare(stage, add_task); break;
    case StageType::kTune: ExpandTune(stage, dataset, add_task); break;
    case StageType::kAblate: ExpandAblation(stage, dataset, add_task); break;
    case StageType::kTrain: ExpandTrain(stage, dataset, add_task); break;
    case StageType::kCommand: ExpandCommand(stage, add_task); break;
  }
  RecordModelFile(stage);
}

// One task: prepare the dataset as the stage says.
void RunState::ExpandPrepare(Stage& stage, const TaskAdder& add_task) {
  const Json& spec = stage.typed->doc;
  const std::string& name = stage.rec.name;
  Json task = {{"kind", Name(TaskKind::kPrepare)}, {"prepare", spec}};
  task["prepare"].erase("depends_on");
  task["prepare"].erase("cache");
  add_task(0, Json::object(), task, DeriveSeed(pipeline_.seed, name));
}

// One task per trial, with the hyperparameters the sampler chose (TPE: when
// the trial starts).
void RunState::ExpandTune(Stage& stage, const std::string& dataset, const TaskAdder& add_task) {
  const Json& spec = stage.typed->doc;
  const std::string& name = stage.rec.name;
  // TPE decides a trial's hyperparameters when it starts, from the trials
  // finished by then; its records exist from the start all the same.
  const bool lazy = stage.typed->sampler.type == "tpe";
  std::vector<Json> trials;
  if (lazy) {
    trials.assign(static_cast<size_t>(stage.typed->max_trials), Json::object());
  } else {
    trials = SampleTrials(spec, DeriveSeed(pipeline_.seed, name));
  }
  for (size_t i = 0; i < trials.size(); ++i) {
    Json task = {{"kind", Name(TaskKind::kTrain)},
                 {"dataset", dataset},
                 {"model", lazy ? Json() : SubstituteModel(spec.at("model"), trials[i])},
                 {"hyperparameters", trials[i]},
                 {"epochs", stage.typed->max_epochs},
                 {"start_epoch", 0},
                 {"resume_checkpoint", nullptr},
                 {"init_checkpoint", nullptr},
                 {"evaluate_test", false}};
    Task& added = add_task(static_cast<int>(i), trials[i], task,
                           DeriveSeed(pipeline_.seed, name + "/trial/" + std::to_string(i)));
    if (lazy) added.sampled = false;
  }
}

// The model's task, from its resolved hyperparameters and init_from; with
// "compare", also the comparison's tasks (ExpandComparison).
void RunState::ExpandTrain(Stage& stage, const std::string& dataset, const TaskAdder& add_task) {
  const Json& spec = stage.typed->doc;
  const std::string& name = stage.rec.name;
  Json resolved = Json::object();
  Json hp;
  Json model;
  int64_t hp_trial = 0;
  if (const auto& sel = stage.typed->hyperparameters_from) {
    Json from = ResolveTrial(*sel);
    hp = from["hyperparameters"];
    hp_trial = from["trial_id"].get<int64_t>();
    resolved["hyperparameters_from"] = from;
    model = spec.contains("model") ? spec["model"] : pipeline_.stage(sel->stage).at("model");
  } else {
    hp = spec.at("hyperparameters");
    model = spec.at("model");
  }
  const Json init = InitFrom(*stage.typed, &resolved);
  stage.rec.resolved = resolved;
  Json concrete_model = SubstituteModel(model, hp);
  Json task = {{"kind", Name(TaskKind::kTrain)},
               {"dataset", dataset},
               {"model", concrete_model},
               {"hyperparameters", hp},
               {"epochs", stage.typed->max_epochs},
               {"start_epoch", 0},
               {"resume_checkpoint", nullptr},
               {"init_checkpoint", init},
               {"evaluate_test", true}};
  uint64_t seed = stage.typed->seed.value_or(DeriveSeed(pipeline_.seed, name));
  const int64_t id = add_task(0, hp, task, seed).rec.id;
  if (hp_trial != 0) {
    AddEdge(Node("trial", id), Node("trial", hp_trial), "hyperparameters_from", Json::object());
  }
  if (stage.typed->compare) ExpandComparison(stage, task, hp, hp_trial, seed, add_task);
}

// The paper's protocol: per seed, the baseline and a start from each
// requested epoch of the same trial, with the same hyperparameters, data
// order and epoch count as the model's task `task`.
void RunState::ExpandComparison(Stage& stage, const Json& task, const Json& hp, int64_t hp_trial, uint64_t seed,
                                   const TaskAdder& add_task) {
  const CompareSpec& compare = *stage.typed->compare;
  Json variants = Json::array();
  variants.push_back({{"variant", "kaiming_uniform"}, {"tuning_epochs", 0}, {"checkpoint", ""}, {"checkpoint_bytes", 0}});
  std::vector<std::string> inits = {""};
  for (const EpochSelector& e : compare.epochs_from) {
    InitSelector sel = *stage.typed->init_from;
    sel.epoch = e;
    Json from = ResolveInit(sel);
    const std::string checkpoint = from["checkpoint"].get<std::string>();
    const int tuning_epochs = from["epoch"].is_number_integer() ? from["epoch"].get<int>() + 1 : 0;
    const uint64_t bytes = reads_.CheckpointBytes(checkpoint, from["stage_id"].get<int64_t>());
    variants.push_back({{"variant", "epoch:" + e.Label()},
                        {"epoch", from["epoch"]}, {"tuning_epochs", tuning_epochs},
                        {"checkpoint", checkpoint}, {"checkpoint_bytes", bytes}});
    inits.push_back(checkpoint);
  }
  stage.rec.resolved["compare"] = {{"variants", variants}, {"seeds", compare.seeds}, {"target", compare.target}};
  int number = 1;
  for (int s = 0; s < compare.seeds; ++s) {
    const uint64_t seed_s = DeriveSeed(seed, "compare/seed/" + std::to_string(s));
    for (size_t v = 0; v < inits.size(); ++v) {
      Json t = task;
      t["init_checkpoint"] = inits[v].empty() ? Json() : Json(inits[v]);
      t["variant"] = variants[v]["variant"];
      t["repeat"] = s;
      const int64_t cid = add_task(number++, hp, t, seed_s).rec.id;
      if (hp_trial != 0) {
        AddEdge(Node("trial", cid), Node("trial", hp_trial), "hyperparameters_from", Json::object());
      }
    }
  }
}

Json RunState::CompareOutput(Stage& stage) {
  std::vector<CompareRun> runs;
  for (Task* t : stage.tasks) {
    if (!t->rec.task.contains("variant")) continue;  // the stage's own model
    CompareRun r;
    r.variant = t->rec.task["variant"].get<std::string>();
    r.seed_index = t->rec.task.value("repeat", 0);
    r.status = t->rec.status;
    r.reason = t->rec.reason;
    for (const auto& e : reads_.Epochs(t->rec.id)) {
      r.val.push_back(e.metrics.value("val_accuracy", NAN));
      r.test.push_back(e.metrics.value("test_accuracy", NAN));
      r.seconds.push_back(e.seconds);
    }
    runs.push_back(std::move(r));
  }
  std::vector<CompareVariant> variants;
  for (const auto& v : stage.rec.resolved["compare"]["variants"]) {
    variants.push_back({v["variant"].get<std::string>(), v["tuning_epochs"].get<int>(),
                        v["checkpoint"].get<std::string>(), v["checkpoint_bytes"].get<uint64_t>()});
  }
  Json out = CompareResults(runs, variants, stage.rec.resolved["compare"]["target"]);
  out["seeds"] = stage.rec.resolved["compare"]["seeds"];
  return out;
}

void RunState::ExpandAblation(Stage& stage, const std::string& dataset, const TaskAdder& add_task) {
  const Json& spec = stage.typed->doc;
  const std::string& name = stage.rec.name;
  Json resolved = Json::object();
  Json model, hp;
  int64_t base_trial = 0;
  if (const auto& sel = stage.typed->hyperparameters_from) {
    Json from = ResolveTrial(*sel);
    hp = from["hyperparameters"];
    base_trial = from["trial_id"].get<int64_t>();
    resolved["base"] = from;
    model = pipeline_.stage(sel->stage).at("model");
  } else {
    const Json& base = spec.at("base");
    hp = base.value("hyperparameters", Json::object());
    model = base.at("model");
  }
  const Json init = InitFrom(*stage.typed, &resolved);
  const auto variants = AblationVariants(spec, model);
  Json listed = Json::array();
  for (const auto& v : variants) {
    listed.push_back({{"variant", v.name}, {"kind", v.kind}, {"removed_layers", v.layers}, {"dropped_features", v.features}});
  }
  resolved["variants"] = listed;
  resolved["objective"] = {{"metric", stage.objective().metric}, {"mode", stage.objective().mode}};
  stage.rec.resolved = resolved;
  const int repeats = stage.typed->repeats;
  const uint64_t seed = stage.typed->seed.value_or(DeriveSeed(pipeline_.seed, name));
  int number = 0;
  for (const auto& v : variants) {
    for (int r = 0; r < repeats; ++r) {
      // Repeat r of every variant shares its seed: the comparison with the
      // base is paired (same initialisation of common tensors, same data order).
      Json task = {{"kind", Name(TaskKind::kTrain)},
                   {"dataset", dataset},
                   {"model", SubstituteModel(RemoveLayers(model, v.layers), hp)},
                   {"hyperparameters", hp},
                   {"epochs", stage.typed->max_epochs},
                   {"start_epoch", 0},
                   {"resume_checkpoint", nullptr},
                   {"init_checkpoint", init},
                   {"evaluate_test", false},
                   {"variant", v.name},
                   {"repeat", r},
                   {"drop_features", v.features}};
      const int64_t id = add_task(number++, hp, task, DeriveSeed(seed, "repeat/" + std::to_string(r))).rec.id;
      if (base_trial != 0) {
        AddEdge(Node("trial", id), Node("trial", base_trial), "hyperparameters_from", Json::object());
      }
    }
  }
}

Json RunState::AblationOutput(Stage& stage) {
  std::vector<AblationRun> runs;
  for (Task* t : stage.tasks) {
    AblationRun r;
    r.variant = t->rec.task.value("variant", "");
    r.repeat = t->rec.task.value("repeat", 0);
    r.status = t->rec.status;
    r.reason = t->rec.reason;
    for (const auto& e : reads_.Epochs(t->rec.id)) {
      r.epochs += 1;
      r.seconds += e.seconds;
      if (Is(t->rec.status, TrialStatus::kSucceeded) && e.metrics.contains(stage.objective().metric)) {
        r.has_value = true;
        r.value = e.metrics[stage.objective().metric].get<double>();
      }
    }
    runs.push_back(r);
  }
  std::vector<AblationVariant> variants;
  for (const auto& v : stage.rec.resolved.at("variants")) {
    variants.push_back({v["variant"].get<std::string>(), v["kind"].get<std::string>(),
                        v["removed_layers"].get<std::vector<std::string>>(),
                        v["dropped_features"].get<std::vector<std::string>>()});
  }
  return AblationResults(runs, variants, stage.objective().metric, stage.objective().mode);
}

// init_from's selector resolved to a trial epoch and its checkpoint.
Json RunState::InitFrom(const StageSpec& spec, Json* resolved) {
  if (!spec.init_from) return nullptr;
  Json from = ResolveInit(*spec.init_from);
  Crash("init_from.resolved");
  (*resolved)["init_from"] = from;
  return from["checkpoint"];
}

Json RunState::ResolveInit(const InitSelector& sel) {
  using Kind = EpochSelector::Kind;
  Json from = ResolveTrial(sel.trial);
  auto trial = reads_.Trial(from["trial_id"].get<int64_t>());
  auto epochs = reads_.Epochs(trial->id);
  std::string checkpoint;
  Json epoch_value;
  if (sel.epoch.kind == Kind::kInitial) {
    checkpoint = trial->initial_checkpoint;
    epoch_value = "initial";
  } else if (sel.epoch.kind == Kind::kLast) {
    if (epochs.empty()) throw Error(ErrorCode::kNotFound, "trial " + std::to_string(trial->number) + " has no epochs");
    checkpoint = epochs.back().checkpoint;
    epoch_value = epochs.back().epoch;
  } else if (sel.epoch.kind == Kind::kBest) {
    const Objective& objective = pipeline_.spec(sel.trial.stage).objective;
    const std::string& metric = objective.metric;
    const store::EpochRecord* best = nullptr;
    for (const auto& e : epochs) {
      if (!e.metrics.contains(metric)) continue;
      if (best == nullptr || objective.Better(e.metrics[metric].get<double>(), best->metrics[metric].get<double>())) {
        best = &e;
      }
    }
    if (best == nullptr) throw Error(ErrorCode::kNotFound, "trial " + std::to_string(trial->number) + " has no epoch with " + metric);
    checkpoint = best->checkpoint;
    epoch_value = best->epoch;
  } else {
    const int k = sel.epoch.number;
    auto it = std::find_if(epochs.begin(), epochs.end(), [&](const store::EpochRecord& e) { return e.epoch == k; });
    if (it == epochs.end()) {
      throw Error(ErrorCode::kNotFound, "init_from: trial " + std::to_string(trial->number) + " has no epoch " +
                                            std::to_string(k) + " (it ran " + std::to_string(epochs.size()) + " epochs, 0-based)");
    }
    checkpoint = it->checkpoint;
    epoch_value = k;
  }
  if (!checkpoint.empty() && reads_.CheckpointReleasedAt(checkpoint) > 0) {
    throw Error(ErrorCode::kNotFound, "init_from: checkpoint of trial " + std::to_string(trial->number) + " epoch " +
                                          epoch_value.dump() +
                                          " was released by baton store gc (the stage's checkpoints.keep did not keep "
                                          "it); bump that stage's cache.version to train it again");
  }
  if (checkpoint.empty() || !reads_.HasBlob(checkpoint)) {
    throw Error(ErrorCode::kNotFound, "init_from: checkpoint of trial " + std::to_string(trial->number) +
                                          " epoch " + epoch_value.dump() + " is not in the blob store");
  }
  from["epoch"] = epoch_value;
  from["checkpoint"] = checkpoint;
  return from;
}

Json RunState::ResolveTrial(const TrialSelector& selector) {
  const std::string& stage_name = selector.stage;
  const int64_t stage_id = EffectiveStageId(stage_name);
  const Objective& objective = pipeline_.spec(stage_name).objective;
  const std::string& metric = objective.metric;
  struct Ranked {
    store::TrialRecord trial;
    double value;
  };
  std::vector<Ranked> ranked;
  std::vector<store::TrialRecord> all = reads_.Trials(stage_id);
  for (const auto& t : all) {
    if (!Is(t.status, TrialStatus::kSucceeded)) continue;
    auto epochs = reads_.Epochs(t.id);
    if (epochs.empty() || !epochs.back().metrics.contains(metric)) continue;
    ranked.push_back({t, epochs.back().metrics[metric].get<double>()});
  }
  // The paper ranks trials by the objective at their final epoch.
  std::stable_sort(ranked.begin(), ranked.end(), [&](const Ranked& a, const Ranked& b) {
    return objective.Better(a.value, b.value);
  });
  const Ranked* pick = nullptr;
  int rank = 0;
  if (!selector.number) {
    rank = selector.rank;
    if (rank > static_cast<int>(ranked.size())) {
      throw Error(ErrorCode::kNotFound, "stage " + stage_name + " has " + std::to_string(ranked.size()) +
                                            " succeeded trials; cannot select rank " + std::to_string(rank));
    }
    pick = &ranked[rank - 1];
  } else {
    const int number = *selector.number;
    for (size_t i = 0; i < ranked.size(); ++i) {
      if (ranked[i].trial.number == number) {
        pick = &ranked[i];
        rank = static_cast<int>(i) + 1;
      }
    }
    if (pick == nullptr) {
      throw Error(ErrorCode::kNotFound, "stage " + stage_name + " has no succeeded trial number " + std::to_string(number));
    }
  }
  return {{"stage", stage_name}, {"stage_id", stage_id}, {"trial_id", pick->trial.id},
          {"trial_number", pick->trial.number}, {"rank", rank},
          {"objective", {{"metric", metric}, {"mode", objective.mode}, {"value", pick->value}}},
          {"hyperparameters", pick->trial.hyperparameters}};
}

std::string RunState::StudyOutput(Stage& stage) {
  Json study = {{"stage", stage.rec.name}, {"objective", stage.typed->objective.ToJson()}, {"trials", Json::array()}};
  for (Task* t : stage.tasks) {
    Json trial = {{"number", t->rec.number}, {"hyperparameters", t->rec.hyperparameters},
                  {"status", t->rec.status}, {"initial_checkpoint", t->rec.initial_checkpoint},
                  {"epochs", Json::array()}};
    for (const auto& e : reads_.Epochs(t->rec.id)) {
      trial["epochs"].push_back({{"epoch", e.epoch}, {"checkpoint", e.checkpoint}, {"metrics", e.metrics}});
    }
    study["trials"].push_back(trial);
  }
  return PutBlob(CanonicalJson(study));
}

}  // namespace baton::orchestrator
