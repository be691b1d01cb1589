#include "stages/model.h"

#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "common/error.h"

namespace baton::stages {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[N";
  for (int64_t d : shape) text += "," + std::to_string(d);
  return text + "]";
}

std::string FirstLine(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

// Typed access to one layer's JSON object at JSON pointer `pointer`
// ("/layers/3", or "/layers/3/layers/1" inside a residual block). Every field
// read is remembered so that Finish() can reject fields the layer type does
// not know. `prefix` is the dotted path of the block it is in ("layer1_0.",
// "layer1_0.shortcut."; empty at the top), for messages.
class LayerReader {
 public:
  LayerReader(const Json& layer, std::string pointer, const std::string& prefix)
      : layer_(layer), pointer_(std::move(pointer)) {
    const std::string where =
        prefix.empty() ? "layer " + pointer_.substr(pointer_.rfind('/') + 1)
                       : "layer " + pointer_ + " (in '" +
                             prefix.substr(0, prefix.size() - 1) + "')";
    if (!layer_.is_object()) {
      throw Error(ErrorCode::kInvalidArgument, where + " must be an object",
                  pointer_);
    }
    const Json* name = Find("name");
    if (name == nullptr || !name->is_string() ||
        name->get<std::string>().empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  where + " needs a non-empty string \"name\"",
                  pointer_ + "/name");
    }
    name_ = name->get<std::string>();
    label_ = prefix + name_;
    const Json* type = Find("type");
    if (type == nullptr || !type->is_string()) {
      throw Fail("needs a string \"type\"", "type");
    }
    type_ = type->get<std::string>();
  }

  const std::string& name() const { return name_; }
  // The dotted path of the layer, as in its tensors' names: "layer1_0.conv1".
  const std::string& label() const { return label_; }
  const std::string& type() const { return type_; }
  const std::string& pointer() const { return pointer_; }

  Error Fail(const std::string& what, const std::string& field = "") const {
    return Error(ErrorCode::kInvalidArgument,
                 "layer '" + label_ + "'" +
                     (type_.empty() ? "" : " (" + type_ + ")") + ": " + what,
                 field.empty() ? pointer_ : PointerAppend(pointer_, field));
  }

  // An integer field >= `minimum`; required when `fallback` is absent.
  int64_t Integer(const std::string& key, int64_t minimum,
                  std::optional<int64_t> fallback = std::nullopt) {
    const Json* value = Find(key);
    if (value == nullptr) {
      if (!fallback) throw Fail("missing required field \"" + key + "\"");
      return *fallback;
    }
    if (!value->is_number_integer() || value->get<int64_t>() < minimum) {
      throw Fail("\"" + key + "\" must be an integer >= " +
                     std::to_string(minimum) + ", got " + value->dump(),
                 key);
    }
    return value->get<int64_t>();
  }

  double Number(const std::string& key, double fallback, double low,
                double high) {
    const Json* value = Find(key);
    if (value == nullptr) return fallback;
    if (!value->is_number() || value->get<double>() < low ||
        value->get<double>() > high) {
      std::ostringstream range;
      range << "[" << low << ", " << high << "]";
      throw Fail("\"" + key + "\" must be a number in " + range.str() +
                     ", got " + value->dump(),
                 key);
    }
    return value->get<double>();
  }

  bool Bool(const std::string& key, bool fallback) {
    const Json* value = Find(key);
    if (value == nullptr) return fallback;
    if (!value->is_boolean()) {
      throw Fail("\"" + key + "\" must be true or false, got " + value->dump(),
                 key);
    }
    return value->get<bool>();
  }

  // An output size: one integer >= 1 for height and width alike, or
  // [height, width].
  std::pair<int64_t, int64_t> Size(const std::string& key) {
    const Json* value = Find(key);
    if (value == nullptr) throw Fail("missing required field \"" + key + "\"");
    auto positive = [](const Json& v) {
      return v.is_number_integer() && v.get<int64_t>() >= 1;
    };
    if (positive(*value)) return {value->get<int64_t>(), value->get<int64_t>()};
    if (value->is_array() && value->size() == 2 && positive((*value)[0]) &&
        positive((*value)[1])) {
      return {(*value)[0].get<int64_t>(), (*value)[1].get<int64_t>()};
    }
    throw Fail("\"" + key +
                   "\" must be an integer >= 1 or [height, width], got " +
                   value->dump(),
               key);
  }

  // One of `choices`; `fallback` when absent.
  std::string Choice(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& choices) {
    const Json* value = Find(key);
    if (value == nullptr) return fallback;
    std::string list;
    for (const auto& c : choices) {
      if (value->is_string() && value->get<std::string>() == c) return c;
      list += (list.empty() ? "\"" : ", \"") + c + "\"";
    }
    throw Fail(
        "\"" + key + "\" must be one of " + list + ", got " + value->dump(),
        key);
  }

  // A list of layers: null when absent and `required` is false.
  const Json* Layers(const std::string& key, bool required) {
    const Json* value = Find(key);
    if (value == nullptr && !required) return nullptr;
    if (value == nullptr) throw Fail("missing required field \"" + key + "\"");
    if (!value->is_array() || value->empty()) {
      throw Fail("\"" + key + "\" must be a non-empty list of layers", key);
    }
    return value;
  }

  // Throws for any field that was never asked for.
  void Finish() const {
    for (const auto& item : layer_.items()) {
      if (known_.count(item.key()) == 0) {
        throw Fail("unknown field \"" + item.key() + "\"", item.key());
      }
    }
  }

 private:
  const Json* Find(const std::string& key) {
    known_.insert(key);
    auto it = layer_.find(key);
    return it == layer_.end() ? nullptr : &*it;
  }

  const Json& layer_;
  std::string pointer_;
  std::string name_;
  std::string label_;
  std::string type_;
  std::set<std::string> known_;
};

// Runs `layers` in order on `x`. Images run channels-last: LibTorch's CPU
// max-pooling and batch-norm kernels are vectorised only for that layout
// (pooling ~10x faster). Only the memory layout changes, never the values'
// logical order.
torch::Tensor RunLayers(std::vector<torch::nn::AnyModule>& layers,
                        torch::Tensor x) {
  for (auto& layer : layers) {
    if (x.dim() == 4) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    x = layer.forward(x);
  }
  return x;
}

// A residual block's shortcut: its layers in order, each registered under
// its name.
class ShortcutImpl : public torch::nn::Module {
 public:
  void Add(const std::string& name, torch::nn::AnyModule layer) {
    register_module(name, layer.ptr());
    layers_.push_back(std::move(layer));
  }
  torch::Tensor forward(torch::Tensor x) { return RunLayers(layers_, x); }

