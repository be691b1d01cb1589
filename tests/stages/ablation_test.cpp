// Ablation at the stage level: leaving out a dataset feature or a model layer,
// with the real dataset reader, model builder, trainer and init transfer.

#include <gtest/gtest.h>

#include <iostream>
#include <map>

#include "common/error.h"
#include "stages/dataset.h"
#include "stages/model.h"
#include "stages/tensor_codec.h"
#include "stages/trainer.h"
#include "tests/stages/fixtures.h"

namespace baton::stages {
namespace {

using testing::BlobMap;
using testing::ExampleCnn;
using testing::kSignalCsvFeatures;
using testing::SmallFashionMnist;
using testing::TabularMlp;
using testing::TempDir;
using testing::WithoutLayer;

const std::vector<int64_t> kImageShape = {1, 28, 28};

// Trains `spec` on `data` from seed `seed` and returns the last epoch's
// validation accuracy.
double TrainedValAccuracy(const Json& spec, const Dataset& data,
                          const Hyperparameters& hp, int64_t epochs,
                          uint64_t seed) {
  torch::manual_seed(seed);
  Model model(spec, data.input_shape, data.num_classes);
  TrainOptions options;
  options.epochs = epochs;
  options.seed = seed;
  double accuracy = -1;
  TrainResult result =
      Train(model, data, hp, options, [&](const EpochMetrics& metrics) {
        accuracy = metrics.val_accuracy.value_or(-1);
        return true;
      });
  EXPECT_EQ(result.outcome, TrialOutcome::kCompleted) << result.reason;
  return accuracy;
}

// The acceptance test: on a CSV whose label depends on one column
// only, leaving that column out costs the most accuracy.
TEST(FeatureAblation, LeavingOutTheSignalGivesTheLargestDrop) {
  TempDir dir;
  testing::WriteSignalCsv(dir.File("signal.csv"), /*rows=*/1500, /*seed=*/3);
  PrepareSpec spec;
  spec.format = "csv";
  spec.path = dir.File("signal.csv");
  spec.validation_fraction = 0.25;  // 1200 rows before test: 900 / 300
  spec.normalize = true;
  const Dataset data = PrepareDataset(spec);
  ASSERT_EQ(data.num_classes, 3);
  ASSERT_EQ(data.val_x.size(0), 300);

  Hyperparameters hp;
  hp.optimizer = "adam";
  hp.lr = 0.01;
  hp.batch_size = 32;
  const int64_t epochs = 5;
  const uint64_t seed = 17;
  const double full = TrainedValAccuracy(TabularMlp(3), data, hp, epochs, seed);
  std::map<std::string, double> without;
  for (const std::string& feature : kSignalCsvFeatures) {
    without[feature] = TrainedValAccuracy(
        TabularMlp(3), DropFeatures(data, {feature}), hp, epochs, seed);
  }
  std::cout << "val_accuracy with all features: " << full << "\n";
  for (const auto& [feature, accuracy] : without) {
    std::cout << "  without " << feature << ": " << accuracy << " (drop "
              << full - accuracy << ")\n";
  }

  EXPECT_GT(full, 0.8);
  EXPECT_LT(without["signal"], 0.5);  // about chance (1/3)
  for (const auto& [feature, accuracy] : without) {
    if (feature == "signal") continue;
    EXPECT_GT(full - without["signal"], full - accuracy + 0.2) << feature;
    EXPECT_GT(accuracy, 0.75) << feature;
  }
}

TEST(LayerAblation, CnnWithoutAConvLayerTrains) {
  const Dataset& data = SmallFashionMnist();
  Hyperparameters hp;
  hp.lr = 0.05;
  hp.momentum = 0.9;
  hp.batch_size = 64;
  const double accuracy = TrainedValAccuracy(
      WithoutLayer(ExampleCnn(), "conv2"), data, hp, /*epochs=*/1, 5);
  EXPECT_GT(accuracy, 0.4);  // chance is 0.1
}

TEST(LayerAblation, InitFromTheFullModelTransfersWhatStillFits) {
  torch::manual_seed(1);
  Model full(ExampleCnn(), kImageShape, 10);
  // Make every tensor of the source differ from a fresh model's, batch-norm
  // statistics included.
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, tensor] : ModuleState(*full)) {
      if (tensor.is_floating_point()) {
        tensor.add_(0.5);
      } else {
        tensor.add_(3);
      }
    }
  }
  EncodedTensors source = EncodeModelState(*full);
  BlobMap blobs;
  blobs.Add(source);

  torch::manual_seed(2);
  Model ablated(WithoutLayer(ExampleCnn(), "conv2"), kImageShape, 10);
  std::map<std::string, std::string> fresh;
  for (const auto& entry : EncodeModelState(*ablated).manifest.tensors) {
    fresh[entry.name] = entry.blob;
  }
  InitReport report = TransferInit(*ablated, source.manifest, blobs.Fetcher());

  // conv2 is gone, so bn2 sees 32 channels instead of 64 and fc1 takes
  // 32*7*7 inputs instead of 64*7*7; everything else keeps name and shape.
  EXPECT_EQ(report.reinitialized,
            (std::vector<std::string>{"bn2.bias", "bn2.running_mean",
                                      "bn2.running_var", "bn2.weight",
                                      "fc1.weight"}));
  EXPECT_EQ(report.transferred,
            (std::vector<std::string>{"bn2.num_batches_tracked", "conv1.bias",
                                      "conv1.weight", "fc1.bias", "fc2.bias",
                                      "fc2.weight"}));
  std::map<std::string, std::string> after;
  for (const auto& entry : EncodeModelState(*ablated).manifest.tensors) {
    after[entry.name] = entry.blob;
  }
  for (const std::string& name : report.transferred) {
    const store::TensorEntry* entry = store::FindTensor(source.manifest, name);
    ASSERT_NE(entry, nullptr) << name;
    EXPECT_EQ(after[name], entry->blob) << name << " is not bit-identical";
  }
  for (const std::string& name : report.reinitialized) {
    EXPECT_EQ(after[name], fresh[name]) << name << " lost its fresh values";
  }
  EXPECT_EQ(after.size(), 11u);
}

}  // namespace
}  // namespace baton::stages
