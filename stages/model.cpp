#include "stages/model.h"

#include <optional>
#include <set>
#include <sstream>

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

// Typed access to one layer's JSON object. Every field read is remembered so
// that Finish() can reject fields the layer type does not know.
class LayerReader {
 public:
  LayerReader(const Json& layer, size_t index)
      : layer_(layer), pointer_("/layers/" + std::to_string(index)) {
    if (!layer_.is_object()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "layer " + std::to_string(index) + " must be an object",
                  pointer_);
    }
    const Json* name = Find("name");
    if (name == nullptr || !name->is_string() ||
        name->get<std::string>().empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "layer " + std::to_string(index) +
                      " needs a non-empty string \"name\"",
                  pointer_ + "/name");
    }
    name_ = name->get<std::string>();
    const Json* type = Find("type");
    if (type == nullptr || !type->is_string()) {
      throw Fail("needs a string \"type\"", "type");
    }
    type_ = type->get<std::string>();
  }

  const std::string& name() const { return name_; }
  const std::string& type() const { return type_; }
  const std::string& pointer() const { return pointer_; }

  Error Fail(const std::string& what, const std::string& field = "") const {
    return Error(ErrorCode::kInvalidArgument,
                 "layer '" + name_ + "'" +
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
  std::string type_;
  std::set<std::string> known_;
};

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
      "avg_pool2d, batch_norm2d, batch_norm1d, dropout, flatten",
      "type");
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
  torch::Tensor probe = torch::zeros(batch_shape);
  std::set<std::string> seen;
  std::string last_type;
  const Json& layers = spec["layers"];
  for (size_t i = 0; i < layers.size(); ++i) {
    LayerReader layer(layers[i], i);
    if (layer.name().find('.') != std::string::npos) {
      throw layer.Fail("name must not contain '.'", "name");
    }
    if (!seen.insert(layer.name()).second) {
      throw layer.Fail("another layer has the same name", "name");
    }
    std::vector<int64_t> shape(probe.sizes().begin() + 1, probe.sizes().end());
    torch::nn::AnyModule module;
    try {
      module = MakeLayer(layer, shape);
      register_module(layer.name(), module.ptr());
      module.ptr()->eval();
      probe = module.forward(probe);
      module.ptr()->train();
    } catch (const c10::Error& e) {
      throw layer.Fail("cannot take input " + ShapeText(shape) + ": " +
                       FirstLine(e.what_without_backtrace()));
    }
    if (probe.numel() == 0) {
      throw layer.Fail("turns input " + ShapeText(shape) + " into an empty " +
                       ShapeText(std::vector<int64_t>(probe.sizes().begin() + 1,
                                                      probe.sizes().end())));
    }
    layers_.push_back(std::move(module));
    names_.push_back(layer.name());
    last_type = layer.type();
  }
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
  for (auto& layer : layers_) {
    // Images run channels-last: LibTorch's CPU max-pooling and batch-norm
    // kernels are vectorised only for that layout (pooling ~10x faster).
    // Only the memory layout changes, never the values' logical order.
    if (x.dim() == 4) x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    x = layer.forward(x);
  }
  return x;
}

int64_t CountParameters(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) count += p.numel();
  return count;
}

}  // namespace baton::stages
