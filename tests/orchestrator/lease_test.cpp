// Leases: a running attempt whose worker falls silent is failed, fenced and
// retried from its last stored epoch; reports and heartbeats keep it alive.
// Driven by hand against a real RocksDB + SQLite store; time is a clock the
// tests move, so nothing sleeps.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"
#include "orchestrator/coordinator.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using testing::CoordinatorTest;
using testing::FakeWorker;
using testing::ManualClock;
using testing::SmallPipeline;
using namespace std::chrono_literals;

// The error code and message of what `fn` throws (kInternal, "" if nothing).
template <typename Fn>
std::pair<ErrorCode, std::string> Thrown(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return {e.code(), e.what()};
  }
  return {ErrorCode::kInternal, ""};
}

class LeaseTest : public CoordinatorTest {
 protected:
  // prep -> tune (one trial of 3 epochs) -> train; the prepare task done.
  std::unique_ptr<Coordinator> StartWithOneTrial(int max_attempts, double backoff_seconds = 0) {
    Json doc = SmallPipeline(data_.string());
    doc["stages"]["tune"]["budget"]["max_trials"] = 1;
    if (max_attempts > 1) {
      doc["stages"]["tune"]["retry"] = {{"max_attempts", max_attempts}, {"backoff_seconds", backoff_seconds}};
    }
    Pipeline p = LoadPipeline(doc);
    run_id_ = CreateRun(*db_, p);
    CoordinatorOptions options;
    options.lease = 1000ms;
    options.clock = &clock_;
    auto c = std::make_unique<Coordinator>(*blobs_, *db_, p, run_id_, options);
    helper_ = std::make_unique<FakeWorker>(*c, *blobs_, 9);
    c->Start();
    Json task;
    EXPECT_EQ(c->NextTask(0, 10ms, &task), Coordinator::Next::kTask);
    c->Complete(task["id"].get<int64_t>(), {{"output", helper_->PutCheckpoint("d", "dataset")}, {"attempt", 1}});
    return c;
  }

  Json Epoch(int epoch, int attempt) {
    return {{"epoch", epoch},
            {"checkpoint", helper_->PutCheckpoint("e" + std::to_string(epoch))},
            {"metrics", {{"val_accuracy", 0.5 + 0.1 * epoch}}},
            {"attempt", attempt}};
  }

  ManualClock clock_;
  std::string run_id_;
  std::unique_ptr<FakeWorker> helper_;
};

