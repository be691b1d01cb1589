#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/json_util.h"
#include "stages/dataset.h"
#include "stages/model.h"

namespace baton::stages {

// The hyperparameters the trainer understands. A task's hyperparameters may
// hold others (e.g. "dropout", already substituted into the model); they are
// ignored.
struct Hyperparameters {
  std::string optimizer = "sgd";         // "sgd" | "adam"
  double lr = 0.01;                      // base learning rate
  double momentum = 0.0;                 // sgd
  double weight_decay = 0.0;             // L2 penalty, sgd and adam
  bool nesterov = false;                 // sgd; needs momentum > 0
  double beta1 = 0.9;                    // adam
  double beta2 = 0.999;                  // adam
  double eps = 1e-8;                     // adam
  int64_t batch_size = 64;               // examples per step
  std::string lr_schedule = "constant";  // "constant" | "step" | "cosine"
  int64_t step_size = 1;                 // step: epochs between decays
  double gamma = 0.1;                    // step: decay factor
  double min_lr = 0.0;                   // cosine: learning rate at the end
};

// Reads the known keys of a task's "hyperparameters" object. Numbers may
// arrive as integers or floats; booleans as true/false or 0/1. Throws
// Error(kInvalidArgument) naming the key ("/hyperparameters/lr").
Hyperparameters ParseHyperparameters(const Json& json);

// The learning rate of 0-based `epoch` of a trial of `total_epochs`.
// constant: lr; step: lr * gamma^floor(epoch / step_size); cosine:
// min_lr + (lr - min_lr) * (1 + cos(pi * epoch / total_epochs)) / 2.
double LearningRate(const Hyperparameters& hp, int64_t epoch,
                    int64_t total_epochs);

// The seed of one epoch (torch's generator and the data order), a mix of the
// trial's seed and the epoch: a resumed trial sees the same randomness.
uint64_t EpochSeed(uint64_t seed, int64_t epoch);

// The training order of `n` examples in `epoch`: a Fisher-Yates shuffle
// driven by std::mt19937_64(EpochSeed(seed, epoch)), the same on every
// platform.
std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch);

class Collective;  // data_parallel.h

struct TrainOptions {
  int64_t epochs = 1;             // total epochs of the trial
  int64_t start_epoch = 0;        // first 0-based epoch to run (resume)
  uint64_t seed = 0;              // see EpochSeed
  bool evaluate_test = false;     // also evaluate on the test split
  int64_t eval_batch_size = 256;  // examples per evaluation forward pass
  // Checked before every training batch; true ends the trial as kStopped
  // without finishing (or reporting) the epoch under way. Unset: never.
  std::function<bool()> stop_requested;
  // Data-parallel training (data_parallel.h): each global batch of
  // hp.batch_size examples, in the same order as on one process, is split
  // into `collective->size()` contiguous shards, one per rank; gradients are
  // summed over the ranks (each rank's loss is its shard's summed loss over
  // the global batch size, so the sum is the global batch's mean) before
  // every step, so every rank keeps the same weights. Rank 0's weights and
  // buffers are broadcast first. Only rank 0 evaluates and calls on_epoch;
  // rank 0's stop_requested and on_epoch's answer stop every rank. Batch
  // norm normalises with each rank's shard's statistics; dropout draws
  // per rank. nullptr: one process.
  Collective* collective = nullptr;
  // With a collective: how the ranks share the data (data_parallel.h).
  // "random": each global batch of the 1-rank order is split into shards
  // (above). "importance": from epoch warmup_epochs on, every `every`
  // epochs (and when a resumed trial starts past the warm-up), each
  // example is scored by its loss (the ranks score a slice each), the
  // examples are partitioned among the ranks (PartitionByImportance), and
  // each rank steps through its own partition, shuffled per epoch, in
  // shares of the global batch.
  struct Partitioning {
    std::string type = "random";
    std::string heuristic = "balanced";
    int64_t warmup_epochs = 1;
    int64_t every = 1;
  } partitioning;
};

// What one finished epoch measured. Losses are mean cross-entropy per
// example; accuracies are fractions in [0, 1].
struct EpochMetrics {
  int64_t epoch = 0;  // 0-based
  double lr = 0;
  double train_loss = 0;
  std::optional<double> val_loss, val_accuracy;    // absent without val data
  std::optional<double> test_loss, test_accuracy;  // with evaluate_test
  double seconds = 0;             // wall time of training + evaluation
  double samples_per_second = 0;  // training examples / training seconds
  // Importance partitioning in effect this epoch (rank 0): {"type",
  // "heuristic", "scored_at_epoch", "digests": [per rank], "examples": [per
  // rank]}; null otherwise.
  Json partitioning;
};

// The metrics as the worker protocol's "metrics" object.
Json MetricsJson(const EpochMetrics& metrics);

enum class TrialOutcome {
  kCompleted,  // ran every epoch
  kStopped,    // the epoch callback or stop_requested asked to stop
  kDiverged,   // a loss became NaN or infinite; `reason` says where
};

struct TrainResult {
  TrialOutcome outcome = TrialOutcome::kCompleted;
  int64_t epochs_run = 0;  // epochs finished and reported to the callback
  std::string reason;      // for kDiverged
};

// Called after each epoch, with the model's weights as they are at its end;
// returns false to stop the trial. May throw, which ends training.
using EpochCallback = std::function<bool(const EpochMetrics&)>;

// Trains `model` on `data.train_x/train_y` from options.start_epoch to
// options.epochs - 1 with cross-entropy loss, shuffling each epoch (see
// EpochOrder; the last batch may be smaller, except that a final batch of one
// example is skipped so batch norm always sees two), then evaluates in eval()
// mode without gradients. The optimizer starts fresh. Deterministic on CPU
// for a given seed and thread count. A non-finite loss ends the trial as
// kDiverged without throwing. Throws Error(kInvalidArgument) for bad
// hyperparameters; library failures become Error(kInternal).
TrainResult Train(Model& model, const Dataset& data, const Hyperparameters& hp,
                  const TrainOptions& options, const EpochCallback& on_epoch);

// Mean loss and accuracy of `model` on (x, y) in eval() mode without
// gradients; leaves the model in the mode it found it.
struct Evaluation {
  double loss = 0;
  double accuracy = 0;
};
Evaluation Evaluate(Model& model, const torch::Tensor& x,
                    const torch::Tensor& y, int64_t batch_size);

}  // namespace baton::stages
