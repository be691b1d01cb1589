#include "stages/model.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "stages/tensor_codec.h"
#include "tests/stages/fixtures.h"

namespace baton::stages {
namespace {

using testing::ExampleCnn;
using testing::TinyCnn;
using testing::WithoutLayer;

const std::vector<int64_t> kMnistShape = {1, 28, 28};

std::map<std::string, std::vector<int64_t>> Shapes(const torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, tensor] : ModuleState(m)) {
    shapes[name] = tensor.sizes().vec();
  }
  return shapes;
}

// Builds `spec` and returns the error it throws.
Error BuildError(const Json& spec, int64_t num_classes = 10) {
  try {
    Model model(spec, kMnistShape, num_classes);
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "built without error: " << spec.dump();
  return Error(ErrorCode::kInternal, "none");
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(Model, ExampleCnnHasTheDesignDocShapes) {
  Model model(ExampleCnn(), kMnistShape, /*num_classes=*/10);
  auto shapes = Shapes(*model);
  EXPECT_EQ(shapes["conv1.weight"], (std::vector<int64_t>{32, 1, 3, 3}));
  EXPECT_EQ(shapes["conv2.weight"], (std::vector<int64_t>{64, 32, 3, 3}));
  EXPECT_EQ(shapes["bn2.weight"], (std::vector<int64_t>{64}));
  EXPECT_EQ(shapes["bn2.running_mean"], (std::vector<int64_t>{64}));
  EXPECT_EQ(shapes["bn2.num_batches_tracked"], (std::vector<int64_t>{}));
  EXPECT_EQ(shapes["fc1.weight"], (std::vector<int64_t>{128, 64 * 7 * 7}));
  EXPECT_EQ(shapes["fc2.bias"], (std::vector<int64_t>{10}));
  EXPECT_EQ(shapes.size(), 13u);  // 10 parameters + 3 batch-norm buffers
  // DESIGN.md's 421,642 counts the CNN without bn2's affine weight and bias
  // (2 x 64); with them the example has 421,770 parameters.
  EXPECT_EQ(CountParameters(*model), 421770);
  Model without_bn(WithoutLayer(ExampleCnn(), "bn2"), kMnistShape, 10);
  EXPECT_EQ(CountParameters(*without_bn), 421642);
  EXPECT_EQ(model->output_shape(), (std::vector<int64_t>{10}));
  EXPECT_EQ(model->layer_names().size(), 12u);
  EXPECT_TRUE(model->is_training());
}

TEST(Model, ForwardGivesOneRowOfLogitsPerExample) {
  torch::manual_seed(3);
  Model model(ExampleCnn(), kMnistShape, 10);
  torch::Tensor out = model->forward(torch::randn({5, 1, 28, 28}));
  EXPECT_EQ(out.sizes().vec(), (std::vector<int64_t>{5, 10}));
}

TEST(Model, RemovedLayersStillBuild) {
  Model no_conv2(WithoutLayer(ExampleCnn(), "conv2"), kMnistShape, 10);
  auto shapes = Shapes(*no_conv2);
  EXPECT_EQ(shapes.count("conv2.weight"), 0u);
  EXPECT_EQ(shapes["bn2.weight"], (std::vector<int64_t>{32}));
  EXPECT_EQ(shapes["fc1.weight"], (std::vector<int64_t>{128, 32 * 7 * 7}));
  for (const char* layer : {"drop", "pool1", "act3", "bn2"}) {
    Model model(WithoutLayer(ExampleCnn(), layer), kMnistShape, 10);
    EXPECT_EQ(model->output_shape(), (std::vector<int64_t>{10})) << layer;
  }
}

TEST(Model, SameSeedGivesSameWeights) {
  torch::manual_seed(11);
  Model a(TinyCnn(), kMnistShape, 10);
  torch::manual_seed(11);
  Model b(TinyCnn(), kMnistShape, 10);
  torch::manual_seed(12);
  Model c(TinyCnn(), kMnistShape, 10);
  EXPECT_EQ(store::ManifestDigest(EncodeModelState(*a).manifest),
            store::ManifestDigest(EncodeModelState(*b).manifest));
  EXPECT_NE(store::ManifestDigest(EncodeModelState(*a).manifest),
            store::ManifestDigest(EncodeModelState(*c).manifest));
}

TEST(Model, BuildingLeavesBatchNormStatisticsUntouched) {
  Model model(TinyCnn(), kMnistShape, 10);
  auto state = ModuleState(*model);
  for (const auto& [name, tensor] : state) {
    if (name == "bn1.running_mean") {
      EXPECT_EQ(tensor.abs().sum().item<float>(), 0);
    } else if (name == "bn1.running_var") {
      EXPECT_TRUE(torch::equal(tensor, torch::ones({8})));
    } else if (name == "bn1.num_batches_tracked") {
      EXPECT_EQ(tensor.item<int64_t>(), 0);
    }
  }
}

TEST(Model, UnknownTypeNamesTheLayer) {
  Json spec = TinyCnn();
  spec["layers"][2]["type"] = "gelu";
  Error e = BuildError(spec);
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(e.what(), "'act1'")) << e.what();
  EXPECT_EQ(e.pointer(), "/layers/2/type");
}

TEST(Model, MissingAndUnknownFieldsAreRejected) {
  Json missing = TinyCnn();
  missing["layers"][5].erase("out_features");
  Error e = BuildError(missing);
  EXPECT_TRUE(Contains(e.what(), "'fc1'")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "out_features")) << e.what();

  Json extra = TinyCnn();
  extra["layers"][5]["in_features"] = 392;
  e = BuildError(extra);
  EXPECT_TRUE(Contains(e.what(), "in_features")) << e.what();
  EXPECT_EQ(e.pointer(), "/layers/5/in_features");

  Json unsubstituted = ExampleCnn();
  unsubstituted["layers"][7]["p"] = "$dropout";
  e = BuildError(unsubstituted);
  EXPECT_TRUE(Contains(e.what(), "'drop'")) << e.what();
  EXPECT_EQ(e.pointer(), "/layers/7/p");
}

