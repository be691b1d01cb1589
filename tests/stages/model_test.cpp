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

// A basic residual block: two 3x3 convs with batch norm; with `stride` > 1
// or a change of channels it needs a projection shortcut.
Json Block(const std::string& name, int64_t channels, int64_t stride,
           bool projection) {
  Json block = {{"name", name},
                {"type", "residual"},
                {"layers",
                 {{{"name", "conv1"},
                   {"type", "conv2d"},
                   {"out_channels", channels},
                   {"kernel_size", 3},
                   {"stride", stride},
                   {"padding", 1},
                   {"bias", false}},
                  {{"name", "bn1"}, {"type", "batch_norm2d"}},
                  {{"name", "relu1"}, {"type", "relu"}},
                  {{"name", "conv2"},
                   {"type", "conv2d"},
                   {"out_channels", channels},
                   {"kernel_size", 3},
                   {"padding", 1},
                   {"bias", false}},
                  {{"name", "bn2"}, {"type", "batch_norm2d"}}}}};
  if (projection) {
    block["shortcut"] = {{{"name", "conv"},
                          {"type", "conv2d"},
                          {"out_channels", channels},
                          {"kernel_size", 1},
                          {"stride", stride},
                          {"bias", false}},
                         {{"name", "bn"}, {"type", "batch_norm2d"}}};
  }
  return block;
}

// Stem, an identity block, a downsampling block, pooling and a classifier.
Json SmallResnet() {
  return {
      {"layers",
       {{{"name", "stem"},
         {"type", "conv2d"},
         {"out_channels", 8},
         {"kernel_size", 3},
         {"padding", 1}},
        Block("block1", 8, 1, false),
        Block("block2", 16, 2, true),
        {{"name", "pool"}, {"type", "adaptive_avg_pool2d"}, {"output_size", 1}},
        {{"name", "flat"}, {"type", "flatten"}},
        {{"name", "fc"}, {"type", "linear"}, {"out_features", 10}}}}};
}

TEST(Residual, NamesTensorsUnderTheBlockAndItsShortcut) {
  Model model(SmallResnet(), kMnistShape, 10);
  auto shapes = Shapes(*model);
  EXPECT_EQ(shapes["block1.conv1.weight"], (std::vector<int64_t>{8, 8, 3, 3}));
  EXPECT_EQ(shapes["block1.bn2.running_mean"], (std::vector<int64_t>{8}));
  EXPECT_EQ(shapes["block2.conv1.weight"], (std::vector<int64_t>{16, 8, 3, 3}));
  EXPECT_EQ(shapes["block2.shortcut.conv.weight"],
            (std::vector<int64_t>{16, 8, 1, 1}));
  EXPECT_EQ(shapes["block2.shortcut.bn.weight"], (std::vector<int64_t>{16}));
  EXPECT_EQ(shapes["fc.weight"], (std::vector<int64_t>{10, 16}));
  EXPECT_EQ(shapes.count("block1.shortcut.conv.weight"), 0u);
  EXPECT_EQ(model->layer_names(),
            (std::vector<std::string>{"stem", "block1", "block2", "pool",
                                      "flat", "fc"}));
  // stem 8*9+8; block1 2*(8*8*9) + 2*2*8; block2 16*8*9 + 16*16*9 + 2*2*16;
  // shortcut 16*8 + 2*16; fc 16*10+10.
  EXPECT_EQ(CountParameters(*model),
            80 + (1152 + 32) + (1152 + 2304 + 64) + (128 + 32) + 170);
  EXPECT_EQ(model->forward(torch::randn({3, 1, 28, 28})).sizes().vec(),
            (std::vector<int64_t>{3, 10}));
}

TEST(Residual, AddsTheShortcutThenActivates) {
  // Body: a 1x1 conv of weight 2 (no bias), so the block computes
  // activation(2x + x).
  Json conv = {{"name", "c"},
               {"type", "conv2d"},
               {"out_channels", 1},
               {"kernel_size", 1},
               {"bias", false}};
  for (const std::string activation : {"relu", "none"}) {
    Json spec = {{"layers",
                  {{{"name", "b"},
                    {"type", "residual"},
                    {"layers", {conv}},
                    {"activation", activation}}}}};
    Model model(spec, std::vector<int64_t>{1, 2, 2});
    {
      torch::NoGradGuard no_grad;
      model->named_parameters()["b.c.weight"].fill_(2.0);
    }
    torch::Tensor x =
        torch::tensor({1.0f, -1.0f, 2.0f, -2.0f}).view({1, 1, 2, 2});
    torch::Tensor expected = 3 * x;
    if (activation == "relu") expected = torch::relu(expected);
    EXPECT_TRUE(torch::allclose(model->forward(x), expected)) << activation;
  }
}