 private:
  std::vector<torch::nn::AnyModule> layers_;
};
TORCH_MODULE(Shortcut);

// activation(body(x) + shortcut(x)), the shortcut being x itself when the
// block has none. Body layers are registered under their own names, the
// shortcut's under "shortcut".
class ResidualImpl : public torch::nn::Module {
 public:
  explicit ResidualImpl(bool relu) : relu_(relu) {}

  void AddBody(const std::string& name, torch::nn::AnyModule layer) {
    register_module(name, layer.ptr());
    body_.push_back(std::move(layer));
  }
  void SetShortcut(Shortcut shortcut) {
    shortcut_ = register_module("shortcut", std::move(shortcut));
  }

  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor skip = shortcut_ ? shortcut_->forward(x) : x;
    torch::Tensor y = RunLayers(body_, x) + skip;
    return relu_ ? torch::relu(y) : y;
  }

 private:
  bool relu_;
  std::vector<torch::nn::AnyModule> body_;
  Shortcut shortcut_{nullptr};
};
TORCH_MODULE(Residual);

// Builds the layers of `list` (the array at JSON pointer `pointer`, inside
// the block `prefix`) in order: each is created for the shape `probe` has
// when it reaches it, handed to `add`, and run on `probe` in eval mode.
// Returns `probe` after the last layer. Layer names must be unique within
// `list` and free of '.'.
using AddLayer =
    std::function<void(const LayerReader&, const torch::nn::AnyModule&)>;
