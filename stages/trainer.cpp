#include "stages/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <sstream>

#include "common/error.h"
#include "stages/data_parallel.h"

namespace baton::stages {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

Error BadHyperparameter(const std::string& key, const std::string& what,
                        const Json& value) {
  return Error(
      ErrorCode::kInvalidArgument,
      "hyperparameter \"" + key + "\" " + what + ", got " + value.dump(),
      "/hyperparameters/" + key);
}

// Reads json[key] as a number in [low, high] (open at the ends where
// `open_low`), leaving `out` unchanged when absent.
void ReadNumber(const Json& json, const std::string& key, double low,
                bool open_low, double high, double& out) {
  auto it = json.find(key);
  if (it == json.end()) return;
  double v = it->is_number() ? it->get<double>() : std::nan("");
  if (!(std::isfinite(v) && (open_low ? v > low : v >= low) && v <= high)) {
    std::ostringstream range;
    range << "must be a number in " << (open_low ? "(" : "[") << low << ", "
          << high << "]";
    throw BadHyperparameter(key, range.str(), *it);
  }
  out = v;
}

void ReadInteger(const Json& json, const std::string& key, int64_t& out) {
  auto it = json.find(key);
  if (it == json.end()) return;
  double v = it->is_number() ? it->get<double>() : 0;
  if (!(v >= 1 && v <= 1e9 && v == std::floor(v))) {
    throw BadHyperparameter(key, "must be a positive integer", *it);
  }
  out = static_cast<int64_t>(v);
}

void ReadChoice(const Json& json, const std::string& key,
                std::initializer_list<const char*> choices, std::string& out) {
  auto it = json.find(key);
  if (it == json.end()) return;
  std::string allowed;
  for (const char* choice : choices) {
    if (it->is_string() && it->get<std::string>() == choice) {
      out = choice;
      return;
    }
    allowed += std::string(allowed.empty() ? "" : ", ") + "\"" + choice + "\"";
  }
  throw BadHyperparameter(key, "must be one of " + allowed, *it);
}

std::unique_ptr<torch::optim::Optimizer> MakeOptimizer(
    const std::vector<torch::Tensor>& parameters, const Hyperparameters& hp) {
  if (hp.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(
        parameters, torch::optim::AdamOptions(hp.lr)
                        .betas({hp.beta1, hp.beta2})
                        .eps(hp.eps)
                        .weight_decay(hp.weight_decay));
  }
  return std::make_unique<torch::optim::SGD>(parameters,
                                             torch::optim::SGDOptions(hp.lr)
                                                 .momentum(hp.momentum)
                                                 .weight_decay(hp.weight_decay)
                                                 .nesterov(hp.nesterov));
}

std::string NumberText(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

torch::Device ModelDevice(Model& model) {
  for (const auto& p : model->parameters()) return p.device();
  return torch::kCPU;
}

struct ParallelStep {
  double loss = 0;    // the global batch's mean loss
  bool stop = false;  // rank 0 asked to stop before this step
};

// One data-parallel step's forward, backward and gradient sum: this rank's
// shard of the step's global batch of `global_size` examples (it may be
// empty), its summed loss divided by the global batch size, so that the
// gradients and losses summed over the ranks are the global batch's mean.
// Rank 0's stop flag travels with the loss. The caller steps the optimizer.
ParallelStep DataParallelStep(Collective& collective, Model& model, std::vector<torch::Tensor>& trained,
                              const torch::Tensor& x_shard, const torch::Tensor& y_shard, int64_t global_size,
                              bool stop) {
  double local = 0;
  if (x_shard.size(0) > 0) {
    torch::Tensor loss =
        torch::nn::functional::cross_entropy(
            model->forward(x_shard), y_shard,
            torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) /
        static_cast<double>(global_size);
    loss.backward();
    local = loss.item<double>();
  }
  std::vector<torch::Tensor> parts;
  for (auto& p : trained) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);  // an empty shard, or an unused layer
    parts.push_back(p.grad().reshape({-1}));
  }
  std::vector<torch::Tensor> meta = {torch::tensor({local, stop ? 1.0 : 0.0}, torch::kFloat64)};
  collective.AllReduceSum(meta);
  ParallelStep out;
  out.loss = meta[0][0].item<double>();
  out.stop = meta[0][1].item<double>() > 0;
  if (out.stop || parts.empty()) return out;
  std::vector<torch::Tensor> flat = {torch::cat(parts)};
  collective.AllReduceSum(flat);
  int64_t offset = 0;
  for (auto& p : trained) {
    const int64_t n = p.numel();
    p.mutable_grad().copy_(flat[0].narrow(0, offset, n).view_as(p));
    offset += n;
  }
  return out;
}

