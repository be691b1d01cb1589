// Training throughput of a TorchScript model against the same model given
// as a layer list: the example CNN (examples/fashion-mnist.json's tune stage
// with dropout 0.25), trained by the worker's own Train() (SGD lr 0.05,
// momentum 0.9, weight decay 1e-4, batch 64, one thread) on the same
// prepared Fashion-MNIST data, in this process:
//   json            the layer list (stages' Model): images, conv weights and
//                   every 4-D activation channels-last (model.cpp). Baseline.
//   torchscript     torch.jit.script of the same network written plainly in
//                   Python (bench/make_example_cnn.py). The wrapper makes the
//                   input and 4-D weights channels-last; inside the compiled
//                   forward the layouts are whatever its ops propagate (a
//                   1-channel input gets channels-last strides, so they
//                   stay channels-last from conv1 on).
//   torchscript-cl  the same, its forward keeping activations channels-last
//                   (`.contiguous(memory_format=torch.channels_last)` after
//                   each layer, as the layer list does): the like-for-like
//                   comparison of the two model paths.
// The TorchScript models start from the layer list's initial weights
// (TransferInit: the same tensor names), so every row trains the same
// numbers in the same data order. The .pt files are made with
// /usr/bin/python3 (torch 1.13). Rows run
// interleaved, `--repeats` times each; each run trains `--epochs` epochs
// and its figure is the median of its epochs' training samples/s; the table
// shows the median over repeats and the ratio to json's median.
//
//   build/bench/bench_torchscript_throughput [--epochs 2] [--repeats 3]
//       [--train-subset 6000] [--python /usr/bin/python3] [--dir /tmp]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "common/error.h"
#include "common/json_util.h"
#include "stages/dataset.h"
#include "stages/model.h"
#include "stages/tensor_codec.h"
#include "stages/trainer.h"
#include "stages/worker.h"

namespace {

namespace fs = std::filesystem;
using baton::Json;
using namespace baton::stages;

using baton::bench::Median;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Json ExampleLayers() {
  // examples/fashion-mnist.json's tune model with "$dropout" = 0.25.
  return Json::parse(R"({"layers": [
    {"name": "conv1", "type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
    {"name": "act1", "type": "relu"}, {"name": "pool1", "type": "max_pool2d", "kernel_size": 2},
    {"name": "conv2", "type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1},
    {"name": "bn2", "type": "batch_norm2d"}, {"name": "act2", "type": "relu"},
    {"name": "pool2", "type": "max_pool2d", "kernel_size": 2},
    {"name": "drop", "type": "dropout", "p": 0.25},
    {"name": "flat", "type": "flatten"},
    {"name": "fc1", "type": "linear", "out_features": 128}, {"name": "act3", "type": "relu"},
    {"name": "fc2", "type": "linear", "out_features": 10}]})");
}

// The same network in Python; argv: out path, "cl" or "plain".
constexpr const char* kMakeCnn = R"(import sys
import torch
from torch import nn


class Cnn(nn.Module):
    def __init__(self, channels_last: bool):
        super().__init__()
        self.channels_last = channels_last
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.pool2 = nn.MaxPool2d(2)
        self.drop = nn.Dropout(0.25)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def cl(self, x):
        if self.channels_last:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def forward(self, x):
        x = self.cl(torch.relu(self.cl(self.conv1(x))))
        x = self.cl(self.pool1(x))
        x = self.cl(torch.relu(self.cl(self.bn2(self.cl(self.conv2(x))))))
        x = self.cl(self.drop(self.cl(self.pool2(x))))
        x = torch.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc2(x)


torch.jit.script(Cnn(sys.argv[2] == "cl")).save(sys.argv[1])
)";

struct Row {
  std::string name;
  std::string file;  // "" for the layer list
};

}  // namespace

