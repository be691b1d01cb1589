// A full disk stops the run (Coordinator::Interrupt): the run becomes
// "interrupted" with a reason naming RESOURCE_EXHAUSTED and `baton resume`,
// workers are told the run is over, late reports are refused without being
// recorded, no trial fails or spends an attempt, and a resume finishes the
// run from the last stored epochs.
#include <gtest/gtest.h>

#include <thread>

#include "common/error.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"
#include "tests/store/temp_dir.h"

namespace baton::orchestrator {
namespace {

using testing::CoordinatorTest;
using testing::FakeWorker;
using store::testing::CodeOf;
using testing::SmallPipeline;
using namespace std::chrono_literals;

using InterruptTest = CoordinatorTest;

TEST_F(InterruptTest, AFullDiskStopsTheRunWithoutFailingTrialsAndAResumeFinishesIt) {
  Json doc = SmallPipeline(data_.string());
  doc["stages"]["tune"]["retry"] = {{"max_attempts", 3}, {"backoff_seconds", 0}};
  Pipeline p = LoadPipeline(doc);
  const std::string run_id = CreateRun(*db_, p);
  int64_t t0 = 0, t1 = 0;
  std::string last0;
  {
    Coordinator c(*blobs_, *db_, p, run_id);
    c.Start();
    FakeWorker helper(c, *blobs_, 0);
    Json task;
    ASSERT_EQ(c.NextTask(0, 1s, &task), Coordinator::Next::kTask);
    c.Complete(task["id"].get<int64_t>(), {{"output", helper.PutCheckpoint("dataset", "dataset")}});
    ASSERT_EQ(c.NextTask(0, 1s, &task), Coordinator::Next::kTask);
    t0 = task["id"].get<int64_t>();
    ASSERT_EQ(c.NextTask(1, 1s, &task), Coordinator::Next::kTask);
    t1 = task["id"].get<int64_t>();
    for (int64_t id : {t0, t1}) {
      c.ReportInitial(id, {{"checkpoint", helper.PutCheckpoint(std::to_string(id) + "/init")},
                           {"init", {{"source", nullptr}}}});
    }
    last0 = helper.PutCheckpoint("t0/0");
    ASSERT_EQ(c.ReportEpoch(t0, {{"epoch", 0}, {"checkpoint", last0}, {"metrics", {{"val_accuracy", 0.5}}}}),
              "continue");

    const Error full(ErrorCode::kResourceExhausted, "blob store /x/blobs: writing a blob: No space left on device");
    ASSERT_TRUE(c.Interrupt(full));
    EXPECT_FALSE(c.Interrupt(full));  // once
    EXPECT_EQ(c.Status(), "interrupted");
    EXPECT_TRUE(c.WaitFinished(0ms));
    EXPECT_FALSE(c.HasWork());
    const std::string reason = c.InterruptReason();
    EXPECT_NE(reason.find("RESOURCE_EXHAUSTED"), std::string::npos) << reason;
    EXPECT_NE(reason.find("No space left on device"), std::string::npos) << reason;
    EXPECT_NE(reason.find("baton resume " + run_id), std::string::npos) << reason;
    const auto run = db_->GetRun(run_id);
    EXPECT_EQ(run->status, "interrupted");
    EXPECT_EQ(run->error, reason);

    // Workers: the run is over; their late reports are refused, not recorded.
    EXPECT_EQ(c.NextTask(2, 10ms, &task), Coordinator::Next::kDone);
    const std::string late = helper.PutCheckpoint("t0/1");
    EXPECT_EQ(CodeOf([&] {
                c.ReportEpoch(t0, {{"epoch", 1}, {"checkpoint", late}, {"metrics", {{"val_accuracy", 0.6}}}});
              }),
              ErrorCode::kResourceExhausted);
    EXPECT_EQ(CodeOf([&] { c.Fail(t1, {{"status", "failed"}, {"reason", "507 on upload"}}); }),
              ErrorCode::kResourceExhausted);
    c.WorkerLost(0, "worker 0 exited with status 4");
    EXPECT_FALSE(c.Cancel("too late"));
  }
  // No trial failed or spent an attempt; the epoch stored before is there.
  for (int64_t id : {t0, t1}) {
    const auto t = db_->GetTrial(id);
    EXPECT_EQ(t->status, "running") << id;
    EXPECT_EQ(t->attempts, 1) << id;
  }
  ASSERT_EQ(db_->GetEpochs(t0).size(), 1u);
  EXPECT_EQ(db_->GetEpochs(t0)[0].checkpoint, last0);

  auto c = Coordinator::ForResume(*blobs_, *db_, run_id);
  c->Start();
  EXPECT_EQ(db_->GetRun(run_id)->status, "running");
  FakeWorker w0(*c, *blobs_, 10), w1(*c, *blobs_, 11);
  std::thread a([&] { w0.Loop(); }), b([&] { w1.Loop(); });
  EXPECT_TRUE(c->WaitFinished(30s));
  a.join();
  b.join();
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;
  for (int64_t id : {t0, t1}) {
    const auto t = db_->GetTrial(id);
    EXPECT_EQ(t->status, "succeeded") << id;
    EXPECT_EQ(t->attempts, 1) << id;
    EXPECT_EQ(db_->GetEpochs(id).size(), 3u) << id;
  }
  EXPECT_EQ(db_->GetEpochs(t0)[0].checkpoint, last0);  // continued from it, not redone
}

}  // namespace
}  // namespace baton::orchestrator
