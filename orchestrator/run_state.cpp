// The run's and its stages' life cycle: starting stages (or taking them
// from the cache), finishing tasks (with retries), stages and the run;
// cancelling and interrupting it (run_state.h).
#include "orchestrator/internal/run_state.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "common/digest.h"
#include "common/error.h"
#include "common/file_digest.h"
#include "orchestrator/internal/reasons.h"

namespace baton::orchestrator {

RunState::RunState(const Pipeline& pipeline, std::string run_id, const CoordinatorOptions& options,
                   RunReads& reads, EffectSink& effects)
    : pipeline_(pipeline), run_id_(std::move(run_id)), options_(options), reads_(reads), effects_(effects) {
  auto records = reads_.Stages(run_id_);
  for (const auto& name : pipeline_.order) {
    auto it = std::find_if(records.begin(), records.end(),
                           [&](const store::StageRecord& r) { return r.name == name; });
    if (it == records.end()) {
      throw Error(ErrorCode::kCorrupt, "run " + run_id_ + " has no stage " + name + " in the lineage DB");
    }
    auto stage = std::make_unique<Stage>();
    stage->rec = *it;
    const StageSpec& spec = pipeline_.spec(name);
    stage->typed = &spec;
    if (stage->rec.resolved.is_object() && stage->rec.resolved.contains("torchscript")) {
      stage->model_file = stage->rec.resolved["torchscript"].value("manifest", "");  // a resumed stage's
    }
    const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    if (spec.type == StageType::kTune) {
      stage->max_parallel = spec.max_parallel.value_or(options_.default_parallel);
      stage->tpe.n_startup_trials = spec.sampler.n_startup_trials.value_or(stage->tpe.n_startup_trials);
      stage->tpe.n_ei_candidates = spec.sampler.n_ei_candidates.value_or(stage->tpe.n_ei_candidates);
      stage->median.min_resource = spec.pruner.min_resource;
      stage->median.n_startup_trials = spec.pruner.n_startup_trials.value_or(stage->median.n_startup_trials);
      stage->asha.min_resource = spec.pruner.min_resource;
      stage->asha.max_resource = spec.pruner.max_resource;
      stage->asha.reduction_factor = spec.pruner.reduction_factor;
    } else if (spec.type == StageType::kAblate || spec.compare) {
      stage->max_parallel = spec.max_parallel.value_or(cores);
    }
    stages_.push_back(std::move(stage));
  }
}

RunState::~RunState() = default;

void RunState::Emit(const std::string& type, const std::string& stage, int64_t trial_id, int trial_number,
                    Json data) {
  Event event;
  event.type = type;
  event.run_id = run_id_;
  event.stage = stage;
  event.trial_id = trial_id;
  event.trial_number = trial_number;
  event.data = std::move(data);
  event.time = Now();
  if (trial_id > 0) {
    // Ablation tasks are known by their variant, not their number.
    auto it = tasks_.find(trial_id);
    if (it != tasks_.end() && it->second->rec.task.contains("variant")) {
      event.data["variant"] = it->second->rec.task["variant"];
      event.data["repeat"] = it->second->rec.task.value("repeat", 0);
    }
  }
  Apply(effect::Emit{std::move(event)});
}

int RunState::MaxParallel() const {
  int n = 1;
  for (const auto& s : stages_) n = std::max(n, s->max_parallel);
  return n;
}

void RunState::Start(const Instant& now) {
  now_ = now;
  if (finished_) return;  // cancelled before it started
  auto run = reads_.Run(run_id_);
  if (!run) throw Error(ErrorCode::kNotFound, "no run " + run_id_);
  run->status = Name(RunStatus::kRunning);
  Apply(effect::UpdateRun{*run});
  status_ = Name(RunStatus::kRunning);
  Emit("run_started", "", 0, -1, {{"pipeline", pipeline_.name}, {"stages", pipeline_.order}, {"resumed", resumed_}});
  if (resumed_) {
    EmitResumed();
    // A stage may have ended with the process, before it was recorded.
    for (auto& stage : stages_) {
      if (Is(stage->rec.status, StageStatus::kRunning)) MaybeFinishStage(*stage);
    }
  }
  MaybeStartStages();
  FinishRunIfDone();
}

void RunState::MaybeStartStages() {
  for (auto& stage : stages_) {
    if (!Is(stage->rec.status, StageStatus::kPending)) continue;
    bool ready = true, blocked = false;
    for (const auto& dep : pipeline_.depends_on.at(stage->rec.name)) {
      for (auto& other : stages_) {
        if (other->rec.name != dep) continue;
        const std::string& s = other->rec.status;
        if (Is(s, StageStatus::kFailed) || Is(s, StageStatus::kSkipped)) blocked = true;
        if (!Is(s, StageStatus::kSucceeded) && !Is(s, StageStatus::kCached)) ready = false;
      }
    }
    if (blocked) {
      stage->rec.status = Name(StageStatus::kSkipped);
      stage->rec.error = "an upstream stage failed";
      stage->rec.finished_at = Now();
      UpdateStage(stage->rec);
      Emit("stage_finished", stage->rec.name, 0, -1, {{"status", Name(StageStatus::kSkipped)}, {"error", stage->rec.error}});
      continue;
    }
    if (ready) StartStage(*stage);
  }
}

std::string RunState::StageCacheKey(const Stage& stage) {
  Json key;
  key["format"] = 1;
  key["type"] = stage.rec.type;
  key["spec"] = stage.typed->doc;
  key["spec"].erase("depends_on");
  key["spec"].erase("checkpoints");  // retention changes what is kept, not what is computed
  key["seed"] = pipeline_.seed;
  key["stage"] = stage.rec.name;  // trial seeds derive from the stage name
  Json inputs = Json::object();
  for (const auto& dep : pipeline_.depends_on.at(stage.rec.name)) {
    for (auto& other : stages_) {
      if (other->rec.name == dep) inputs[dep] = other->rec.output;
    }
  }
  key["inputs"] = inputs;
  // A TorchScript model's bytes, not just its path (ReadModelFile).
  if (!stage.model_file.empty()) key["model_file"] = stage.model_file;
  if (Is(stage.rec.type, StageType::kPrepare)) {
    // The dataset's bytes, not just its path: a changed file invalidates.
    const Json& dataset = stage.typed->doc.at("dataset");
    const std::string dir = dataset.at("path").get<std::string>();
    Json files = Json::object();
    std::vector<std::string> paths;
    const std::string format = dataset.value("format", "idx");
    if (format == "image_folder" || format == "npz") {
      // Every image of every class folder, or the archive.
      try {
        key["dataset_digest"] = PathDigest(dir);
      } catch (const Error&) {
        // the worker reports the missing folder or file
      }
    } else if (format == "npy") {
      for (const char* array : {"x", "y", "x_test", "y_test"}) {
        std::string name = dataset.value(array, array);
        if (name.size() <= 4 || name.compare(name.size() - 4, 4, ".npy") != 0) name += ".npy";
        paths.push_back(dir + "/" + name);
      }
    } else if (format == "csv") {
      paths.push_back(dir);
    } else {
      for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                            "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
        paths.push_back(dir + "/" + f);
      }
    }
    for (const std::string& f : paths) {
      std::FILE* fp = std::fopen(f.c_str(), "rb");
      if (fp == nullptr) continue;  // the worker reports the missing file
      Sha256 h;
      std::string buf(1 << 20, '\0');
      size_t n;
      while ((n = std::fread(buf.data(), 1, buf.size(), fp)) > 0) h.Update(std::string_view(buf.data(), n));
      std::fclose(fp);
      files[std::filesystem::path(f).filename().string()] = h.FinishHex();
    }
    key["dataset_files"] = files;
  }
  if (stage.typed->command) key["deps"] = CommandDepDigests(stage);
  return JsonDigest(key);
}

