#pragma once

// One run's state machine: which task goes next, what a worker's report
// means, pruning, ASHA promotion, retries and their backoff, leases, stage
// budgets, caching, the end of stages and of the run, and resuming a run
// from its lineage. Single-threaded and clock-free: every call takes the
// Instant it decides at. It reads committed lineage and blobs through
// RunReads and changes nothing itself: each lineage write, blob, event,
// crash point and wake-up is an Effect handed to its EffectSink in the order
// decided (effects.h). The Coordinator is its shell: the mutex, the clock,
// the waiting, and the sink that applies effects to the store.
// Not for use outside orchestrator/.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json_util.h"
#include "common/vocabulary.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/internal/effects.h"
#include "orchestrator/internal/pruner.h"
#include "orchestrator/internal/tpe.h"
#include "orchestrator/pipeline_spec.h"
#include "orchestrator/stage_spec.h"
#include "store/file_artifact.h"

namespace baton::orchestrator {

class RunState {
 public:
  // The run's stages come from `reads` (CreateRun wrote them). `pipeline`,
  // `reads` and `effects` must outlive the state.
  RunState(const Pipeline& pipeline, std::string run_id, const CoordinatorOptions& options, RunReads& reads,
           EffectSink& effects);
  ~RunState();
  RunState(const RunState&) = delete;
  RunState& operator=(const RunState&) = delete;

  // For a run whose process ended first: running stages get their trials
  // back from the lineage (see Coordinator::ForResume).
  void LoadForResume(const Instant& now);

  // Marks the run running and starts every stage whose inputs are ready.
  void Start(const Instant& now);
  // kTask: `*task` is for `worker_id`. kWait: nothing runnable now;
  // `*wake_at` (wall seconds, 0: none) is when a retry's backoff or a stage's
  // budget runs out. kDone: the run is over.
  Coordinator::Next NextTask(int worker_id, const Instant& now, Json* task, double* wake_at);
  void ReportInitial(int64_t task_id, const Json& body, const Instant& now);
  std::string ReportEpoch(int64_t task_id, const Json& body, const Instant& now);
  void Complete(int64_t task_id, const Json& body, const Instant& now);
  void Fail(int64_t task_id, const Json& body, const Instant& now);
  void WorkerLost(int worker_id, const std::string& reason, const Instant& now);
  Json Heartbeat(int64_t task_id, const Json& body, const Instant& now);
  std::vector<int> ExpireLeases(const Instant& now);
  bool Cancel(const std::string& reason, const Instant& now);
  bool Abort(const std::string& reason, const Instant& now);
  // Where `worker_id` runs, recorded with each attempt it starts.
  void SetPlacement(int worker_id, Json placement) { placements_[worker_id] = std::move(placement); }
  bool Interrupt(const Error& cause, const Instant& now);

  bool finished() const { return finished_; }
  const std::string& status() const { return status_; }
  const std::string& interrupt_reason() const { return interrupted_; }
  bool HasWork() const;
  int MaxParallel() const;

