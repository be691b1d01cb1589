#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/json_util.h"

namespace baton::stages {

// A TorchScript module file (saved from Python with
// `torch.jit.script(module).save(path)` or `torch.jit.trace`), in memory.
struct TorchScriptFile {
  std::string bytes;  // the file's contents
  std::string name;   // how the pipeline names it, for error messages
};

// A feed-forward network built from the pipeline's layer list
// (`{"layers": [{"name": "conv1", "type": "conv2d", ...}, ...]}`), or a
// TorchScript module wrapped so that it trains like one (see below).
//
// Layer types and fields (defaults in parentheses; sizes are integers and
// apply to height and width alike):
//   conv2d                     out_channels, kernel_size, stride (1),
//                              padding (0), bias (true)
//   linear                     out_features, bias (true); needs a flat
//                              [N, features] input (tabular data is flat)
//   relu, flatten (from dim 1)
//   max_pool2d, avg_pool2d     kernel_size, stride (= kernel_size),
//                              padding (0)
//   batch_norm2d, batch_norm1d (LibTorch defaults: eps 1e-5, momentum 0.1);
//                              batch_norm1d takes [N, features] or
//                              [N, channels, length]
//   dropout                    p (0.5)
//   adaptive_avg_pool2d        output_size (an integer, or [height, width])
//   residual                   layers (a non-empty list of layers, the
//                              body), shortcut (a list of layers; absent:
//                              the identity), activation ("relu" | "none";
//                              "relu"). Computes
//                              activation(body(x) + shortcut(x)); the body's
//                              output shape must equal the shortcut's.
//                              Blocks may be nested. removed (false):
//                              true leaves the block out (an ablation's
//                              variant), which needs its output shape to
//                              equal its input's.
// Each layer is registered under its "name", so tensors are named
// "<layer>.<param>" ("conv1.weight", "bn2.running_mean"). A residual
// block's layers are registered under the block and its shortcut's under
// "<block>.shortcut": "layer2_0.conv1.weight",
// "layer2_0.shortcut.conv.weight" (so no layer of a body may be called
// "shortcut"). Names are unique within their list and contain no '.'; errors
// inside a block point into it ("/layers/3/layers/1/out_channels",
// "/layers/3/shortcut/0"). Input sizes
// (in_channels, in_features, num_features) are inferred by passing a dummy
// batch of the dataset's input shape through the layers while building, so a
// layer removed from the list (an ablation) just disappears. Parameters start
// with LibTorch's default initialisation (Kaiming uniform), drawn from
// torch's global generator: seed it first for reproducible weights.
//
// Not thread-safe; one model belongs to one training loop.
class ModelImpl : public torch::nn::Module {
 public:
  // Builds the model. `input_shape` is one example's shape without the batch
  // dimension (e.g. {1, 28, 28}); when `num_classes` > 0 the output must be
  // [N, num_classes]. Throws Error(kInvalidArgument) naming the layer (and its
  // JSON pointer, "/layers/<i>") for an unknown type, a missing, unknown or
  // ill-typed field, a duplicate name, a layer that cannot take the shape
  // that reaches it, or an output that is not [N, num_classes] (then naming
  // the last layer and both shapes). Never leaves a c10::Error through.
  ModelImpl(const Json& spec, const std::vector<int64_t>& input_shape,
            int64_t num_classes = 0);

  // Wraps a TorchScript module (stages/torchscript_model.cpp). Its
  // submodules become child modules holding the very same parameter and
  // buffer tensors, so tensors are named as in Python ("conv1.weight",
  // "layer1.0.bn1.running_mean"), checkpoints, init_from and resume work as
  // for a layer list (also between the two when names, dtypes and shapes
  // agree), optimizer steps and to(device) reach the scripted module, and
  // train()/eval() switch it too. Weights start as saved in the file.
  // Each entry of `hyperparameters` whose name is a top-level float, int or
  // bool attribute of the module (other than "training") is set on it (see
  // attributes_set()). Throws Error(kInvalidArgument) naming the file, at
  // pointer "/torchscript", when it cannot be loaded, a hyperparameter has
  // the wrong type for its attribute, or the output for a dummy batch of
  // `input_shape` (eval mode, no gradients) is not [N, num_classes].
  ModelImpl(const TorchScriptFile& file, const std::vector<int64_t>& input_shape,
            int64_t num_classes, const Json& hyperparameters);

  // Also switches a wrapped TorchScript module.
  void train(bool on = true) override;

  // Runs the layers in order; x is [N, input_shape...], the result
  // [N, output_shape...]. Images and conv weights are kept channels-last in
  // memory for speed; values, names and checkpoint bytes are unaffected.
  torch::Tensor forward(torch::Tensor x);

  // Top-level layer names in order (a residual block is one name).
  const std::vector<std::string>& layer_names() const { return names_; }
  // Output shape of one example (without the batch dimension).
  const std::vector<int64_t>& output_shape() const { return output_shape_; }
  // TorchScript attributes set from hyperparameters, with their values.
  const Json& attributes_set() const { return attributes_set_; }

 private:
  struct Script;  // the wrapped torch::jit::Module (torchscript_model.cpp)
  torch::Tensor ScriptForward(torch::Tensor x);

  std::shared_ptr<Script> script_;
  Json attributes_set_ = Json::object();
  std::vector<torch::nn::AnyModule> layers_;
  std::vector<std::string> names_;
  std::vector<int64_t> output_shape_;
};
TORCH_MODULE(Model);

// Number of scalar parameters (not buffers) of `module`.
int64_t CountParameters(const torch::nn::Module& module);

}  // namespace baton::stages
