// How much memory a model's layer list needs at least, found at validation
// so that a model far too big for the machine is refused with the layer to
// blame instead of ending in std::bad_alloc (or the OOM killer) in a worker.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "orchestrator/internal/pipeline_checks.h"

namespace baton::orchestrator {
namespace spec_detail {
namespace {

// "12.5 GiB", "640 KiB", "17 bytes".
std::string Bytes(double b) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (b >= 1024 && u < 6) {
    b /= 1024;
    ++u;
  }
  char buf[48];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%.0f bytes", b);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", b, units[u]);
  }
  return buf;
}

// The smallest value a layer field or batch size can take: a number as
// given; "$name" from the stage's fixed hyperparameters, else the lowest
// its search space allows; anything else (or unknown) 1. `exact` (when not
// null) is cleared for a value that is only a lower bound.
class LowestValues {
 public:
  LowestValues(const Json& fixed, const Json& space) : fixed_(fixed), space_(space) {}

  double Of(const Json& v, bool* exact = nullptr) const {
    if (v.is_number()) return v.get<double>();
    const std::string s = v.is_string() ? v.get<std::string>() : "";
    const std::string name = s.size() >= 2 && s[0] == '$' ? s.substr(1) : "";
    const bool fixed = !name.empty() && fixed_.is_object() && fixed_.contains(name) && fixed_[name].is_number();
    if (!fixed && exact != nullptr) *exact = false;
    return name.empty() ? 1 : Named(name);
  }
  double Named(const std::string& name) const {
    if (fixed_.is_object() && fixed_.contains(name) && fixed_[name].is_number()) return fixed_[name].get<double>();
    if (!space_.is_object() || !space_.contains(name) || !space_[name].is_object()) return 1;
    const Json& p = space_[name];
    if (p.contains("low") && p["low"].is_number()) return p["low"].get<double>();
    double lowest = 0;
    bool any = false;
    for (const auto& x : p.value("values", Json::array())) {
      if (!x.is_number()) continue;
      lowest = any ? std::min(lowest, x.get<double>()) : x.get<double>();
      any = true;
    }
    return any ? lowest : 1;
  }

 private:
  const Json& fixed_;
  const Json& space_;
};

struct LayerCost {
  double parameters = 0;   // weights, biases, batch-norm statistics
  double activations = 0;  // elements of one example's outputs
};

// One example's shape on its way through the layers. An input of unknown
// shape counts as one channel of 1 x 1, and a "$name" size takes its lowest
// value: then the shape is not `exact`, and the costs are lower bounds.
struct WalkShape {
  double channels = 1, height = 1, width = 1;
  bool flat = false;
  bool exact = true;

  double features() const { return flat ? channels : channels * height * width; }
  std::vector<int64_t> Dimensions() const {
    if (!exact) return {};
    if (flat) return {static_cast<int64_t>(channels)};
    return {static_cast<int64_t>(channels), static_cast<int64_t>(height), static_cast<int64_t>(width)};
  }
};

WalkShape InputShape(const std::vector<int64_t>& input) {
  WalkShape shape;
  if (input.size() == 3) {
    shape.channels = static_cast<double>(input[0]);
    shape.height = static_cast<double>(input[1]);
    shape.width = static_cast<double>(input[2]);
  } else if (input.size() == 1) {
    shape.channels = static_cast<double>(input[0]);
    shape.flat = true;
  } else {
    shape.exact = false;
  }
  return shape;
}