// Each example's loss under the current weights (eval mode, no
// gradients): each rank scores a contiguous slice and the slices are summed,
// so every rank ends with every score.
std::vector<float> ScoreExamples(Collective& collective, Model& model, const torch::Tensor& x,
                                 const torch::Tensor& y, int64_t batch_size) {
  const int64_t n = x.size(0);
  const int64_t lo = n * collective.rank() / collective.size();
  const int64_t hi = n * (collective.rank() + 1) / collective.size();
  torch::Tensor scores = torch::zeros({n}, torch::kFloat32);
  {
    torch::NoGradGuard no_grad;
    const bool was_training = model->is_training();
    model->eval();
    const torch::Device device = ModelDevice(model);
    const auto none = torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone);
    for (int64_t begin = lo; begin < hi; begin += batch_size) {
      const int64_t size = std::min(batch_size, hi - begin);
      torch::Tensor loss = torch::nn::functional::cross_entropy(model->forward(x.narrow(0, begin, size).to(device)),
                                                                y.narrow(0, begin, size).to(device), none);
      scores.narrow(0, begin, size).copy_(loss.to(torch::kCPU).to(torch::kFloat32));
    }
    model->train(was_training);
  }
  std::vector<torch::Tensor> all = {scores};
  collective.AllReduceSum(all);
  const float* p = all[0].data_ptr<float>();
  return std::vector<float>(p, p + n);
}

