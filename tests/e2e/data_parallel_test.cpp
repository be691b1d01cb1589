// Data-parallel training with the real binaries on the local pool: a train
// stage with "ranks": 2 runs as a group of two baton-worker processes that
// sum their gradients through c10d Gloo, and ends an epoch with the weights
// one process trains on the same global batches (within 1e-5); killing one
// rank fails the attempt on both within 10 s, and the stage's retry
// finishes the run on a new group from the last stored epoch.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "store/lineage_db.h"
#include "tests/e2e/background_run.h"
#include "tests/e2e/processes.h"
#include "tests/e2e/tiny_runs.h"
#include "tests/e2e/weights.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/files.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Alive;
using testing::EnvironOf;
using testing::ReadFile;

class DataParallelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("baton-e2e-dp-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path Write(const std::string& name, const Json& doc) {
    std::ofstream(dir_ / name) << doc.dump(2);
    return dir_ / name;
  }
  // The train stage's only trial of the store's newest run.
  testing::TrialState TrainTrial(const fs::path& store) {
    std::string run_id;
    const testing::RunSnapshot run = testing::ReadNewestRun(store, &run_id);
    return run.at("train").at(0);
  }

  fs::path dir_;
};

TEST_F(DataParallelTest, TwoRanksTrainTheWeightsOfOneWithinTolerance) {
  std::string out;
  ASSERT_EQ(testing::RunBaton(dir_ / "one", "run " + Write("one.json", testing::DataParallelPipeline("dp", 1, 1, 2000, 64)).string() +
                                                " --no-progress",
                              &out, "2>&1"),
            0)
      << out;
  ASSERT_EQ(testing::RunBaton(dir_ / "two", "run " + Write("two.json", testing::DataParallelPipeline("dp", 2, 1, 2000, 64)).string() +
                                                " --no-progress",
                              &out, "2>&1"),
            0)
      << out;
  const testing::TrialState one = TrainTrial(dir_ / "one"), two = TrainTrial(dir_ / "two");
  ASSERT_EQ(one.epochs.size(), 1u);
  ASSERT_EQ(two.epochs.size(), 1u);
  // The same start (rank 0's, broadcast), the same 32 global batches.
  EXPECT_EQ(one.rec.initial_checkpoint, two.rec.initial_checkpoint);
  const double diff = testing::MaxAbsDifference(testing::CheckpointFloats(dir_ / "one", one.epochs[0].checkpoint),
                                                testing::CheckpointFloats(dir_ / "two", two.epochs[0].checkpoint));
  std::printf("[ weights ] 1 rank vs 2 ranks after an epoch: max |difference| %.3g\n", diff);
  EXPECT_LE(diff, 1e-5);
  EXPECT_NEAR(one.epochs[0].metrics["train_loss"].get<double>(), two.epochs[0].metrics["train_loss"].get<double>(),
              1e-5);
  EXPECT_NEAR(one.epochs[0].metrics["val_accuracy"].get<double>(),
              two.epochs[0].metrics["val_accuracy"].get<double>(), 0.0026)
      << "at most one of 400 validation images may flip";
  // Rank 1 ran: its own log says so; rank 0 alone reported.
  bool rank_log = false;
  for (const auto& e : fs::recursive_directory_iterator(dir_ / "two" / "logs")) {
    if (e.path().filename() == "worker-0-rank-1.log") {
      rank_log = ReadFile(e.path()).find("rank 1 of 2") != std::string::npos;
    }
  }
  EXPECT_TRUE(rank_log);
}

