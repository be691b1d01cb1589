// A full disk with the real binaries: the store lives on a small real tmpfs
// (tests/store/small_filesystem.h, a private mount namespace that `baton`
// and its workers inherit). Once the first epochs are stored a ballast file
// fills the disk; the run then stops with RESOURCE_EXHAUSTED (its message,
// exit code 6) at once, without burning the trials' retries; what was stored
// before is intact and `baton store fsck` finds nothing wrong; once the
// ballast is gone `baton resume RUN` finishes the run, every trial ending
// exactly where an uninterrupted run's does. The same holds for a run that
// `baton serve` executes: the server stays up, says so over the API, and
// `baton --server URL resume RUN` finishes the run.
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
#include "tests/e2e/http_e2e.h"
#include "tests/e2e/processes.h"
#include "tests/e2e/serve_process.h"
#include "tests/e2e/tiny_runs.h"
#include "tests/store/small_filesystem.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kExitResourceExhausted = 6;  // api/internal/cli.h

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

  // A 4-trial grid of plain SGD learning rates, kEpochs epochs each, 2 at
  // a time; 3 attempts per trial, which a full disk must not spend.
  // Enough epochs that the run cannot end while the ballast is written
  // (with 6 it sometimes did, on an idle machine).
  static constexpr int kEpochs = 20;
  static Json Pipeline() {
    Json doc = testing::LinearGridPipeline("e2e-disk-full", 13, 2000, {0.1, 0.05, 0.02, 0.01}, kEpochs, 2);
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

  // The uninterrupted run, on the ordinary disk: every trial of its tune
  // stage.
  std::map<int, TrialState> ReferenceRun() {
    std::string out;
    EXPECT_EQ(Baton(dir_ / "reference", "run " + (dir_ / "pipeline.json").string() + " --workers 2 --no-progress", &out),
              0)
        << out;
    std::string run_id;
    Snapshot reference = testing::ReadNewestRun(dir_ / "reference", &run_id);
    EXPECT_EQ(reference["tune"].size(), 4u);
    return reference["tune"];
  }

  // The resumed run's trials end exactly where the uninterrupted run's do:
  // same hyperparameters, all kEpochs epochs, same checkpoints and accuracies.
  static void ExpectLikeReference(const std::map<int, TrialState>& resumed,
                                  const std::map<int, TrialState>& reference) {
    ASSERT_EQ(resumed.size(), 4u);
    for (const auto& [n, t] : resumed) {
      EXPECT_EQ(t.rec.status, "succeeded") << n << ": " << t.rec.reason;
      ASSERT_EQ(t.epochs.size(), static_cast<size_t>(kEpochs)) << n;
      ASSERT_EQ(reference.count(n), 1u) << n;
      const TrialState& ref = reference.at(n);
      EXPECT_EQ(t.rec.hyperparameters, ref.rec.hyperparameters) << n;
      for (size_t e = 0; e < t.epochs.size(); ++e) {
        EXPECT_EQ(t.epochs[e].epoch, static_cast<int>(e));
        EXPECT_EQ(t.epochs[e].checkpoint, ref.epochs[e].checkpoint) << "trial " << n << " epoch " << e;
        EXPECT_EQ(t.epochs[e].metrics["val_accuracy"], ref.epochs[e].metrics["val_accuracy"]) << "trial " << n;
      }
    }
  }

  // Every epoch stored before the disk filled is still there, unchanged,
  // and a trial that had finished did not run again.
  static void ExpectStoredEpochsKept(const std::map<int, TrialState>& before, std::map<int, TrialState>& after) {
    for (const auto& [n, t] : before) {
      const TrialState& now = after[n];
      ASSERT_GE(now.epochs.size(), t.epochs.size()) << "trial " << n;
      for (size_t e = 0; e < t.epochs.size(); ++e) {
        EXPECT_EQ(now.epochs[e].checkpoint, t.epochs[e].checkpoint) << "trial " << n << " epoch " << e;
        EXPECT_EQ(now.epochs[e].created_at, t.epochs[e].created_at) << "trial " << n << " epoch " << e;
      }
      if (t.rec.status == "succeeded") {
        EXPECT_EQ(now.rec.finished_at, t.rec.finished_at) << "trial " << n << " reran";
      }
    }
  }

  // The store is whole: `baton store fsck` finds nothing wrong.
  void ExpectFsckClean(const fs::path& store) {
    std::string out;
    EXPECT_EQ(Baton(store, "store fsck", &out), 0) << out;
  }

  // Waits (at most `limit`) for `pid` to exit; its wait status, or -1 after
  // killing it if it did not.
  static int WaitForExit(pid_t pid, std::chrono::seconds limit) {
    int status = 0;
    for (auto until = std::chrono::steady_clock::now() + limit; std::chrono::steady_clock::now() < until;) {
      if (waitpid(pid, &status, WNOHANG) == pid) return status;
      std::this_thread::sleep_for(50ms);
    }
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }

  // Waits up to 15 s for each baton-worker whose parent is `parent` to be
  // gone; fails for any that is still there.
  static void ExpectWorkersGone(const std::vector<std::pair<pid_t, pid_t>>& workers, pid_t parent) {
    for (const auto& [w, p] : workers) {
      if (p != parent) continue;
      for (auto until = std::chrono::steady_clock::now() + 15s;
           fs::exists("/proc/" + std::to_string(w)) && std::chrono::steady_clock::now() < until;) {
        std::this_thread::sleep_for(100ms);
      }
      for (const auto& [alive, pp] : testing::BatonWorkers()) EXPECT_NE(alive, w) << "worker outlived its run";
    }
  }

  static std::string Text(const fs::path& file) {
    std::ifstream in(file);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  fs::path dir_;
  std::unique_ptr<testing::SmallFilesystem> disk_;
};

TEST_F(DiskFullTest, ARunOnAFullDiskStopsWithResourceExhaustedAndResumesOnceSpaceIsFreed) {
  const std::map<int, TrialState> reference = ReferenceRun();
  ASSERT_FALSE(HasFailure());
  std::string out;

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
  const int status = WaitForExit(pid, 90s);
  ASSERT_NE(status, -1) << "baton run went on for 90 s on a full disk:\n" << Text(log);
  const double stopped_after = std::chrono::duration<double>(std::chrono::steady_clock::now() - full_at).count();
  std::printf("[ disk full ] baton run exited %.1f s after the disk filled\n", stopped_after);
  const std::string output = Text(log);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), kExitResourceExhausted) << output;
  EXPECT_NE(output.find("RESOURCE_EXHAUSTED"), std::string::npos) << output;
  EXPECT_NE(output.find("baton resume " + run_id), std::string::npos) << output;
  EXPECT_NE(output.find(store.string()), std::string::npos) << "the message names the store:\n" << output;
  ExpectWorkersGone(workers, pid);  // its workers are gone with it

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
  EXPECT_LT(stored_epochs, 4 * kEpochs) << "the run was not stopped by the full disk";
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
  ExpectStoredEpochsKept(before["tune"], after["tune"]);
  ExpectLikeReference(after["tune"], reference);
  ExpectFsckClean(store);
}