TrainResult TrainEpochs(Model& model, const Dataset& data,
                        const Hyperparameters& hp, const TrainOptions& options,
                        const EpochCallback& on_epoch) {
  TrainResult result;
  auto optimizer = MakeOptimizer(model->parameters(), hp);
  const int64_t n = data.train_x.size(0);
  const auto cross_entropy = [](const torch::Tensor& logits,
                                const torch::Tensor& labels) {
    return torch::nn::functional::cross_entropy(logits, labels);
  };
  // The data goes where the model is (the worker moved it to its device).
  const torch::Device device = ModelDevice(model);
  Collective* const collective = options.collective;
  const int world = collective != nullptr ? collective->size() : 1;
  const int rank = collective != nullptr ? collective->rank() : 0;
  std::vector<torch::Tensor> trained;  // the parameters whose gradients are summed over the ranks
  std::vector<std::vector<int64_t>> parts;  // importance partitioning: each rank's examples
  Json partition_record;                    // and how they were chosen (rank 0 reports it)
  if (collective != nullptr) {
    // Every rank starts from rank 0's weights and buffers.
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> state;
    for (auto& p : model->parameters()) state.push_back(p.data());
    for (auto& b : model->buffers()) state.push_back(b);
    if (!state.empty()) collective->Broadcast(state);
    for (auto& p : model->parameters()) {
      if (p.requires_grad()) trained.push_back(p);
    }
  }
  for (int64_t epoch = options.start_epoch; epoch < options.epochs; ++epoch) {
    const Clock::time_point epoch_start = Clock::now();
    EpochMetrics metrics;
    metrics.epoch = epoch;
    metrics.lr = LearningRate(hp, epoch, options.epochs);
    for (auto& group : optimizer->param_groups()) {
      group.options().set_lr(metrics.lr);
    }
    // Importance partitioning: score and partition when due.
    const auto& part = options.partitioning;
    const bool by_importance = collective != nullptr && part.type == "importance" && epoch >= part.warmup_epochs;
    if (by_importance && (parts.empty() || (epoch - part.warmup_epochs) % part.every == 0)) {
      parts = PartitionByImportance(ScoreExamples(*collective, model, data.train_x, data.train_y,
                                                  options.eval_batch_size),
                                    world, part.heuristic);
      Json digests = Json::array(), sizes = Json::array();
      for (const auto& p : parts) {
        digests.push_back(PartitionDigest(p));
        sizes.push_back(p.size());
      }
      partition_record = {{"type", part.type}, {"heuristic", part.heuristic}, {"scored_at_epoch", epoch},
                          {"digests", digests}, {"examples", sizes}};
    }
    torch::manual_seed(EpochSeed(options.seed, epoch));
    // One gather per epoch; batches are then contiguous views. With
    // importance partitioning each rank gathers its own partition, shuffled.
    std::vector<int64_t> order;
    if (by_importance) {
      const std::vector<int64_t>& mine = parts[rank];
      for (int64_t i : EpochOrder(static_cast<int64_t>(mine.size()), options.seed + rank + 1, epoch)) {
        order.push_back(mine[i]);
      }
    } else {
      order = EpochOrder(n, options.seed, epoch);
    }
    torch::Tensor index = torch::from_blob(order.data(), {static_cast<int64_t>(order.size())}, torch::kInt64);
    torch::Tensor xs = data.train_x.index_select(0, index).to(device);
    torch::Tensor ys = data.train_y.index_select(0, index).to(device);

    model->train();
    double loss_sum = 0;
    int64_t seen = 0;
    // One data-parallel step on this rank's shard; false when the trial ends
    // here (result set).
    const auto parallel_step = [&](const torch::Tensor& x_shard, const torch::Tensor& y_shard, int64_t global,
                                   int64_t batch) {
      const bool stop = rank == 0 && options.stop_requested && options.stop_requested();
      optimizer->zero_grad();
      const ParallelStep step = DataParallelStep(*collective, model, trained, x_shard, y_shard, global, stop);
      if (step.stop) {
        result.outcome = TrialOutcome::kStopped;  // rank 0 asked: every rank drops this epoch
        return false;
      }
      if (!std::isfinite(step.loss)) {
        result.outcome = TrialOutcome::kDiverged;
        result.reason = "training loss became " + NumberText(step.loss) + " in epoch " + std::to_string(epoch) +
                        " at batch " + std::to_string(batch) + " (lr " + NumberText(metrics.lr) + ", " +
                        std::to_string(world) + " ranks)";
        return false;
      }
      optimizer->step();
      loss_sum += step.loss * static_cast<double>(global);
      seen += global;
      return true;
    };
    if (by_importance) {
      // Each step takes the next share of the global batch from every
      // rank's partition; a rank whose partition ran out sends nothing.
      for (int64_t s = 0; s * hp.batch_size < n; ++s) {
        int64_t global = 0, mine_from = 0, mine = 0;
        for (int r = 0; r < world; ++r) {
          const int64_t share = hp.batch_size * (r + 1) / world - hp.batch_size * r / world;
          const int64_t size = static_cast<int64_t>(parts[r].size());
          const int64_t count = std::clamp<int64_t>(size - s * share, 0, share);
          global += count;
          if (r == rank) {
            mine_from = std::min(s * share, size);
            mine = count;
          }
        }
        if (global == 0 || (global == 1 && s > 0)) break;
        if (!parallel_step(xs.narrow(0, mine_from, mine), ys.narrow(0, mine_from, mine), global, s)) return result;
      }
    }
    for (int64_t begin = 0; begin < n && !by_importance; begin += hp.batch_size) {
      const int64_t size = std::min(hp.batch_size, n - begin);
      if (size == 1 && begin > 0) break;
      if (collective != nullptr) {
        // This rank's contiguous shard of the global batch [begin, begin + size).
        const int64_t lo = begin + size * rank / world, hi = begin + size * (rank + 1) / world;
        if (!parallel_step(xs.narrow(0, lo, hi - lo), ys.narrow(0, lo, hi - lo), size, begin / hp.batch_size)) {
          return result;
        }
        continue;
      }
      if (options.stop_requested && options.stop_requested()) {
        result.outcome = TrialOutcome::kStopped;  // this epoch is dropped
        return result;
      }
      optimizer->zero_grad();
      torch::Tensor loss = cross_entropy(
          model->forward(xs.narrow(0, begin, size)), ys.narrow(0, begin, size));
      const double value = loss.item<double>();
      if (!std::isfinite(value)) {
        result.outcome = TrialOutcome::kDiverged;
        result.reason = "training loss became " + NumberText(value) +
                        " in epoch " + std::to_string(epoch) + " at batch " +
                        std::to_string(begin / hp.batch_size) + " (lr " +
                        NumberText(metrics.lr) + ")";
        return result;
      }
      loss.backward();
      optimizer->step();
      loss_sum += value * static_cast<double>(size);
      seen += size;
    }
    const double train_seconds = SecondsSince(epoch_start);
    metrics.train_loss = loss_sum / static_cast<double>(seen);
    metrics.samples_per_second = static_cast<double>(seen) / train_seconds;
    if (rank != 0) {
      // Rank 0 evaluates and reports; it says whether every rank goes on.
      std::vector<torch::Tensor> go_on = {torch::zeros({1}, torch::kFloat64)};
      collective->AllReduceSum(go_on);
      ++result.epochs_run;
      if (go_on[0][0].item<double>() > 0) {
        result.outcome = TrialOutcome::kStopped;
        return result;
      }
      continue;
    }

    if (data.val_x.defined() && data.val_x.size(0) > 0) {
      Evaluation val =
          Evaluate(model, data.val_x, data.val_y, options.eval_batch_size);
      if (!std::isfinite(val.loss)) {
        if (collective != nullptr) {  // the other ranks wait to hear whether to go on: they do not
          std::vector<torch::Tensor> stop = {torch::ones({1}, torch::kFloat64)};
          collective->AllReduceSum(stop);
        }
        result.outcome = TrialOutcome::kDiverged;
        result.reason = "validation loss became " + NumberText(val.loss) +
                        " after epoch " + std::to_string(epoch);
        return result;
      }
      metrics.val_loss = val.loss;
      metrics.val_accuracy = val.accuracy;
    }
    if (options.evaluate_test && data.test_x.defined() &&
        data.test_x.size(0) > 0) {
      Evaluation test =
          Evaluate(model, data.test_x, data.test_y, options.eval_batch_size);
      metrics.test_loss = test.loss;
      metrics.test_accuracy = test.accuracy;
    }
    metrics.seconds = SecondsSince(epoch_start);
    if (by_importance) metrics.partitioning = partition_record;
    ++result.epochs_run;
    const bool go_on = on_epoch(metrics);
    if (collective != nullptr) {
      std::vector<torch::Tensor> stop = {torch::full({1}, go_on ? 0.0 : 1.0, torch::kFloat64)};
      collective->AllReduceSum(stop);
    }
    if (!go_on) {
      result.outcome = TrialOutcome::kStopped;
      return result;
    }
  }
  return result;
}

}  // namespace