TEST_F(LeaseTest, ASilentWorkerLosesItsAttemptWhichIsFencedAndRetriedFromTheLastEpoch) {
  auto c = StartWithOneTrial(/*max_attempts=*/2);
  Json task;
  ASSERT_EQ(c->NextTask(1, 10ms, &task), Coordinator::Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  EXPECT_EQ(task["attempt"], 1);
  // The task tells the worker its lease and how often to renew it.
  EXPECT_DOUBLE_EQ(task["lease_seconds"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(task["heartbeat_seconds"].get<double>(), 0.2);
  c->ReportInitial(id, {{"checkpoint", helper_->PutCheckpoint("init")}, {"init", {{"source", nullptr}}}, {"attempt", 1}});
  const Json epoch0 = Epoch(0, 1);
  EXPECT_EQ(c->ReportEpoch(id, epoch0), "continue");

  // Heartbeats keep the attempt alive well past one lease.
  for (int i = 0; i < 15; ++i) {
    clock_.Advance(100ms);
    EXPECT_DOUBLE_EQ(c->Heartbeat(id, {{"attempt", 1}})["lease_seconds"].get<double>(), 1.0);
    EXPECT_TRUE(c->ExpireLeases().empty()) << "after " << (i + 1) * 100 << " ms of heartbeats";
  }

  // Then the worker falls silent (hung, stopped): the lease runs out, and
  // not a moment before.
  clock_.Advance(999ms);
  EXPECT_TRUE(c->ExpireLeases().empty());
  clock_.Advance(1ms);
  EXPECT_EQ(c->ExpireLeases(), std::vector<int>{1});  // the executor kills worker 1
  EXPECT_TRUE(c->ExpireLeases().empty());
  auto trial = *db_->GetTrial(id);
  EXPECT_EQ(trial.status, "pending");
  EXPECT_NE(trial.reason.find("attempt 1 failed: lease expired: worker 1 sent nothing for 1 s (lease 1 s)"),
            std::string::npos)
      << trial.reason;

  // Its late reports are refused, naming why, and nothing of them is recorded.
  auto late = Thrown([&] { c->ReportEpoch(id, Epoch(1, 1)); });
  EXPECT_EQ(late.first, ErrorCode::kAborted);
  EXPECT_NE(late.second.find("attempt 1 was ended by the coordinator (lease expired"), std::string::npos) << late.second;
  EXPECT_EQ(Thrown([&] { c->Heartbeat(id, {{"attempt", 1}}); }).first, ErrorCode::kAborted);
  EXPECT_EQ(db_->GetEpochs(id).size(), 1u);

  // The retry continues from the last stored epoch, on another worker.
  ASSERT_EQ(c->NextTask(2, 10ms, &task), Coordinator::Next::kTask);
  ASSERT_EQ(task["id"], id);
  EXPECT_EQ(task["attempt"], 2);
  EXPECT_EQ(task["start_epoch"], 1);
  EXPECT_EQ(task["resume_checkpoint"], epoch0["checkpoint"]);

  // The old attempt stays fenced while the new one runs: its epoch, its
  // completion and its failure are all refused, and the new one goes on.
  late = Thrown([&] { c->ReportEpoch(id, Epoch(1, 1)); });
  EXPECT_EQ(late.first, ErrorCode::kAborted);
  EXPECT_NE(late.second.find("attempt 1 was superseded by attempt 2 (lease expired"), std::string::npos) << late.second;
  EXPECT_EQ(Thrown([&] { c->Complete(id, {{"output", epoch0["checkpoint"]}, {"attempt", 1}}); }).first,
            ErrorCode::kAborted);
  EXPECT_EQ(Thrown([&] { c->Fail(id, {{"status", "failed"}, {"reason", "late"}, {"attempt", 1}}); }).first,
            ErrorCode::kAborted);
  EXPECT_EQ(Thrown([&] { c->Heartbeat(id, {{"attempt", 3}}); }).first, ErrorCode::kInvalidArgument);
  EXPECT_EQ(db_->GetTrial(id)->status, "running");
  EXPECT_EQ(db_->GetEpochs(id).size(), 1u);

  c->ReportInitial(id, {{"checkpoint", epoch0["checkpoint"]}, {"resumed", true}, {"attempt", 2}});
  EXPECT_EQ(c->ReportEpoch(id, Epoch(1, 2)), "continue");
  EXPECT_EQ(c->ReportEpoch(id, Epoch(2, 2)), "continue");
  const Json last = Epoch(2, 2);
  c->Complete(id, {{"output", last["checkpoint"]}, {"attempt", 2}});
  EXPECT_TRUE(c->ExpireLeases().empty());  // a finished attempt holds no lease

  trial = *db_->GetTrial(id);
  EXPECT_EQ(trial.status, "succeeded");
  EXPECT_EQ(trial.attempts, 2);
  // Why it took a second attempt stays on record, and in its lineage.
  EXPECT_NE(trial.reason.find("lease expired"), std::string::npos) << trial.reason;
  auto epochs = db_->GetEpochs(id);
  ASSERT_EQ(epochs.size(), 3u);
  for (size_t e = 0; e < epochs.size(); ++e) EXPECT_EQ(epochs[e].epoch, static_cast<int>(e));
  EXPECT_EQ(epochs[0].checkpoint, epoch0["checkpoint"]);
  int resumed = 0;
  for (const auto& edge : db_->Upstream("trial:" + std::to_string(id), 1)) {
    if (edge.kind != "resumed_from") continue;
    ++resumed;
    EXPECT_EQ(edge.dst, "checkpoint:" + epoch0["checkpoint"].get<std::string>());
    EXPECT_EQ(edge.attrs["attempt"], 2);
    EXPECT_NE(edge.attrs.value("after", "").find("lease expired: worker 1"), std::string::npos) << edge.attrs.dump();
  }
  EXPECT_EQ(resumed, 1);
}

TEST_F(LeaseTest, ReportsRenewTheLeaseAndAnExpiryWithoutRetriesFailsTheTrial) {
  auto c = StartWithOneTrial(/*max_attempts=*/1);
  Json task;
  ASSERT_EQ(c->NextTask(1, 10ms, &task), Coordinator::Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  c->ReportInitial(id, {{"checkpoint", helper_->PutCheckpoint("init")}, {"init", {{"source", nullptr}}}, {"attempt", 1}});
  // Epoch reports alone (no heartbeats) keep it alive too.
  for (int e = 0; e < 2; ++e) {
    clock_.Advance(600ms);
    EXPECT_EQ(c->ReportEpoch(id, Epoch(e, 1)), "continue");
    EXPECT_TRUE(c->ExpireLeases().empty());
  }
  clock_.Advance(1200ms);
  EXPECT_EQ(c->ExpireLeases(), std::vector<int>{1});
  // No attempt left: the trial fails with the reason, its slot is free, and
  // the study (its only trial) fails and skips what depends on it.
  auto trial = *db_->GetTrial(id);
  EXPECT_EQ(trial.status, "failed");
  EXPECT_NE(trial.reason.find("lease expired: worker 1 sent nothing for"), std::string::npos) << trial.reason;
  EXPECT_EQ(db_->GetEpochs(id).size(), 2u);  // what it reported stays
  ASSERT_TRUE(c->WaitFinished(1s));
  auto run = db_->GetRun(run_id_);
  EXPECT_EQ(run->status, "failed");
  EXPECT_NE(run->error.find("lease expired"), std::string::npos) << run->error;
  EXPECT_EQ(Stage(run_id_, "train").status, "skipped");
}

TEST_F(LeaseTest, ARetryWaitsOutItsBackoffWhichDoublesWithEachFailedAttempt) {
  auto c = StartWithOneTrial(/*max_attempts=*/3, /*backoff_seconds=*/2);
  Json task;
  ASSERT_EQ(c->NextTask(1, 10ms, &task), Coordinator::Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  c->Fail(id, {{"status", "failed"}, {"reason", "boom"}, {"attempt", 1}});
  EXPECT_EQ(db_->GetTrial(id)->status, "pending");
  // 2 s after the first failure, and not before.
  clock_.Advance(1999ms);
  EXPECT_EQ(c->NextTask(1, 5ms, &task), Coordinator::Next::kWait);
  clock_.Advance(1ms);
  ASSERT_EQ(c->NextTask(1, 5ms, &task), Coordinator::Next::kTask);
  EXPECT_EQ(task["attempt"], 2);
  c->Fail(id, {{"status", "failed"}, {"reason", "boom again"}, {"attempt", 2}});
  // 4 s after the second.
  clock_.Advance(3999ms);
  EXPECT_EQ(c->NextTask(1, 5ms, &task), Coordinator::Next::kWait);
  clock_.Advance(1ms);
  ASSERT_EQ(c->NextTask(1, 5ms, &task), Coordinator::Next::kTask);
  EXPECT_EQ(task["attempt"], 3);
  // The trial's times are the clock's.
  const auto trial = *db_->GetTrial(id);
  EXPECT_DOUBLE_EQ(trial.started_at, clock_.Now());
}

TEST_F(LeaseTest, CancellingTheRunEndsTheRunningAttempts) {
  auto c = StartWithOneTrial(/*max_attempts=*/2);
  Json task;
  ASSERT_EQ(c->NextTask(1, 10ms, &task), Coordinator::Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  EXPECT_NO_THROW(c->Heartbeat(id, {{"attempt", 1}}));
  ASSERT_TRUE(c->Cancel("asked by the user"));
  // The worker's next heartbeat tells it to drop the task.
  auto answer = Thrown([&] { c->Heartbeat(id, {{"attempt", 1}}); });
  EXPECT_EQ(answer.first, ErrorCode::kAborted);
  EXPECT_NE(answer.second.find("the run was cancelled: asked by the user"), std::string::npos) << answer.second;
  EXPECT_TRUE(c->ExpireLeases().empty());
}

// An executor that cannot run workers (Slurm refusing its jobs) aborts the
// run: everything unfinished fails with the executor's reason, and the
// running attempt's worker hears so.
TEST_F(LeaseTest, AbortingTheRunFailsWhatIsUnfinishedWithTheReason) {
  auto c = StartWithOneTrial(/*max_attempts=*/3);
  c->SetWorkerPlacement(1, {{"executor", "slurm"}, {"slurm_job_id", "42"}});
  Json task;
  ASSERT_EQ(c->NextTask(1, 10ms, &task), Coordinator::Next::kTask);
  const int64_t id = task["id"].get<int64_t>();
  // Where the attempt runs is recorded with it.
  const auto running = *db_->GetTrial(id);
  ASSERT_EQ(running.placements.size(), 1u) << running.placements.dump();
  EXPECT_EQ(running.placements[0]["slurm_job_id"], "42");
  EXPECT_EQ(running.placements[0]["worker"], 1);
  EXPECT_EQ(running.placements[0]["attempt"], 1);

  ASSERT_TRUE(c->Abort("Slurm refused the worker job: Invalid partition name specified"));
  EXPECT_FALSE(c->Abort("twice"));
  EXPECT_EQ(c->Status(), "failed");
  const auto trial = *db_->GetTrial(id);
  EXPECT_EQ(trial.status, "failed");
  EXPECT_EQ(trial.attempts, 1) << "an aborted run retries nothing";
  EXPECT_NE(trial.reason.find("Invalid partition name"), std::string::npos) << trial.reason;
  auto answer = Thrown([&] { c->Heartbeat(id, {{"attempt", 1}}); });
  EXPECT_EQ(answer.first, ErrorCode::kAborted);
  EXPECT_NE(answer.second.find("the run failed: Slurm refused"), std::string::npos) << answer.second;
  const auto run = *db_->GetRun(c->run_id());
  EXPECT_EQ(run.status, "failed");
  EXPECT_NE(run.error.find("Invalid partition name"), std::string::npos) << run.error;
  for (const auto& s : db_->GetStages(c->run_id())) {
    if (s.status != "succeeded") {
      EXPECT_EQ(s.status, "failed") << s.name;
    }
  }
}

}  // namespace
}  // namespace baton::orchestrator