torch::Tensor BuildLayers(const Json& list, const std::string& pointer,
                          const std::string& prefix, torch::Tensor probe,
                          const AddLayer& add);

std::vector<int64_t> ExampleShape(const torch::Tensor& batch) {
  return std::vector<int64_t>(batch.sizes().begin() + 1, batch.sizes().end());
}

// A residual block (see model.h) for input `shape`.
torch::nn::AnyModule MakeResidual(LayerReader& layer,
                                  const std::vector<int64_t>& shape) {
  const Json* body = layer.Layers("layers", /*required=*/true);
  const Json* shortcut = layer.Layers("shortcut", /*required=*/false);
  const bool relu =
      layer.Choice("activation", "relu", {"relu", "none"}) == "relu";
  layer.Finish();
  std::vector<int64_t> batch_shape = {2};
  batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
  const torch::Tensor input = torch::zeros(batch_shape);
  Residual block(relu);
  const std::string prefix = layer.label() + ".";
  torch::Tensor out = BuildLayers(
      *body, PointerAppend(layer.pointer(), "layers"), prefix, input,
      [&](const LayerReader& sub, const torch::nn::AnyModule& module) {
        if (sub.name() == "shortcut") {
          throw sub.Fail(
              "the name \"shortcut\" is kept for the block's shortcut", "name");
        }
        block->AddBody(sub.name(), module);
      });
  torch::Tensor skip = input;
  std::string skip_text = "its input (the identity shortcut)";
  if (shortcut != nullptr) {
    Shortcut path;
    skip = BuildLayers(
        *shortcut, PointerAppend(layer.pointer(), "shortcut"),
        prefix + "shortcut.", input,
        [&](const LayerReader& sub, const torch::nn::AnyModule& module) {
          path->Add(sub.name(), module);
        });
    block->SetShortcut(path);
    skip_text = "the shortcut's output";
  }
  if (out.sizes().vec() != skip.sizes().vec()) {
    throw layer.Fail(
        "the output of its layers, " + ShapeText(ExampleShape(out)) +
        ", differs from " + skip_text + ", " + ShapeText(ExampleShape(skip)) +
        "; they are added, so they must have the same shape" +
        (shortcut == nullptr ? " (give the block a \"shortcut\", e.g. a 1x1 "
                               "conv2d with the stride and out_channels of its "
                               "layers, and a batch_norm2d)"
                             : ""));
  }
  return torch::nn::AnyModule(block);
}

void RequireRank(const LayerReader& layer, const std::vector<int64_t>& shape,
                 std::initializer_list<size_t> ranks,
                 const std::string& expected) {
  for (size_t rank : ranks) {
    if (shape.size() + 1 == rank) return;
  }
  throw layer.Fail("needs input " + expected + ", but gets " +
                   ShapeText(shape));
}