int64_t RunState::EffectiveStageId(const std::string& stage_name) {
  for (auto& s : stages_) {
    if (s->rec.name == stage_name) return s->rec.cached_from != 0 ? s->rec.cached_from : s->rec.id;
  }
  throw Error(ErrorCode::kInternal, "no stage " + stage_name);
}

// A stage that could not start (its model file unreadable, its expansion
// refused) fails with the reason; the stages after it are skipped.
void RunState::FailStageAtStart(Stage& stage, const std::string& reason) {
  stage.rec.status = Name(StageStatus::kFailed);
  stage.rec.error = reason;
  stage.rec.finished_at = Now();
  UpdateStage(stage.rec);
  Emit("stage_finished", stage.rec.name, 0, -1, {{"status", Name(StageStatus::kFailed)}, {"error", stage.rec.error}});
  MaybeStartStages();
}

void RunState::StartStage(Stage& stage) {
  stage.rec.started_at = Now();
  try {
    ReadModelFile(stage);
  } catch (const Error& e) {
    FailStageAtStart(stage, e.what());
    return;
  }
  stage.rec.cache_key = StageCacheKey(stage);
  auto cached = reads_.CachedStage(stage.rec.cache_key);
  if (cached && cached->id != stage.rec.id && stage.typed->command && !cached->output.empty() &&
      !RestoreCommandOutputs(stage, cached->output)) {
    cached.reset();
  }
  if (cached && cached->id != stage.rec.id) {
    stage.model_file_blobs.reset();
    stage.rec.status = Name(StageStatus::kCached);
    stage.rec.cached_from = cached->id;
    stage.rec.output = cached->output;
    stage.rec.resolved = cached->resolved;
    stage.rec.finished_at = Now();
    UpdateStage(stage.rec);
    AddEdge(Node("stage", stage.rec.id), Node("stage", cached->id), "derived_from", {{"cache_hit", true}});
    Emit("stage_cached", stage.rec.name, 0, -1,
         {{"status", Name(StageStatus::kCached)}, {"cached_from_run", cached->run_id}, {"output", cached->output}});
    MaybeStartStages();
    return;
  }
  try {
    effects_.Atomically([&] {
      stage.rec.status = Name(StageStatus::kRunning);
      ExpandStage(stage);
      UpdateStage(stage.rec);
    });
  } catch (const Error& e) {
    // Nothing of the expansion was committed; the stage fails with the reason.
    for (Task* t : stage.tasks) tasks_.erase(t->rec.id);
    stage.tasks.clear();
    if (e.code() == ErrorCode::kResourceExhausted) {
      stage.rec.status = Name(StageStatus::kPending);  // a full disk stops the run, not the stage
      throw;
    }
    FailStageAtStart(stage, e.what());
    return;
  }
  Crash("stage.started");
  Emit("stage_started", stage.rec.name, 0, -1,
       {{"type", stage.rec.type}, {"tasks", stage.tasks.size()}, {"max_parallel", stage.max_parallel},
        {"resolved", stage.rec.resolved}});
  Wake();
}

