// A full disk with the real binaries: the store lives on a small real tmpfs
// (tests/store/small_filesystem.h, a private mount namespace that `baton`
// and its workers inherit). Once the first epochs are stored a ballast file
// fills the disk; the run then stops with RESOURCE_EXHAUSTED (its message,
// exit code 6) at once, without burning the trials' retries; what was stored
// before is intact and `baton store fsck` finds nothing wrong; once the
// ballast is gone `baton resume RUN` finishes the run, every trial ending
// exactly where an uninterrupted run's does.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"
#include "tests/e2e/processes.h"
#include "tests/e2e/tiny_runs.h"
#include "tests/store/small_filesystem.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kExitResourceExhausted = 6;  // api/cli.h

using testing::TrialState;
using Snapshot = testing::RunSnapshot;

class DiskFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("baton-e2e-disk-full-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "pipeline.json") << Pipeline().dump(2);
  }
  void TearDown() override {
    disk_.reset();
    fs::remove_all(dir_);
  }

  // A 4-trial grid of plain SGD learning rates, 6 epochs each, 2 at a
  // time; 3 attempts per trial, which a full disk must not spend.
  static Json Pipeline() {
    Json doc = testing::LinearGridPipeline("e2e-disk-full", 13, 2000, {0.1, 0.05, 0.02, 0.01}, 6, 2);
    doc["stages"]["tune"]["retry"] = {{"max_attempts", 3}, {"backoff_seconds", 0}};
    return doc;
  }

  // Runs a baton command to its end; returns its exit status, stdout and
  // stderr in *out.
  int Baton(const fs::path& store, const std::string& args, std::string* out) {
    return testing::RunBaton(store, args, out, "2>&1");
  }

  // Starts `baton run` in the background, its output in `log`; returns its pid.
  pid_t StartRun(const fs::path& store, const fs::path& log) {
    return testing::StartBatonRun(store, dir_ / "pipeline.json", log);
  }

  static std::string Text(const fs::path& file) {
    std::ifstream in(file);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  fs::path dir_;
  std::unique_ptr<testing::SmallFilesystem> disk_;
};