TEST(Model, LayerThatCannotTakeItsInputIsNamed) {
  Error e = BuildError(WithoutLayer(ExampleCnn(), "flat"));
  EXPECT_TRUE(Contains(e.what(), "'fc1'")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "flatten")) << e.what();

  Json big_pool = TinyCnn();
  big_pool["layers"][3]["kernel_size"] = 64;
  e = BuildError(big_pool);
  EXPECT_TRUE(Contains(e.what(), "'pool1'")) << e.what();
  EXPECT_EQ(e.pointer(), "/layers/3");

  Json bn_after_flatten = TinyCnn();
  bn_after_flatten["layers"][6]["type"] = "batch_norm2d";
  bn_after_flatten["layers"][6]["name"] = "bn_flat";
  e = BuildError(bn_after_flatten);
  EXPECT_TRUE(Contains(e.what(), "'bn_flat'")) << e.what();
}

TEST(Model, NamesMustBeUniqueAndDotFree) {
  Json duplicate = TinyCnn();
  duplicate["layers"][6]["name"] = "act1";
  EXPECT_TRUE(Contains(BuildError(duplicate).what(), "same name"));
  Json dotted = TinyCnn();
  dotted["layers"][0]["name"] = "conv.1";
  EXPECT_EQ(BuildError(dotted).pointer(), "/layers/0/name");
  Json nameless = TinyCnn();
  nameless["layers"][0].erase("name");
  EXPECT_EQ(BuildError(nameless).pointer(), "/layers/0/name");
}

TEST(Model, OutputMustMatchTheNumberOfClasses) {
  Error e = BuildError(TinyCnn(), /*num_classes=*/5);
  EXPECT_TRUE(Contains(e.what(), "5 classes")) << e.what();
  EXPECT_EQ(BuildError(Json{{"layers", Json::array()}, {"extra", 1}}).pointer(),
            "/extra");
  Model unchecked(TinyCnn(), kMnistShape, /*num_classes=*/0);
  EXPECT_EQ(unchecked->output_shape(), (std::vector<int64_t>{10}));
}

