// `baton resume RUN` with the real binaries: a `baton run` is killed (SIGKILL)
// at several points of a small tuning pipeline, its orphaned workers give up
// by themselves, and the resumed run ends exactly where an uninterrupted run
// of the same pipeline does: every epoch recorded before the kill kept as it
// was, finished trials never rerun, interrupted trials continued from their
// last epoch (plain SGD, per-epoch seeding: bit for bit).
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
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "tests/e2e/processes.h"
#include "tests/e2e/tiny_runs.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::TrialState;

class ResumeRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("baton-e2e-resume-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "pipeline.json") << Pipeline().dump(2);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A 4-trial grid of plain SGD learning rates, 4 epochs each, 2 at a time.
  static Json Pipeline() {
    return testing::LinearGridPipeline("e2e-resume", 11, 2000, {0.1, 0.05, 0.02, 0.01}, 4, 2);
  }

  // Runs a baton command to its end; returns its exit status, stdout in *out.
  int Baton(const fs::path& store, const std::string& args, std::string* out) {
    return testing::RunBaton(store, args, out, "2>>" + (dir_ / "stderr.log").string());
  }

  // Starts `baton run` in the background; returns its pid.
  pid_t StartRun(const fs::path& store) {
    return testing::StartBatonRun(store, dir_ / "pipeline.json", dir_ / "killed-run.log");
  }

  // The baton-worker processes whose parent is `parent`.
  static std::vector<pid_t> Workers(pid_t parent) {
    std::vector<pid_t> out;
    for (const auto& [pid, ppid] : testing::BatonWorkers()) {
      if (ppid == parent) out.push_back(pid);
    }
    return out;
  }

  fs::path dir_;
};

// A kill point: true once the killed run's lineage DB shows it.
struct KillPoint {
  std::string name;
  std::function<bool(const testing::RunSnapshot&)> reached;
};

