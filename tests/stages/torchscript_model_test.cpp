// ModelImpl over a TorchScript module. The modules are scripted here in C++
// (torch::jit::Module::define) and saved to memory, as Python's
// torch.jit.script(...).save(...) would save them.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <sstream>

#include "common/digest.h"
#include "common/error.h"
#include "stages/model.h"
#include "stages/tensor_codec.h"

namespace baton::stages {
namespace {

torch::jit::Module NewModule(const std::string& type) {
  torch::jit::Module m(c10::QualifiedName("__torch__." + type));
  m.register_attribute("training", c10::BoolType::get(), true);
  return m;
}

// conv1 (1->4, 3x3, pad 1) -> bn1 -> relu -> flatten -> fc (4*H*W -> classes),
// times `scale`, doubled in training mode: the same tensor names as
// JsonTwin().
TorchScriptFile SmallScript(int64_t height, int64_t classes) {
  torch::manual_seed(3);
  torch::jit::Module conv = NewModule("Conv");
  conv.register_parameter("weight", (torch::randn({4, 1, 3, 3}) * 0.3).requires_grad_(), false);
  conv.register_parameter("bias", (torch::randn({4}) * 0.1).requires_grad_(), false);
  conv.define("def forward(self, x):\n  return torch.conv2d(x, self.weight, self.bias, [1, 1], [1, 1])\n");
  torch::jit::Module bn = NewModule("Bn");
  bn.register_parameter("weight", torch::ones({4}).requires_grad_(), false);
  bn.register_parameter("bias", torch::zeros({4}).requires_grad_(), false);
  bn.register_buffer("running_mean", torch::zeros({4}));
  bn.register_buffer("running_var", torch::ones({4}));
  bn.register_buffer("num_batches_tracked", torch::zeros({}, torch::kInt64));
  bn.define(
      "def forward(self, x):\n"
      "  return torch.batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var, self.training, "
      "0.1, 1e-05, False)\n");
  torch::jit::Module fc = NewModule("Fc");
  fc.register_parameter("weight", (torch::randn({classes, 4 * height * height}) * 0.05).requires_grad_(), false);
  fc.register_parameter("bias", torch::zeros({classes}).requires_grad_(), false);
  fc.define("def forward(self, x):\n  return torch.linear(x, self.weight, self.bias)\n");
  torch::jit::Module net = NewModule("Net");
  net.register_module("conv1", conv);
  net.register_module("bn1", bn);
  net.register_module("fc", fc);
  net.register_attribute("scale", c10::FloatType::get(), 1.0);
  net.register_attribute("repeats", c10::IntType::get(), int64_t{1});
  net.define(
      "def forward(self, x):\n"
      "  y = torch.relu(self.bn1.forward(self.conv1.forward(x)))\n"
      "  y = self.fc.forward(torch.flatten(y, 1)) * self.scale * float(self.repeats)\n"
      "  if self.training:\n"
      "    y = y * 2.0\n"
      "  return y\n");
  std::ostringstream out;
  net.save(out);
  return {out.str(), "small.pt"};
}

Json JsonTwin(int64_t classes) {
  return Json::parse(R"({"layers": [
    {"name": "conv1", "type": "conv2d", "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"name": "bn1", "type": "batch_norm2d"}, {"name": "act", "type": "relu"},
    {"name": "flat", "type": "flatten"},
    {"name": "fc", "type": "linear", "out_features": )" + std::to_string(classes) + "}]}");
}

const std::vector<int64_t> kShape = {1, 6, 6};

std::vector<std::string> Names(const torch::nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : ModuleState(m)) names.push_back(name);
  return names;
}

TEST(TorchScriptModelTest, TensorsAreNamedAsInTheScriptedModule) {
  Model model(SmallScript(6, 5), kShape, 5, Json::object());
  const std::vector<std::string> expected = {
      "conv1.weight",     "conv1.bias",      "bn1.weight", "bn1.bias", "fc.weight", "fc.bias", "bn1.running_mean",
      "bn1.running_var", "bn1.num_batches_tracked"};
  std::vector<std::string> names = Names(*model);
  std::vector<std::string> sorted_expected = expected;
  std::sort(names.begin(), names.end());
  std::sort(sorted_expected.begin(), sorted_expected.end());
  EXPECT_EQ(names, sorted_expected);
  EXPECT_EQ(model->output_shape(), std::vector<int64_t>({5}));
  // The same names as the layer list with the same layer names.
  Model twin(JsonTwin(5), kShape, 5);
  std::vector<std::string> twin_names = Names(*twin);
  std::sort(twin_names.begin(), twin_names.end());
  EXPECT_EQ(names, twin_names);
}

TEST(TorchScriptModelTest, TrainAndEvalReachTheScriptedModule) {
  Model model(SmallScript(6, 5), kShape, 5, Json::object());
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({3, 1, 6, 6});
  model->eval();
  const torch::Tensor eval_out = model->forward(x);
  EXPECT_TRUE(torch::allclose(model->forward(x), eval_out));
  model->train();
  const torch::Tensor train_out = model->forward(x);
  // Training mode doubles (the scripted `if self.training`) and batch norm
  // uses the batch's statistics, so the outputs differ.
  EXPECT_FALSE(torch::allclose(train_out, eval_out));
  // Batch norm in training mode updated the running mean it shares.
  auto state = ModuleState(*model);
  auto mean = std::find_if(state.begin(), state.end(), [](const auto& p) { return p.first == "bn1.running_mean"; });
  ASSERT_NE(mean, state.end());
  EXPECT_GT(mean->second.abs().sum().item<double>(), 0);
}