Hyperparameters ParseHyperparameters(const Json& json) {
  if (!json.is_object()) {
    throw Error(ErrorCode::kInvalidArgument,
                "hyperparameters must be an object", "/hyperparameters");
  }
  Hyperparameters hp;
  ReadChoice(json, "optimizer", {"sgd", "adam"}, hp.optimizer);
  ReadNumber(json, "lr", 0, /*open_low=*/true, 1e300, hp.lr);
  ReadNumber(json, "momentum", 0, false, 1e300, hp.momentum);
  ReadNumber(json, "weight_decay", 0, false, 1e300, hp.weight_decay);
  if (auto it = json.find("nesterov"); it != json.end()) {
    if (it->is_boolean()) {
      hp.nesterov = it->get<bool>();
    } else if (it->is_number() &&
               (it->get<double>() == 0 || it->get<double>() == 1)) {
      hp.nesterov = it->get<double>() == 1;
    } else {
      throw BadHyperparameter("nesterov", "must be true or false", *it);
    }
  }
  ReadNumber(json, "beta1", 0, false, 0.999999, hp.beta1);
  ReadNumber(json, "beta2", 0, false, 0.999999, hp.beta2);
  ReadNumber(json, "eps", 0, true, 1, hp.eps);
  ReadInteger(json, "batch_size", hp.batch_size);
  ReadChoice(json, "lr_schedule", {"constant", "step", "cosine"},
             hp.lr_schedule);
  ReadInteger(json, "step_size", hp.step_size);
  ReadNumber(json, "gamma", 0, true, 1e300, hp.gamma);
  ReadNumber(json, "min_lr", 0, false, 1e300, hp.min_lr);
  if (hp.nesterov && (hp.optimizer != "sgd" || hp.momentum <= 0)) {
    throw BadHyperparameter("nesterov",
                            "needs optimizer \"sgd\" and momentum > 0",
                            json["nesterov"]);
  }
  return hp;
}

