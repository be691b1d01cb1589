#include "stages/worker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "common/digest.h"
#include "common/error.h"
#include "store/checkpoint.h"
#include "tests/stages/fixtures.h"

namespace baton::stages {
namespace {

using testing::kFashionMnistDir;
using testing::TabularMlp;
using testing::TempDir;
using testing::TinyCnn;

// An in-memory coordinator: hands out queued tasks, then answers "run over";
// stores blobs; records every report. Epoch answers follow `stop_after`.
class FakeCoordinator : public CoordinatorClient {
 public:
  std::deque<Json> tasks;
  std::map<std::string, std::string> blobs;
  std::vector<std::string> puts;  // digests in upload order
  std::vector<std::pair<int64_t, Json>> initial, epochs;
  std::vector<std::pair<int64_t, std::string>> completed;
  std::vector<std::pair<int64_t, Json>> failed;
  int stop_after = 1 << 30;  // answer "stop" once this many epochs came in
  bool unreachable = false;

  std::optional<Json> NextTask(int64_t worker_id) override {
    if (unreachable) throw CoordinatorUnreachable("fake: unreachable");
    if (tasks.empty()) throw RunOver();
    Json task = tasks.front();
    tasks.pop_front();
    return task;
  }
  std::string GetBlob(const std::string& digest) override {
    auto it = blobs.find(digest);
    if (it == blobs.end())
      throw Error(ErrorCode::kNotFound, "no blob " + digest);
    return it->second;
  }
  std::vector<std::string> MissingBlobs(
      const std::vector<std::string>& digests) override {
    std::vector<std::string> missing;
    for (const auto& d : digests) {
      if (!blobs.count(d)) missing.push_back(d);
    }
    return missing;
  }
  void PutBlob(const std::string& digest, const std::string& bytes) override {
    EXPECT_EQ(Sha256Hex(bytes), digest);
    blobs[digest] = bytes;
    puts.push_back(digest);
  }
  void ReportInitial(int64_t task_id, const Json& body) override {
    ExpectStored(body.at("checkpoint").get<std::string>());
    initial.emplace_back(task_id, body);
  }
  bool ReportEpoch(int64_t task_id, const Json& body) override {
    ExpectStored(body.at("checkpoint").get<std::string>());
    epochs.emplace_back(task_id, body);
    return static_cast<int>(epochs.size()) < stop_after;
  }
  void Complete(int64_t task_id, const std::string& output) override {
    completed.emplace_back(task_id, output);
  }
  void Fail(int64_t task_id, const std::string& status,
            const std::string& reason) override {
    failed.emplace_back(task_id, Json{{"status", status}, {"reason", reason}});
  }

  // A stored manifest and every blob it names.
  store::Manifest ExpectStored(const std::string& digest) {
    EXPECT_TRUE(blobs.count(digest)) << digest;
    if (!blobs.count(digest)) return {};
    store::Manifest manifest = store::ParseManifest(blobs[digest]);
    for (const auto& entry : manifest.tensors) {
      EXPECT_TRUE(blobs.count(entry.blob)) << entry.name;
    }
    return manifest;
  }
};

Json PrepareTask(int64_t id) {
  return {{"id", id},
          {"kind", "prepare"},
          {"stage", "prep"},
          {"attempt", 1},
          {"seed", 7},
          {"prepare",
           {{"type", "prepare"},
            {"dataset", {{"format", "idx"}, {"path", kFashionMnistDir}}},
            {"train_subset", 600},
            {"test_subset", 100},
            {"validation_fraction", 0.2},
            {"normalize", true}}}};
}

Json TrainTask(int64_t id, const std::string& dataset, Json model = TinyCnn()) {
  return {{"id", id},
          {"kind", "train"},
          {"stage", "tune"},
          {"attempt", 1},
          {"seed", 123456789},
          {"dataset", dataset},
          {"model", std::move(model)},
          {"hyperparameters",
           {{"lr", 0.05},
            {"momentum", 0.9},
            {"batch_size", 32},
            {"optimizer", "sgd"},
            {"dropout", 0.1}}},
          {"epochs", 2},
          {"start_epoch", 0},
          {"resume_checkpoint", nullptr},
          {"init_checkpoint", nullptr},
          {"evaluate_test", false}};
}

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() : worker_(fake_, {/*worker_id=*/1, [](const std::string&) {}}) {}

  // Prepares the dataset once per test and returns its manifest digest.
  std::string Prepare() {
    worker_.RunTask(PrepareTask(1));
    EXPECT_EQ(fake_.completed.size(), 1u);
    return fake_.completed.back().second;
  }