TEST_F(ResumeRunTest, AKilledRunResumesToTheResultOfAnUninterruptedOne) {
  // The uninterrupted run, in a store of its own.
  std::string out;
  ASSERT_EQ(Baton(dir_ / "reference", "run " + (dir_ / "pipeline.json").string() + " --workers 2 --no-progress", &out), 0)
      << out;
  std::string reference_run;
  auto reference = testing::ReadNewestRun(dir_ / "reference", &reference_run);
  ASSERT_EQ(reference["tune"].size(), 4u);

  const std::vector<KillPoint> points = {
      {"during the prepare stage",
       [](const auto& s) { return s.count("prep") && s.at("prep").count(0) && s.at("prep").at(0).rec.status == "running"; }},
      {"after the first epoch",
       [](const auto& s) {
         if (!s.count("tune")) return false;
         for (const auto& [n, t] : s.at("tune")) {
           if (!t.epochs.empty()) return true;
         }
         return false;
       }},
      {"after the first trial finished",
       [](const auto& s) {
         if (!s.count("tune")) return false;
         for (const auto& [n, t] : s.at("tune")) {
           if (t.rec.status == "succeeded") return true;
         }
         return false;
       }},
  };
  for (size_t k = 0; k < points.size(); ++k) {
    SCOPED_TRACE(points[k].name);
    const fs::path store = dir_ / ("killed-" + std::to_string(k));
    const pid_t pid = StartRun(store);
    ASSERT_GT(pid, 0);
    std::string run_id;
    testing::RunSnapshot before;
    bool reached = false;
    std::vector<pid_t> workers;
    const auto give_up = std::chrono::steady_clock::now() + 120s;
    while (!reached && std::chrono::steady_clock::now() < give_up) {
      if (fs::exists(store / "lineage.db")) {
        try {
          before = testing::ReadNewestRun(store, &run_id);
          reached = points[k].reached(before);
        } catch (const std::exception&) {
          // The schema may not be there yet.
        }
      }
      if (!reached) std::this_thread::sleep_for(10ms);
    }
    ASSERT_TRUE(reached) << "never got there";
    workers = Workers(pid);
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status));
    // What was recorded when it died (it may have got a little further
    // than the poll saw).
    before = testing::ReadNewestRun(store, &run_id);
    {
      auto db = store::LineageDb::Open(store / "lineage.db");
      ASSERT_EQ(db->GetRun(run_id)->status, "running");
    }
    int interrupted = 0, finished = 0;  // tune trials cut short after an epoch, done
    if (before.count("tune")) {
      for (const auto& [n, t] : before["tune"]) {
        interrupted += t.rec.status == "running" && !t.epochs.empty() ? 1 : 0;
        finished += t.rec.status == "succeeded" ? 1 : 0;
      }
    }
    std::printf("[ kill %s ] %d tune trial(s) interrupted after an epoch, %d finished\n", points[k].name.c_str(),
                interrupted, finished);
    if (k == 1) {
      EXPECT_GE(interrupted, 1);
    }
    if (k == 2) {
      EXPECT_GE(finished, 1);
    }
    // The orphaned workers give up on their coordinator by themselves.
    const auto killed_at = std::chrono::steady_clock::now();
    for (pid_t w : workers) {
      while (testing::Alive(w) && std::chrono::steady_clock::now() - killed_at < 60s) std::this_thread::sleep_for(100ms);
      EXPECT_FALSE(testing::Alive(w)) << "worker " << w << " outlived its coordinator by a minute";
    }
    const double linger = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
    EXPECT_LT(linger, 15.0) << "orphaned workers took " << linger << " s to exit";
    std::printf("[ kill %s ] %zu orphaned worker(s) exited within %.1f s\n", points[k].name.c_str(),
                workers.size(), linger);

    out.clear();
    ASSERT_EQ(Baton(store, "resume " + run_id + " --no-progress", &out), 0) << out;
    EXPECT_NE(out.find("resuming run " + run_id), std::string::npos) << out;
    std::string after_run;
    auto after = testing::ReadNewestRun(store, &after_run);
    ASSERT_EQ(after_run, run_id);
    auto db = store::LineageDb::Open(store / "lineage.db");
    auto blobs = store::BlobStore::Open(store / "blobs");
    ASSERT_EQ(db->GetRun(run_id)->status, "succeeded") << db->GetRun(run_id)->error;
    ASSERT_EQ(after["tune"].size(), 4u);
    for (const auto& [stage, trials] : before) {
      for (const auto& [n, t] : trials) {
        const TrialState& now = after[stage][n];
        EXPECT_EQ(now.rec.id, t.rec.id);
        EXPECT_EQ(now.rec.hyperparameters, t.rec.hyperparameters);
        EXPECT_EQ(now.rec.seed, t.rec.seed);
        // Every epoch recorded before the kill is still there, unchanged.
        ASSERT_GE(now.epochs.size(), t.epochs.size()) << stage << " trial " << n;
        for (size_t e = 0; e < t.epochs.size(); ++e) {
          EXPECT_EQ(now.epochs[e].checkpoint, t.epochs[e].checkpoint);
          EXPECT_EQ(now.epochs[e].created_at, t.epochs[e].created_at);
          EXPECT_EQ(now.epochs[e].metrics, t.epochs[e].metrics);
        }
        if (t.rec.status == "succeeded") {
          // Finished trials were not rerun.
          EXPECT_EQ(now.rec.attempts, t.rec.attempts);
          EXPECT_EQ(now.rec.finished_at, t.rec.finished_at);
          EXPECT_EQ(now.rec.output, t.rec.output);
          EXPECT_EQ(now.epochs.size(), t.epochs.size());
        }
        // A trial interrupted after some epochs went on from the last one.
        if (t.rec.status == "running" && !t.epochs.empty()) {
          int resumed = 0;
          for (const auto& edge : db->Upstream("trial:" + std::to_string(t.rec.id), 1)) {
            if (edge.kind != "resumed_from") continue;
            ++resumed;
            EXPECT_EQ(edge.dst, "checkpoint:" + t.epochs.back().checkpoint);
            EXPECT_EQ(edge.attrs["start_epoch"], static_cast<int>(t.epochs.size()));
          }
          EXPECT_EQ(resumed, 1) << "trial " << n;
        }
      }
    }
    for (const auto& [n, t] : after["tune"]) {
      EXPECT_EQ(t.rec.status, "succeeded") << n;
      // No duplicate epochs: 0..3, once each; every checkpoint verifies.
      ASSERT_EQ(t.epochs.size(), 4u) << n;
      for (size_t e = 0; e < t.epochs.size(); ++e) {
        EXPECT_EQ(t.epochs[e].epoch, static_cast<int>(e));
        store::Manifest m = store::ParseManifest(blobs->Get(t.epochs[e].checkpoint));
        for (const auto& tensor : m.tensors) EXPECT_EQ(blobs->Get(tensor.blob).size(), tensor.bytes);
      }
      // Bit for bit what the uninterrupted run got.
      const TrialState& ref = reference["tune"].at(n);
      EXPECT_EQ(t.rec.hyperparameters, ref.rec.hyperparameters) << n;
      for (size_t e = 0; e < t.epochs.size(); ++e) {
        for (const char* metric : {"val_accuracy", "val_loss", "train_loss"}) {
          EXPECT_EQ(t.epochs[e].metrics[metric], ref.epochs[e].metrics[metric]) << "trial " << n << " epoch " << e << " " << metric;
        }
        EXPECT_EQ(t.epochs[e].checkpoint, ref.epochs[e].checkpoint) << "trial " << n << " epoch " << e;
      }
    }
    // The studies agree: the same best trial, the same final metrics.
    auto best = [](const std::map<int, TrialState>& trials) {
      int best_n = -1;
      double best_v = -1;
      for (const auto& [n, t] : trials) {
        const double v = t.epochs.back().metrics["val_accuracy"].get<double>();
        if (v > best_v) {
          best_v = v;
          best_n = n;
        }
      }
      return best_n;
    };
    const int best_n = best(after["tune"]);
    EXPECT_EQ(best_n, best(reference["tune"]));
    EXPECT_EQ(after["tune"][best_n].epochs.back().metrics["val_accuracy"],
              reference["tune"][best_n].epochs.back().metrics["val_accuracy"]);
    // Resuming a finished run is refused.
    out.clear();
    EXPECT_NE(Baton(store, "resume " + run_id, &out), 0);
  }
}

TEST_F(ResumeRunTest, UnknownRunIsNotFound) {
  std::string out;
  EXPECT_EQ(Baton(dir_ / "store", "resume 20260101-000000-beef", &out), 3);  // kExitNotFound
  std::ifstream err(dir_ / "stderr.log");
  std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("no run 20260101-000000-beef"), std::string::npos) << text;
}

}  // namespace
}  // namespace baton
