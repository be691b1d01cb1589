#include "stages/trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "stages/tensor_codec.h"
#include "tests/stages/fixtures.h"

namespace baton::stages {
namespace {

using testing::BlobMap;
using testing::SmallFashionMnist;
using testing::TinyCnn;

Hyperparameters Sgd(double lr, double momentum = 0.9) {
  Hyperparameters hp;
  hp.lr = lr;
  hp.momentum = momentum;
  hp.batch_size = 32;
  return hp;
}

struct TrialRun {
  TrainResult result;
  std::vector<EpochMetrics> epochs;
  std::vector<std::string> checkpoints;  // manifest digest after each epoch
};

// Seeds, builds `model_spec` and trains it on the small Fashion-MNIST set.
TrialRun TrainTiny(const Hyperparameters& hp, TrainOptions options,
                   const Json& model_spec = TinyCnn()) {
  const Dataset& data = SmallFashionMnist();
  torch::manual_seed(options.seed);
  Model model(model_spec, data.input_shape, data.num_classes);
  TrialRun run;
  run.result = Train(model, data, hp, options, [&](const EpochMetrics& m) {
    run.epochs.push_back(m);
    run.checkpoints.push_back(
        store::ManifestDigest(EncodeModelState(*model).manifest));
    return true;
  });
  return run;
}

TEST(LearningRate, FollowsTheSchedules) {
  Hyperparameters hp;
  hp.lr = 0.1;
  EXPECT_DOUBLE_EQ(LearningRate(hp, 7, 10), 0.1);
  hp.lr_schedule = "step";
  hp.step_size = 2;
  hp.gamma = 0.5;
  EXPECT_DOUBLE_EQ(LearningRate(hp, 0, 10), 0.1);
  EXPECT_DOUBLE_EQ(LearningRate(hp, 1, 10), 0.1);
  EXPECT_DOUBLE_EQ(LearningRate(hp, 2, 10), 0.05);
  EXPECT_DOUBLE_EQ(LearningRate(hp, 5, 10), 0.025);
  hp.lr_schedule = "cosine";
  hp.min_lr = 0.02;
  EXPECT_DOUBLE_EQ(LearningRate(hp, 0, 10), 0.1);
  EXPECT_NEAR(LearningRate(hp, 5, 10), 0.06, 1e-12);
  EXPECT_GT(LearningRate(hp, 9, 10), 0.02);
  EXPECT_LT(LearningRate(hp, 9, 10), LearningRate(hp, 8, 10));
}

TEST(EpochOrder, IsADeterministicPermutationPerEpoch) {
  std::vector<int64_t> a = EpochOrder(1000, 7, 0);
  EXPECT_EQ(a, EpochOrder(1000, 7, 0));
  EXPECT_NE(a, EpochOrder(1000, 7, 1));
  EXPECT_NE(a, EpochOrder(1000, 8, 0));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_NE(EpochSeed(7, 0), EpochSeed(7, 1));
}

TEST(ParseHyperparameters, ReadsKnownKeysAndIgnoresOthers) {
  Hyperparameters hp = ParseHyperparameters(Json::parse(
      R"({"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 128.0,
          "optimizer": "sgd", "nesterov": true, "lr_schedule": "step",
          "step_size": 3, "gamma": 0.5, "dropout": 0.3})"));
  EXPECT_DOUBLE_EQ(hp.lr, 0.05);
  EXPECT_EQ(hp.batch_size, 128);
  EXPECT_TRUE(hp.nesterov);
  EXPECT_EQ(hp.lr_schedule, "step");
  EXPECT_EQ(hp.step_size, 3);
  EXPECT_EQ(ParseHyperparameters(Json::object()).optimizer, "sgd");
}

TEST(ParseHyperparameters, RejectsBadValuesWithTheirPointer) {
  auto pointer_of = [](const char* text) {
    try {
      ParseHyperparameters(Json::parse(text));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      return e.pointer();
    }
    return std::string("no error");
  };
  EXPECT_EQ(pointer_of(R"({"lr": -1})"), "/hyperparameters/lr");
  EXPECT_EQ(pointer_of(R"({"lr": "fast"})"), "/hyperparameters/lr");
  EXPECT_EQ(pointer_of(R"({"optimizer": "rmsprop"})"),
            "/hyperparameters/optimizer");
  EXPECT_EQ(pointer_of(R"({"batch_size": 12.5})"),
            "/hyperparameters/batch_size");
  EXPECT_EQ(pointer_of(R"({"lr_schedule": "linear"})"),
            "/hyperparameters/lr_schedule");
  EXPECT_EQ(pointer_of(R"({"nesterov": true})"), "/hyperparameters/nesterov");
}

TEST(Train, LearnsFashionMnist) {
  TrainOptions options;
  options.epochs = 2;
  options.seed = 1;
  options.evaluate_test = true;
  TrialRun run = TrainTiny(Sgd(0.05), options);
  ASSERT_EQ(run.result.outcome, TrialOutcome::kCompleted) << run.result.reason;
  ASSERT_EQ(run.epochs.size(), 2u);
  EXPECT_EQ(run.result.epochs_run, 2);
  const EpochMetrics& first = run.epochs[0];
  const EpochMetrics& last = run.epochs[1];
  EXPECT_EQ(first.epoch, 0);
  EXPECT_EQ(last.epoch, 1);
  EXPECT_LT(last.train_loss, first.train_loss);
  EXPECT_LT(first.train_loss, std::log(10.0));  // chance level is ln 10
  EXPECT_GT(*last.val_accuracy, 0.5);           // chance is 0.1
  EXPECT_GT(*last.test_accuracy, 0.5);
  EXPECT_LT(*last.val_loss, std::log(10.0));
  EXPECT_GT(last.samples_per_second, 0);
  EXPECT_GT(last.seconds, 0);
  EXPECT_DOUBLE_EQ(last.lr, 0.05);
  Json metrics = MetricsJson(last);
  for (const char* key : {"train_loss", "val_loss", "val_accuracy", "test_loss",
                          "test_accuracy", "lr", "samples_per_second"}) {
    EXPECT_TRUE(metrics.contains(key)) << key;
  }
}

TEST(Train, AdamLearnsToo) {
  Hyperparameters hp;
  hp.optimizer = "adam";
  hp.lr = 0.003;
  hp.batch_size = 32;
  hp.lr_schedule = "cosine";
  TrainOptions options;
  options.epochs = 2;
  options.seed = 2;
  TrialRun run = TrainTiny(hp, options);
  ASSERT_EQ(run.result.outcome, TrialOutcome::kCompleted);
  EXPECT_GT(*run.epochs[1].val_accuracy, 0.5);
  EXPECT_FALSE(run.epochs[1].test_accuracy.has_value());
  EXPECT_LT(run.epochs[1].lr, run.epochs[0].lr);
}

TEST(Train, SameSeedGivesIdenticalCheckpoints) {
  TrainOptions options;
  options.epochs = 1;
  options.seed = 42;
  TrialRun a = TrainTiny(Sgd(0.05), options);
  TrialRun b = TrainTiny(Sgd(0.05), options);
  options.seed = 43;
  TrialRun c = TrainTiny(Sgd(0.05), options);
  ASSERT_EQ(a.checkpoints.size(), 1u);
  EXPECT_EQ(a.checkpoints, b.checkpoints);
  EXPECT_EQ(a.epochs[0].train_loss, b.epochs[0].train_loss);
  EXPECT_EQ(a.epochs[0].val_accuracy, b.epochs[0].val_accuracy);
  EXPECT_NE(a.checkpoints, c.checkpoints);
}

TEST(Train, ResumingAnEpochReproducesTheUninterruptedRun) {
  // Plain SGD keeps no optimizer state, so a resumed trial must match the
  // uninterrupted one bit for bit (dropout and data order are per epoch).
  const Dataset& data = SmallFashionMnist();
  Json spec = TinyCnn();
  spec["layers"].insert(
      spec["layers"].begin() + 6,
      Json{{"name", "drop"}, {"type", "dropout"}, {"p", 0.3}});
  TrainOptions options;
  options.epochs = 2;
  options.seed = 9;
  TrialRun full = TrainTiny(Sgd(0.05, /*momentum=*/0), options, spec);

  torch::manual_seed(options.seed);
  Model first(spec, data.input_shape, data.num_classes);
  options.epochs = 2;
  BlobMap blobs;
  store::Manifest after_epoch0;
  Train(first, data, Sgd(0.05, 0), options, [&](const EpochMetrics&) {
    EncodedTensors encoded = EncodeModelState(*first);
    blobs.Add(encoded);
    after_epoch0 = encoded.manifest;
    return false;  // stop after epoch 0, as if the worker died
  });
  torch::manual_seed(12345);
  Model resumed(spec, data.input_shape, data.num_classes);
  LoadState(*resumed, after_epoch0, blobs.Fetcher());
  options.start_epoch = 1;
  std::string digest;
  TrainResult result =
      Train(resumed, data, Sgd(0.05, 0), options, [&](const EpochMetrics& m) {
        EXPECT_EQ(m.epoch, 1);
        digest = store::ManifestDigest(EncodeModelState(*resumed).manifest);
        return true;
      });
  EXPECT_EQ(result.epochs_run, 1);
  EXPECT_EQ(digest, full.checkpoints[1]);
}

TEST(Train, HugeLearningRateDivergesWithoutThrowing) {
  TrainOptions options;
  options.epochs = 3;
  options.seed = 3;
  TrialRun run;
  ASSERT_NO_THROW(run = TrainTiny(Sgd(1e6), options));
  EXPECT_EQ(run.result.outcome, TrialOutcome::kDiverged);
  EXPECT_NE(run.result.reason.find("loss"), std::string::npos)
      << run.result.reason;
  EXPECT_EQ(run.result.epochs_run, static_cast<int64_t>(run.epochs.size()));
}

TEST(Train, CallbackCanStopEarly) {
  TrainOptions options;
  options.epochs = 5;
  options.seed = 4;
  const Dataset& data = SmallFashionMnist();
  torch::manual_seed(options.seed);
  Model model(TinyCnn(), data.input_shape, data.num_classes);
  int calls = 0;
  TrainResult result = Train(model, data, Sgd(0.05), options,
                             [&](const EpochMetrics&) { return ++calls < 2; });
  EXPECT_EQ(result.outcome, TrialOutcome::kStopped);
  EXPECT_EQ(result.epochs_run, 2);
  EXPECT_EQ(calls, 2);
}

TEST(Train, StopRequestedEndsTheEpochUnderWayWithoutReportingIt) {
  TrainOptions options;
  options.epochs = 3;
  options.seed = 4;
  const Dataset& data = SmallFashionMnist();
  torch::manual_seed(options.seed);
  Model model(TinyCnn(), data.input_shape, data.num_classes);
  // Raised after the first epoch's report, as a background commit's "stop"
  // arrives while the next epoch trains.
  int checks_after_report = 0;
  int calls = 0;
  options.stop_requested = [&] { return calls > 0 && ++checks_after_report > 2; };
  TrainResult result = Train(model, data, Sgd(0.05), options,
                             [&](const EpochMetrics&) { return ++calls > 0; });
  EXPECT_EQ(result.outcome, TrialOutcome::kStopped);
  EXPECT_EQ(result.epochs_run, 1);
  EXPECT_EQ(calls, 1);                 // the second epoch was never reported
  EXPECT_EQ(checks_after_report, 3);   // it stopped at the first check that said so
}

TEST(Train, RejectsBadOptions) {
  const Dataset& data = SmallFashionMnist();
  Model model(TinyCnn(), data.input_shape, data.num_classes);
  TrainOptions options;
  options.epochs = 2;
  options.start_epoch = 3;
  EXPECT_THROW(Train(model, data, Sgd(0.1), options,
                     [](const EpochMetrics&) { return true; }),
               Error);
}

TEST(Evaluate, LeavesTheModeAsItFoundIt) {
  const Dataset& data = SmallFashionMnist();
  Model model(TinyCnn(), data.input_shape, data.num_classes);
  model->train();
  Evaluation e = Evaluate(model, data.val_x, data.val_y, 64);
  EXPECT_TRUE(model->is_training());
  EXPECT_GE(e.accuracy, 0.0);
  EXPECT_LE(e.accuracy, 1.0);
  EXPECT_TRUE(std::isfinite(e.loss));
}

}  // namespace
}  // namespace baton::stages