 private:
  struct Stage;
  struct Task {
    store::TrialRecord rec;
    Stage* stage = nullptr;
    int worker = -1;
    int last_epoch = -1;
    std::string last_checkpoint;
    double not_before = 0;  // retry backoff
    bool sampled = true;    // hyperparameters decided (TPE decides at the first start)
    std::vector<double> values;  // the objective after each epoch (tune)
    int promotions = 0;          // ASHA rungs passed
    int promoted_at = 0;         // epochs done when last promoted (0: never)
    std::string resume_from;     // the checkpoint the current attempt was given
    bool stop_requested = false;  // answered "stop"; finishes as pruned
    std::string stop_reason;
    // Leases (run_state_leases.cpp): while running, the attempt lives until
    // lease_until unless its worker reports or sends a heartbeat.
    std::chrono::steady_clock::time_point heard_at, lease_until;
    int fenced_attempt = 0;     // an attempt the run ended; its reports are refused
    std::string fenced_reason;  // why it ended it
    std::string retry_reason;   // why the attempt before the current one failed
  };
  struct Stage {
    store::StageRecord rec;
    const StageSpec* typed = nullptr;  // typed with its defaults; as written in typed->doc
    std::vector<Task*> tasks;
    int running = 0;
    int max_parallel = 1;
    // tune stages: the searches' options from typed->sampler and typed->pruner
    TpeOptions tpe;
    MedianRule median;
    AshaRule asha;
    bool timed_out = false;
    // A TorchScript model (run_state_model_file.cpp): the manifest digest
    // of its file ("" for none), and the file itself from the stage's start
    // until it is stored with the stage's expansion.
    std::string model_file;
    std::optional<store::FileBlobs> model_file_blobs;
    const Objective& objective() const { return typed->objective; }
  };
  // Adds a task of the stage: (number, hyperparameters, task, seed) -> its task.
  using TaskAdder = std::function<Task&(int, Json, Json, uint64_t)>;

  // Effects, applied in the order called.
  Applied Apply(Effect effect) { return effects_.Apply(std::move(effect)); }
  void UpdateTrial(const store::TrialRecord& rec) { Apply(effect::UpdateTrial{rec}); }
  void UpdateStage(const store::StageRecord& rec) { Apply(effect::UpdateStage{rec}); }
  void AddEdge(std::string src, std::string dst, std::string kind, Json attrs = Json::object()) {
    Apply(effect::AddEdge{{std::move(src), std::move(dst), std::move(kind), std::move(attrs)}});
  }
  void Crash(const char* point) { Apply(effect::CrashPoint{point}); }
  void Wake() { Apply(effect::Wake{}); }
  std::string PutBlob(std::string bytes) { return Apply(effect::PutBlob{std::move(bytes)}).digest; }
  void Emit(const std::string& type, const std::string& stage, int64_t trial_id, int trial_number, Json data);
  static std::string Node(const char* kind, const std::string& id) { return std::string(kind) + ":" + id; }
  static std::string Node(const char* kind, int64_t id) { return Node(kind, std::to_string(id)); }
  double Now() const { return now_.wall; }