TEST(Residual, ShapeMismatchNamesTheBlockAndBothShapes) {
  Json spec = SmallResnet();
  spec["layers"][2].erase("shortcut");  // block2 halves the size, 8 -> 16
  Error e = BuildError(spec);
  EXPECT_TRUE(Contains(e.what(), "'block2' (residual)")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "[N,16,14,14]")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "[N,8,28,28]")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "shortcut")) << e.what();
  EXPECT_EQ(e.pointer(), "/layers/2");

  spec = SmallResnet();
  spec["layers"][2]["shortcut"][0]["stride"] = 1;  // [16,28,28] vs [16,14,14]
  e = BuildError(spec);
  EXPECT_TRUE(Contains(e.what(), "[N,16,14,14]")) << e.what();
  EXPECT_TRUE(Contains(e.what(), "shortcut's output, [N,16,28,28]"))
      << e.what();
}

TEST(Residual, ErrorsInsideABlockPointIntoIt) {
  Json spec = SmallResnet();
  spec["layers"][1]["layers"][3]["out_channels"] = 0;
  Error e = BuildError(spec);
  EXPECT_EQ(e.pointer(), "/layers/1/layers/3/out_channels");
  EXPECT_TRUE(Contains(e.what(), "'block1.conv2' (conv2d)")) << e.what();

  spec = SmallResnet();
  spec["layers"][2]["shortcut"][1]["type"] = "batch_norm3d";
  e = BuildError(spec);
  EXPECT_EQ(e.pointer(), "/layers/2/shortcut/1/type");
  EXPECT_TRUE(Contains(e.what(), "'block2.shortcut.bn'")) << e.what();

  spec = SmallResnet();
  spec["layers"][1]["layers"][2]["name"] = "bn1";
  e = BuildError(spec);
  EXPECT_EQ(e.pointer(), "/layers/1/layers/2/name");

  spec = SmallResnet();
  spec["layers"][1]["layers"][2]["name"] = "shortcut";
  e = BuildError(spec);
  EXPECT_EQ(e.pointer(), "/layers/1/layers/2/name");

  spec = SmallResnet();
  spec["layers"][1]["layers"] = Json::array();
  e = BuildError(spec);
  EXPECT_EQ(e.pointer(), "/layers/1/layers");

  spec = SmallResnet();
  spec["layers"][1]["activation"] = "gelu";
  e = BuildError(spec);
  EXPECT_EQ(e.pointer(), "/layers/1/activation");

  spec = SmallResnet();
  spec["layers"][1]["kernel_size"] = 3;
  e = BuildError(spec);
  EXPECT_EQ(e.pointer(), "/layers/1/kernel_size");
}

TEST(Residual, BlocksNest) {
  Json outer = {
      {"name", "outer"},
      {"type", "residual"},
      {"layers",
       {Block("inner", 8, 1, false), {{"name", "act"}, {"type", "relu"}}}}};
  Json spec = SmallResnet();
  spec["layers"][1] = outer;
  Model model(spec, kMnistShape, 10);
  EXPECT_EQ(Shapes(*model)["outer.inner.conv1.weight"],
            (std::vector<int64_t>{8, 8, 3, 3}));
  spec["layers"][1]["layers"][0]["layers"][0]["kernel_size"] = "x";
  EXPECT_EQ(BuildError(spec).pointer(),
            "/layers/1/layers/0/layers/0/kernel_size");
}

TEST(AdaptiveAvgPool, TakesOneSizeOrHeightAndWidth) {
  Json spec = {{"layers",
                {{{"name", "c"},
                  {"type", "conv2d"},
                  {"out_channels", 3},
                  {"kernel_size", 1}},
                 {{"name", "p"},
                  {"type", "adaptive_avg_pool2d"},
                  {"output_size", Json::array({2, 3})}}}}};
  Model wide(spec, kMnistShape);
  EXPECT_EQ(wide->output_shape(), (std::vector<int64_t>{3, 2, 3}));
  spec["layers"][1]["output_size"] = 1;
  Model one(spec, kMnistShape);
  EXPECT_EQ(one->output_shape(), (std::vector<int64_t>{3, 1, 1}));
  torch::Tensor x = torch::randn({2, 1, 28, 28});
  one->eval();
  // output_size 1 is the mean over height and width of each channel.
  torch::Tensor conv =
      one->named_children()["c"]->as<torch::nn::Conv2d>()->forward(x);
  EXPECT_TRUE(
      torch::allclose(one->forward(x), conv.mean({2, 3}, true), 1e-5, 1e-5));
  for (const Json& bad : {Json(0), Json::array({2}), Json("2")}) {
    spec["layers"][1]["output_size"] = bad;
    EXPECT_EQ(BuildError(spec, 0).pointer(), "/layers/1/output_size") << bad;
  }
  spec["layers"][1].erase("output_size");
  EXPECT_EQ(BuildError(spec, 0).pointer(), "/layers/1");
}

}  // namespace
}  // namespace baton::stages