void RunState::FinishTask(Task& t, TrialStatus status, const std::string& reason_in) {
  // An interrupted run records nothing more: its trials resume as they were.
  if (!interrupted_.empty()) return;
  Stage& stage = *t.stage;
  stage.running -= 1;
  t.worker = -1;
  std::string reason = reason_in;
  if (t.stop_requested && status == TrialStatus::kFailed) {
    // It was told to stop; its epochs up to then are stored.
    status = TrialStatus::kPruned;
    reason = t.stop_reason + " (its worker then failed: " + reason_in + ")";
    t.rec.output = t.last_checkpoint;
  }
  t.stop_requested = false;
  // A failure (not a divergence: that repeats) is retried while attempts remain,
  // resuming from the last stored epoch.
  if (status == TrialStatus::kFailed && t.rec.attempts < stage.typed->max_attempts) {
    t.rec.status = Name(TrialStatus::kPending);
    t.rec.reason = "attempt " + std::to_string(t.rec.attempts) + " failed: " + reason;
    t.retry_reason = t.rec.reason;
    t.not_before = Now() + stage.typed->backoff_seconds * std::pow(2.0, t.rec.attempts - 1);
    UpdateTrial(t.rec);
    Emit("trial_retry", stage.rec.name, t.rec.id, t.rec.number, {{"reason", reason}, {"attempt", t.rec.attempts}});
    Wake();
    return;
  }
  // A trial that succeeded after a retry keeps why the last attempt failed.
  if (status == TrialStatus::kSucceeded && reason.empty()) reason = t.retry_reason;
  t.rec.status = Name(status);
  t.rec.reason = reason;
  t.rec.finished_at = Now();
  UpdateTrial(t.rec);
  Crash("trial.finished");
  Json data = {{"status", Name(status)}, {"epochs", t.last_epoch + 1}};
  if (!reason.empty()) data["reason"] = reason;
  Emit("trial_finished", stage.rec.name, t.rec.id, t.rec.number, data);
  MaybeFinishStage(stage);
  Wake();
}