TEST(TorchScriptModelTest, OptimizerStepsAndToReachTheScriptedModule) {
  Model model(SmallScript(6, 5), kShape, 5, Json::object());
  model->eval();  // running statistics stay put; the output is a function of the weights
  const torch::Tensor x = torch::randn({4, 1, 6, 6});
  const torch::Tensor before = model->forward(x).detach();
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.5));
  sgd.zero_grad();
  model->forward(x).pow(2).sum().backward();
  for (const auto& p : model->parameters()) {
    ASSERT_TRUE(p.grad().defined());
  }
  sgd.step();
  const torch::Tensor after = model->forward(x).detach();
  EXPECT_FALSE(torch::allclose(before, after));
  // The scripted forward computes with the mirror's tensors: a zeroed fc
  // gives zero logits.
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model->named_parameters()) {
      if (item.key().rfind("fc.", 0) == 0) item.value().zero_();
    }
  }
  EXPECT_TRUE(torch::allclose(model->forward(x), torch::zeros({4, 5})));
  // to() changes the tensors the scripted module holds.
  model->to(torch::kFloat64);
  const torch::Tensor doubled = model->forward(x.to(torch::kFloat64));
  EXPECT_EQ(doubled.scalar_type(), torch::kFloat64);
  for (const auto& [name, t] : ModuleState(*model)) {
    if (name != "bn1.num_batches_tracked") EXPECT_EQ(t.scalar_type(), torch::kFloat64) << name;
  }
}

TEST(TorchScriptModelTest, HyperparametersSetTopLevelAttributes) {
  const torch::Tensor x = torch::randn({2, 1, 6, 6});
  Model plain(SmallScript(6, 5), kShape, 5, Json{{"lr", 0.1}});
  Model scaled(SmallScript(6, 5), kShape, 5, Json{{"lr", 0.1}, {"scale", 3}, {"repeats", 2}});
  EXPECT_EQ(plain->attributes_set(), Json::object());
  EXPECT_EQ(scaled->attributes_set(), (Json{{"scale", 3}, {"repeats", 2}}));
  plain->eval();
  scaled->eval();
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(scaled->forward(x), plain->forward(x) * 6, 1e-4, 1e-5));
  try {
    Model bad(SmallScript(6, 5), kShape, 5, Json{{"repeats", 1.5}});
    ADD_FAILURE() << "a fractional int attribute was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"repeats\" sets an int attribute"), std::string::npos) << e.what();
  }
}

TEST(TorchScriptModelTest, AWrongOutputShapeNamesTheFile) {
  try {
    Model model(SmallScript(6, 5), kShape, 10, Json::object());
    ADD_FAILURE() << "built a 5-class model for 10 classes";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.pointer(), "/torchscript");
    EXPECT_NE(what.find("small.pt"), std::string::npos) << what;
    EXPECT_NE(what.find("is [N,5]"), std::string::npos) << what;
    EXPECT_NE(what.find("needs [N,10]"), std::string::npos) << what;
  }
  try {
    Model model(SmallScript(6, 5), std::vector<int64_t>{1, 8, 8}, 5, Json::object());
    ADD_FAILURE() << "took 8x8 images into a 6x6 model";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot take the dataset's input [N,1,8,8]"), std::string::npos)
        << e.what();
  }
  try {
    Model model(TorchScriptFile{"not a zip", "junk.pt"}, kShape, 5, Json::object());
    ADD_FAILURE() << "loaded junk";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("junk.pt: cannot be loaded"), std::string::npos) << e.what();
  }
}

TEST(TorchScriptModelTest, InitTransfersBetweenALayerListAndAScriptWithTheSameNames) {
  std::map<std::string, std::string> blobs;
  auto fetch = [&](const std::string& digest) { return blobs.at(digest); };
  auto store = [&](const EncodedTensors& encoded) {
    for (const auto& [digest, bytes] : encoded.blobs) blobs[digest] = bytes;
    return encoded.manifest;
  };
  torch::manual_seed(11);
  Model json_model(JsonTwin(5), kShape, 5);
  Model script(SmallScript(6, 5), kShape, 5, Json::object());
  const InitReport into = TransferInit(*script, store(EncodeModelState(*json_model)), fetch);
  EXPECT_EQ(into.transferred.size(), 9u);
  EXPECT_TRUE(into.reinitialized.empty());
  // Equal tensors give equal checkpoints, whichever way the model is given.
  EXPECT_EQ(store::ManifestDigest(EncodeModelState(*script).manifest),
            store::ManifestDigest(EncodeModelState(*json_model).manifest));
  json_model->eval();
  script->eval();
  torch::NoGradGuard no_grad;
  const torch::Tensor x = torch::randn({3, 1, 6, 6});
  EXPECT_TRUE(torch::allclose(script->forward(x), json_model->forward(x), 1e-4, 1e-5));
  // And back: a script's state loads into the layer list.
  Model other_script(SmallScript(6, 5), kShape, 5, Json::object());
  Model json_back(JsonTwin(5), kShape, 5);
  LoadState(*json_back, store(EncodeModelState(*other_script)), fetch);
  other_script->eval();
  json_back->eval();
  EXPECT_TRUE(torch::allclose(other_script->forward(x), json_back->forward(x), 1e-4, 1e-5));
}

}  // namespace
}  // namespace baton::stages
