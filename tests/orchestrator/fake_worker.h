#pragma once

// The coordinator tests' in-process worker and fixture, shared by
// coordinator_test.cpp and tuning_test.cpp.

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "common/digest.h"
#include "common/error.h"
#include "orchestrator/coordinator.h"
#include "store/checkpoint.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator::testing {

using namespace std::chrono_literals;

// Stores a checkpoint (or, with kind "dataset", a dataset manifest) of one
// 16-byte tensor derived from `seed`; returns its manifest's digest.
inline std::string PutFakeCheckpoint(store::BlobStore& blobs, const std::string& seed,
                                     const std::string& kind = "model") {
  std::string bytes(16, '\0');
  std::string h = Sha256Hex(seed);
  std::copy(h.begin(), h.begin() + 16, bytes.begin());
  store::Manifest m;
  m.kind = kind;
  m.tensors.push_back({"fc.weight", "float32", {4}, blobs.Put(bytes), 16});
  return blobs.Put(store::ManifestBytes(m));
}

// An in-process stand-in for baton-worker that speaks the coordinator's
// transport-free API with fake tensors. The real worker is covered by the
// end-to-end tests; this one lets us script failures precisely.
class FakeWorker {
 public:
  FakeWorker(Coordinator& c, store::BlobStore& blobs, int id) : c_(c), blobs_(blobs), id_(id) {}

  // Trials whose first attempt fails, and trials that diverge.
  std::set<int> fail_first, diverge, always_fail;
  // val_accuracy of a trial (hyperparameters, task id) after epoch `epoch`.
  std::function<double(const Json&, int64_t, int)> accuracy = [](const Json& hp, int64_t, int epoch) {
    return Accuracy(hp, epoch);
  };
  // If set, the objective from the whole task (e.g. an ablation variant's).
  std::function<double(const Json& task, int epoch)> task_accuracy;
  // Ablation variants whose tasks fail, as a model that cannot be built does.
  std::set<std::string> fail_variants;
  // Task ids that were told to stop, with the epoch of that answer.
  std::map<int64_t, int> stopped_at;

  void Loop() {
    Json task;
    while (true) {
      auto next = c_.NextTask(id_, 50ms, &task);
      if (next == Coordinator::Next::kDone) return;
      if (next == Coordinator::Next::kWait) continue;
      Handle(task);
    }
  }

  std::string PutCheckpoint(const std::string& seed, const std::string& kind = "model") {
    return PutFakeCheckpoint(blobs_, seed, kind);
  }

  // val_accuracy peaks for lr = 0.01 and grows with epochs.
  static double Accuracy(const Json& hp, int epoch) {
    return 0.6 + 0.05 * epoch - 0.1 * std::fabs(std::log10(hp["lr"].get<double>()) + 2.0);
  }