TEST_F(DataParallelTest, KillingOneRankFailsTheAttemptOnBothAndTheRetryFinishes) {
  constexpr int kEpochs = 12;
  const fs::path store = dir_ / "store";
  testing::BackgroundRun run(store, Write("p.json", testing::DataParallelPipeline("dp-kill", 2, kEpochs, 12000, 256)), {},
                             dir_ / "run.log");
  // Once an epoch is stored, kill rank 1 of the group that trains.
  pid_t rank0 = -1, rank1 = -1;
  std::vector<store::EpochRecord> before;
  for (auto until = Clock::now() + 180s; Clock::now() < until && run.Running() && rank1 < 0;) {
    try {
      if (fs::exists(store / "lineage.db")) {
        std::string run_id;
        const auto snapshot = testing::ReadNewestRun(store, &run_id);
        if (snapshot.count("train") && !snapshot.at("train").empty() && !snapshot.at("train").at(0).epochs.empty()) {
          before = snapshot.at("train").at(0).epochs;
          for (const auto& [pid, ppid] : testing::BatonWorkers()) {
            // This run's group: other tests' groups may run beside it (ctest -j).
            if (ppid != run.pid() || EnvironOf(pid, "BATON_WORLD_SIZE") != "2") continue;
            if (EnvironOf(pid, "BATON_RANK") == "1") rank1 = pid;
            if (EnvironOf(pid, "BATON_RANK") == "0") rank0 = pid;
          }
        }
      }
    } catch (const std::exception&) {
      // The schema may not be there yet.
    }
    if (rank1 < 0) std::this_thread::sleep_for(50ms);
  }
  ASSERT_GT(rank1, 0) << ReadFile(dir_ / "run.log");
  ASSERT_GT(rank0, 0);
  ASSERT_LT(before.size(), static_cast<size_t>(kEpochs)) << "the training ended before a rank could be killed";
  const auto killed_at = Clock::now();
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);
  // Rank 0 notices at its next collective and gives the attempt up: both
  // processes of the group are gone within 10 s.
  while (Alive(rank0) && Clock::now() - killed_at < 10s) std::this_thread::sleep_for(20ms);
  const double gone = std::chrono::duration<double>(Clock::now() - killed_at).count();
  std::printf("[ killed  ] rank 1 (pid %d) after %zu epochs; rank 0 (pid %d) gone %.2f s later\n", rank1,
              before.size(), rank0, gone);
  EXPECT_FALSE(Alive(rank0)) << "rank 0 outlived its group by 10 s";

  ASSERT_EQ(run.Wait(300s), 0) << ReadFile(dir_ / "run.log");
  const testing::TrialState after = TrainTrial(store);
  EXPECT_EQ(after.rec.status, "succeeded");
  EXPECT_EQ(after.rec.attempts, 2);
  EXPECT_NE(after.rec.reason.find("rank"), std::string::npos) << after.rec.reason;
  ASSERT_EQ(after.epochs.size(), static_cast<size_t>(kEpochs));
  for (size_t e = 0; e < before.size(); ++e) EXPECT_EQ(after.epochs[e].checkpoint, before[e].checkpoint);
  // The retry went on from an epoch stored before the kill.
  auto db = store::LineageDb::Open(store / "lineage.db");
  int resumed = 0;
  for (const auto& edge : db->Upstream("trial:" + std::to_string(after.rec.id), 1)) {
    if (edge.kind != "resumed_from") continue;
    ++resumed;
    EXPECT_GE(edge.attrs.value("start_epoch", 0), static_cast<int>(before.size()));
  }
  EXPECT_EQ(resumed, 1);
  // No rank is left behind.
  for (const auto& [pid, ppid] : testing::BatonWorkers()) {
    EXPECT_NE(pid, rank0);
    EXPECT_NE(pid, rank1);
  }
}

// Importance-aware partitioning: after one warm-up epoch the examples are
// scored and partitioned between the two ranks, again every two epochs;
// each epoch's checkpoint records the partitions' digests, sizes and the
// heuristic in lineage.
TEST_F(DataParallelTest, ImportancePartitioningIsRecordedWithEachEpoch) {
  Json doc = testing::DataParallelPipeline("dp-importance", 2, 4, 2000, 64);
  doc["stages"]["train"]["partitioning"] = {{"type", "importance"}, {"heuristic", "balanced"},
                                            {"warmup_epochs", 1}, {"every", 2}};
  std::string out;
  ASSERT_EQ(testing::RunBaton(dir_ / "store", "run " + Write("p.json", doc).string() + " --no-progress", &out, "2>&1"),
            0)
      << out;
  const testing::TrialState t = TrainTrial(dir_ / "store");
  ASSERT_EQ(t.epochs.size(), 4u);
  auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
  std::vector<Json> partitions;  // per epoch: the edge's attributes, or null
  for (const auto& e : t.epochs) {
    Json found;
    for (const auto& edge : db->Upstream("checkpoint:" + e.checkpoint, 1)) {
      if (edge.kind != "partitioned") continue;
      EXPECT_EQ(edge.dst, "artifact:" + t.rec.task["dataset"].get<std::string>());
      found = edge.attrs;
    }
    partitions.push_back(found);
  }
  EXPECT_TRUE(partitions[0].is_null()) << "epoch 0 is the warm-up: " << partitions[0].dump();
  for (int e = 1; e < 4; ++e) {
    ASSERT_TRUE(partitions[e].is_object()) << "epoch " << e;
    EXPECT_EQ(partitions[e]["heuristic"], "balanced");
    ASSERT_EQ(partitions[e]["digests"].size(), 2u);
    EXPECT_NE(partitions[e]["digests"][0], partitions[e]["digests"][1]);
    EXPECT_EQ(partitions[e]["examples"][0].get<int>() + partitions[e]["examples"][1].get<int>(), 1600)
        << "every training example on one rank";
  }
  // Scored after epochs 1 and 3: epoch 2 trains on epoch 1's partitions.
  EXPECT_EQ(partitions[1]["scored_at_epoch"], 1);
  EXPECT_EQ(partitions[2]["scored_at_epoch"], 1);
  EXPECT_EQ(partitions[2]["digests"], partitions[1]["digests"]);
  EXPECT_EQ(partitions[3]["scored_at_epoch"], 3);
  EXPECT_NE(partitions[3]["digests"], partitions[1]["digests"]) << "the model changed, and so did the scores";
  EXPECT_EQ(t.rec.status, "succeeded");
}

}  // namespace
}  // namespace baton
