#pragma once

// A validated pipeline stage, typed, with every default applied here and
// nowhere else: the coordinator, retention, the CLI, the API's views and
// progress read these, not the stage's JSON. The stage as written stays in
// `doc`: its canonical JSON is what the cache key hashes, and the model,
// search space, fixed hyperparameters and dataset are handed to workers as
// written.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "common/vocabulary.h"

namespace baton::orchestrator {

// What a stage's trials are ranked by.
struct Objective {
  std::string metric = "val_accuracy";
  std::string mode = "max";  // "max" or "min"
  // Whether `a` is better than `b`.
  bool Better(double a, double b) const { return mode == "min" ? a < b : a > b; }
  Json ToJson() const { return {{"metric", metric}, {"mode", mode}}; }
};

// Which trial of an earlier stage a stage builds on. Trials are ranked by
// that stage's objective at their final epoch (succeeded trials only).
struct TrialSelector {
  std::string stage;
  int rank = 1;               // "best": 1
  std::optional<int> number;  // {"id": N}: trial number N, whatever its rank
};

// Which weights of the selected trial: its initial ones, its last or best
// epoch (by the stage's objective), or epoch `number` (0-based).
struct EpochSelector {
  enum class Kind { kInitial, kLast, kBest, kNumber };
  Kind kind = Kind::kLast;
  int number = 0;
  Json ToJson() const;      // as written: "initial", "last", "best" or the number
  std::string Label() const;  // "initial", "last", "best" or "3"
};

// init_from: a trial's epoch to start from instead of Kaiming uniform.
struct InitSelector {
  TrialSelector trial;
  EpochSelector epoch;
};

// A train stage's "compare": the model trained from scratch and from each
// of `epochs_from`, `seeds` times.
struct CompareSpec {
  int seeds = 2;
  std::vector<EpochSelector> epochs_from;  // default: init_from's epoch
  Json target;                             // as written; default {"fraction_of_baseline_best": 0.99}
};

// A command stage's program and what it reads and writes. Paths are
// relative to the run's working directory (the directory baton runs in).
struct CommandSpec {
  // A dependency: a file or folder (`path`), or a trial epoch's checkpoint
  // exported as a safetensors file at `path` before the command runs.
  struct Dep {
    std::string path;
    std::optional<InitSelector> checkpoint;
  };
  std::vector<std::string> cmd;  // as written: "${params.NAME}" not yet replaced
  std::vector<Dep> deps;
  std::vector<std::string> outs;
  Json params = Json::object();           // name -> string, number or boolean
  std::map<std::string, std::string> env;  // added to the worker's environment
  double timeout_seconds = 0;              // 0: none
};

// `text` with every "${params.NAME}" replaced by that param's value (a
// string as is, a number or boolean as JSON writes it). Throws
// Error(kInvalidArgument) naming the first NAME that `params` lacks.
std::string SubstituteParams(const std::string& text, const Json& params);

struct StageSpec {
  std::string name;
  StageType type = StageType::kPrepare;
  Json doc;  // the stage as written
  std::vector<std::string> depends_on;
  std::optional<uint64_t> seed;  // the stage's own "seed" (else derived from the pipeline's)

  // tune: its own; ablate: its own, else its base tune stage's (LoadPipeline
  // fills that in); others: the default.
  Objective objective;
  bool objective_given = false;  // written in the stage itself

  // tune: budget
  int max_trials = 0;
  int max_epochs = 0;             // tune: budget.max_epochs; train, ablate: "epochs"
  std::optional<int> max_parallel;  // budget.max_parallel (tune, ablate), compare.max_parallel (train);
                                    // absent: the runner's default
  double timeout_seconds = 0;      // budget.timeout_seconds; 0: none
  bool synchronous = false;        // "scheduling": "synchronous"
  struct Sampler {
    std::string type = "random";  // random | grid | tpe
    std::optional<int> n_startup_trials, n_ei_candidates;  // tpe; absent: TPE's defaults
  } sampler;
  struct Pruner {
    std::string type = "none";  // none | median | asha
    int min_resource = 1;
    int max_resource = 0;  // asha; default max_epochs
    int reduction_factor = 3;
    std::optional<int> n_startup_trials;  // median; absent: the rule's default
  } pruner;

  // tune, train, ablate: data-parallel processes per trial ("ranks") and
  // where they train ("device": cpu | cuda | auto).
  int ranks = 1;
  std::string device = "auto";
  // How a data-parallel trial's ranks share the data ("partitioning").
  struct Partitioning {
    std::string type = "random";        // random | importance
    std::string heuristic = "balanced";  // importance: balanced | sorted
    int warmup_epochs = 1;              // importance: epochs before the first scoring
    int every = 1;                      // importance: epochs between scorings
    Json ToJson() const;                // as the task carries it
  } partitioning;

  // Every stage whose tasks can fail: "retry".
  int max_attempts = 1;
  double backoff_seconds = 1.0;
  int repeats = 1;  // ablate

  // "checkpoints": {"keep": {...}} (tune, ablate); absent: keep every epoch.
  struct Keep {
    int best_k = 0;
    int last_k = 0;
  };
  std::optional<Keep> keep;

  // Selectors of earlier stages. hyperparameters_from: a train stage's
  // "hyperparameters": {"from", "trial"}, an ablate stage's "base": {"from",
  // "trial"}. The model, search space, fixed hyperparameters and dataset stay
  // in `doc`: workers get them as written.
  std::optional<TrialSelector> hyperparameters_from;
  std::optional<InitSelector> init_from;  // train, ablate
  std::optional<CompareSpec> compare;     // train
  std::optional<CommandSpec> command;     // command
};

// The typed form of a validated stage `stage` named `name`. Throws
// Error(kInvalidArgument) for a stage of no known type.
StageSpec ParseStageSpec(const std::string& name, const Json& stage);

// Every stage of a validated pipeline document, by name. An ablate stage
// without an objective gets its base tune stage's.
std::map<std::string, StageSpec> ParseStageSpecs(const Json& pipeline_doc);

// The objective of a recorded stage: its spec's own, else the one it
// resolved when it ran (an ablate stage's, from its base tune stage), else
// the default.
Objective RecordedObjective(const Json& spec, const Json& resolved);

}  // namespace baton::orchestrator