  FakeCoordinator fake_;
  Worker worker_;
};

TEST_F(WorkerTest, PrepareUploadsADatasetManifest) {
  std::string digest = Prepare();
  EXPECT_TRUE(fake_.failed.empty()) << fake_.failed[0].second.dump();
  store::Manifest manifest = fake_.ExpectStored(digest);
  EXPECT_EQ(manifest.kind, "dataset");
  EXPECT_EQ(manifest.meta["train"], 480);
  EXPECT_EQ(manifest.meta["validation"], 120);
  EXPECT_EQ(manifest.meta["test"], 100);
  EXPECT_EQ(manifest.meta["input_shape"], Json({1, 28, 28}));
  EXPECT_EQ(manifest.tensors.size(), 6u);
  EXPECT_EQ(fake_.puts.back(), digest);  // the manifest goes last

  // Preparing again stores nothing new.
  fake_.puts.clear();
  worker_.RunTask(PrepareTask(2));
  EXPECT_EQ(fake_.completed.back().second, digest);
  EXPECT_TRUE(fake_.puts.empty());
}

TEST_F(WorkerTest, TrainReportsInitialEpochsAndCompletes) {
  std::string dataset = Prepare();
  worker_.RunTask(TrainTask(5, dataset));
  ASSERT_TRUE(fake_.failed.empty()) << fake_.failed[0].second.dump();
  ASSERT_EQ(fake_.initial.size(), 1u);
  const Json& init = fake_.initial[0].second["init"];
  EXPECT_TRUE(init["source"].is_null());
  EXPECT_TRUE(init["transferred"].empty());
  EXPECT_EQ(init["reinitialized"].size(), 11u);
  ASSERT_EQ(fake_.epochs.size(), 2u);
  for (int k = 0; k < 2; ++k) {
    const Json& report = fake_.epochs[k].second;
    EXPECT_EQ(fake_.epochs[k].first, 5);
    EXPECT_EQ(report["epoch"], k);
    EXPECT_GT(report["seconds"].get<double>(), 0);
    for (const char* key : {"train_loss", "val_loss", "val_accuracy", "lr",
                            "samples_per_second"}) {
      EXPECT_TRUE(report["metrics"].contains(key)) << key;
    }
    EXPECT_FALSE(report["metrics"].contains("test_accuracy"));
  }
  EXPECT_GT(fake_.epochs[1].second["metrics"]["val_accuracy"].get<double>(),
            0.3);
  ASSERT_EQ(fake_.completed.size(), 2u);
  EXPECT_EQ(fake_.completed[1].first, 5);
  EXPECT_EQ(fake_.completed[1].second,
            fake_.epochs[1].second["checkpoint"].get<std::string>());
  EXPECT_EQ(fake_.ExpectStored(fake_.completed[1].second).kind, "model");
}

TEST_F(WorkerTest, InitCheckpointTransfersMatchingTensors) {
  std::string dataset = Prepare();
  worker_.RunTask(TrainTask(5, dataset));
  const std::string trained = fake_.completed.back().second;

  // Same architecture: every tensor transfers, and the initial checkpoint is
  // the source itself, so nothing new is uploaded.
  Json same = TrainTask(6, dataset);
  same["init_checkpoint"] = trained;
  same["epochs"] = 1;
  fake_.puts.clear();
  worker_.RunTask(same);
  ASSERT_TRUE(fake_.failed.empty()) << fake_.failed[0].second.dump();
  const Json& body = fake_.initial.back().second;
  EXPECT_EQ(body["checkpoint"], trained);
  EXPECT_EQ(body["init"]["source"], trained);
  EXPECT_EQ(body["init"]["transferred"].size(), 11u);
  EXPECT_TRUE(body["init"]["reinitialized"].empty());

  // Resized fc1: fc1.* and fc2.weight are fresh.
  Json resized = TrainTask(7, dataset, TinyCnn(/*hidden=*/16));
  resized["init_checkpoint"] = trained;
  resized["epochs"] = 1;
  worker_.RunTask(resized);
  ASSERT_TRUE(fake_.failed.empty()) << fake_.failed[0].second.dump();
  EXPECT_EQ(fake_.initial.back().second["init"]["reinitialized"],
            Json({"fc1.bias", "fc1.weight", "fc2.weight"}));
}

TEST_F(WorkerTest, ResumeContinuesFromTheGivenEpoch) {
  std::string dataset = Prepare();
  Json task = TrainTask(5, dataset);
  worker_.RunTask(task);
  const std::string after_epoch0 = fake_.epochs[0].second["checkpoint"];
  const size_t initial_reports = fake_.initial.size();

  task["start_epoch"] = 1;
  task["resume_checkpoint"] = after_epoch0;
  task["attempt"] = 2;
  worker_.RunTask(task);
  ASSERT_TRUE(fake_.failed.empty()) << fake_.failed[0].second.dump();
  // Instead of an initial checkpoint it reports the state it loaded, encoded
  // again: the checkpoint it was given, digest for digest.
  ASSERT_EQ(fake_.initial.size(), initial_reports + 1);
  EXPECT_EQ(fake_.initial.back().second["resumed"], true);
  EXPECT_EQ(fake_.initial.back().second["checkpoint"], after_epoch0);
  ASSERT_EQ(fake_.epochs.size(), 3u);
  EXPECT_EQ(fake_.epochs[2].second["epoch"], 1);

  task["resume_checkpoint"] = nullptr;
  worker_.RunTask(task);
  ASSERT_EQ(fake_.failed.size(), 1u);
  EXPECT_NE(fake_.failed[0].second["reason"].get<std::string>().find(
                "resume_checkpoint"),
            std::string::npos);
}

TEST_F(WorkerTest, StopEndsTheTrialEarly) {
  std::string dataset = Prepare();
  fake_.stop_after = 1;
  Json task = TrainTask(5, dataset);
  task["epochs"] = 4;
  worker_.RunTask(task);
  EXPECT_EQ(fake_.epochs.size(), 1u);
  EXPECT_TRUE(fake_.failed.empty());
  EXPECT_EQ(fake_.completed.back().second,
            fake_.epochs[0].second["checkpoint"].get<std::string>());
}

// The epoch's checkpoint is committed while the next epoch trains: the
// report of epoch 1 is held until the worker has logged the end of epoch 2.
// A worker that committed in line could not get there, and the wait would
// time out.
TEST(WorkerCommit, NextEpochTrainsWhileTheCheckpointIsCommitted) {
  class SlowCoordinator : public FakeCoordinator {
   public:
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::string> log;
    bool saw_next_epoch = false;
    bool ReportEpoch(int64_t task_id, const Json& body) override {
      if (body["epoch"] == 0) {
        std::unique_lock<std::mutex> lock(mu);
        saw_next_epoch = cv.wait_for(lock, std::chrono::seconds(60), [&] {
          for (const auto& line : log) {
            if (line.find("epoch 2/3") != std::string::npos) return true;
          }
          return false;
        });
      }
      return FakeCoordinator::ReportEpoch(task_id, body);
    }
  } fake;
  Worker worker(fake, {/*worker_id=*/1, [&fake](const std::string& line) {
                         std::lock_guard<std::mutex> lock(fake.mu);
                         fake.log.push_back(line);
                         fake.cv.notify_all();
                       }});
  worker.RunTask(PrepareTask(1));
  ASSERT_EQ(fake.completed.size(), 1u);
  Json task = TrainTask(5, fake.completed.back().second);
  task["epochs"] = 3;
  worker.RunTask(task);
  EXPECT_TRUE(fake.saw_next_epoch);
  ASSERT_EQ(fake.epochs.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(fake.epochs[i].second["epoch"], i);  // in order
  ASSERT_EQ(fake.completed.size(), 2u);
  EXPECT_EQ(fake.completed.back().second, fake.epochs[2].second["checkpoint"].get<std::string>());
}

// "stop" in the answer to epoch 1's report, which arrives while epoch 2
// trains: epoch 2 is never reported and the output is epoch 1's checkpoint.
TEST(WorkerCommit, StopArrivingDuringTheNextEpochEndsTheTrialAtTheReportedEpoch) {
  class StopAfterNextEpoch : public FakeCoordinator {
   public:
    bool ReportEpoch(int64_t task_id, const Json& body) override {
      FakeCoordinator::ReportEpoch(task_id, body);
      return false;
    }
  } fake;
  std::vector<std::string> log;
  Worker worker(fake, {/*worker_id=*/1, [&log](const std::string& line) { log.push_back(line); }});
  worker.RunTask(PrepareTask(1));
  Json task = TrainTask(5, fake.completed.back().second);
  task["epochs"] = 4;
  worker.RunTask(task);
  ASSERT_EQ(fake.epochs.size(), 1u);
  EXPECT_EQ(fake.epochs[0].second["epoch"], 0);
  EXPECT_TRUE(fake.failed.empty());
  ASSERT_EQ(fake.completed.size(), 2u);
  EXPECT_EQ(fake.completed.back().second, fake.epochs[0].second["checkpoint"].get<std::string>());
  bool logged_stop = false;
  for (const auto& line : log) logged_stop = logged_stop || line.find("stopped by the coordinator") != std::string::npos;
  EXPECT_TRUE(logged_stop);
}

// A report the coordinator refuses fails the task with its message, even
// though it arrives while the next epoch trains.
TEST(WorkerCommit, RefusedReportFailsTheTaskWithTheCoordinatorsMessage) {
  class Refusing : public FakeCoordinator {
   public:
    bool ReportEpoch(int64_t, const Json&) override {
      throw Error(ErrorCode::kInvalidArgument, "epoch report lacks the objective metric val_accuracy");
    }
  } fake;
  Worker worker(fake, {/*worker_id=*/1, [](const std::string&) {}});
  worker.RunTask(PrepareTask(1));
  Json task = TrainTask(5, fake.completed.back().second);
  task["epochs"] = 3;
  worker.RunTask(task);
  ASSERT_EQ(fake.failed.size(), 1u);
  EXPECT_NE(fake.failed[0].second["reason"].get<std::string>().find("lacks the objective metric"), std::string::npos)
      << fake.failed[0].second.dump();
  EXPECT_EQ(fake.completed.size(), 1u);  // only the prepare task
}

// A task with a lease gets heartbeats from a second thread. When one is
// answered "no longer yours" (the coordinator gave the attempt away), the
// task stops at its next batch and is dropped without another report, and
// the worker takes the next task.
TEST(WorkerLease, ASupersededAttemptIsDroppedMidEpochAndTheWorkerGoesOn) {
  class Superseding : public FakeCoordinator {
   public:
    std::atomic<int> beats{0};
    std::atomic<int> attempt_seen{0};
    void Heartbeat(int64_t task_id, int attempt) override {
      EXPECT_EQ(task_id, 5);
      attempt_seen = attempt;
      if (beats++ >= 1) throw TaskSuperseded("task 5 attempt 3 was superseded by attempt 4");
    }
  } fake;
  std::mutex mu;
  std::vector<std::string> log;
  Worker worker(fake, {/*worker_id=*/1, [&](const std::string& line) {
                         std::lock_guard<std::mutex> lock(mu);
                         log.push_back(line);
                       }});
  worker.RunTask(PrepareTask(1));
  const std::string dataset = fake.completed.back().second;
  Json leased = TrainTask(5, dataset);
  leased["attempt"] = 3;
  leased["epochs"] = 200;  // far more than it gets to run
  leased["lease_seconds"] = 5;
  leased["heartbeat_seconds"] = 0.05;
  fake.tasks = {leased, TrainTask(6, dataset)};
  EXPECT_EQ(worker.Run(), kExitRunOver);

  EXPECT_EQ(fake.attempt_seen, 3);
  EXPECT_GE(fake.beats, 2);
  int epochs_of_5 = 0;
  for (const auto& [id, body] : fake.epochs) epochs_of_5 += id == 5 ? 1 : 0;
  EXPECT_LT(epochs_of_5, 200);
  EXPECT_TRUE(fake.failed.empty()) << fake.failed[0].second.dump();
  ASSERT_EQ(fake.completed.size(), 2u);  // prepare, then task 6: never task 5
  EXPECT_EQ(fake.completed[1].first, 6);
  bool dropped = false;
  for (const auto& line : log) dropped = dropped || line.find("task 5 dropped: task 5 attempt 3 was superseded") != std::string::npos;
  EXPECT_TRUE(dropped);
}

// When heartbeats go unanswered for the worker's patience (its coordinator
// was killed), the task stops at its next batch and the worker gives up,
// without training to the end of the task.
TEST(WorkerLease, UnansweredHeartbeatsEndTheTaskBeforeItsEnd) {
  class Gone : public FakeCoordinator {
   public:
    void Heartbeat(int64_t, int) override { throw CoordinatorUnreachable("fake: connection refused"); }
  } fake;
  WorkerOptions options{/*worker_id=*/1, [](const std::string&) {}};
  options.patience = std::chrono::milliseconds(300);
  Worker worker(fake, options);
  worker.RunTask(PrepareTask(1));
  Json leased = TrainTask(5, fake.completed.back().second);
  leased["epochs"] = 200;
  leased["lease_seconds"] = 30;  // the patience (shorter) decides
  leased["heartbeat_seconds"] = 0.05;
  try {
    worker.RunTask(leased);
    FAIL() << "no error";
  } catch (const CoordinatorUnreachable& e) {
    EXPECT_NE(std::string(e.what()).find("answered no heartbeat for task 5"), std::string::npos) << e.what();
  }
  EXPECT_LT(fake.epochs.size(), 200u);
  EXPECT_TRUE(fake.failed.empty());
  EXPECT_EQ(fake.completed.size(), 1u);  // only the prepare task
}

TEST_F(WorkerTest, BadTasksFailWithAReasonAndTheWorkerGoesOn) {
  std::string dataset = Prepare();
  Json bad_model = TinyCnn();
  bad_model["layers"][2]["type"] = "swish";
  worker_.RunTask(TrainTask(5, dataset, bad_model));
  Json missing_dataset = TrainTask(6, std::string(64, 'a'));
  worker_.RunTask(missing_dataset);
  Json bad_kind = TrainTask(7, dataset);
  bad_kind["kind"] = "evaluate";
  worker_.RunTask(bad_kind);

  ASSERT_EQ(fake_.failed.size(), 3u);
  const std::string reason = fake_.failed[0].second["reason"];
  EXPECT_EQ(fake_.failed[0].second["status"], "failed");
  EXPECT_NE(reason.find("'act1'"), std::string::npos) << reason;
  EXPECT_NE(reason.find("/model/layers/2/type"), std::string::npos) << reason;
  EXPECT_EQ(fake_.failed[1].first, 6);
  EXPECT_EQ(fake_.failed[2].first, 7);

  worker_.RunTask(TrainTask(8, dataset));  // still works
  EXPECT_EQ(fake_.completed.back().first, 8);
}

Json CsvPrepareTask(int64_t id, const std::string& path) {
  return {{"id", id},
          {"kind", "prepare"},
          {"stage", "prep"},
          {"attempt", 1},
          {"seed", 7},
          {"prepare",
           {{"type", "prepare"},
            {"dataset",
             {{"format", "csv"}, {"path", path}, {"label_column", "label"}}},
            {"test_fraction", 0.2},
            {"normalize", true}}}};
}

// The shape of `tensor` in the checkpoint the task reported first.
std::vector<int64_t> InitialShape(FakeCoordinator& fake, size_t report,
                                  const std::string& tensor) {
  store::Manifest manifest = fake.ExpectStored(
      fake.initial.at(report).second.at("checkpoint").get<std::string>());
  const store::TensorEntry* entry = store::FindTensor(manifest, tensor);
  return entry == nullptr ? std::vector<int64_t>{} : entry->shape;
}

TEST_F(WorkerTest, CsvDatasetTrainsWithAndWithoutFeatures) {
  TempDir dir;
  testing::WriteSignalCsv(dir.File("signal.csv"), 200);
  worker_.RunTask(CsvPrepareTask(1, dir.File("signal.csv")));
  ASSERT_TRUE(fake_.failed.empty()) << fake_.failed[0].second.dump();
  const std::string dataset = fake_.completed.back().second;
  store::Manifest manifest = fake_.ExpectStored(dataset);
  EXPECT_EQ(manifest.meta["format"], "csv");
  EXPECT_EQ(manifest.meta["input_shape"], Json({5}));
  EXPECT_EQ(manifest.meta["features"], Json(testing::kSignalCsvFeatures));
  EXPECT_EQ(manifest.meta["test"], 40);

  Json drop = TrainTask(5, dataset, TabularMlp(3));
  drop["drop_features"] = {"signal", "noise_d"};
  worker_.RunTask(drop);
  ASSERT_TRUE(fake_.failed.empty()) << fake_.failed[0].second.dump();
  EXPECT_EQ(InitialShape(fake_, 0, "fc1.weight"),
            (std::vector<int64_t>{16, 3}));
  EXPECT_EQ(fake_.completed.back().first, 5);

  // The worker's cached dataset kept every column.
  Json all = TrainTask(6, dataset, TabularMlp(3));
  all["drop_features"] = Json::array();
  worker_.RunTask(all);
  ASSERT_TRUE(fake_.failed.empty()) << fake_.failed[0].second.dump();
  EXPECT_EQ(InitialShape(fake_, 1, "fc1.weight"),
            (std::vector<int64_t>{16, 5}));
  EXPECT_GT(fake_.epochs.back().second["metrics"]["val_accuracy"].get<double>(),
            0.5);
}

TEST_F(WorkerTest, UnknownOrImpossibleFeatureDropsFailTheTask) {
  const std::string images = Prepare();
  TempDir dir;
  testing::WriteSignalCsv(dir.File("signal.csv"), 100);
  worker_.RunTask(CsvPrepareTask(2, dir.File("signal.csv")));
  const std::string csv = fake_.completed.back().second;

  Json unknown = TrainTask(5, csv, TabularMlp(3));
  unknown["drop_features"] = {"signal", "sugnal"};
  worker_.RunTask(unknown);
  Json not_tabular = TrainTask(6, images);
  not_tabular["drop_features"] = {"pixel"};
  worker_.RunTask(not_tabular);
  Json not_a_list = TrainTask(7, csv, TabularMlp(3));
  not_a_list["drop_features"] = "signal";
  worker_.RunTask(not_a_list);

  ASSERT_EQ(fake_.failed.size(), 3u);
  for (const auto& [id, body] : fake_.failed) {
    EXPECT_EQ(body["status"], "failed");
    EXPECT_NE(body["reason"].get<std::string>().find("/drop_features"),
              std::string::npos)
        << body.dump();
  }
  const std::string reason = fake_.failed[0].second["reason"];
  EXPECT_NE(reason.find("\"sugnal\""), std::string::npos) << reason;
  EXPECT_NE(reason.find("no such feature"), std::string::npos) << reason;
  EXPECT_NE(
      fake_.failed[1].second["reason"].get<std::string>().find("not tabular"),
      std::string::npos);
  EXPECT_TRUE(fake_.initial.empty());  // none got as far as a model
}

TEST_F(WorkerTest, UnbuildableModelVariantFailsOnlyThatTask) {
  TempDir dir;
  testing::WriteSignalCsv(dir.File("signal.csv"), 100);
  worker_.RunTask(CsvPrepareTask(1, dir.File("signal.csv")));
  const std::string csv = fake_.completed.back().second;

  // The ablation removed the only layer that maps to the class count.
  worker_.RunTask(
      TrainTask(5, csv, testing::WithoutLayer(TabularMlp(3), "out")));
  // An image layer on tabular rows.
  Json conv = TabularMlp(3);
  conv["layers"].insert(conv["layers"].begin(), Json{{"name", "conv1"},
                                                     {"type", "conv2d"},
                                                     {"out_channels", 4},
                                                     {"kernel_size", 3}});
  worker_.RunTask(TrainTask(6, csv, conv));

  ASSERT_EQ(fake_.failed.size(), 2u);
  const std::string no_head = fake_.failed[0].second["reason"];
  EXPECT_EQ(fake_.failed[0].second["status"], "failed");
  EXPECT_NE(no_head.find("[N,16]"), std::string::npos) << no_head;
  EXPECT_NE(no_head.find("'act' (relu)"), std::string::npos) << no_head;
  EXPECT_NE(no_head.find("3 classes"), std::string::npos) << no_head;
  EXPECT_NE(no_head.find("/model/layers/1"), std::string::npos) << no_head;
  const std::string image_layer = fake_.failed[1].second["reason"];
  EXPECT_NE(image_layer.find("'conv1' (conv2d)"), std::string::npos)
      << image_layer;
  EXPECT_NE(image_layer.find("[N,5]"), std::string::npos) << image_layer;

  worker_.RunTask(TrainTask(7, csv, TabularMlp(3)));  // still works
  EXPECT_EQ(fake_.completed.back().first, 7);
}

TEST_F(WorkerTest, DivergedTrialIsReportedAsDiverged) {
  std::string dataset = Prepare();
  Json task = TrainTask(5, dataset);
  task["hyperparameters"]["lr"] = 1e6;
  task["epochs"] = 3;
  worker_.RunTask(task);
  ASSERT_EQ(fake_.failed.size(), 1u);
  EXPECT_EQ(fake_.failed[0].second["status"], "diverged");
  EXPECT_EQ(fake_.completed.size(), 1u);  // only the prepare task
}

TEST_F(WorkerTest, RunLoopsUntilTheRunIsOver) {
  fake_.tasks.push_back(PrepareTask(1));
  EXPECT_EQ(worker_.Run(), kExitRunOver);
  EXPECT_EQ(fake_.completed.size(), 1u);
  fake_.unreachable = true;
  EXPECT_EQ(worker_.Run(), kExitUnreachable);
}

}  // namespace
}  // namespace baton::stages