// Reads one layer's fields and creates its module for input `shape` (one
// example, no batch dimension).
torch::nn::AnyModule MakeLayer(LayerReader& layer,
                               const std::vector<int64_t>& shape) {
  namespace nn = torch::nn;
  const std::string& type = layer.type();
  if (type == "conv2d") {
    int64_t out = layer.Integer("out_channels", 1);
    int64_t kernel = layer.Integer("kernel_size", 1);
    int64_t stride = layer.Integer("stride", 1, 1);
    int64_t padding = layer.Integer("padding", 0, 0);
    bool bias = layer.Bool("bias", true);
    layer.Finish();
    RequireRank(layer, shape, {4}, "[N,channels,height,width]");
    nn::Conv2d conv(nn::Conv2dOptions(shape[0], out, kernel)
                        .stride(stride)
                        .padding(padding)
                        .bias(bias));
    // Channels-last weights, like the activations (see forward()).
    conv->weight.set_data(
        conv->weight.contiguous(torch::MemoryFormat::ChannelsLast));
    return nn::AnyModule(conv);
  }
  if (type == "linear") {
    int64_t out = layer.Integer("out_features", 1);
    bool bias = layer.Bool("bias", true);
    layer.Finish();
    RequireRank(layer, shape, {2},
                "[N,features] (add a flatten layer before it)");
    return nn::AnyModule(
        nn::Linear(nn::LinearOptions(shape[0], out).bias(bias)));
  }
  if (type == "relu" || type == "flatten") {
    layer.Finish();
    if (type == "relu") return nn::AnyModule(nn::ReLU());
    RequireRank(layer, shape, {2, 3, 4, 5}, "with a batch dimension");
    return nn::AnyModule(nn::Flatten(nn::FlattenOptions().start_dim(1)));
  }
  if (type == "max_pool2d" || type == "avg_pool2d") {
    int64_t kernel = layer.Integer("kernel_size", 1);
    int64_t stride = layer.Integer("stride", 1, kernel);
    int64_t padding = layer.Integer("padding", 0, 0);
    layer.Finish();
    RequireRank(layer, shape, {4}, "[N,channels,height,width]");
    if (type == "max_pool2d") {
      return nn::AnyModule(nn::MaxPool2d(
          nn::MaxPool2dOptions(kernel).stride(stride).padding(padding)));
    }
    return nn::AnyModule(nn::AvgPool2d(
        nn::AvgPool2dOptions(kernel).stride(stride).padding(padding)));
  }
  if (type == "adaptive_avg_pool2d") {
    const auto [height, width] = layer.Size("output_size");
    layer.Finish();
    RequireRank(layer, shape, {4}, "[N,channels,height,width]");
    return nn::AnyModule(
        nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({height, width})));
  }
  if (type == "residual") {
    RequireRank(layer, shape, {2, 3, 4, 5}, "with a batch dimension");
    return MakeResidual(layer, shape);
  }
  if (type == "batch_norm2d" || type == "batch_norm1d") {
    layer.Finish();
    if (type == "batch_norm2d") {
      RequireRank(layer, shape, {4}, "[N,channels,height,width]");
      return nn::AnyModule(nn::BatchNorm2d(nn::BatchNorm2dOptions(shape[0])));
    }
    RequireRank(layer, shape, {2, 3}, "[N,features] or [N,channels,length]");
    return nn::AnyModule(nn::BatchNorm1d(nn::BatchNorm1dOptions(shape[0])));
  }
  if (type == "dropout") {
    double p = layer.Number("p", 0.5, 0.0, 1.0);
    layer.Finish();
    return nn::AnyModule(nn::Dropout(nn::DropoutOptions(p)));
  }
  throw layer.Fail(
      "unknown layer type; known: conv2d, linear, relu, max_pool2d, "
      "avg_pool2d, adaptive_avg_pool2d, batch_norm2d, batch_norm1d, dropout, "
      "flatten, residual",
      "type");
}

