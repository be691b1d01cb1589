// Data-parallel training on this machine: the example's CNN (its layers
// from examples/fashion-mnist.json, dropout 0.25, batch 128, SGD with
// momentum) trained by a train stage with "ranks": 1 (the baseline) and
// "ranks": 2, each on a fresh store, repeated; medians. Prints the epoch's
// training time and samples/s of both, their ratio, the bound the cores set
// (one torch thread per rank: at most min(ranks, cores) times faster), and
// how far the two runs' final weights lie apart.
//
//   build/bench/bench_data_parallel [--epochs 3] [--train-subset 8000] [--repeats 3] [--ranks 2]
//       [--partitioning 1] [--pipeline examples/fashion-mnist.json] [--baton PATH] [--dir /tmp] [--keep 0]
//
// --partitioning 1 (the default) also runs the N ranks with importance-aware
// partitioning (DAIS 2023: examples scored by their loss after the first
// epoch and every epoch after, "balanced" and "sorted" heuristics) and
// prints their validation accuracy per epoch and epoch time against random
// partitioning.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_common.h"
#include "common/json_util.h"
#include "common/vocabulary.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"

namespace fs = std::filesystem;
using baton::Is;
using baton::Json;
using baton::RunStatus;
using baton::bench::Median;
using baton::bench::Quote;