// The same full disk under `baton serve`, followed by `baton --server URL
// run` as a user would: the run is interrupted (not failed, no retries
// spent), the client exits 6 naming the cause, the server stays up and says
// so over the API; a resume while the disk is still full is interrupted
// again without harm, and once space is freed `baton --server URL resume`
// finishes the run exactly as the uninterrupted run ended.
TEST_F(DiskFullTest, ARunThatBatonServeExecutesIsInterruptedAndResumesOverTheApi) {
  const std::map<int, TrialState> reference = ReferenceRun();
  ASSERT_FALSE(HasFailure());

  disk_ = std::make_unique<testing::SmallFilesystem>(dir_ / "disk", 64u << 20);
  ASSERT_TRUE(disk_->ok()) << "cannot make a small file system for the store: " << disk_->error();
  const fs::path store = dir_ / "disk" / "store";
  auto server = std::make_unique<testing::Server>(store, "--workers 2");
  const std::string url = "http://127.0.0.1:" + std::to_string(server->port);
  const fs::path log = dir_ / "remote-run.log";  // on the ordinary disk
  std::fflush(nullptr);
  const pid_t client = fork();
  if (client == 0) {
    setenv("BATON_TOKEN", server->token.c_str(), 1);
    FILE* f = freopen(log.c_str(), "a", stdout);
    if (f != nullptr) dup2(fileno(stdout), 2);
    execl(BATON_BIN, "baton", "--server", url.c_str(), "run", (dir_ / "pipeline.json").c_str(), "--no-progress",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(client, 0);
  std::string run_id;
  for (int i = 0; i < 600 && run_id.empty(); ++i) {
    const Json runs = testing::Parse(server->Client().Get("/api/v1/runs"));
    if (runs.contains("runs") && !runs["runs"].empty()) run_id = runs["runs"][0].value("run_id", "");
    if (run_id.empty()) std::this_thread::sleep_for(100ms);
  }
  ASSERT_FALSE(run_id.empty()) << "the server listed no run within 60 s:\n" << Text(log);
  testing::WaitForFirstEpoch(*server, run_id);
  ASSERT_FALSE(HasFailure()) << Text(log);
  const std::vector<std::pair<pid_t, pid_t>> workers = testing::BatonWorkers();
  const uint64_t ballast = disk_->Fill();
  std::printf("[ disk full ] ballast of %.1f MiB fills the served store's file system\n", ballast / 1048576.0);

  // The client ends promptly with the cause and exit 6.
  const auto full_at = std::chrono::steady_clock::now();
  const int status = WaitForExit(client, 90s);
  ASSERT_NE(status, -1) << "baton --server ... run went on for 90 s on a full disk:\n" << Text(log);
  std::printf("[ disk full ] baton --server ... run exited %.1f s after the disk filled\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - full_at).count());
  const std::string output = Text(log);
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), kExitResourceExhausted) << output;
  EXPECT_NE(output.find("interrupted"), std::string::npos) << output;
  EXPECT_NE(output.find("RESOURCE_EXHAUSTED"), std::string::npos) << output;

  // The server is up and tells what happened; the run's workers are gone.
  ASSERT_TRUE(server->Running()) << "baton serve " << server->exit_status() << " on the full disk";
  Json run = testing::Parse(server->Client().Get(("/api/v1/runs/" + run_id).c_str()));
  EXPECT_EQ(run.value("status", ""), "interrupted") << run.dump();
  EXPECT_NE(run.value("error", "").find("RESOURCE_EXHAUSTED"), std::string::npos) << run.dump();
  ExpectWorkersGone(workers, server->pid());
  Json trials = testing::Parse(server->Client().Get(("/api/v1/runs/" + run_id + "/stages/tune/trials").c_str()));
  ASSERT_TRUE(trials.contains("trials")) << trials.dump();
  int stored_epochs = 0;
  for (const auto& t : trials["trials"]) {
    EXPECT_NE(t.value("status", ""), "failed") << t.dump();
    EXPECT_LE(t.value("attempts", 0), 1) << "retried on a full disk: " << t.dump();
    stored_epochs += static_cast<int>(t["epochs"].size());
  }
  EXPECT_LT(stored_epochs, 4 * kEpochs) << "the run was not stopped by the full disk";
  std::printf("[ disk full ] %d tune epoch(s) stored before the disk filled\n", stored_epochs);
  std::string newest;
  const Snapshot before = testing::ReadNewestRun(store, &newest);
  ASSERT_EQ(newest, run_id);

  // Resumed too early, on the still full disk: interrupted again, nothing
  // failed, retried or lost.
  auto early = server->Client().Post(("/api/v1/runs/" + run_id + ":resume").c_str(), "", "application/json");
  ASSERT_TRUE(early) << "baton serve " << (server->Running() ? "did not answer" : server->exit_status());
  if (early->status == 202) {
    EXPECT_EQ(testing::WaitForRun(*server, run_id, std::chrono::seconds(90)), "interrupted");
  } else {
    EXPECT_EQ(early->status, 507) << early->body;
  }
  ASSERT_TRUE(server->Running()) << "baton serve " << server->exit_status() << " after a resume on the full disk";
  {
    std::string again_id;
    Snapshot again = testing::ReadNewestRun(store, &again_id);
    for (const auto& [n, t] : again["tune"]) {
      EXPECT_NE(t.rec.status, "failed") << "trial " << n << ": " << t.rec.reason;
      EXPECT_LE(t.rec.attempts, 1) << "trial " << n << " was retried: " << t.rec.reason;
    }
    ExpectStoredEpochsKept(before.at("tune"), again["tune"]);
  }

  // The ballast gone, the file system has less than the 64 MiB a RocksDB
  // that ran out of space waits for: if the blob store was what found the
  // disk full, `baton --server URL resume` is interrupted again (exit 6),
  // saying how much is free, how much is needed and how to resume. With
  // room, it finishes the run.
  disk_->Free();
  auto resume = [&](std::string* output) {
    int rc = -1;
    *output = testing::Shell("BATON_TOKEN=" + server->token + " " BATON_BIN " --server " + url + " resume " + run_id +
                                 " --no-progress",
                             &rc);
    return rc;
  };
  std::string resume_output;
  int resumed = resume(&resume_output);
  if (resumed == kExitResourceExhausted) {
    std::printf("[ disk full ] resume with too little room:\n%s\n", resume_output.c_str());
    EXPECT_NE(resume_output.find("MiB free there now; free at least 64 MiB"), std::string::npos) << resume_output;
    EXPECT_NE(resume_output.find("`baton --server " + url + " resume " + run_id + "`"), std::string::npos)
        << resume_output;
    run = testing::Parse(server->Client().Get(("/api/v1/runs/" + run_id).c_str()));
    EXPECT_EQ(run.value("status", ""), "interrupted") << run.dump();
    ASSERT_TRUE(disk_->Resize(256u << 20)) << disk_->error();
    resumed = resume(&resume_output);
  }
  EXPECT_EQ(resumed, 0) << resume_output;
  EXPECT_NE(resume_output.find("run " + run_id + " succeeded"), std::string::npos) << resume_output;
  EXPECT_EQ(testing::Parse(server->Client().Get(("/api/v1/runs/" + run_id).c_str())).value("status", ""), "succeeded");
  EXPECT_EQ(server->Stop(), 0);
  server.reset();
  std::string after_run;
  Snapshot after = testing::ReadNewestRun(store, &after_run);
  ASSERT_EQ(after_run, run_id);
  ExpectStoredEpochsKept(before.at("tune"), after["tune"]);
  ExpectLikeReference(after["tune"], reference);
  ExpectFsckClean(store);
}

}  // namespace
}  // namespace baton