double LearningRate(const Hyperparameters& hp, int64_t epoch,
                    int64_t total_epochs) {
  if (hp.lr_schedule == "step") {
    return hp.lr *
           std::pow(hp.gamma, static_cast<double>(epoch / hp.step_size));
  }
  if (hp.lr_schedule == "cosine") {
    const double pi = std::acos(-1.0);
    const double progress =
        static_cast<double>(epoch) /
        static_cast<double>(std::max<int64_t>(total_epochs, 1));
    return hp.min_lr + (hp.lr - hp.min_lr) * (1 + std::cos(pi * progress)) / 2;
  }
  return hp.lr;
}

uint64_t EpochSeed(uint64_t seed, int64_t epoch) {
  // SplitMix64 of the seed offset by the epoch.
  uint64_t z = seed + 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(epoch + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<int64_t> EpochOrder(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 rng(EpochSeed(seed, epoch));
  for (int64_t i = n - 1; i > 0; --i) {
    // Unbiased draw from [0, i] by rejection (std distributions differ
    // between standard libraries).
    const uint64_t bound = static_cast<uint64_t>(i) + 1;
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t r;
    do {
      r = rng();
    } while (r >= limit);
    std::swap(order[i], order[static_cast<size_t>(r % bound)]);
  }
  return order;
}

Json MetricsJson(const EpochMetrics& metrics) {
  Json json = {{"train_loss", metrics.train_loss},
               {"lr", metrics.lr},
               {"samples_per_second", metrics.samples_per_second}};
  if (metrics.val_loss) json["val_loss"] = *metrics.val_loss;
  if (metrics.val_accuracy) json["val_accuracy"] = *metrics.val_accuracy;
  if (metrics.test_loss) json["test_loss"] = *metrics.test_loss;
  if (metrics.test_accuracy) json["test_accuracy"] = *metrics.test_accuracy;
  return json;
}

Evaluation Evaluate(Model& model, const torch::Tensor& x,
                    const torch::Tensor& y, int64_t batch_size) {
  const bool was_training = model->is_training();
  torch::NoGradGuard no_grad;
  model->eval();
  double loss_sum = 0;
  int64_t correct = 0;
  const int64_t n = x.size(0);
  const auto sum =
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum);
  const torch::Device device = ModelDevice(model);
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    const int64_t size = std::min(batch_size, n - begin);
    torch::Tensor labels = y.narrow(0, begin, size).to(device);
    torch::Tensor logits = model->forward(x.narrow(0, begin, size).to(device));
    loss_sum += torch::nn::functional::cross_entropy(logits, labels, sum)
                    .item<double>();
    correct += logits.argmax(1).eq(labels).sum().item<int64_t>();
  }
  model->train(was_training);
  Evaluation evaluation;
  evaluation.loss = n > 0 ? loss_sum / static_cast<double>(n) : 0;
  evaluation.accuracy =
      n > 0 ? static_cast<double>(correct) / static_cast<double>(n) : 0;
  return evaluation;
}

TrainResult Train(Model& model, const Dataset& data, const Hyperparameters& hp,
                  const TrainOptions& options, const EpochCallback& on_epoch) {
  if (options.epochs < 1 || options.start_epoch < 0 ||
      options.start_epoch > options.epochs) {
    throw Error(ErrorCode::kInvalidArgument,
                "epochs must be >= 1 and start_epoch in [0, epochs]; got "
                "epochs " +
                    std::to_string(options.epochs) + ", start_epoch " +
                    std::to_string(options.start_epoch));
  }
  if (!data.train_x.defined() || data.train_x.size(0) < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "the dataset has no training examples");
  }
  if (hp.batch_size < 1 || options.eval_batch_size < 1) {
    throw Error(ErrorCode::kInvalidArgument, "batch sizes must be >= 1");
  }
  try {
    return TrainEpochs(model, data, hp, options, on_epoch);
  } catch (const c10::Error& e) {
    throw Error(ErrorCode::kInternal,
                std::string("training failed: ") + e.what_without_backtrace());
  }
}

}  // namespace baton::stages
