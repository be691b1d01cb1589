// The run state machine on its own, without the Coordinator's lock, clock
// or waiting: each call is given the instant it decides at, and a sink that
// records every effect (and the transactions around them) before applying
// it to a real RocksDB + SQLite store. Nothing here sleeps or reads a clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/vocabulary.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/internal/effects.h"
#include "orchestrator/internal/run_state.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using testing::CoordinatorTest;
using testing::PutFakeCheckpoint;
using testing::SmallPipeline;
using namespace std::chrono_literals;
using Next = Coordinator::Next;

// Applies effects to the store as the Coordinator's sink does, and logs each
// as Describe() names it, with "begin", "commit" and "rollback" around the
// transactions. `before`, if set, sees each effect first and may throw (a
// store write that fails).
class RecordingSink : public EffectSink {
 public:
  RecordingSink(store::LineageDb& db, store::BlobStore& blobs) : inner_(db, blobs, nullptr, nullptr) {}

  Applied Apply(Effect effect) override {
    if (before) before(effect);
    log.push_back(Describe(effect));
    return inner_.Apply(std::move(effect));
  }
  void Atomically(const std::function<void()>& fn) override {
    log.push_back("begin");
    try {
      inner_.Atomically(fn);
    } catch (...) {
      log.push_back("rollback");
      throw;
    }
    log.push_back("commit");
  }

  std::vector<std::string> log;
  std::function<void(const Effect&)> before;

 private:
  StoreEffects inner_;
};

// True if `want` appears in `log` in this order (other lines may come
// between).
bool InOrder(const std::vector<std::string>& log, const std::vector<std::string>& want) {
  auto at = log.begin();
  for (const auto& w : want) {
    at = std::find(at, log.end(), w);
    if (at == log.end()) return false;
    ++at;
  }
  return true;
}

std::string Joined(const std::vector<std::string>& log) {
  std::string out;
  for (const auto& l : log) out += "  " + l + "\n";
  return out;
}

class RunStateTest : public CoordinatorTest {
 protected:
  // prep -> tune (one trial of 3 epochs) -> train, its state started at t0_.
  void StartWithOneTrial(int max_attempts = 1, double backoff_seconds = 0) {
    Json doc = SmallPipeline(data_.string());
    doc["stages"]["tune"]["budget"]["max_trials"] = 1;
    if (max_attempts > 1) {
      doc["stages"]["tune"]["retry"] = {{"max_attempts", max_attempts}, {"backoff_seconds", backoff_seconds}};
    }
    pipeline_ = LoadPipeline(doc);
    run_id_ = CreateRun(*db_, pipeline_);
    options_.lease = 1000ms;
    reads_ = std::make_unique<StoreReads>(*db_, *blobs_);
    sink_ = std::make_unique<RecordingSink>(*db_, *blobs_);
    state_ = std::make_unique<RunState>(pipeline_, run_id_, options_, *reads_, *sink_);
    state_->Start(t0_);
  }

  // The instant `after` past t0_, on both clocks.
  Instant At(std::chrono::milliseconds after) const {
    return {t0_.wall + static_cast<double>(after.count()) / 1000.0, t0_.steady + after};
  }

  // Hands out the prepare task at t0_ and completes it.
  void FinishPrepare() {
    Json task;
    double wake_at = 0;
    ASSERT_EQ(state_->NextTask(0, t0_, &task, &wake_at), Next::kTask);
    ASSERT_EQ(task["kind"], "prepare");
    state_->Complete(task["id"].get<int64_t>(),
                     {{"output", PutFakeCheckpoint(*blobs_, "d", "dataset")}, {"attempt", 1}}, t0_);
  }

  store::StageRecord StageNamed(const std::string& name) {
    for (auto& s : db_->GetStages(run_id_)) {
      if (s.name == name) return s;
    }
    ADD_FAILURE() << "no stage " << name;
    return {};
  }

  const Instant t0_{1.0e9, std::chrono::steady_clock::time_point{} + 1h};
  Pipeline pipeline_;
  std::string run_id_;
  std::unique_ptr<StoreReads> reads_;
  std::unique_ptr<RecordingSink> sink_;
  std::unique_ptr<RunState> state_;
};

TEST_F(RunStateTest, AFinishedTaskWritesItsTrialThenItsStageThenStartsTheNextStageInOneTransaction) {
  StartWithOneTrial();
  const std::string prep_id = std::to_string(StageNamed("prep").id);
  sink_->log.clear();
  FinishPrepare();
  const auto& log = sink_->log;
  // The trial is recorded before the crash point after it and before anyone
  // hears of it; then its stage; then the next stage's trials and its
  // running status are one transaction, announced only once committed.
  EXPECT_TRUE(InOrder(log, {"update_trial 1 running", "crash_point trial.started", "emit trial_started",
                            "update_trial 1 succeeded", "crash_point trial.finished", "emit trial_finished",
                            "update_stage prep succeeded", "crash_point stage.finished", "emit stage_finished",
                            "begin", "add_trial 0", "update_stage tune running", "commit",
                            "crash_point stage.started", "emit stage_started", "wake"}))
      << Joined(log);
  // Nothing is announced inside the transaction.
  auto begin = std::find(log.begin(), log.end(), "begin");
  auto commit = std::find(begin, log.end(), "commit");
  for (auto it = begin; it != commit; ++it) EXPECT_NE(it->rfind("emit ", 0), 0u) << *it;
  // What the effects said is what the store holds.
  EXPECT_EQ(StageNamed("prep").status, Name(StageStatus::kSucceeded));
  EXPECT_EQ(StageNamed("tune").status, Name(StageStatus::kRunning));
  EXPECT_EQ(db_->GetTrials(StageNamed("tune").id).size(), 1u);
  EXPECT_FALSE(state_->finished());
}

