// Leases and heartbeats with the real binaries: a worker that stops
// answering (SIGSTOP) loses its trial after the lease, is killed, and the
// trial continues on another worker from its last stored epoch; workers
// whose `baton run` is SIGKILLed in the middle of a long epoch notice by
// their heartbeats and exit at once, not at the epoch's end.
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
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"
#include "tests/e2e/processes.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/files.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

using testing::Alive;
using testing::ReadFile;

// The --worker-id of a baton-worker process (-1 if unknown).
int WorkerId(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> args;
  std::string arg;
  while (std::getline(in, arg, '\0')) args.push_back(arg);
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--worker-id") return std::stoi(args[i + 1]);
  }
  return -1;
}

class LeaseRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("baton-e2e-lease-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    for (pid_t pid : stopped_) {
      if (Alive(pid)) ::kill(pid, SIGKILL);  // never leave a stray behind
    }
    if (run_pid_ > 0 && Alive(run_pid_)) {
      ::kill(run_pid_, SIGKILL);
      waitpid(run_pid_, nullptr, 0);
    }
    fs::remove_all(dir_);
  }

  // A Fashion-MNIST subset and a grid over plain SGD learning rates, a
  // hidden layer of `hidden` units.
  static Json Pipeline(int train_subset, int hidden, std::vector<double> lrs, int epochs) {
    Json doc = {{"schema_version", "1"}, {"name", "e2e-lease"}, {"seed", 5}};
    doc["stages"]["prep"] = testing::FashionMnistPrep(train_subset);
    Json layers = Json::parse(R"([{"name": "flat", "type": "flatten"},
                                  {"name": "fc1", "type": "linear", "out_features": 1},
                                  {"name": "act", "type": "relu"},
                                  {"name": "fc2", "type": "linear", "out_features": 10}])");
    layers[1]["out_features"] = hidden;
    doc["stages"]["tune"] = {
        {"type", "tune"}, {"depends_on", {"prep"}},
        {"model", {{"layers", layers}}},
        {"hyperparameters", {{"batch_size", 50}, {"optimizer", "sgd"}}},
        {"search_space", {{"lr", {{"type", "categorical"}, {"values", lrs}}}}},
        {"sampler", {{"type", "grid"}}},
        {"objective", {{"metric", "val_accuracy"}, {"mode", "max"}}},
        {"budget", {{"max_trials", lrs.size()}, {"max_parallel", 2}, {"max_epochs", epochs}}},
        {"retry", {{"max_attempts", 2}, {"backoff_seconds", 0}}}};
    return doc;
  }

  // Starts `baton run` on `doc` in the background (output to run.log).
  void StartRun(const Json& doc, const std::string& workers, const std::string& lease) {
    std::ofstream(dir_ / "pipeline.json") << doc.dump(2);
    const std::string log = (dir_ / "run.log").string();
    const std::string pipeline = (dir_ / "pipeline.json").string();
    const std::string store = (dir_ / "store").string();
    std::fflush(nullptr);
    run_pid_ = fork();
    if (run_pid_ == 0) {
      setenv("BATON_WORKER", BATON_WORKER_BIN, 1);
      FILE* f = freopen(log.c_str(), "a", stdout);
      if (f != nullptr) dup2(fileno(stdout), 2);
      execl(BATON_BIN, "baton", "--store", store.c_str(), "run", pipeline.c_str(), "--workers", workers.c_str(),
            "--lease-seconds", lease.c_str(), "--no-progress", static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_GT(run_pid_, 0);
  }

  // Waits up to `limit` for `baton run` to end; its exit status (-1: still running).
  int WaitRun(std::chrono::seconds limit) {
    const auto until = Clock::now() + limit;
    while (Clock::now() < until) {
      int status = 0;
      if (waitpid(run_pid_, &status, WNOHANG) == run_pid_) {
        run_pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(50ms);
    }
    return -1;
  }

  // The store's only run and its tune stage's trials (empty until there).
  std::vector<store::TrialRecord> TuneTrials(std::string* run_id) {
    std::vector<store::TrialRecord> out;
    if (!fs::exists(dir_ / "store" / "lineage.db")) return out;
    try {
      auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
      auto runs = db->ListRuns(10);
      if (runs.empty()) return out;
      *run_id = runs.front().id;
      for (const auto& s : db->GetStages(*run_id)) {
        if (s.name == "tune") out = db->GetTrials(s.id);
      }
    } catch (const std::exception&) {
      // The schema may not be there yet.
    }
    return out;
  }

  std::vector<store::EpochRecord> Epochs(int64_t trial_id) {
    auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
    return db->GetEpochs(trial_id);
  }

  // The pid of the worker of `baton run` whose log says it runs task `id`
  // now (its last "task N: ..." start line), or -1.
  pid_t WorkerRunning(const std::string& run_id, int64_t id) {
    static const std::regex start(R"(task (\d+): ")");
    for (const auto& [pid, ppid] : testing::BatonWorkers()) {
      if (ppid != run_pid_) continue;
      const std::string log = ReadFile(dir_ / "store" / "logs" / run_id / ("worker-" + std::to_string(WorkerId(pid)) + ".log"));
      std::string current;
      for (auto it = std::sregex_iterator(log.begin(), log.end(), start); it != std::sregex_iterator(); ++it) {
        current = (*it)[1];
      }
      if (current == std::to_string(id)) return pid;
    }
    return -1;
  }

  fs::path dir_;
  pid_t run_pid_ = -1;
  std::vector<pid_t> stopped_;
};

TEST_F(LeaseRunTest, AStoppedWorkersTrialIsRetriedElsewhereFromItsLastEpoch) {
  const int kEpochs = 5;
  StartRun(Pipeline(/*train_subset=*/3000, /*hidden=*/64, {0.1, 0.05}, kEpochs), "2", "2");
  // Stop the worker of a trial that has stored an epoch and is still going.
  std::string run_id;
  store::TrialRecord victim;
  std::vector<store::EpochRecord> before;
  pid_t stopped = -1;
  std::set<int64_t> tried;
  const auto give_up = Clock::now() + 180s;
  while (stopped < 0 && Clock::now() < give_up) {
    for (const auto& t : TuneTrials(&run_id)) {
      if (t.status != "running" || tried.count(t.id) || Epochs(t.id).empty()) continue;
      const pid_t pid = WorkerRunning(run_id, t.id);
      if (pid < 0) continue;
      ASSERT_EQ(::kill(pid, SIGSTOP), 0);
      stopped_.push_back(pid);
      std::this_thread::sleep_for(300ms);  // a report already on the wire lands
      tried.insert(t.id);
      std::string ignored;
      for (const auto& now : TuneTrials(&ignored)) {
        if (now.id == t.id) victim = now;
      }
      before = Epochs(t.id);
      if (victim.status == "running" && static_cast<int>(before.size()) < kEpochs) {
        stopped = pid;
        break;
      }
      ::kill(pid, SIGCONT);  // it finished just before the stop: another one
    }
    if (stopped < 0) std::this_thread::sleep_for(20ms);
  }
  ASSERT_GT(stopped, 0) << "never caught a trial between two epochs\n" << ReadFile(dir_ / "run.log");
  std::printf("[ stopped ] worker pid %d running trial %d after %zu of %d epochs\n", stopped, victim.number,
              before.size(), kEpochs);

  ASSERT_EQ(WaitRun(300s), 0) << ReadFile(dir_ / "run.log");
  // The stopped worker was killed, not left behind.
  EXPECT_FALSE(Alive(stopped)) << "the stopped worker " << stopped << " outlived its run";
  for (const auto& [pid, ppid] : testing::BatonWorkers()) {
    EXPECT_NE(pid, stopped);
  }

  {
    auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
    auto blobs = store::BlobStore::Open(dir_ / "store" / "blobs");
    ASSERT_EQ(db->GetRun(run_id)->status, "succeeded") << db->GetRun(run_id)->error;
    const store::TrialRecord after = *db->GetTrial(victim.id);
    EXPECT_EQ(after.status, "succeeded");
    EXPECT_EQ(after.attempts, 2);
    EXPECT_NE(after.reason.find("lease expired: worker"), std::string::npos) << after.reason;
    // Every epoch once; those stored before the stop unchanged; all verify.
    const auto epochs = db->GetEpochs(victim.id);
    ASSERT_EQ(epochs.size(), static_cast<size_t>(kEpochs));
    for (size_t e = 0; e < epochs.size(); ++e) {
      EXPECT_EQ(epochs[e].epoch, static_cast<int>(e));
      store::Manifest m = store::ParseManifest(blobs->Get(epochs[e].checkpoint));
      for (const auto& tensor : m.tensors) EXPECT_EQ(blobs->Get(tensor.blob).size(), tensor.bytes);
    }
    for (size_t e = 0; e < before.size(); ++e) {
      EXPECT_EQ(epochs[e].checkpoint, before[e].checkpoint);
      EXPECT_EQ(epochs[e].created_at, before[e].created_at);
    }
    // The retry went on from the last epoch stored before the stop, and its
    // lineage says why.
    int resumed = 0;
    for (const auto& edge : db->Upstream("trial:" + std::to_string(victim.id), 1)) {
      if (edge.kind != "resumed_from") continue;
      ++resumed;
      EXPECT_EQ(edge.attrs["start_epoch"], static_cast<int>(before.size()));
      EXPECT_EQ(edge.dst, "checkpoint:" + before.back().checkpoint);
      EXPECT_NE(edge.attrs.value("after", "").find("lease expired"), std::string::npos) << edge.attrs.dump();
    }
    EXPECT_EQ(resumed, 1);
    // The other trials ran once.
    for (const auto& t : db->GetTrials(victim.stage_id)) {
      if (t.id != victim.id) {
        EXPECT_EQ(t.attempts, 1) << "trial " << t.number << ": " << t.reason;
      }
    }
  }  // `baton show` opens the store itself

  // `baton show` tells the user.
  const std::string show = "BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + (dir_ / "store").string() +
                           " show " + run_id + " --stage tune";
  const testing::CmdResult shown = testing::Capture(show);
  EXPECT_EQ(shown.exit_code, 0);
  EXPECT_NE(shown.out.find("lease expired: worker"), std::string::npos) << shown.out;
}

TEST_F(LeaseRunTest, OrphanedWorkersExitMidEpochByTheirHeartbeats) {
  // Epochs far longer than the test waits (over ten seconds even on a fast
  // machine): 48000 training examples through a hidden layer of 4096 units.
  // (16000 through 2048 took 2.2 s on a fast day: the epoch could end in
  // the ~2 s the heartbeats need to give up.)
  StartRun(Pipeline(/*train_subset=*/60000, /*hidden=*/4096, {0.05}, 3), "1", "2");
  std::string run_id;
  int64_t trial_id = 0;
  const auto give_up = Clock::now() + 180s;
  while (trial_id == 0 && Clock::now() < give_up) {
    for (const auto& t : TuneTrials(&run_id)) {
      // Training has begun once its initial weights are recorded.
      if (t.status == "running" && !t.initial_checkpoint.empty()) trial_id = t.id;
    }
    if (trial_id == 0) std::this_thread::sleep_for(20ms);
  }
  ASSERT_NE(trial_id, 0) << ReadFile(dir_ / "run.log");
  // The worker reports its initial weights just before it trains the first
  // epoch, so it is in that epoch now.
  std::vector<pid_t> workers;
  for (const auto& [pid, ppid] : testing::BatonWorkers()) {
    if (ppid == run_pid_) workers.push_back(pid);
  }
  ASSERT_EQ(workers.size(), 1u);
  const int worker_id = WorkerId(workers[0]);
  ASSERT_EQ(::kill(run_pid_, SIGKILL), 0);
  ASSERT_EQ(WaitRun(10s), 128 + SIGKILL);
  const auto killed_at = Clock::now();
  ASSERT_TRUE(Epochs(trial_id).empty()) << "the first epoch ended before the kill; make it longer";

  while (Alive(workers[0]) && Clock::now() - killed_at < 60s) std::this_thread::sleep_for(50ms);
  const double linger = std::chrono::duration<double>(Clock::now() - killed_at).count();
  ASSERT_FALSE(Alive(workers[0])) << "the orphaned worker outlived its coordinator by a minute";
  std::printf("[ orphan ] the worker exited %.1f s after its baton run was killed\n", linger);
  // Its heartbeats told it (lease 2 s): it stopped in the middle of the
  // epoch, not after it (an epoch of this size takes far longer).
  const std::string log = ReadFile(dir_ / "store" / "logs" / run_id / ("worker-" + std::to_string(worker_id) + ".log"));
  EXPECT_NE(log.find("exiting: coordinator answered no heartbeat for task " + std::to_string(trial_id)),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("epoch 1/3"), std::string::npos) << log;
  EXPECT_LT(linger, 15.0);
}

}  // namespace
}  // namespace baton
