#pragma once

#include <map>
#include <string>

#include "common/error.h"
#include "common/json_util.h"
#include "stages/dataset.h"
#include "stages/tensor_codec.h"

namespace baton::stages::testing {

// Debian's dataset-fashion-mnist package.
inline constexpr const char* kFashionMnistDir =
    "/usr/share/datasets/fashion-mnist";

// 1000 Fashion-MNIST training examples (800 train, 200 validation),
// normalised, and 500 test examples; read once per test binary.
inline const Dataset& SmallFashionMnist() {
  static const Dataset dataset = [] {
    PrepareSpec spec;
    spec.path = kFashionMnistDir;
    spec.train_subset = 1000;
    spec.test_subset = 500;
    spec.validation_fraction = 0.2;
    spec.normalize = true;
    return PrepareDataset(spec);
  }();
  return dataset;
}

// The example CNN of DESIGN.md with "$dropout" substituted.
inline Json ExampleCnn(double dropout = 0.25) {
  Json model = Json::parse(R"({"layers": [
    {"name": "conv1", "type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
    {"name": "act1", "type": "relu"}, {"name": "pool1", "type": "max_pool2d", "kernel_size": 2},
    {"name": "conv2", "type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1},
    {"name": "bn2", "type": "batch_norm2d"}, {"name": "act2", "type": "relu"},
    {"name": "pool2", "type": "max_pool2d", "kernel_size": 2},
    {"name": "drop", "type": "dropout", "p": 0.25},
    {"name": "flat", "type": "flatten"},
    {"name": "fc1", "type": "linear", "out_features": 128}, {"name": "act3", "type": "relu"},
    {"name": "fc2", "type": "linear", "out_features": 10}]})");
  model["layers"][7]["p"] = dropout;
  return model;
}

// A CNN small enough to train in a fraction of a second per epoch on 1000
// examples, with every kind of tensor the codec must carry (weights, biases,
// batch-norm buffers including the int64 num_batches_tracked).
inline Json TinyCnn(int64_t hidden = 32) {
  return {{"layers",
           {{{"name", "conv1"},
             {"type", "conv2d"},
             {"out_channels", 8},
             {"kernel_size", 3},
             {"padding", 1}},
            {{"name", "bn1"}, {"type", "batch_norm2d"}},
            {{"name", "act1"}, {"type", "relu"}},
            {{"name", "pool1"}, {"type", "max_pool2d"}, {"kernel_size", 4}},
            {{"name", "flat"}, {"type", "flatten"}},
            {{"name", "fc1"}, {"type", "linear"}, {"out_features", hidden}},
            {{"name", "act2"}, {"type", "relu"}},
            {{"name", "fc2"}, {"type", "linear"}, {"out_features", 10}}}}};
}

// Removes the layer called `name` from a model spec.
inline Json WithoutLayer(Json model, const std::string& name) {
  Json& layers = model["layers"];
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i]["name"] == name) {
      layers.erase(i);
      break;
    }
  }
  return model;
}

// An in-memory blob store for BlobFetcher.
class BlobMap {
 public:
  void Add(const EncodedTensors& encoded) {
    for (const auto& [digest, bytes] : encoded.blobs) blobs_[digest] = bytes;
  }
  BlobFetcher Fetcher() const {
    return [this](const std::string& digest) {
      auto it = blobs_.find(digest);
      if (it == blobs_.end()) {
        throw Error(ErrorCode::kNotFound, "no blob " + digest);
      }
      ++fetches_;
      return it->second;
    };
  }
  int fetches() const { return fetches_; }

 private:
  std::map<std::string, std::string> blobs_;
  mutable int fetches_ = 0;
};

}  // namespace baton::stages::testing