 private:
  void Handle(const Json& task) {
    const int64_t id = task["id"].get<int64_t>();
    if (task["kind"] == "prepare") {
      c_.Complete(id, {{"output", PutCheckpoint("dataset", "dataset")}});
      return;
    }
    const std::string key = task["stage"].get<std::string>() + "/" + std::to_string(task["seed"].get<uint64_t>());
    if (task["start_epoch"].get<int>() > 0) {
      // Resuming (a retry or an ASHA promotion): "load" the checkpoint and
      // report its state, as baton-worker does.
      c_.ReportInitial(id, {{"checkpoint", task["resume_checkpoint"]}, {"resumed", true}});
    } else if (task["init_checkpoint"].is_string()) {
      std::string init = task["init_checkpoint"].get<std::string>();
      c_.ReportInitial(id, {{"checkpoint", init},
                            {"init", {{"source", init}, {"transferred", {"fc.weight"}}, {"reinitialized", Json::array()}}}});
    } else {
      c_.ReportInitial(id, {{"checkpoint", PutCheckpoint(key + "/init")}, {"init", {{"source", nullptr}}}});
    }
    if (fail_variants.count(task.value("variant", ""))) {
      c_.Fail(id, {{"status", "failed"}, {"reason", "model: scripted build failure"}});
      return;
    }
    const int trial = Trial(task);
    if (always_fail.count(trial) || (fail_first.count(trial) && task["attempt"] == 1)) {
      c_.Fail(id, {{"status", "failed"}, {"reason", "scripted failure"}});
      return;
    }
    if (diverge.count(trial)) {
      c_.Fail(id, {{"status", "diverged"}, {"reason", "loss is nan at epoch 0"}});
      return;
    }
    std::string last = task["resume_checkpoint"].is_string() ? task["resume_checkpoint"].get<std::string>() : "";
    for (int e = task["start_epoch"].get<int>(); e < task["epochs"].get<int>(); ++e) {
      last = PutCheckpoint(key + "/" + std::to_string(e));
      const double acc = task_accuracy ? task_accuracy(task, e) : accuracy(task["hyperparameters"], id, e);
      Json metrics = {{"val_accuracy", acc}, {"train_loss", 1.0 / (e + 1)}};
      std::string action = c_.ReportEpoch(id, {{"epoch", e}, {"checkpoint", last}, {"metrics", metrics}, {"seconds", 0.01}});
      if (action == "stop") {
        std::lock_guard<std::mutex> lock(mu_);
        stopped_at[id] = e;
        break;
      }
      EXPECT_EQ(action, "continue");
    }
    c_.Complete(id, {{"output", last}});
  }

  // Scripts name tasks by id: in a fresh store 1 is prep, 2.. the trials.
  static int Trial(const Json& task) { return static_cast<int>(task["id"].get<int64_t>()); }

  Coordinator& c_;
  store::BlobStore& blobs_;
  int id_;
  std::mutex mu_;
};

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = dir_.path() / "data";
    std::filesystem::create_directories(data_);
    std::ofstream(data_ / "train-images-idx3-ubyte.gz") << "fake images";
    blobs_ = store::BlobStore::Open(dir_.path() / "blobs");
    db_ = store::LineageDb::Open(dir_.path() / "lineage.db");
  }

  // Runs `doc` to the end with `workers` fake workers; returns the run id.
  std::string Run(const Json& doc, int workers = 2, const std::function<void(FakeWorker&)>& script = {}) {
    Pipeline p = LoadPipeline(doc);
    std::string run_id = CreateRun(*db_, p);
    Coordinator c(*blobs_, *db_, p, run_id, options_);
    c.Start();
    std::vector<std::thread> threads;
    fakes_.clear();
    for (int i = 0; i < workers; ++i) {
      fakes_.push_back(std::make_unique<FakeWorker>(c, *blobs_, i));
      if (script) script(*fakes_.back());
    }
    for (auto& f : fakes_) threads.emplace_back([&f] { f->Loop(); });
    EXPECT_TRUE(c.WaitFinished(30s));
    for (auto& t : threads) t.join();
    return run_id;
  }

  // Every stop answer the fake workers of the last Run got: task id -> epoch.
  std::map<int64_t, int> StoppedAt() const {
    std::map<int64_t, int> all;
    for (const auto& f : fakes_) all.insert(f->stopped_at.begin(), f->stopped_at.end());
    return all;
  }

  store::StageRecord Stage(const std::string& run_id, const std::string& name) {
    for (auto& s : db_->GetStages(run_id)) {
      if (s.name == name) return s;
    }
    ADD_FAILURE() << "no stage " << name;
    return {};
  }

  CoordinatorOptions options_;  // of the coordinator of each Run
  TempDir dir_;
  std::filesystem::path data_;
  std::unique_ptr<store::BlobStore> blobs_;
  std::unique_ptr<store::LineageDb> db_;
  std::vector<std::unique_ptr<FakeWorker>> fakes_;  // of the last Run
};

}  // namespace baton::orchestrator::testing