torch::Tensor BuildLayers(const Json& list, const std::string& pointer,
                          const std::string& prefix, torch::Tensor probe,
                          const AddLayer& add) {
  std::set<std::string> seen;
  for (size_t i = 0; i < list.size(); ++i) {
    LayerReader layer(list[i], PointerAppend(pointer, std::to_string(i)),
                      prefix);
    if (layer.name().find('.') != std::string::npos) {
      throw layer.Fail("name must not contain '.'", "name");
    }
    if (!seen.insert(layer.name()).second) {
      throw layer.Fail(prefix.empty()
                           ? "another layer has the same name"
                           : "another layer of the block has the same name",
                       "name");
    }
    const std::vector<int64_t> shape = ExampleShape(probe);
    const bool removed =
        layer.type() == "residual" && layer.Bool("removed", false);
    try {
      torch::nn::AnyModule module = MakeLayer(layer, shape);
      module.ptr()->eval();
      torch::Tensor out = module.forward(probe);
      if (removed) {
        if (out.sizes().vec() != probe.sizes().vec()) {
          throw layer.Fail(
              "is left out (\"removed\": true, as by an ablation), so the "
              "layers after it would get its input " +
                  ShapeText(shape) + " instead of its output " +
                  ShapeText(ExampleShape(out)) +
                  "; only a block whose output has its input's shape can be "
                  "left out",
              "removed");
        }
        continue;
      }
      module.ptr()->train();
      add(layer, module);
      probe = out;
    } catch (const c10::Error& e) {
      throw layer.Fail("cannot take input " + ShapeText(shape) + ": " +
                       FirstLine(e.what_without_backtrace()));
    }
    if (probe.numel() == 0) {
      throw layer.Fail("turns input " + ShapeText(shape) + " into an empty " +
                       ShapeText(ExampleShape(probe)));
    }
  }
  return probe;
}

}  // namespace

ModelImpl::ModelImpl(const Json& spec, const std::vector<int64_t>& input_shape,
                     int64_t num_classes) {
  if (!spec.is_object() || !spec.contains("layers") ||
      !spec["layers"].is_array()) {
    throw Error(ErrorCode::kInvalidArgument,
                "model must be an object with a \"layers\" array", "/layers");
  }
  for (const auto& item : spec.items()) {
    if (item.key() != "layers") {
      throw Error(ErrorCode::kInvalidArgument,
                  "model has unknown field \"" + item.key() + "\"",
                  PointerAppend("", item.key()));
    }
  }
  for (int64_t d : input_shape) {
    if (d <= 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "input shape " + ShapeText(input_shape) +
                      " has a non-positive dimension");
    }
  }

  // Shapes are found by running a dummy batch through each new layer in eval
  // mode: no gradients, no running-statistics updates, no random numbers.
  torch::NoGradGuard no_grad;
  std::vector<int64_t> batch_shape = {2};
  batch_shape.insert(batch_shape.end(), input_shape.begin(), input_shape.end());
  std::string last_type;
  const Json& layers = spec["layers"];
  torch::Tensor probe = BuildLayers(
      layers, "/layers", /*prefix=*/"", torch::zeros(batch_shape),
      [&](const LayerReader& layer, const torch::nn::AnyModule& module) {
        register_module(layer.name(), module.ptr());
        layers_.push_back(module);
        names_.push_back(layer.name());
        last_type = layer.type();
      });
  output_shape_.assign(probe.sizes().begin() + 1, probe.sizes().end());
  if (num_classes > 0 &&
      (output_shape_.size() != 1 || output_shape_[0] != num_classes)) {
    const std::string wanted = ShapeText({num_classes});
    const std::string fix = "; end with a linear layer of out_features " +
                            std::to_string(num_classes);
    if (layers.empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "the model has no layers, so its output is its input " +
                      ShapeText(output_shape_) + ", but the dataset has " +
                      std::to_string(num_classes) + " classes and needs " +
                      wanted + fix,
                  "/layers");
    }
    throw Error(ErrorCode::kInvalidArgument,
                "the model's output is " + ShapeText(output_shape_) +
                    " (from its last layer '" + names_.back() + "' (" +
                    last_type + ")), but the dataset has " +
                    std::to_string(num_classes) + " classes and needs " +
                    wanted + fix,
                "/layers/" + std::to_string(layers.size() - 1));
  }
}

torch::Tensor ModelImpl::forward(torch::Tensor x) {
  if (script_) return ScriptForward(std::move(x));
  return RunLayers(layers_, x);
}

int64_t CountParameters(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) count += p.numel();
  return count;
}

}  // namespace baton::stages