void RunState::MaybeFinishStage(Stage& stage) {
  if (!Is(stage.rec.status, StageStatus::kRunning)) return;
  int succeeded = 0;
  for (Task* t : stage.tasks) {
    if (!TrialFinished(t->rec.status)) return;
    if (Is(t->rec.status, TrialStatus::kSucceeded)) ++succeeded;
  }
  if (PendingPromotion(stage)) return;  // a paused trial goes on (NextTask)
  // A tuning study survives failed trials; it fails only if every trial did.
  // An ablation study needs its base; a variant that fails (e.g. cannot be
  // built) is a result, not a failure of the stage.
  int base_ok = 0;
  for (Task* t : stage.tasks) {
    if (t->rec.task.value("variant", "") == "base" && Is(t->rec.status, TrialStatus::kSucceeded)) ++base_ok;
  }
  if (Is(stage.rec.type, StageType::kAblate) && base_ok == 0 && succeeded > 0) {
    stage.rec.status = Name(StageStatus::kFailed);
    stage.rec.error = "the base variant failed";
    for (Task* t : stage.tasks) {
      if (t->rec.task.value("variant", "") == "base") stage.rec.error += "; " + t->rec.reason;
    }
  } else if (Is(stage.rec.type, StageType::kTrain) && !Is(stage.tasks.front()->rec.status, TrialStatus::kSucceeded)) {
    stage.rec.status = Name(StageStatus::kFailed);
    stage.rec.error = "the model's training failed: " + stage.tasks.front()->rec.reason;
  } else if (Is(stage.rec.type, StageType::kCommand) && succeeded == 0) {
    stage.rec.status = Name(StageStatus::kFailed);
    stage.rec.error = stage.tasks.front()->rec.reason;
  } else if (succeeded == 0) {
    stage.rec.status = Name(StageStatus::kFailed);
    std::vector<std::pair<int, std::string>> reasons;
    for (Task* t : stage.tasks) reasons.emplace_back(t->rec.number, t->rec.reason);
    stage.rec.error = "every task failed: " + GroupReasons(reasons);
  } else {
    stage.rec.status = Name(StageStatus::kSucceeded);
    if (Is(stage.rec.type, StageType::kTune)) {
      stage.rec.output = StudyOutput(stage);
    } else if (Is(stage.rec.type, StageType::kAblate)) {
      stage.rec.output = PutBlob(CanonicalJson(AblationOutput(stage)));
    } else if (stage.rec.resolved.contains("compare")) {
      stage.rec.output = stage.tasks.front()->rec.output;
      stage.rec.resolved["comparison"] = PutBlob(CanonicalJson(CompareOutput(stage)));
    } else {
      stage.rec.output = stage.tasks.front()->rec.output;
    }
  }
  stage.rec.finished_at = Now();
  UpdateStage(stage.rec);
  Crash("stage.finished");
  Json data = {{"status", stage.rec.status}, {"output", stage.rec.output}, {"succeeded", succeeded},
               {"tasks", stage.tasks.size()}};
  if (!stage.rec.error.empty()) data["error"] = stage.rec.error;
  Emit("stage_finished", stage.rec.name, 0, -1, data);
  MaybeStartStages();
  FinishRunIfDone();
}

