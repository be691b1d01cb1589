// Crash points with the real binaries: the orchestrator is killed (SIGKILL,
// by the BATON_CRASH_AT hook of common/crash_point.h) at named, exact points
// of a small pipeline — prepare, a 4-trial tuning study with the median
// pruner, and a train stage initialised from the best trial — and resumed:
//  - `baton run`, killed at each point in a fresh store, then `baton resume`;
//  - `baton serve`, killed at each point in turn while it runs one triggered
//    run, and started again each time: it resumes the run by itself (and the
//    next point kills the resumed server, so every resume is itself resumed).
// After each crash: every epoch the dead orchestrator had committed is kept
// unchanged, finished trials are never rerun, interrupted trials continue
// from their last stored epoch, no row is duplicated, `baton store fsck` is
// clean, the orphaned workers exit by themselves within seconds, and the
// results equal an uninterrupted run's (plain SGD with per-epoch seeds and
// one trial at a time, so the pruner decides the same: bit for bit).
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "store/lineage_db.h"
#include "tests/e2e/processes.h"
#include "tests/e2e/tiny_runs.h"
#include "tests/support/files.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

struct TrialState {
  store::TrialRecord rec;
  std::vector<store::EpochRecord> epochs;
  std::vector<store::Edge> edges;  // upstream, depth 1
};
struct StageState {
  store::StageRecord rec;
  std::map<int, TrialState> trials;  // by number
};
struct RunState {
  store::RunRecord run;
  std::map<std::string, StageState> stages;
};

// What a crash left behind: the state, and the points where it was taken.
struct Crash {
  std::string point;
  RunState state;
};

using testing::ReadFile;

// The metrics that the seeds decide (samples_per_second is wall-clock).
Json Deterministic(Json metrics) {
  metrics.erase("samples_per_second");
  return metrics;
}

int CountEdges(const TrialState& t, const std::string& kind) {
  int n = 0;
  for (const auto& e : t.edges) n += e.kind == kind ? 1 : 0;
  return n;
}

class CrashPointsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // Workers orphaned by a killed orchestrator become our children, so
    // that we can see them go (and reap them).
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  }

  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("baton-e2e-crash-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "pipeline.json") << Pipeline().dump(2);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  // Fashion-MNIST subset, a linear model; 4 plain-SGD learning rates tried
  // one at a time for 3 epochs, the median rule stopping the poor ones after
  // their first epoch; then 2 epochs of training from the best trial's last
  // epoch.
  static Json Pipeline() {
    Json doc = testing::LinearGridPipeline("e2e-crash", 5, 1000, {0.05, 0.0005, 0.1, 0.0002}, 3, 1);
    doc["stages"]["tune"]["pruner"] = {{"type", "median"}, {"min_resource", 1}, {"n_startup_trials", 1}};
    doc["stages"]["train"] = {{"type", "train"}, {"depends_on", {"tune"}},
                              {"hyperparameters", {{"from", "tune"}, {"trial", "best"}}},
                              {"init_from", {{"stage", "tune"}, {"trial", "best"}, {"epoch", "last"}}},
                              {"epochs", 2}};
    return doc;
  }

  // Starts `baton --store STORE ARGS...` with BATON_CRASH_AT=crash_at (unset
  // if empty); stdout and stderr go to `log`.
  pid_t Start(const fs::path& store, const std::vector<std::string>& args, const std::string& crash_at,
              const fs::path& log) {
    std::vector<std::string> argv = {"baton", "--store", store.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::fflush(nullptr);  // the child must not write our buffered output again
    const pid_t pid = fork();
    if (pid == 0) {
      setenv("BATON_WORKER", BATON_WORKER_BIN, 1);
      if (crash_at.empty()) {
        unsetenv("BATON_CRASH_AT");
      } else {
        setenv("BATON_CRASH_AT", crash_at.c_str(), 1);
      }
      if (freopen(log.c_str(), "a", stdout) != nullptr) dup2(fileno(stdout), 2);
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      execv(BATON_BIN, cargv.data());
      _exit(127);
    }
    return pid;
  }

  // Reaps orphaned workers that have exited, noting when.
  void ReapOrphans() {
    for (auto& [pid, o] : orphans_) {
      if (o.gone) continue;
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        o.gone = true;
        o.linger = std::chrono::duration<double>(Clock::now() - o.orphaned).count();
      }
    }
  }

  // Waits for `pid` to end (reaping orphans meanwhile); returns its wait
  // status, or kills it and fails after `limit`.
  int Wait(pid_t pid, std::chrono::seconds limit) {
    const auto give_up = Clock::now() + limit;
    while (true) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) return status;
      ReapOrphans();
      if (Clock::now() > give_up) {
        ADD_FAILURE() << "process " << pid << " still running after " << limit.count() << " s; killed";
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return status;
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  // After the orchestrator died: its workers are ours now. Remembers them.
  void CollectOrphans(const std::string& point) {
    for (const auto& [pid, ppid] : testing::BatonWorkers()) {
      if (ppid == getpid() && !orphans_.count(pid)) orphans_[pid] = {point, Clock::now()};
    }
  }

  // Every orphan exited by itself within seconds of its orchestrator's
  // death; no other baton-worker of ours is left.
  void CheckOrphansGone() {
    const auto give_up = Clock::now() + 30s;
    while (Clock::now() < give_up) {
      ReapOrphans();
      bool all = true;
      for (const auto& [pid, o] : orphans_) all = all && o.gone;
      if (all) break;
      std::this_thread::sleep_for(50ms);
    }
    std::map<std::string, std::pair<int, double>> by_point;  // orphans, slowest exit
    for (const auto& [pid, o] : orphans_) {
      if (!o.gone) {
        ADD_FAILURE() << o.point << ": orphaned worker " << pid << " never exited by itself";
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        continue;
      }
      EXPECT_LT(o.linger, 15.0) << o.point << ": an orphaned worker took " << o.linger << " s to exit";
      auto& [n, slowest] = by_point[o.point];
      n += 1;
      slowest = std::max(slowest, o.linger);
    }
    for (const auto& [point, p] : by_point) {
      std::printf("[ %s ] %d orphaned worker(s) gone within %.1f s\n", point.c_str(), p.first, p.second);
    }
    orphans_.clear();
    for (const auto& [pid, ppid] : testing::BatonWorkers()) {
      EXPECT_NE(ppid, getpid()) << "stray baton-worker " << pid;
    }
  }

  static RunState Read(const fs::path& store, const std::string& run_id) {
    auto db = store::LineageDb::Open(store / "lineage.db");
    RunState out;
    auto run = db->GetRun(run_id);
    if (!run) return out;
    out.run = *run;
    for (const auto& s : db->GetStages(run_id)) {
      StageState& stage = out.stages[s.name];
      stage.rec = s;
      for (const auto& t : db->GetTrials(s.id)) {
        stage.trials[t.number] = {t, db->GetEpochs(t.id), db->Upstream("trial:" + std::to_string(t.id), 1)};
      }
    }
    return out;
  }

  static std::string OnlyRun(const fs::path& store) {
    auto runs = store::LineageDb::Open(store / "lineage.db")->ListRuns(10);
    return runs.size() == 1 ? runs.front().id : "";
  }

  int Baton(const fs::path& store, const std::vector<std::string>& args, const fs::path& log) {
    const int status = Wait(Start(store, args, "", log), 300s);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // The uninterrupted run, in a store of its own.
  void RunReference() {
    const fs::path store = dir_ / "reference";
    ASSERT_EQ(Baton(store, {"run", (dir_ / "pipeline.json").string(), "--no-progress"}, dir_ / "reference.log"), 0)
        << ReadFile(dir_ / "reference.log");
    reference_ = Read(store, OnlyRun(store));
    ASSERT_EQ(reference_.run.status, "succeeded");
    const auto& tune = reference_.stages["tune"].trials;
    ASSERT_EQ(tune.size(), 4u);
    int pruned = 0;
    for (const auto& [n, t] : tune) {
      pruned += t.rec.status == "pruned" ? 1 : 0;
      tune_epochs_ += static_cast<int>(t.epochs.size());
    }
    ASSERT_GE(pruned, 1) << "the median rule stopped no trial; the pipeline no longer tests it";
    ASSERT_LT(pruned, 3);
    ASSERT_EQ(tune.at(0).epochs.size(), 3u);
    ASSERT_EQ(reference_.stages["train"].trials.at(0).epochs.size(), 2u);
    // The first pruned trial's stopping epoch, counted over the whole run.
    for (const auto& [n, t] : tune) {
      if (t.rec.status == "pruned") break;
      first_stop_epoch_ += static_cast<int>(t.epochs.size());
    }
    first_stop_epoch_ += static_cast<int>(tune.at(first_pruned()).epochs.size());
  }
  int first_pruned() const {
    for (const auto& [n, t] : reference_.stages.at("tune").trials) {
      if (t.rec.status == "pruned") return n;
    }
    return -1;
  }

  // The kill points, each at a hit that a fresh run reaches.
  std::vector<std::string> FreshRunPoints() const {
    const int tune_trials = 4;
    return {
        "stage.started:2",                                           // tune's tasks committed
        "trial.started:2",                                           // tune trial 0 marked running
        "initial.recorded:1",                                        // tune trial 0's initial weights
        "epoch.unrecorded:2",                                        // trial 0 epoch 1's blobs, no row
        "epoch.recorded:2",                                          // trial 0 epoch 1 committed, not acked
        "epoch.recorded:" + std::to_string(first_stop_epoch_),       // a "stop" committed, not acted on
        "trial.finished:2",                                          // tune trial 0 done, not acked
        "trial.started:3",                                           // tune trial 1 marked running
        "stage.finished:2",                                          // tune done, train not started
        "init_from.resolved:1",                                      // selected, not recorded
        "initial.recorded:" + std::to_string(tune_trials + 1),       // train's initialized_from
        "epoch.recorded:" + std::to_string(tune_epochs_ + 1),        // train's first epoch
        "stage.finished:3",                                          // the last stage, not the run
    };
  }

  // What a crash at `point` must have left: the run unfinished, recorded
  // where the point says.
  void CheckCrashState(const std::string& point, const RunState& s) {
    SCOPED_TRACE("state at the crash");
    EXPECT_EQ(s.run.status, "running");
    const std::string name = point.substr(0, point.find(':'));
    if (name == "init_from.resolved") {
      // The start transaction never committed: nothing resolved, no task.
      EXPECT_EQ(s.stages.at("tune").rec.status, "succeeded");
      EXPECT_EQ(s.stages.at("train").rec.status, "pending");
      EXPECT_FALSE(s.stages.at("train").rec.resolved.contains("init_from"));
      EXPECT_TRUE(s.stages.at("train").trials.empty());
    }
    if (name == "stage.finished" && s.stages.at("train").rec.status == "pending") {
      EXPECT_EQ(s.stages.at("tune").rec.status, "succeeded");
    }
  }

  // The resumed run against what the crash left and the reference.
  void CheckResumed(const std::string& point, const std::vector<Crash>& crashes, const fs::path& store,
                    const std::string& run_id) {
    const RunState after = Read(store, run_id);
    ASSERT_EQ(after.run.status, "succeeded") << point << ": " << after.run.error;
    for (const Crash& crash : crashes) {
      SCOPED_TRACE("compared with the state at the crash at " + crash.point);
      for (const auto& [stage_name, stage] : crash.state.stages) {
        const StageState& now = after.stages.at(stage_name);
        EXPECT_EQ(now.rec.id, stage.rec.id);
        if (stage.rec.status == "succeeded") {
          EXPECT_EQ(now.rec.output, stage.rec.output) << stage_name;
          EXPECT_EQ(now.rec.finished_at, stage.rec.finished_at) << stage_name << " finished again";
          EXPECT_EQ(now.rec.resolved, stage.rec.resolved) << stage_name;
        }
        if (stage.rec.resolved.contains("init_from")) {
          EXPECT_EQ(now.rec.resolved["init_from"], stage.rec.resolved["init_from"]) << stage_name << " resolved again";
        }
        for (const auto& [n, t] : stage.trials) {
          ASSERT_TRUE(now.trials.count(n)) << stage_name << " trial " << n << " disappeared";
          const TrialState& tn = now.trials.at(n);
          EXPECT_EQ(tn.rec.id, t.rec.id);
          EXPECT_EQ(tn.rec.hyperparameters, t.rec.hyperparameters);
          EXPECT_EQ(tn.rec.seed, t.rec.seed);
          // Every committed epoch is still there, unchanged.
          ASSERT_GE(tn.epochs.size(), t.epochs.size()) << stage_name << " trial " << n << " lost epochs";
          for (size_t e = 0; e < t.epochs.size(); ++e) {
            EXPECT_EQ(tn.epochs[e].checkpoint, t.epochs[e].checkpoint) << stage_name << " trial " << n << " epoch " << e;
            EXPECT_EQ(tn.epochs[e].created_at, t.epochs[e].created_at) << stage_name << " trial " << n << " epoch " << e;
            EXPECT_EQ(tn.epochs[e].metrics, t.epochs[e].metrics) << stage_name << " trial " << n << " epoch " << e;
          }
          if (t.rec.status == "succeeded" || t.rec.status == "pruned") {
            // Finished trials were not rerun.
            EXPECT_EQ(tn.rec.status, t.rec.status) << stage_name << " trial " << n;
            EXPECT_EQ(tn.rec.attempts, t.rec.attempts) << stage_name << " trial " << n << " reran";
            EXPECT_EQ(tn.rec.finished_at, t.rec.finished_at) << stage_name << " trial " << n << " reran";
            EXPECT_EQ(tn.rec.output, t.rec.output) << stage_name << " trial " << n;
            EXPECT_EQ(tn.epochs.size(), t.epochs.size()) << stage_name << " trial " << n << " reran";
          } else if (!t.epochs.empty() && tn.epochs.size() > t.epochs.size()) {
            // An interrupted trial that went on did so from its last epoch.
            bool from_last = false;
            for (const auto& e : tn.edges) {
              if (e.kind == "resumed_from" && e.dst == "checkpoint:" + t.epochs.back().checkpoint &&
                  e.attrs.value("start_epoch", -1) == static_cast<int>(t.epochs.size())) {
                from_last = true;
              }
            }
            EXPECT_TRUE(from_last) << stage_name << " trial " << n << " did not continue from its epoch "
                                   << t.epochs.size() - 1;
          }
        }
      }
    }
    // No duplicate rows, one resolution, and exactly the reference's results.
    for (const auto& [stage_name, ref] : reference_.stages) {
      SCOPED_TRACE("stage " + stage_name);
      const StageState& now = after.stages.at(stage_name);
      EXPECT_EQ(now.rec.status, ref.rec.status);
      ASSERT_EQ(now.trials.size(), ref.trials.size());
      if (stage_name != "tune") {  // tune's output (the study) holds samples per second
        EXPECT_EQ(now.rec.output, ref.rec.output);
      }
      if (ref.rec.resolved.contains("init_from")) {
        const Json& a = now.rec.resolved["init_from"];
        const Json& b = ref.rec.resolved["init_from"];
        for (const char* key : {"trial_number", "epoch", "checkpoint", "rank"}) EXPECT_EQ(a[key], b[key]) << key;
      }
      for (const auto& [n, r] : ref.trials) {
        const TrialState& t = now.trials.at(n);
        EXPECT_EQ(t.rec.status, r.rec.status) << "trial " << n;
        EXPECT_EQ(t.rec.hyperparameters, r.rec.hyperparameters) << "trial " << n;
        EXPECT_EQ(t.rec.output, r.rec.output) << "trial " << n;
        EXPECT_EQ(t.rec.initial_checkpoint, r.rec.initial_checkpoint) << "trial " << n;
        ASSERT_EQ(t.epochs.size(), r.epochs.size()) << "trial " << n;
        for (size_t e = 0; e < t.epochs.size(); ++e) {
          EXPECT_EQ(t.epochs[e].epoch, static_cast<int>(e)) << "trial " << n;
          EXPECT_EQ(t.epochs[e].checkpoint, r.epochs[e].checkpoint) << "trial " << n << " epoch " << e;
          EXPECT_EQ(Deterministic(t.epochs[e].metrics), Deterministic(r.epochs[e].metrics))
              << "trial " << n << " epoch " << e;
        }
        for (const char* kind : {"initialized_from", "hyperparameters_from", "part_of", "trained_on"}) {
          EXPECT_EQ(CountEdges(t, kind), CountEdges(r, kind)) << "trial " << n << " " << kind << " edges";
        }
      }
    }
    const int fsck = Baton(store, {"store", "fsck"}, dir_ / "fsck.log");
    EXPECT_EQ(fsck, 0) << point << ": store fsck:\n" << ReadFile(dir_ / "fsck.log");
    std::printf("[ %s ] resumed to the reference's results; fsck exit %d\n", point.c_str(), fsck);
  }

  std::string KillLine(const std::string& point) const {
    const size_t colon = point.find(':');
    const std::string hit = colon == std::string::npos ? "1" : point.substr(colon + 1);
    return "BATON_CRASH_AT: killed at " + point.substr(0, colon) + " (hit " + hit + ")";
  }

  fs::path dir_;
  RunState reference_;
  int tune_epochs_ = 0;       // epochs of every tune trial in the reference
  int first_stop_epoch_ = 0;  // hit of epoch.recorded answered "stop" first
  struct Orphan {
    std::string point;  // where its orchestrator was killed
    Clock::time_point orphaned;
    bool gone = false;
    double linger = 0;  // seconds from orphaned to reaped
  };
  std::map<pid_t, Orphan> orphans_;
};

TEST_F(CrashPointsTest, BatonRunKilledAtEachPointResumesToTheUninterruptedResult) {
  ASSERT_NO_FATAL_FAILURE(RunReference());
  const auto points = FreshRunPoints();
  for (size_t k = 0; k < points.size(); ++k) {
    const std::string& point = points[k];
    SCOPED_TRACE("killed at " + point);
    const auto began = Clock::now();
    const fs::path store = dir_ / ("run-" + std::to_string(k));
    const fs::path log = dir_ / ("run-" + std::to_string(k) + ".log");
    const int status = Wait(Start(store, {"run", (dir_ / "pipeline.json").string(), "--no-progress"}, point, log), 300s);
    CollectOrphans(point);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "baton run was not killed at " << point << ":\n" << ReadFile(log);
    ASSERT_NE(ReadFile(log).find(KillLine(point)), std::string::npos) << ReadFile(log);
    const std::string run_id = OnlyRun(store);
    ASSERT_FALSE(run_id.empty());
    const Crash crash{point, Read(store, run_id)};
    CheckCrashState(point, crash.state);

    const fs::path resume_log = dir_ / ("resume-" + std::to_string(k) + ".log");
    ASSERT_EQ(Baton(store, {"resume", run_id, "--no-progress"}, resume_log), 0) << ReadFile(resume_log);
    ASSERT_NO_FATAL_FAILURE(CheckResumed(point, {crash}, store, run_id));
    std::printf("[ %s ] crash and resume took %.1f s\n", point.c_str(),
                std::chrono::duration<double>(Clock::now() - began).count());
  }
  // The orphans of each crash were reaped (and timed) while the later ones ran.
  CheckOrphansGone();
}


// One run triggered over REST; the server is killed at every point in turn,
// and each restart resumes the run by itself (until the next point kills it).
TEST_F(CrashPointsTest, BatonServeKilledAtEachPointResumesByItself) {
  ASSERT_NO_FATAL_FAILURE(RunReference());
  // Hits count from each restart; each point is reached by the work the run
  // has left after the previous one.
  const std::vector<std::string> chain = {
      "epoch.recorded:2",      // tune trial 0 epoch 1 committed, not acked
      "resume.loaded",         // the restart's own resume committed, nothing run
      "epoch.unrecorded:1",    // trial 0 resumed; epoch 2's blobs stored, no row
      "trial.finished:1",      // trial 0 resumed again and done, not acked
      "epoch.recorded:1",      // trial 1's first epoch (its "stop" if pruned) committed
      "trial.started:1",       // the next trial marked running, not handed out
      "initial.recorded:1",    // that trial's initial weights recorded
      "stage.finished:1",      // tune done, train not started
      "init_from.resolved:1",  // selected, not recorded
      "stage.started:1",       // train's task committed
      "initial.recorded:1",    // train's initialized_from recorded
      "epoch.recorded:1",      // train's first epoch committed, not acked
      "stage.finished:1",      // train done, the run not
  };
  const fs::path store = dir_ / "served";
  fs::create_directories(store);
  std::string run_id;
  std::vector<Crash> crashes;
  for (size_t k = 0; k <= chain.size(); ++k) {
    const std::string point = k < chain.size() ? chain[k] : "";
    SCOPED_TRACE(point.empty() ? "the last restart" : "killed at " + point + " (server start " + std::to_string(k) + ")");
    const fs::path log = dir_ / ("serve-" + std::to_string(k) + ".log");
    const pid_t pid = Start(store, {"serve", "--port", "0"}, point, log);
    if (k == 0) {
      // Trigger the run once the server listens.
      int port = 0;
      const auto give_up = Clock::now() + 60s;
      while (port == 0 && Clock::now() < give_up) {
        const std::string text = ReadFile(log);
        const std::string prefix = "listening on http://127.0.0.1:";
        const size_t at = text.find(prefix);
        if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
          port = std::stoi(text.substr(at + prefix.size()));
        } else {
          std::this_thread::sleep_for(20ms);
        }
      }
      ASSERT_NE(port, 0) << ReadFile(log);
      std::string token;
      std::ifstream(store / "api-token") >> token;
      httplib::Client c("127.0.0.1", port);
      c.set_bearer_token_auth(token);
      auto res = c.Post("/api/v1/runs", Json{{"pipeline", Pipeline()}}.dump(), "application/json");
      ASSERT_TRUE(res) << httplib::to_string(res.error());
      ASSERT_EQ(res->status, 201) << res->body;
      run_id = Json::parse(res->body)["run_id"].get<std::string>();
    }
    if (point.empty()) {
      // It finishes the run by itself; then it is stopped.
      const auto give_up = Clock::now() + 300s;
      std::string status;
      while (Clock::now() < give_up) {
        status = store::LineageDb::Open(store / "lineage.db")->GetRun(run_id)->status;
        if (status != "running" && status != "pending") break;
        int st = 0;
        ASSERT_NE(waitpid(pid, &st, WNOHANG), pid) << "the server ended:\n" << ReadFile(log);
        ReapOrphans();
        std::this_thread::sleep_for(100ms);
      }
      EXPECT_EQ(status, "succeeded");
      kill(pid, SIGTERM);
      const int st = Wait(pid, 60s);
      EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << ReadFile(log);
      EXPECT_NE(ReadFile(log).find("resuming interrupted run " + run_id), std::string::npos) << ReadFile(log);
      break;
    }
    const int st = Wait(pid, 300s);
    const std::string label = point + " (server start " + std::to_string(k) + ")";
    CollectOrphans(label);
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        << "baton serve was not killed at " << point << ":\n" << ReadFile(log);
    ASSERT_NE(ReadFile(log).find(KillLine(point)), std::string::npos) << ReadFile(log);
    if (k > 0) {
      EXPECT_NE(ReadFile(log).find("resuming interrupted run " + run_id), std::string::npos) << ReadFile(log);
    }
    crashes.push_back({label, Read(store, run_id)});
    CheckCrashState(point, crashes.back().state);
  }
  CheckOrphansGone();
  ASSERT_NO_FATAL_FAILURE(CheckResumed("baton serve", crashes, store, run_id));
}

}  // namespace
}  // namespace baton