namespace {

struct Outcome {
  double train_seconds = 0;  // median over epochs: training only (samples / samples_per_second)
  double samples_per_second = 0;
  double run_seconds = 0;
  std::vector<float> weights;  // the final checkpoint's float32 values, in manifest order
  double val_accuracy = 0;
  std::vector<double> val_per_epoch;
};

Outcome RunOnce(const std::string& baton, const fs::path& dir, const Json& doc) {
  fs::create_directories(dir);
  std::ofstream(dir / "pipeline.json") << doc.dump(2);
  const fs::path store = dir / "store";
  const std::string cmd = Quote(baton) + " --store " + Quote(store.string()) + " run " +
                          Quote((dir / "pipeline.json").string()) + " --json --no-progress > " +
                          Quote((dir / "run.json").string()) + " 2> " + Quote((dir / "run.log").string());
  std::fprintf(stderr, "running %s\n", cmd.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("baton run failed; see " + (dir / "run.log").string());
  Outcome o;
  o.run_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto db = baton::store::LineageDb::Open(store / "lineage.db");
  const auto runs = db->ListRuns(1);
  if (runs.empty() || !Is(runs[0].status, RunStatus::kSucceeded)) throw std::runtime_error("the run failed");
  std::string last;
  std::vector<double> seconds, rates;
  for (const auto& stage : db->GetStages(runs[0].id)) {
    if (stage.name != "train") continue;
    for (const auto& t : db->GetTrials(stage.id)) {
      for (const auto& e : db->GetEpochs(t.id)) {
        const double rate = e.metrics.value("samples_per_second", 0.0);
        rates.push_back(rate);
        const Json& prep = doc["stages"]["prep"];
        const double train_n = prep["train_subset"].get<double>() * (1.0 - prep.value("validation_fraction", 0.1));
        seconds.push_back(rate > 0 ? train_n / rate : 0);
        last = e.checkpoint;
        o.val_accuracy = e.metrics.value("val_accuracy", 0.0);
        o.val_per_epoch.push_back(o.val_accuracy);
      }
    }
  }
  o.train_seconds = Median(seconds);
  o.samples_per_second = Median(rates);
  auto blobs = baton::store::BlobStore::Open(store / "blobs");
  for (const auto& t : baton::store::ParseManifest(blobs->Get(last)).tensors) {
    if (t.dtype != "float32") continue;
    const std::string bytes = blobs->Get(t.blob);
    const size_t n = bytes.size() / sizeof(float);
    const size_t at = o.weights.size();
    o.weights.resize(at + n);
    std::memcpy(o.weights.data() + at, bytes.data(), n * sizeof(float));
  }
  return o;
}

int Run(int argc, char** argv) {
  int epochs = 3, subset = 8000, repeats = 3, ranks = 2, keep = 0, partitioning = 1;
  std::string pipeline = BATON_SOURCE_DIR "/examples/fashion-mnist.json";
  std::string baton = ::baton::bench::BatonBinary();
  std::string base = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--epochs") epochs = std::stoi(v);
    else if (a == "--train-subset") subset = std::stoi(v);
    else if (a == "--repeats") repeats = std::stoi(v);
    else if (a == "--ranks") ranks = std::stoi(v);
    else if (a == "--pipeline") pipeline = v;
    else if (a == "--baton") baton = v;
    else if (a == "--dir") base = v;
    else if (a == "--keep") keep = std::stoi(v);
    else if (a == "--partitioning") partitioning = std::stoi(v);
    else throw std::runtime_error("unknown option " + a);
  }
  std::ifstream in(pipeline);
  if (!in) throw std::runtime_error("cannot read " + pipeline);
  const Json example = Json::parse(in);
  Json model = example["stages"]["tune"]["model"];
  for (auto& layer : model["layers"]) {
    if (layer.value("p", Json()).is_string()) layer["p"] = 0.25;  // "$dropout"
  }
  Json doc = {{"schema_version", "1"}, {"name", "bench-data-parallel"}, {"seed", 7}};
  doc["stages"]["prep"] = example["stages"]["prep"];
  doc["stages"]["prep"]["train_subset"] = subset;
  doc["stages"]["train"] = {{"type", "train"},
                            {"depends_on", {"prep"}},
                            {"model", model},
                            {"hyperparameters", {{"optimizer", "sgd"}, {"lr", 0.05}, {"momentum", 0.9},
                                                 {"batch_size", 128}}},
                            {"epochs", epochs}};
  Json parallel = doc;
  parallel["stages"]["train"]["ranks"] = ranks;
  // Importance-aware partitioning (DAIS 2023) against the random baseline
  // above: scored after the first epoch, again every epoch.
  Json balanced = parallel, sorted = parallel;
  balanced["stages"]["train"]["partitioning"] = {{"type", "importance"}, {"heuristic", "balanced"},
                                                 {"warmup_epochs", 1}, {"every", 1}};
  sorted["stages"]["train"]["partitioning"] = {{"type", "importance"}, {"heuristic", "sorted"},
                                               {"warmup_epochs", 1}, {"every", 1}};

  const fs::path dir = fs::path(base) / ("baton-bench-dp-" + std::to_string(getpid()));
  std::vector<Outcome> one, many, by_balanced, by_sorted;
  for (int r = 0; r < repeats; ++r) {  // interleaved, so drift in the machine's load hits all
    one.push_back(RunOnce(baton, dir / ("one-" + std::to_string(r)), doc));
    many.push_back(RunOnce(baton, dir / ("many-" + std::to_string(r)), parallel));
    if (partitioning) {
      by_balanced.push_back(RunOnce(baton, dir / ("balanced-" + std::to_string(r)), balanced));
      by_sorted.push_back(RunOnce(baton, dir / ("sorted-" + std::to_string(r)), sorted));
    }
  }
  auto med = [](const std::vector<Outcome>& v, double Outcome::*field) {
    std::vector<double> xs;
    for (const auto& o : v) xs.push_back(o.*field);
    return Median(xs);
  };
  double diff = 0;
  for (size_t i = 0; i < one[0].weights.size() && i < many[0].weights.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(one[0].weights[i]) - many[0].weights[i]));
  }
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const double t1 = med(one, &Outcome::train_seconds), tn = med(many, &Outcome::train_seconds);
  std::printf("Data-parallel training: the example's CNN (dropout 0.25, batch 128, SGD momentum 0.9), %d training "
              "images, %d epochs, %d repeats (medians of the epochs' training times, then of the repeats), %d cores, "
              "1 torch thread per rank\n\n",
              static_cast<int>(subset * (1.0 - doc["stages"]["prep"].value("validation_fraction", 0.1))), epochs,
              repeats, cores);
  std::printf("| ranks | epoch training s | samples/s | speed-up vs 1 rank | bound (min(ranks, cores)) | whole run s | "
              "final val_accuracy |\n|---|---|---|---|---|---|---|\n");
  std::printf("| 1 (baseline) | %.2f | %.0f | 1.000 | 1 | %.1f | %.4f |\n", t1, med(one, &Outcome::samples_per_second),
              med(one, &Outcome::run_seconds), med(one, &Outcome::val_accuracy));
  std::printf("| %d | %.2f | %.0f | %.3f | %d | %.1f | %.4f |\n", ranks, tn, med(many, &Outcome::samples_per_second),
              t1 / tn, std::min(ranks, cores), med(many, &Outcome::run_seconds), med(many, &Outcome::val_accuracy));
  std::printf("\n- final weights, 1 rank vs %d ranks (first repeat): max |difference| %.3g (dropout draws per rank "
              "and batch norm normalises per shard, so they differ by more than rounding here; the tests use a model "
              "without either and check 1e-5)\n",
              ranks, diff);
  if (partitioning) {
    auto per_epoch = [&](const std::vector<Outcome>& v) {
      std::string cells;
      for (int e = 0; e < epochs; ++e) {
        std::vector<double> xs;
        for (const auto& o : v) {
          if (e < static_cast<int>(o.val_per_epoch.size())) xs.push_back(o.val_per_epoch[e]);
        }
        char buf[32];
        std::snprintf(buf, sizeof(buf), " %.4f |", Median(xs));
        cells += buf;
      }
      return cells;
    };
    std::printf("\nImportance-aware partitioning (%d ranks; examples scored by their loss after epoch 1, again every "
                "epoch) against random partitioning (the row above; medians of the repeats)\n\n| partitioning | epoch "
                "training s | ratio to random |",
                ranks);
    for (int e = 0; e < epochs; ++e) std::printf(" val_accuracy epoch %d |", e + 1);
    std::printf("\n|---|---|---|");
    for (int e = 0; e < epochs; ++e) std::printf("---|");
    std::printf("\n");
    const double tr = med(many, &Outcome::train_seconds);
    std::printf("| random (baseline) | %.2f | 1.000 |%s\n", tr, per_epoch(many).c_str());
    std::printf("| importance, balanced | %.2f | %.3f |%s\n", med(by_balanced, &Outcome::train_seconds),
                med(by_balanced, &Outcome::train_seconds) / tr, per_epoch(by_balanced).c_str());
    std::printf("| importance, sorted | %.2f | %.3f |%s\n", med(by_sorted, &Outcome::train_seconds),
                med(by_sorted, &Outcome::train_seconds) / tr, per_epoch(by_sorted).c_str());
    std::printf("\n- the epoch training time of importance partitioning includes its scoring pass (a forward pass "
                "over every training example, split between the ranks) in the epochs that score; whole runs: random "
                "%.1f s, balanced %.1f s, sorted %.1f s\n",
                med(many, &Outcome::run_seconds), med(by_balanced, &Outcome::run_seconds),
                med(by_sorted, &Outcome::run_seconds));
  }
  if (!keep) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return ::baton::bench::GuardedMain("bench_data_parallel", Run, argc, argv); }
