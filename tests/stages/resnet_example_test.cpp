// examples/resnet18-fashion.json end to end on the worker's side: the file
// validates, its model is ResNet-18 with the adapted stem and trains, and an
// ablation without one residual block builds and trains as well.

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "orchestrator/internal/ablation.h"
#include "orchestrator/pipeline_spec.h"
#include "stages/dataset.h"
#include "stages/model.h"
#include "stages/tensor_codec.h"
#include "stages/trainer.h"
#include "tests/stages/fixtures.h"

namespace baton::stages {
namespace {

// torchvision's resnet18(num_classes=10) has 11,181,642 parameters; its stem
// conv is 64 x 3 x 7 x 7 = 9,408 of them. The adapted stem is 64 x 1 x 3 x 3
// = 576: 11,181,642 - 9,408 + 576.
constexpr int64_t kResnet18FashionParameters = 11172810;
// layer3_1: two 3x3 convs of 256 -> 256 channels and two batch norms.
constexpr int64_t kLayer3_1Parameters = 2 * 256 * 256 * 9 + 2 * 2 * 256;

const orchestrator::Pipeline& Example() {
  static const orchestrator::Pipeline pipeline = orchestrator::LoadPipelineFile(
      std::string(BATON_EXAMPLES_DIR) + "/resnet18-fashion.json");
  return pipeline;
}

// 300 Fashion-MNIST examples (240 train, 60 validation): one epoch of
// ResNet-18 on them takes seconds on 2 cores.
const Dataset& TinyFashionMnist() {
  static const Dataset dataset = [] {
    PrepareSpec spec;
    spec.path = testing::kFashionMnistDir;
    spec.train_subset = 300;
    spec.test_subset = 10;
    spec.validation_fraction = 0.2;
    spec.normalize = true;
    return PrepareDataset(spec);
  }();
  return dataset;
}

// Trains `model` one epoch with the example's hyperparameters.
EpochMetrics TrainOneEpoch(Model& model) {
  const Hyperparameters hp =
      ParseHyperparameters(Example().stage("train").at("hyperparameters"));
  TrainOptions options;
  options.epochs = 1;
  options.seed = 5;
  EpochMetrics last;
  const TrainResult result =
      Train(model, TinyFashionMnist(), hp, options, [&](const EpochMetrics& m) {
        last = m;
        return true;
      });
  EXPECT_EQ(result.outcome, TrialOutcome::kCompleted) << result.reason;
  EXPECT_EQ(result.epochs_run, 1);
  return last;
}

TEST(ResnetExample, IsResnet18WithTheAdaptedStemAndTrains) {
  const Json& model_spec = Example().stage("train").at("model");
  torch::manual_seed(5);
  Model model(model_spec, TinyFashionMnist().input_shape, 10);
  EXPECT_EQ(CountParameters(*model), kResnet18FashionParameters);
  EXPECT_EQ(model->layer_names(),
            (std::vector<std::string>{"conv1", "bn1", "relu", "layer1_0",
                                      "layer1_1", "layer2_0", "layer2_1",
                                      "layer3_0", "layer3_1", "layer4_0",
                                      "layer4_1", "avgpool", "flatten", "fc"}));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, tensor] : ModuleState(*model)) {
    shapes[name] = tensor.sizes().vec();
  }
  EXPECT_EQ(shapes["conv1.weight"], (std::vector<int64_t>{64, 1, 3, 3}));
  EXPECT_EQ(shapes["layer1_0.conv2.weight"],
            (std::vector<int64_t>{64, 64, 3, 3}));
  EXPECT_EQ(shapes["layer2_0.shortcut.conv.weight"],
            (std::vector<int64_t>{128, 64, 1, 1}));
  EXPECT_EQ(shapes["layer4_1.bn2.running_var"], (std::vector<int64_t>{512}));
  EXPECT_EQ(shapes["fc.weight"], (std::vector<int64_t>{10, 512}));
  EXPECT_EQ(shapes.count("layer1_0.shortcut.conv.weight"), 0u);  // identity

  const EpochMetrics metrics = TrainOneEpoch(model);
  EXPECT_TRUE(std::isfinite(metrics.train_loss)) << metrics.train_loss;
  ASSERT_TRUE(metrics.val_accuracy.has_value());
}

TEST(ResnetExample, AblationWithoutAnIdentityBlockTrains) {
  const Json& model_spec = Example().stage("train").at("model");
  const Json without = orchestrator::RemoveLayers(model_spec, {"layer3_1"});
  torch::manual_seed(5);
  Model model(without, TinyFashionMnist().input_shape, 10);
  EXPECT_EQ(CountParameters(*model),
            kResnet18FashionParameters - kLayer3_1Parameters);
  EXPECT_EQ(model->layer_names().size(), 13u);
  const EpochMetrics metrics = TrainOneEpoch(model);
  EXPECT_TRUE(std::isfinite(metrics.train_loss)) << metrics.train_loss;
}

// Where validation could not tell (a width from a search space), the worker
// refuses to leave out a block that changes the shape, and says which.
TEST(ResnetExample, AblationWithoutADownsamplingBlockNamesIt) {
  const Json& model_spec = Example().stage("train").at("model");
  try {
    Model model(orchestrator::RemoveLayers(model_spec, {"layer2_0"}),
                TinyFashionMnist().input_shape, 10);
    ADD_FAILURE() << "layer2_0 was left out";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.pointer(), "/layers/5/removed");
    EXPECT_NE(what.find("'layer2_0' (residual)"), std::string::npos) << what;
    EXPECT_NE(what.find("input [N,64,28,28] instead of its output "
                        "[N,128,14,14]"),
              std::string::npos)
        << what;
  }
}

}  // namespace
}  // namespace baton::stages