// Moves `shape` through `layer` (a residual block through its layers and
// shortcut) and returns what the layer costs.
LayerCost Advance(const Json& layer, const LowestValues& lowest, WalkShape& shape) {
  LayerCost c;
  const std::string type = layer.is_object() ? layer.value("type", "") : "";
  auto field = [&](const char* key, double otherwise) {
    return layer.contains(key) ? std::max(0.0, lowest.Of(layer[key], &shape.exact)) : otherwise;
  };
  const double features = shape.features();
  double& channels = shape.channels;
  double& height = shape.height;
  double& width = shape.width;
  if (type == "conv2d") {
    const double out = field("out_channels", 1), kernel = field("kernel_size", 1);
    const double stride = std::max(1.0, field("stride", 1)), padding = field("padding", 0);
    c.parameters = out * channels * kernel * kernel + (layer.value("bias", true) ? out : 0);
    height = std::max(1.0, std::floor((height + 2 * padding - kernel) / stride) + 1);
    width = std::max(1.0, std::floor((width + 2 * padding - kernel) / stride) + 1);
    channels = out;
    c.activations = channels * height * width;
  } else if (type == "linear") {
    const double out = field("out_features", 1);
    c.parameters = out * features + (layer.value("bias", true) ? out : 0);
    channels = out;
    height = width = 1;
    shape.flat = true;
    c.activations = out;
  } else if (type == "max_pool2d" || type == "avg_pool2d") {
    const double kernel = std::max(1.0, field("kernel_size", 1));
    const double stride = std::max(1.0, field("stride", kernel)), padding = field("padding", 0);
    height = std::max(1.0, std::floor((height + 2 * padding - kernel) / stride) + 1);
    width = std::max(1.0, std::floor((width + 2 * padding - kernel) / stride) + 1);
    c.activations = channels * height * width;
  } else if (type == "adaptive_avg_pool2d") {
    const Json size = layer.value("output_size", Json(1));
    if (size.is_array() && size.size() == 2) {
      height = std::max(1.0, lowest.Of(size[0], &shape.exact));
      width = std::max(1.0, lowest.Of(size[1], &shape.exact));
    } else {
      height = width = std::max(1.0, lowest.Of(size, &shape.exact));
    }
    c.activations = channels * height * width;
  } else if (type == "residual") {
    const WalkShape input = shape;
    for (const Json& sub : layer.value("layers", Json::array())) {
      const LayerCost s = Advance(sub, lowest, shape);
      c.parameters += s.parameters;
      c.activations += s.activations;
    }
    WalkShape skip = input;
    for (const Json& sub : layer.value("shortcut", Json::array())) {
      const LayerCost s = Advance(sub, lowest, skip);
      c.parameters += s.parameters;
      c.activations += s.activations;
    }
    shape.exact = shape.exact && skip.exact;
    c.activations += shape.features();  // the sum (activated in place or not)
  } else if (type == "batch_norm2d" || type == "batch_norm1d") {
    c.parameters = 4 * channels;  // weight, bias, running mean and variance
    c.activations = features;
  } else if (type == "flatten") {
    channels = features;
    height = width = 1;
    shape.flat = true;
  } else {  // relu, dropout: an output the size of their input
    if (type != "relu" && type != "dropout") shape.exact = false;
    c.activations = features;
  }
  return c;
}

}  // namespace

std::vector<std::vector<int64_t>> ModelShapes(const Json& model, const Json& fixed,
                                              const std::vector<int64_t>& input) {
  std::vector<std::vector<int64_t>> shapes;
  if (!model.is_object() || !model.contains("layers") || !model["layers"].is_array()) return shapes;
  const LowestValues lowest(fixed, Json::object());
  WalkShape shape = InputShape(input);
  shapes.push_back(shape.Dimensions());
  for (const Json& layer : model["layers"]) {
    Advance(layer, lowest, shape);
    shapes.push_back(shape.Dimensions());
  }
  return shapes;
}

void CheckModelSize(const std::string& mp, const Json& model, const Json& fixed, const Json& space,
                    const std::vector<int64_t>& input, uint64_t limit, Issues& issues) {
  // A TorchScript model (no "layers") is not estimated: its file is what it is.
  if (!model.is_object() || !model.contains("layers") || !model["layers"].is_array()) return;
  const LowestValues lowest(fixed, space);
  // The figures below are lower bounds ("$name" fields take their lowest).
  WalkShape shape = InputShape(input);
  std::vector<LayerCost> costs;
  const Json& layers = model["layers"];
  for (const Json& layer : layers) costs.push_back(Advance(layer, lowest, shape));
  // Float32 weights with their gradients (every optimizer keeps both), and
  // one training batch's layer outputs.
  const double batch = std::max(1.0, fixed.is_object() && fixed.contains("batch_size") ? lowest.Of(fixed["batch_size"])
                                                                                       : lowest.Named("batch_size"));
  double parameters = 0, activations = 0, worst = -1;
  size_t worst_at = 0;
  for (size_t i = 0; i < costs.size(); ++i) {
    parameters += costs[i].parameters;
    activations += costs[i].activations;
    const double bytes = 4 * (2 * costs[i].parameters + batch * costs[i].activations);
    if (bytes > worst) {
      worst = bytes;
      worst_at = i;
    }
  }
  const double total = 4 * (2 * parameters + batch * activations);
  if (total <= static_cast<double>(limit)) return;
  char count[32];
  std::snprintf(count, sizeof(count), "%.4g", parameters);
  issues.push_back(
      {PointerAppend(mp + "/layers", std::to_string(worst_at)),
       "the model needs at least " + Bytes(total) + " of memory (" + count + " parameters: " +
           Bytes(8 * parameters) + " with their gradients; layer outputs for a batch of " +
           std::to_string(static_cast<int64_t>(batch)) + ": " + Bytes(4 * batch * activations) + "), " +
           Bytes(worst) + " of it for this layer; the limit is " + Bytes(static_cast<double>(limit)) +
           " (--max-model-bytes)"});
}

}  // namespace spec_detail
}  // namespace baton::orchestrator