TEST(Model, TabularRowsNeedNoFlatten) {
  Json spec = Json::parse(R"({"layers": [
    {"name": "bn0", "type": "batch_norm1d"},
    {"name": "fc1", "type": "linear", "out_features": 16},
    {"name": "bn1", "type": "batch_norm1d"},
    {"name": "act", "type": "relu"},
    {"name": "drop", "type": "dropout", "p": 0.1},
    {"name": "out", "type": "linear", "out_features": 3}]})");
  Model model(spec, std::vector<int64_t>{5}, /*num_classes=*/3);
  auto shapes = Shapes(*model);
  EXPECT_EQ(shapes["bn0.running_mean"], (std::vector<int64_t>{5}));
  EXPECT_EQ(shapes["fc1.weight"], (std::vector<int64_t>{16, 5}));
  EXPECT_EQ(model->forward(torch::randn({4, 5})).sizes().vec(),
            (std::vector<int64_t>{4, 3}));
  Model without_fc1(WithoutLayer(spec, "fc1"), std::vector<int64_t>{5}, 3);
  EXPECT_EQ(Shapes(*without_fc1)["bn1.weight"], (std::vector<int64_t>{5}));
}

TEST(Model, AblatedVariantThatCannotBuildSaysWhy) {
  Error e = BuildError(WithoutLayer(ExampleCnn(), "fc2"));
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Contains(e.what(), "output is [N,128]")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "last layer 'act3' (relu)")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "needs [N,10]")) << e.what();
  EXPECT_EQ(e.pointer(), "/layers/10");

  e = BuildError(Json{{"layers", Json::array()}});
  EXPECT_TRUE(Contains(e.what(), "no layers")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "[N,1,28,28]")) << e.what();

  try {
    Model conv_on_rows(ExampleCnn(), std::vector<int64_t>{5}, 10);
    ADD_FAILURE() << "a conv2d built on rows";
  } catch (const Error& error) {
    EXPECT_TRUE(Contains(error.what(), "'conv1' (conv2d)")) << error.what();
    EXPECT_TRUE(Contains(error.what(), "[N,channels,height,width]"))
        << error.what();
    EXPECT_TRUE(Contains(error.what(), "gets [N,5]")) << error.what();
    EXPECT_EQ(error.pointer(), "/layers/0");
  }
}

TEST(Model, SupportsEveryLayerType) {
  Json spec = Json::parse(R"({"layers": [
    {"name": "c", "type": "conv2d", "out_channels": 4, "kernel_size": 5, "stride": 2, "bias": false},
    {"name": "a", "type": "avg_pool2d", "kernel_size": 2, "stride": 1, "padding": 1},
    {"name": "m", "type": "max_pool2d", "kernel_size": 3},
    {"name": "f", "type": "flatten"},
    {"name": "l", "type": "linear", "out_features": 16, "bias": false},
    {"name": "b", "type": "batch_norm1d"},
    {"name": "d", "type": "dropout", "p": 0.1},
    {"name": "r", "type": "relu"},
    {"name": "o", "type": "linear", "out_features": 10}]})");
  Model model(spec, kMnistShape, 10);
  auto shapes = Shapes(*model);
  EXPECT_EQ(shapes.count("c.bias"), 0u);
  // 28 -conv5/2-> 12 -avg2/1,pad1-> 13 -max3-> 4: 4 channels * 4 * 4.
  EXPECT_EQ(shapes["l.weight"], (std::vector<int64_t>{16, 64}));
  EXPECT_EQ(shapes["b.running_var"], (std::vector<int64_t>{16}));
  model->train();
  EXPECT_EQ(model->forward(torch::randn({3, 1, 28, 28})).sizes().vec(),
            (std::vector<int64_t>{3, 10}));
}

}  // namespace
}  // namespace baton::stages