TEST_F(DiskFullTest, ARunOnAFullDiskStopsWithResourceExhaustedAndResumesOnceSpaceIsFreed) {
  // The uninterrupted run, on the ordinary disk.
  std::string out;
  ASSERT_EQ(Baton(dir_ / "reference", "run " + (dir_ / "pipeline.json").string() + " --workers 2 --no-progress", &out),
            0)
      << out;
  std::string reference_run;
  Snapshot reference = testing::ReadNewestRun(dir_ / "reference", &reference_run);
  ASSERT_EQ(reference["tune"].size(), 4u);

  // The same run with its store on a 64 MiB file system.
  disk_ = std::make_unique<testing::SmallFilesystem>(dir_ / "disk", 64u << 20);
  ASSERT_TRUE(disk_->ok()) << "cannot make a small file system for the store: " << disk_->error();
  const fs::path store = dir_ / "disk" / "store";
  const fs::path log = dir_ / "full-run.log";
  const pid_t pid = StartRun(store, log);
  ASSERT_GT(pid, 0);
  std::string run_id;
  bool reached = false;
  for (auto give_up = std::chrono::steady_clock::now() + 120s; !reached && std::chrono::steady_clock::now() < give_up;) {
    try {
      if (fs::exists(store / "lineage.db")) {
        Snapshot now = testing::ReadNewestRun(store, &run_id);
        for (const auto& [n, t] : now["tune"]) reached = reached || !t.epochs.empty();
      }
    } catch (const std::exception&) {
      // The schema may not be there yet.
    }
    if (!reached) std::this_thread::sleep_for(10ms);
  }
  ASSERT_TRUE(reached) << "no tune epoch was ever recorded:\n" << Text(log);
  const std::vector<std::pair<pid_t, pid_t>> workers = testing::BatonWorkers();
  const uint64_t ballast = disk_->Fill();
  std::printf("[ disk full ] ballast of %.1f MiB fills the store's file system\n", ballast / 1048576.0);

  // The run stops by itself, promptly: no retry storm.
  const auto full_at = std::chrono::steady_clock::now();
  int status = 0;
  pid_t waited = 0;
  while ((waited = waitpid(pid, &status, WNOHANG)) == 0 && std::chrono::steady_clock::now() - full_at < 90s) {
    std::this_thread::sleep_for(50ms);
  }
  if (waited == 0) {
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    FAIL() << "baton run went on for 90 s on a full disk:\n" << Text(log);
  }
  const double stopped_after = std::chrono::duration<double>(std::chrono::steady_clock::now() - full_at).count();
  std::printf("[ disk full ] baton run exited %.1f s after the disk filled\n", stopped_after);
  const std::string output = Text(log);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), kExitResourceExhausted) << output;
  EXPECT_NE(output.find("RESOURCE_EXHAUSTED"), std::string::npos) << output;
  EXPECT_NE(output.find("baton resume " + run_id), std::string::npos) << output;
  EXPECT_NE(output.find(store.string()), std::string::npos) << "the message names the store:\n" << output;
  // Its workers are gone with it.
  for (const auto& [w, parent] : workers) {
    if (parent != pid) continue;
    for (auto until = std::chrono::steady_clock::now() + 15s;
         fs::exists("/proc/" + std::to_string(w)) && std::chrono::steady_clock::now() < until;) {
      std::this_thread::sleep_for(100ms);
    }
    for (const auto& [alive, p] : testing::BatonWorkers()) EXPECT_NE(alive, w) << "worker outlived its run";
  }

  // What was recorded: no trial failed or spent a retry on the full disk;
  // the run can be resumed.
  Snapshot before = testing::ReadNewestRun(store, &run_id);
  {
    auto db = store::LineageDb::Open(store / "lineage.db");
    const auto run = db->GetRun(run_id);
    EXPECT_TRUE(run->status == "interrupted" || run->status == "running") << run->status;
    if (run->status == "interrupted") {
      EXPECT_NE(run->error.find("RESOURCE_EXHAUSTED"), std::string::npos) << run->error;
    }
  }
  int stored_epochs = 0;
  for (const auto& [n, t] : before["tune"]) {
    EXPECT_NE(t.rec.status, "failed") << "trial " << n << ": " << t.rec.reason;
    EXPECT_LE(t.rec.attempts, 1) << "trial " << n << " was retried: " << t.rec.reason;
    stored_epochs += static_cast<int>(t.epochs.size());
  }
  EXPECT_LT(stored_epochs, 24) << "the run was not stopped by the full disk";
  std::printf("[ disk full ] %d tune epoch(s) stored before the disk filled\n", stored_epochs);

  // The store is whole, even while the disk is still full.
  out.clear();
  const int fsck_full = Baton(store, "store fsck", &out);
  std::printf("[ disk full ] store fsck on the full disk: exit %d\n", fsck_full);
  EXPECT_TRUE(fsck_full == 0 || fsck_full == kExitResourceExhausted) << out;

  // Space freed: the store checks clean, every epoch stored before is
  // intact, and the run resumes to the uninterrupted run's result.
  disk_->Free();
  out.clear();
  ASSERT_EQ(Baton(store, "store fsck", &out), 0) << out;
  {
    auto blobs = store::BlobStore::Open(store / "blobs");
    for (const auto& [n, t] : before["tune"]) {
      for (const auto& e : t.epochs) {
        store::Manifest m = store::ParseManifest(blobs->Get(e.checkpoint));
        for (const auto& tensor : m.tensors) EXPECT_EQ(blobs->Get(tensor.blob).size(), tensor.bytes);
      }
    }
  }
  out.clear();
  ASSERT_EQ(Baton(store, "resume " + run_id + " --no-progress", &out), 0) << out;
  std::string after_run;
  Snapshot after = testing::ReadNewestRun(store, &after_run);
  ASSERT_EQ(after_run, run_id);
  {
    auto db = store::LineageDb::Open(store / "lineage.db");
    ASSERT_EQ(db->GetRun(run_id)->status, "succeeded") << db->GetRun(run_id)->error;
  }
  ASSERT_EQ(after["tune"].size(), 4u);
  for (const auto& [n, t] : before["tune"]) {
    const TrialState& now = after["tune"][n];
    ASSERT_GE(now.epochs.size(), t.epochs.size()) << "trial " << n;
    for (size_t e = 0; e < t.epochs.size(); ++e) {
      EXPECT_EQ(now.epochs[e].checkpoint, t.epochs[e].checkpoint);
      EXPECT_EQ(now.epochs[e].created_at, t.epochs[e].created_at);
    }
    if (t.rec.status == "succeeded") {
      EXPECT_EQ(now.rec.finished_at, t.rec.finished_at) << "trial " << n << " reran";
    }
  }
  for (const auto& [n, t] : after["tune"]) {
    EXPECT_EQ(t.rec.status, "succeeded") << n << ": " << t.rec.reason;
    ASSERT_EQ(t.epochs.size(), 6u) << n;
    const TrialState& ref = reference["tune"].at(n);
    EXPECT_EQ(t.rec.hyperparameters, ref.rec.hyperparameters) << n;
    for (size_t e = 0; e < t.epochs.size(); ++e) {
      EXPECT_EQ(t.epochs[e].epoch, static_cast<int>(e));
      EXPECT_EQ(t.epochs[e].checkpoint, ref.epochs[e].checkpoint) << "trial " << n << " epoch " << e;
      EXPECT_EQ(t.epochs[e].metrics["val_accuracy"], ref.epochs[e].metrics["val_accuracy"]) << "trial " << n;
    }
  }
  out.clear();
  EXPECT_EQ(Baton(store, "store fsck", &out), 0) << out;
}

}  // namespace
}  // namespace baton
