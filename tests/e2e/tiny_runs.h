#pragma once

// What the crash, resume and full-disk tests share: a tiny Fashion-MNIST
// tuning pipeline (a linear model, a grid of plain-SGD learning rates, per
// epoch seeding, so that an interrupted and resumed run ends bit for bit
// where an uninterrupted one does; its prepare stage also serves the HTTP
// tests), `baton` started in the foreground or the background, and a
// snapshot of a run's trials and epochs.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "store/lineage_db.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/shell.h"

namespace baton::testing {

// prep (the first `train_subset` training images, 20% of them for
// validation, 100 test images, normalised) and tune (flatten + linear, batch
// 50, SGD, a grid over `learning_rates` in trial order, val_accuracy
// maximised, `epochs` per trial, `max_parallel` at a time). Callers add
// what else they need (pruner, retry, later stages).
inline Json LinearGridPipeline(const std::string& name, int seed, int train_subset,
                         const std::vector<double>& learning_rates, int epochs, int max_parallel) {
  Json doc = {{"schema_version", "1"}, {"name", name}, {"seed", seed}};
  doc["stages"]["prep"] = FashionMnistPrep(train_subset);
  doc["stages"]["tune"] = {
      {"type", "tune"}, {"depends_on", {"prep"}},
      {"model", {{"layers", Json::parse(R"([{"name": "flat", "type": "flatten"},
                                           {"name": "fc", "type": "linear", "out_features": 10}])")}}},
      {"hyperparameters", {{"batch_size", 50}, {"optimizer", "sgd"}}},
      {"search_space", {{"lr", {{"type", "categorical"}, {"values", learning_rates}}}}},
      {"sampler", {{"type", "grid"}}},
      {"objective", {{"metric", "val_accuracy"}, {"mode", "max"}}},
      {"budget", {{"max_trials", static_cast<int>(learning_rates.size())}, {"max_parallel", max_parallel},
                  {"max_epochs", epochs}}}};
  return doc;
}

// prep (the first `train_subset` training images) + a train stage of an
// MLP with `hidden` units (no dropout, no batch norm: those differ by design
// between one process and several), SGD with momentum, `epochs` epochs,
// "ranks" when above 1, retry once. The data-parallel tests' pipeline.
inline Json DataParallelPipeline(const std::string& name, int ranks, int epochs, int train_subset, int hidden) {
  Json doc = {{"schema_version", "1"}, {"name", name}, {"seed", 21}};
  doc["stages"]["prep"] = FashionMnistPrep(train_subset);
  Json layers = Json::parse(R"([{"name": "flat", "type": "flatten"},
                                {"name": "fc1", "type": "linear", "out_features": 1},
                                {"name": "act", "type": "relu"},
                                {"name": "fc2", "type": "linear", "out_features": 10}])");
  layers[1]["out_features"] = hidden;
  doc["stages"]["train"] = {{"type", "train"},
                            {"depends_on", {"prep"}},
                            {"model", {{"layers", layers}}},
                            {"hyperparameters", {{"batch_size", 50}, {"optimizer", "sgd"}, {"lr", 0.05},
                                                 {"momentum", 0.9}}},
                            {"epochs", epochs},
                            {"retry", {{"max_attempts", 2}, {"backoff_seconds", 0}}}};
  if (ranks > 1) doc["stages"]["train"]["ranks"] = ranks;
  return doc;
}

// Runs `baton --store STORE ARGS` (the worker from BATON_WORKER_BIN) to its
// end; its stdout goes to *out, its stderr where `stderr_redirect` (a shell
// redirection such as "2>&1" or "2>>FILE") sends it. Returns the exit status.
inline int RunBaton(const std::filesystem::path& store, const std::string& args, std::string* out,
                    const std::string& stderr_redirect) {
  CmdResult r = Capture("BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + store.string() + " " + args +
                        " " + stderr_redirect);
  out->append(r.out);
  return r.exit_code;
}

// Starts `baton --store STORE run PIPELINE --workers 2 --no-progress` in the
// background, stdout and stderr appended to `log`; returns its pid.
inline pid_t StartBatonRun(const std::filesystem::path& store, const std::filesystem::path& pipeline,
                           const std::filesystem::path& log) {
  std::fflush(nullptr);  // the child must not write our buffered output again
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("BATON_WORKER", BATON_WORKER_BIN, 1);
    FILE* f = freopen(log.c_str(), "a", stdout);
    if (f != nullptr) dup2(fileno(stdout), 2);
    execl(BATON_BIN, "baton", "--store", store.c_str(), "run", pipeline.c_str(), "--workers", "2", "--no-progress",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

struct TrialState {
  store::TrialRecord rec;
  std::vector<store::EpochRecord> epochs;
};
// Stage name -> trial number -> trial.
using RunSnapshot = std::map<std::string, std::map<int, TrialState>>;

// Every trial of every stage of the store's newest run, with its epochs;
// that run's id in *run_id. Empty if the store has no run yet.
inline RunSnapshot ReadNewestRun(const std::filesystem::path& store, std::string* run_id) {
  auto db = store::LineageDb::Open(store / "lineage.db");
  RunSnapshot out;
  auto runs = db->ListRuns(10);
  if (runs.empty()) return out;
  *run_id = runs.front().id;
  for (const auto& s : db->GetStages(*run_id)) {
    auto& stage = out[s.name];
    for (const auto& t : db->GetTrials(s.id)) stage[t.number] = {t, db->GetEpochs(t.id)};
  }
  return out;
}

}  // namespace baton::testing