TEST_F(RunStateTest, ARetryWaitsForItsBackoffAtTheInstantsItIsGiven) {
  StartWithOneTrial(/*max_attempts=*/2, /*backoff_seconds=*/5);
  FinishPrepare();
  Json task;
  double wake_at = 0;
  const Instant failed_at = At(2s);
  ASSERT_EQ(state_->NextTask(1, At(1s), &task, &wake_at), Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  state_->Fail(id, {{"status", "failed"}, {"reason", "scripted"}, {"attempt", 1}}, failed_at);
  EXPECT_EQ(db_->GetTrial(id)->status, Name(TrialStatus::kPending));
  // Until the backoff has passed the worker waits, told when to look again.
  EXPECT_EQ(state_->NextTask(1, At(6999ms), &task, &wake_at), Next::kWait);
  EXPECT_DOUBLE_EQ(wake_at, failed_at.wall + 5);
  ASSERT_EQ(state_->NextTask(1, At(7s), &task, &wake_at), Next::kTask);
  EXPECT_EQ(task["id"], id);
  EXPECT_EQ(task["attempt"], 2);
  EXPECT_DOUBLE_EQ(db_->GetTrial(id)->started_at, At(7s).wall);
}

TEST_F(RunStateTest, ALeaseRunsOutOnTheSteadyTimeItIsGivenAndTheRetryStartsAtOnce) {
  StartWithOneTrial(/*max_attempts=*/2);
  FinishPrepare();
  Json task;
  double wake_at = 0;
  ASSERT_EQ(state_->NextTask(4, At(0s), &task, &wake_at), Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  // A heartbeat at 600 ms moves the lease's end to 1600 ms.
  state_->Heartbeat(id, {{"attempt", 1}}, At(600ms));
  EXPECT_TRUE(state_->ExpireLeases(At(1599ms)).empty());
  // The wall clock jumping back changes nothing: leases count steady time.
  Instant jumped = At(1600ms);
  jumped.wall -= 3600;
  EXPECT_EQ(state_->ExpireLeases(jumped), std::vector<int>{4});
  auto trial = db_->GetTrial(id);
  EXPECT_EQ(trial->status, Name(TrialStatus::kPending));
  EXPECT_NE(trial->reason.find("lease expired: worker 4 sent nothing for 1 s"), std::string::npos) << trial->reason;
  ASSERT_EQ(state_->NextTask(5, At(1600ms), &task, &wake_at), Next::kTask);
  EXPECT_EQ(task["attempt"], 2);
  // The expired attempt's late report is refused and records nothing.
  try {
    state_->ReportEpoch(id, {{"epoch", 0}, {"checkpoint", PutFakeCheckpoint(*blobs_, "late")},
                             {"metrics", {{"val_accuracy", 0.5}}}, {"attempt", 1}},
                        At(1700ms));
    ADD_FAILURE() << "the fenced attempt's report was taken";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAborted) << e.what();
  }
  EXPECT_TRUE(db_->GetEpochs(id).empty());
}

TEST_F(RunStateTest, AFullDiskWhileAStageExpandsRollsItBackAndAnnouncesNothing) {
  StartWithOneTrial();
  // The store refuses the tune stage's first trial.
  sink_->before = [](const Effect& e) {
    if (std::holds_alternative<effect::AddTrial>(e)) {
      throw Error(ErrorCode::kResourceExhausted, "no space left on device");
    }
  };
  sink_->log.clear();
  try {
    FinishPrepare();
    ADD_FAILURE() << "the full disk was not reported";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kResourceExhausted);
  }
  const auto& log = sink_->log;
  EXPECT_TRUE(InOrder(log, {"update_stage prep succeeded", "begin", "rollback"})) << Joined(log);
  EXPECT_EQ(std::find(log.begin(), log.end(), "emit stage_started"), log.end()) << Joined(log);
  // The tune stage's transaction (its trained_on edge written, then the
  // refused trial) ends in a rollback, and nothing after it is committed.
  auto begin = std::find(log.rbegin(), log.rend(), "begin").base();
  ASSERT_NE(begin, log.begin()) << Joined(log);
  EXPECT_EQ(log.back(), "rollback") << Joined(log);
  EXPECT_EQ(std::find(begin, log.end(), "commit"), log.end()) << Joined(log);
  // The stage is as it was before: pending, with no trials; a resume
  // starts it afresh.
  const auto tune = StageNamed("tune");
  EXPECT_EQ(tune.status, Name(StageStatus::kPending));
  EXPECT_TRUE(db_->GetTrials(tune.id).empty());
  for (const auto& e : db_->Upstream("stage:" + std::to_string(tune.id), 1)) {
    EXPECT_NE(e.kind, "trained_on") << e.src << " -> " << e.dst;
  }
  EXPECT_EQ(StageNamed("prep").status, Name(StageStatus::kSucceeded));
}

}  // namespace
}  // namespace baton::orchestrator
