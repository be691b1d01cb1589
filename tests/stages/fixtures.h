#pragma once

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>

#include "common/error.h"
#include "common/json_util.h"
#include "stages/dataset.h"
#include "stages/tensor_codec.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/files.h"
#include "tests/support/temp_dir.h"

namespace baton::stages::testing {

using baton::testing::kFashionMnistDir;

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

using baton::testing::TempDir;
using baton::testing::WriteFile;


// The columns of WriteSignalCsv's file, in order; "label" is the class.
inline const std::vector<std::string> kSignalCsvFeatures = {
    "noise_a", "signal", "noise_b", "noise_c", "noise_d"};

// Writes a tabular CSV of `rows` independent examples (so the file's order is
// random): header noise_a,signal,noise_b,label,noise_c,noise_d. The label
// (0, 1 or 2, about a third each) is the tercile of s + 0.2 * e, s and e
// standard normal, and the column "signal" holds 10 + 2 s; every noise_*
// column is noise on its own scale, unrelated to the label. A model that
// sees "signal" can reach about 90% accuracy, one without it about 33%.
inline void WriteSignalCsv(const std::string& path, int64_t rows,
                           uint64_t seed = 1) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> uniform(0.0, 100.0);
  std::string text = "noise_a,signal,noise_b,label,noise_c,noise_d\n";
  char line[256];
  for (int64_t r = 0; r < rows; ++r) {
    const double s = normal(random);
    const double z = s + 0.2 * normal(random);
    const int label = z < -0.4307 ? 0 : (z < 0.4307 ? 1 : 2);
    const double noise_a = 5.0 + 3.0 * normal(random);
    const double noise_b = uniform(random);
    const double noise_c = normal(random);
    const double noise_d = -2.0 + 0.5 * normal(random);
    std::snprintf(line, sizeof(line), "%.6g,%.6g,%.6g,%d,%.6g,%.6g\n", noise_a,
                  10.0 + 2.0 * s, noise_b, label, noise_c, noise_d);
    text += line;
  }
  WriteFile(path, text);
}

// A small MLP for tabular data: in -> linear 16 -> relu -> linear classes.
inline Json TabularMlp(int64_t num_classes, int64_t hidden = 16) {
  return {
      {"layers",
       {{{"name", "fc1"}, {"type", "linear"}, {"out_features", hidden}},
        {{"name", "act"}, {"type", "relu"}},
        {{"name", "out"}, {"type", "linear"}, {"out_features", num_classes}}}}};
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