void RunState::FinishRunIfDone() {
  if (finished_) return;
  bool all_ok = true;
  for (auto& s : stages_) {
    if (!StageFinished(s->rec.status)) return;
    if (!Is(s->rec.status, StageStatus::kSucceeded) && !Is(s->rec.status, StageStatus::kCached)) all_ok = false;
  }
  auto run = reads_.Run(run_id_);
  run->status = Name(all_ok ? RunStatus::kSucceeded : RunStatus::kFailed);
  run->finished_at = Now();
  if (!all_ok) {
    for (auto& s : stages_) {
      if (Is(s->rec.status, StageStatus::kFailed)) {
        run->error = "stage " + s->rec.name + " failed: " + s->rec.error;
        break;
      }
    }
  }
  Apply(effect::UpdateRun{*run});
  status_ = run->status;
  finished_ = true;
  Emit("run_finished", "", 0, -1, {{"status", run->status}, {"error", run->error}});
  Wake();
}

bool RunState::Cancel(const std::string& reason, const Instant& at) {
  return End(RunStatus::kCancelled, reason, at);
}

bool RunState::Abort(const std::string& reason, const Instant& at) {
  return End(RunStatus::kFailed, reason, at);
}

bool RunState::End(RunStatus how, const std::string& reason, const Instant& at) {
  now_ = at;
  if (finished_) return false;
  const bool cancelled = how == RunStatus::kCancelled;
  const TrialStatus trial_status = cancelled ? TrialStatus::kCancelled : TrialStatus::kFailed;
  const StageStatus stage_status = cancelled ? StageStatus::kCancelled : StageStatus::kFailed;
  const double now = Now();
  for (auto& [id, t] : tasks_) {
    if (TrialFinished(t->rec.status)) continue;
    if (Is(t->rec.status, TrialStatus::kRunning)) {
      t->stage->running -= 1;
      FenceAttempt(*t, (cancelled ? "the run was cancelled: " : "the run failed: ") + reason);
    }
    t->worker = -1;
    t->rec.status = Name(trial_status);
    t->rec.reason = reason;
    t->rec.finished_at = now;
    UpdateTrial(t->rec);
    Emit("trial_finished", t->stage->rec.name, t->rec.id, t->rec.number,
         {{"status", Name(trial_status)}, {"epochs", t->last_epoch + 1}, {"reason", reason}});
  }
  for (auto& s : stages_) {
    if (StageFinished(s->rec.status)) continue;
    s->rec.status = Name(stage_status);
    s->rec.error = reason;
    s->rec.finished_at = now;
    UpdateStage(s->rec);
    Emit("stage_finished", s->rec.name, 0, -1, {{"status", Name(stage_status)}, {"error", reason}});
  }
  auto run = reads_.Run(run_id_);
  run->status = Name(how);
  run->error = reason;
  run->finished_at = now;
  Apply(effect::UpdateRun{*run});
  status_ = run->status;
  finished_ = true;
  Emit("run_finished", "", 0, -1, {{"status", run->status}, {"error", run->error}});
  Wake();
  return true;
}

bool RunState::Interrupt(const Error& cause, const Instant& now) {
  now_ = now;
  if (finished_) return false;
  interrupted_ = OutOfSpaceReason(run_id_, cause.what(), options_.resume_command);
  try {
    if (auto run = reads_.Run(run_id_)) {
      run->status = Name(RunStatus::kInterrupted);
      run->error = interrupted_;
      Apply(effect::UpdateRun{*run});
    }
  } catch (const Error&) {
    // The lineage DB is on the full disk too: the run stays "running".
  }
  status_ = Name(RunStatus::kInterrupted);
  finished_ = true;
  Emit("run_finished", "", 0, -1, {{"status", status_}, {"error", interrupted_}});
  Wake();
  return true;
}

bool RunState::HasWork() const {
  if (finished_) return false;
  for (auto& [id, t] : tasks_) {
    if (!TrialFinished(t->rec.status)) return true;
  }
  return false;
}

}  // namespace baton::orchestrator
