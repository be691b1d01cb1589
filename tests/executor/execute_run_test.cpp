// ExecuteRun behind the executor seam: any Executor's workers drive a run to
// its end, and a worker whose lease expires is killed through the executor
// and replaced by it.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "common/error.h"
#include "executor/execute_run.h"
#include "tests/orchestrator/fake_worker.h"

namespace baton::executor {
namespace {

using orchestrator::Coordinator;
using orchestrator::testing::CoordinatorTest;
using orchestrator::testing::FakeWorker;
using orchestrator::testing::SmallPipeline;
using namespace std::chrono_literals;

class FakeEndpoint : public WorkerEndpoint {
 public:
  std::string url() const override { return "http://127.0.0.1:1"; }
  std::string token() const override { return "fake-token"; }
};

// An executor whose workers are threads running FakeWorker against the
// coordinator in process. Kill ends a worker the way SIGKILL would: whatever
// it was doing is dropped, and its end is reported like an exit.
class ThreadExecutor : public Executor {
 public:
  ThreadExecutor(Coordinator& c, store::BlobStore& blobs, WorkerLaunch launch, WorkerEvents events,
                 std::function<void(FakeWorker&, int id)> script)
      : c_(c), blobs_(blobs), launch_(std::move(launch)), events_(std::move(events)), script_(std::move(script)) {}
  ~ThreadExecutor() override { Stop(0ms); }

  void Start() override {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < launch_.workers; ++i) Spawn();
  }
  void Kill(int worker_id, const std::string& why) override {
    std::lock_guard<std::mutex> lock(mu_);
    kills.push_back({worker_id, why});
    killed_.insert(worker_id);
    cv_.notify_all();
  }
  void Stop(std::chrono::milliseconds) override {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopped = true;
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
  }
  int Alive() override {
    std::lock_guard<std::mutex> lock(mu_);
    return alive_;
  }
  // Blocks worker `id` until Kill ends it; true if it was killed.
  bool HangUntilKilled(int id) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 30s, [&] { return killed_.count(id) > 0; });
  }

  std::vector<std::pair<int, std::string>> kills;  // under mu_
  int started = 0;                                 // workers started in all
  bool stopped = false;

 private:
  // With mu_ held.
  void Spawn() {
    const int id = started++;
    ++alive_;
    threads_.emplace_back([this, id] {
      FakeWorker worker(c_, blobs_, id);
      if (script_) script_(worker, id);
      std::string reason = "worker " + std::to_string(id) + " exited with status 0";
      try {
        worker.Loop();
      } catch (const Error& e) {
        // A killed worker's late report, refused by the coordinator.
        reason = "worker " + std::to_string(id) + " was killed (" + e.what() + ")";
      }
      events_.on_exit(id, reason);
      std::lock_guard<std::mutex> lock(mu_);
      --alive_;
      if (!stopped && events_.has_work()) Spawn();
    });
  }

  Coordinator& c_;
  store::BlobStore& blobs_;
  const WorkerLaunch launch_;
  const WorkerEvents events_;
  const std::function<void(FakeWorker&, int)> script_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<int> killed_;
  std::vector<std::thread> threads_;
  int alive_ = 0;
};

// Hands ExecuteRun an executor the test keeps, so it can look at it after.
class Borrowed : public Executor {
 public:
  explicit Borrowed(Executor& e) : e_(e) {}
  void Start() override { e_.Start(); }
  void Kill(int worker_id, const std::string& why) override { e_.Kill(worker_id, why); }
  void Stop(std::chrono::milliseconds grace) override { e_.Stop(grace); }
  int Alive() override { return e_.Alive(); }

 private:
  Executor& e_;
};