  // run_state.cpp: the run's and stages' life cycle.
  void MaybeStartStages();
  void StartStage(Stage& stage);
  void FailStageAtStart(Stage& stage, const std::string& reason);
  void FinishTask(Task& task, TrialStatus status, const std::string& reason);
  void MaybeFinishStage(Stage& stage);
  void FinishRunIfDone();
  // Cancel and Abort: every unfinished trial and stage ends (cancelled or
  // failed) with `reason`, then the run.
  bool End(RunStatus how, const std::string& reason, const Instant& at);
  std::string StageCacheKey(const Stage& stage);
  // run_state_expand.cpp: stages into tasks, selectors, stage outputs.
  void ExpandStage(Stage& stage);
  void ExpandPrepare(Stage& stage, const TaskAdder& add_task);
  void ExpandTune(Stage& stage, const std::string& dataset, const TaskAdder& add_task);
  void ExpandTrain(Stage& stage, const std::string& dataset, const TaskAdder& add_task);
  void ExpandComparison(Stage& stage, const Json& task, const Json& hp, int64_t hp_trial, uint64_t seed,
                        const TaskAdder& add_task);
  void ExpandAblation(Stage& stage, const std::string& dataset, const TaskAdder& add_task);
  int64_t EffectiveStageId(const std::string& stage_name);
  Json ResolveTrial(const TrialSelector& selector);
  Json ResolveInit(const InitSelector& selector);
  // The checkpoint a stage's init_from names (null without one), recorded
  // in `*resolved`.
  Json InitFrom(const StageSpec& spec, Json* resolved);
  Json AblationOutput(Stage& stage);
  Json CompareOutput(Stage& stage);
  std::string StudyOutput(Stage& stage);
  // run_state_command.cpp: command stages. Paths are relative to the
  // working directory, the directory this process runs in.
  static std::string WorkingDirectory();
  // [{"path", "sha256"} or {"path", "checkpoint"}] in deps order; a missing
  // path's sha256 is null, an unresolvable checkpoint says why.
  Json CommandDepDigests(const Stage& stage);
  void ExpandCommand(Stage& stage, const TaskAdder& add_task);
  // Edges from `stage` to the outputs of this run's command stages that
  // hold `paths` (a command's deps, a prepare stage's dataset).
  void LinkCommandOutputs(Stage& stage, const std::vector<std::string>& paths);
  // Puts a cached command stage's outputs back; false when the store no
  // longer has them (the stage then runs).
  bool RestoreCommandOutputs(const Stage& stage, const std::string& manifest);
  void CompleteCommand(Task& task, const std::string& output);
  // A command task's report's "logs" {"stdout", "stderr"} (blob digests),
  // recorded in its stage's resolved "logs".
  void RecordCommandLogs(Task& task, const Json& body);
  // run_state_reports.cpp: what a worker's report means.
  Task& FindTask(int64_t task_id);
  // `status`: that of a completion (succeeded); nullopt for a failure report.
  bool IsRepeatedReport(int64_t task_id, std::optional<TrialStatus> status, const std::string& output);
  BlobList CheckpointBlobs(const std::string& digest);
  // run_state_leases.cpp: refuses a report of an ended or superseded
  // attempt (Error(kAborted)); renews the running attempt's lease.
  void CheckAttempt(int64_t task_id, const Json& body);
  void RenewLease(Task& task);
  void FenceAttempt(Task& task, const std::string& reason);
  // run_state_tuning.cpp: curves for the pruners, timeouts, ASHA
  // promotions, synchronous rounds, TPE's late sampling, and why a trial
  // should stop ("" = go on).
  std::vector<TrialCurve> Curves(const Stage& stage);
  void ApplyTimeout(Stage& stage);
  std::optional<AshaPromotion> PendingPromotion(const Stage& stage);
  Task* Promotion(Stage& stage);
  Task* Runnable(Stage& stage, double* earliest_retry);
  void SampleLazily(Stage& stage, Task& task);
  std::string PruneReason(Stage& stage, Task& task);
  // run_state_resume.cpp
  void EmitResumed();
  // run_state_model_file.cpp: the model a stage trains (its own, or that of
  // the tune stage it takes hyperparameters or its ablation base from);
  // null for a prepare stage.
  const Json* StageModel(const Stage& stage) const;
  // Reads the stage's TorchScript file, if its model is one, into
  // stage.model_file(_blobs). Throws Error(kNotFound) naming the path.
  void ReadModelFile(Stage& stage);
  // Stores the file read by ReadModelFile as an artifact of the stage
  // (kind "model_file") with the edge stage -> artifact "model_from".
  void StoreModelFile(Stage& stage);
  // Records the stored file in the stage's resolved["torchscript"] (path,
  // manifest, sha256) once its expansion has set the rest; frees the bytes.
  void RecordModelFile(Stage& stage);
  // Adds the TorchScript file's manifest digest to `task`'s model
  // ("manifest"); false (and no change) for a layer list. The caller adds
  // the edge trial -> artifact "model_from".
  bool AddModelFile(const Stage& stage, Json& task);

  const Pipeline& pipeline_;
  const std::string run_id_;
  const CoordinatorOptions options_;
  RunReads& reads_;
  EffectSink& effects_;
  Instant now_;  // that of the call being decided

  std::vector<std::unique_ptr<Stage>> stages_;  // pipeline order
  std::map<int64_t, std::unique_ptr<Task>> tasks_;
  std::map<int, Json> placements_;  // worker -> where it runs (SetPlacement)
  bool finished_ = false;
  bool resumed_ = false;     // LoadForResume ran
  std::string interrupted_;  // Interrupt's reason; "" while not interrupted
  std::string status_{Name(RunStatus::kPending)};
};

}  // namespace baton::orchestrator