int main(int argc, char** argv) {
  int epochs = 2, repeats = 3, train_subset = 6000;
  std::string python = "/usr/bin/python3";
  fs::path dir = fs::temp_directory_path();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--epochs") epochs = std::stoi(value);
    else if (flag == "--repeats") repeats = std::stoi(value);
    else if (flag == "--train-subset") train_subset = std::stoi(value);
    else if (flag == "--python") python = value;
    else if (flag == "--dir") dir = value;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    ConfigureWorkerProcess(/*threads=*/1);
    dir /= "baton-bench-torchscript-" + std::to_string(::getpid());
    fs::create_directories(dir);
    std::ofstream(dir / "make_cnn.py") << kMakeCnn;
    std::vector<Row> rows = {{"json", ""}, {"torchscript", "plain"}, {"torchscript-cl", "cl"}};
    std::map<std::string, std::string> bytes;
    for (const Row& row : rows) {
      if (row.file.empty()) continue;
      const fs::path out = dir / (row.file + ".pt");
      const std::string cmd = python + " " + (dir / "make_cnn.py").string() + " " + out.string() + " " + row.file;
      if (std::system(cmd.c_str()) != 0) throw std::runtime_error("cannot run: " + cmd);
      bytes[row.name] = ReadFile(out);
    }
    const Dataset data = PrepareDataset(ParsePrepareSpec(
        {{"type", "prepare"},
         {"dataset", {{"format", "idx"}, {"path", "/usr/share/datasets/fashion-mnist"}}},
         {"train_subset", train_subset}, {"validation_fraction", 0.2}, {"normalize", true}}));
    Hyperparameters hp = ParseHyperparameters(
        {{"lr", 0.05}, {"momentum", 0.9}, {"weight_decay", 1e-4}, {"batch_size", 64}});
    std::map<std::string, std::vector<double>> rates;
    std::map<std::string, double> accuracy;
    for (int r = 0; r < repeats; ++r) {
      for (const Row& row : rows) {
        torch::manual_seed(7);
        Model model = row.file.empty()
                          ? Model(ExampleLayers(), data.input_shape, data.num_classes)
                          : Model(TorchScriptFile{bytes[row.name], row.file + ".pt"}, data.input_shape,
                                  data.num_classes, Json::object());
        if (!row.file.empty()) {
          // The layer list's initial weights (the same names): every row
          // trains the same numbers in the same order.
          std::map<std::string, std::string> blobs;
          torch::manual_seed(7);
          const EncodedTensors start =
              EncodeModelState(*Model(ExampleLayers(), data.input_shape, data.num_classes));
          for (const auto& [digest, b] : start.blobs) blobs[digest] = b;
          const InitReport init = TransferInit(*model, start.manifest, [&](const std::string& d) { return blobs.at(d); });
          if (!init.reinitialized.empty()) throw std::runtime_error("tensor names differ from the layer list's");
        }
        TrainOptions options;
        options.epochs = epochs;
        options.seed = 7;
        std::vector<double> epoch_rates;
        Train(model, data, hp, options, [&](const EpochMetrics& m) {
          epoch_rates.push_back(m.samples_per_second);
          if (m.val_accuracy) accuracy[row.name] = *m.val_accuracy;
          return true;
        });
        rates[row.name].push_back(Median(epoch_rates));
        std::fprintf(stderr, "repeat %d %-15s %.0f samples/s\n", r + 1, row.name.c_str(), rates[row.name].back());
      }
    }
    const double base = Median(rates["json"]);
    std::printf("\nTraining throughput, example CNN, %d train examples, %d epochs, %d repeats, 1 thread\n\n",
                static_cast<int>(data.meta["train"].get<int64_t>()), epochs, repeats);
    std::printf("| model | samples/s (median) | per repeat | ratio to json | val_accuracy (last) |\n");
    std::printf("|---|---:|---|---:|---:|\n");
    for (const Row& row : rows) {
      std::string each;
      for (double v : rates[row.name]) each += (each.empty() ? "" : ", ") + std::to_string(static_cast<int>(v));
      std::printf("| %s | %.0f | %s | %.3f | %.3f |\n", row.name.c_str(), Median(rates[row.name]), each.c_str(),
                  Median(rates[row.name]) / base, accuracy[row.name]);
    }
    fs::remove_all(dir);
  } catch (const baton::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