class ExecuteRunTest : public CoordinatorTest {
 protected:
  // Executes `doc` through ExecuteRun with `workers` thread workers.
  std::string Execute(const Json& doc, int workers, std::chrono::milliseconds lease,
                      std::function<void(FakeWorker&, int)> script = {}) {
    orchestrator::Pipeline p = orchestrator::LoadPipeline(doc);
    const std::string run_id = orchestrator::CreateRun(*db_, p);
    orchestrator::CoordinatorOptions coordinator_options;
    coordinator_options.lease = lease;
    Coordinator c(*blobs_, *db_, p, run_id, coordinator_options);
    ExecuteOptions options;
    options.workers = workers;
    options.serve = [&](Coordinator& served, int n) {
      EXPECT_EQ(&served, &c);
      served_workers_ = n;
      return std::make_unique<FakeEndpoint>();
    };
    options.make_executor = [&](const WorkerLaunch& launch, WorkerEvents events) {
      launch_ = launch;
      executor_ = std::make_unique<ThreadExecutor>(c, *blobs_, launch, std::move(events), script);
      return std::make_unique<Borrowed>(*executor_);
    };
    ExecuteRun(c, options, [] {});
    EXPECT_EQ(c.Status(), "succeeded");
    if (executor_ == nullptr) {
      ADD_FAILURE() << "no executor was made";
      return run_id;
    }
    EXPECT_TRUE(executor_->stopped);  // stopped before ExecuteRun returned
    EXPECT_EQ(executor_->Alive(), 0);
    return run_id;
  }

  int served_workers_ = 0;
  WorkerLaunch launch_;
  std::unique_ptr<ThreadExecutor> executor_;
};

TEST_F(ExecuteRunTest, AnyExecutorsWorkersDriveTheRunToItsEnd) {
  const std::string run_id = Execute(SmallPipeline(data_.string()), 2, 30s);
  EXPECT_EQ(db_->GetRun(run_id)->status, "succeeded");
  // The executor got the endpoint and the worker count ExecuteRun served.
  EXPECT_EQ(served_workers_, 2);
  EXPECT_EQ(launch_.workers, 2);
  EXPECT_EQ(launch_.coordinator_url, "http://127.0.0.1:1");
  EXPECT_EQ(launch_.token, "fake-token");
  for (const auto& s : db_->GetStages(run_id)) EXPECT_EQ(s.status, "succeeded") << s.name;
}

TEST_F(ExecuteRunTest, AWorkerWhoseLeaseExpiresIsKilledThroughTheExecutorAndReplaced) {
  Json doc = SmallPipeline(data_.string());
  doc["stages"]["tune"]["budget"]["max_trials"] = 2;
  doc["stages"]["tune"]["retry"] = {{"max_attempts", 2}, {"backoff_seconds", 0}};
  std::mutex mu;
  int64_t hung_task = 0;
  // The only worker hangs in the first epoch it trains (a stopped process)
  // until the executor kills it; its replacement does the rest.
  const std::string run_id = Execute(doc, 1, 300ms, [&](FakeWorker& w, int id) {
    if (id != 0) return;
    w.accuracy = [&, id](const Json& hp, int64_t task, int epoch) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (hung_task == 0) hung_task = task;
      }
      if (task == hung_task) {
        EXPECT_TRUE(executor_->HangUntilKilled(id));
      }
      return FakeWorker::Accuracy(hp, epoch);
    };
  });
  ASSERT_NE(hung_task, 0);
  ASSERT_EQ(executor_->kills.size(), 1u);
  EXPECT_EQ(executor_->kills[0].first, 0);
  EXPECT_EQ(executor_->kills[0].second, "its lease expired");
  EXPECT_EQ(executor_->started, 2);  // the killed worker was replaced
  auto trial = *db_->GetTrial(hung_task);
  EXPECT_EQ(trial.status, "succeeded");
  EXPECT_EQ(trial.attempts, 2);
  EXPECT_NE(trial.reason.find("lease expired: worker 0"), std::string::npos) << trial.reason;
  EXPECT_EQ(db_->GetRun(run_id)->status, "succeeded");
}

}  // namespace
}  // namespace baton::executor
