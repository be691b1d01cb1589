// LineageDb's reads on connections of their own: they go on while another
// thread holds a write transaction, see every commit, and inside a
// transaction see that transaction's writes; ReadSnapshot keeps one view.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "store/lineage_db.h"
#include "tests/store/temp_dir.h"

namespace baton::store {
namespace {

using testing::CodeOf;

// How long a test waits for another thread before it calls that a failure.
constexpr auto kPatience = std::chrono::seconds(10);

RunRecord RunNamed(const std::string& id) {
  return RunRecord{id, "pipe", "fashion-cnn", "running", 0, 0, ""};
}

// A write transaction that another thread holds open: it creates run
// `run_id` and then waits, without committing, until Commit() (or until
// kPatience has passed, which released_in_time() then reports).
class HeldTransaction {
 public:
  HeldTransaction(LineageDb& db, const std::string& run_id)
      : thread_([this, &db, run_id] {
          try {
            db.InTransaction([&] {
              db.CreateRun(RunNamed(run_id));
              opened_.set_value();
              released_in_time_ = release_.get_future().wait_for(kPatience) ==
                                  std::future_status::ready;
            });
          } catch (...) {
            opened_.set_exception(std::current_exception());
          }
        }) {}
  ~HeldTransaction() {
    if (thread_.joinable()) Commit();
  }

  // Whether the transaction is open, within kPatience.
  bool WaitUntilOpen() {
    auto opened = opened_.get_future();
    if (opened.wait_for(kPatience) != std::future_status::ready) return false;
    opened.get();  // rethrows what the writer threw
    return true;
  }
  void Commit() {
    release_.set_value();
    thread_.join();
  }
  // False if the writer gave up waiting for Commit(): the test's reads were
  // stuck behind the transaction.
  bool released_in_time() const { return released_in_time_; }

 private:
  std::promise<void> opened_;
  std::promise<void> release_;
  bool released_in_time_ = false;  // written by thread_ before it ends
  std::thread thread_;             // last: starts after the promises exist
};

class LineageReadersTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = LineageDb::Open(dir_.path() / "lineage.db"); }

  // A committed run with a stage, a trial and one recorded epoch.
  int64_t AddTrialWithAnEpoch(const std::string& run_id) {
    db_->CreateRun(RunNamed(run_id));
    StageRecord s;
    s.run_id = run_id;
    s.name = "tune";
    s.type = "tune";
    s.status = "running";
    TrialRecord t;
    t.stage_id = db_->AddStage(s);
    t.kind = "train";
    t.status = "running";
    const int64_t trial = db_->AddTrial(t);
    db_->RecordEpoch(
        EpochRecord{trial, 0, {{"loss", 0.5}}, Sha256Hex(run_id), 1.5, 0},
        {{Sha256Hex(run_id), 10}});
    return trial;
  }

  testing::TempDir dir_;
  std::unique_ptr<LineageDb> db_;
};

TEST_F(LineageReadersTest, ReadsGoOnWhileAnotherThreadHoldsAWriteTransaction) {
  const int64_t trial = AddTrialWithAnEpoch("r-old");
  HeldTransaction writer(*db_, "r-new");
  ASSERT_TRUE(writer.WaitUntilOpen());

  // Each of these waited for the writer's commit when reads shared its
  // connection and mutex.
  ASSERT_TRUE(db_->GetRun("r-old"));
  EXPECT_FALSE(db_->GetRun("r-new")) << "read a write that is not committed";
  EXPECT_EQ(db_->ListRuns(10).size(), 1u);
  ASSERT_EQ(db_->GetStages("r-old").size(), 1u);
  EXPECT_EQ(db_->GetTrials(db_->GetStages("r-old")[0].id).size(), 1u);
  ASSERT_EQ(db_->GetEpochs(trial).size(), 1u);
  EXPECT_EQ(db_->GetEpochs(trial)[0].metrics["loss"], 0.5);
  EXPECT_EQ(db_->Upstream("checkpoint:" + Sha256Hex("r-old")).size(), 1u);
  EXPECT_EQ(db_->ListCheckpoints().size(), 1u);
  EXPECT_EQ(db_->Usage().size(), 1u);
  EXPECT_EQ(db_->SchemaVersion(), 4);

  writer.Commit();
  EXPECT_TRUE(writer.released_in_time());
  EXPECT_TRUE(db_->GetRun("r-new"));
}

TEST_F(LineageReadersTest, ReadersOnOtherThreadsSeeEveryCommit) {
  constexpr int kRuns = 200;
  std::atomic<int> committed{0};
  std::atomic<bool> stale{false};
  std::atomic<bool> gave_up{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      const auto deadline = std::chrono::steady_clock::now() + kPatience * 3;
      size_t last = 0;
      while (std::chrono::steady_clock::now() < deadline) {
        const int before = committed.load();
        const size_t seen = db_->ListRuns(0).size();
        // Everything committed before the read began is in it, and a later
        // read never sees less than an earlier one.
        if (seen < static_cast<size_t>(before) || seen < last) stale = true;
        last = seen;
        if (seen == static_cast<size_t>(kRuns)) return;
      }
      gave_up = true;
    });
  }
  for (int i = 0; i < kRuns; ++i) {
    db_->CreateRun(RunNamed("r" + std::to_string(i)));
    committed = i + 1;
  }
  for (auto& t : readers) t.join();
  EXPECT_FALSE(stale);
  EXPECT_FALSE(gave_up) << "a reader never saw all " << kRuns << " runs";
  EXPECT_EQ(db_->ListRuns(0).size(), static_cast<size_t>(kRuns));
}

TEST_F(LineageReadersTest, ReadsInsideATransactionSeeItsOwnWrites) {
  db_->InTransaction([&] {
    db_->CreateRun(RunNamed("r1"));
    ASSERT_TRUE(db_->GetRun("r1"));
    StageRecord s;
    s.run_id = "r1";
    s.name = "tune";
    s.type = "tune";
    s.status = "running";
    const int64_t stage = db_->AddStage(s);
    ASSERT_EQ(db_->GetStages("r1").size(), 1u);
    TrialRecord t;
    t.stage_id = stage;
    t.kind = "train";
    const int64_t trial = db_->AddTrial(t);
    db_->InTransaction([&] {
      db_->RecordEpoch(
          EpochRecord{trial, 0, {{"loss", 1}}, Sha256Hex("c"), 1, 0},
          {{Sha256Hex("c"), 3}});
      EXPECT_EQ(db_->GetEpochs(trial).size(), 1u);
    });
    db_->AddEdge(Edge{"trial:" + std::to_string(trial),
                      "stage:" + std::to_string(stage), "part_of",
                      Json::object()});
    // Two hops: checkpoint -> trial -> stage, on the transaction's view.
    EXPECT_EQ(db_->Upstream("checkpoint:" + Sha256Hex("c")).size(), 2u);
    EXPECT_EQ(db_->FindCheckpoint(Sha256Hex("c"))->first, trial);
  });
  EXPECT_TRUE(db_->GetRun("r1"));

  EXPECT_THROW(db_->InTransaction([&] {
    db_->CreateRun(RunNamed("r2"));
    EXPECT_TRUE(db_->GetRun("r2"));
    throw std::runtime_error("stop");
  }),
               std::runtime_error);
  EXPECT_FALSE(db_->GetRun("r2"));
}

// A transaction that failed, nested or not, leaves this thread's reads on
// connections of their own: they do not wait for another thread's
// transaction that is open afterwards.
TEST_F(LineageReadersTest, AfterAFailedTransactionReadsDoNotWaitForAWriter) {
  db_->CreateRun(RunNamed("r-old"));
  EXPECT_THROW(db_->InTransaction([&] {
    db_->InTransaction([] { throw std::runtime_error("inner"); });
  }),
               std::runtime_error);
  HeldTransaction writer(*db_, "r-new");
  ASSERT_TRUE(writer.WaitUntilOpen());
  EXPECT_TRUE(db_->GetRun("r-old"));
  EXPECT_FALSE(db_->GetRun("r-new"));
  writer.Commit();
  EXPECT_TRUE(writer.released_in_time());
}

// Runs CreateRun(run_id) on another thread; false if it did not return
// within kPatience.
bool CommitRunElsewhere(LineageDb& db, const std::string& run_id) {
  auto done = std::async(std::launch::async,
                         [&db, run_id] { db.CreateRun(RunNamed(run_id)); });
  if (done.wait_for(kPatience) != std::future_status::ready) return false;
  done.get();
  return true;
}

TEST_F(LineageReadersTest, AReadSnapshotKeepsOneViewAcrossCalls) {
  db_->CreateRun(RunNamed("r1"));
  db_->ReadSnapshot([&] {
    ASSERT_TRUE(db_->GetRun("r1"));
    // A commit on another thread is not held up by the snapshot, and the
    // snapshot's later reads do not see it.
    ASSERT_TRUE(CommitRunElsewhere(*db_, "r2"));
    EXPECT_FALSE(db_->GetRun("r2"));
    db_->ReadSnapshot([&] { EXPECT_EQ(db_->ListRuns(0).size(), 1u); });
    // Other threads read the latest commit meanwhile.
    auto other =
        std::async(std::launch::async, [&] { return db_->ListRuns(0).size(); });
    ASSERT_EQ(other.wait_for(kPatience), std::future_status::ready);
    EXPECT_EQ(other.get(), 2u);
  });
  EXPECT_EQ(db_->ListRuns(0).size(), 2u);
}

TEST_F(LineageReadersTest, AReadSnapshotThatThrowsLeavesLaterReadsCurrent) {
  db_->CreateRun(RunNamed("r1"));
  EXPECT_THROW(db_->ReadSnapshot([&] {
    ASSERT_TRUE(db_->GetRun("r1"));
    throw std::runtime_error("stop");
  }),
               std::runtime_error);
  ASSERT_TRUE(CommitRunElsewhere(*db_, "r2"));
  EXPECT_TRUE(db_->GetRun("r2"));
}

TEST_F(LineageReadersTest, AReadSnapshotInsideATransactionSeesTheTransaction) {
  db_->InTransaction([&] {
    db_->CreateRun(RunNamed("r1"));
    db_->ReadSnapshot([&] { EXPECT_TRUE(db_->GetRun("r1")); });
  });
}

// Answers built from checkpoint rows and pins (serve's GET
// /checkpoints/{digest} and /runs/{id}) are kept while RetentionVersion
// stays put: it must move after every write that records or releases a
// checkpoint or pins or unpins a run, and only once that write is
// committed, so that a reader who sees the new number sees the new rows.
TEST_F(LineageReadersTest, TheRetentionVersionMovesAfterEachCommittedCheckpointOrPinWrite) {
  const uint64_t start = db_->RetentionVersion();
  const int64_t trial = AddTrialWithAnEpoch("r1");  // RecordEpoch
  const uint64_t after_epoch = db_->RetentionVersion();
  EXPECT_GT(after_epoch, start);

  db_->CreateRun(RunNamed("r2"));  // no checkpoint rows or pins: no move
  EXPECT_EQ(db_->RetentionVersion(), after_epoch);
  db_->PinRun("r2");  // pins decide what gc keeps, and show in GET /runs/{id}
  const uint64_t after_pin = db_->RetentionVersion();
  EXPECT_GT(after_pin, after_epoch);
  db_->UnpinRun("r2");
  EXPECT_GT(db_->RetentionVersion(), after_pin);

  const std::string initial = Sha256Hex("initial weights");
  const std::string blob = Sha256Hex("r1");  // also r1's epoch 0 checkpoint's blob
  db_->RecordCheckpoint(initial, trial, -1, {{initial, 5}, {blob, 10}});
  const uint64_t after_record = db_->RetentionVersion();
  EXPECT_GT(after_record, after_pin);
  EXPECT_EQ(db_->CheckpointsWithBlob(blob, 10).size(), 2u);

  db_->ReleaseCheckpoints({initial});
  const uint64_t after_release = db_->RetentionVersion();
  EXPECT_GT(after_release, after_record);
  db_->RecordCheckpoint(initial, trial, -1, {{initial, 5}, {blob, 10}});  // kept again
  EXPECT_GT(db_->RetentionVersion(), after_release);
  EXPECT_EQ(db_->CheckpointReleasedAt(initial), 0);

  // Held open on another thread: the number stays until the commit, and a
  // read after it moved sees the row.
  const std::string later = Sha256Hex("later");
  const uint64_t before_commit = db_->RetentionVersion();
  std::promise<void> recorded, commit;
  std::thread writer([&] {
    db_->InTransaction([&] {
      db_->RecordCheckpoint(later, trial, 1, {{later, 7}});
      recorded.set_value();
      commit.get_future().wait_for(kPatience);
    });
  });
  ASSERT_EQ(recorded.get_future().wait_for(kPatience), std::future_status::ready);
  EXPECT_EQ(db_->RetentionVersion(), before_commit);
  EXPECT_FALSE(db_->FindCheckpoint(later));
  commit.set_value();
  writer.join();
  EXPECT_GT(db_->RetentionVersion(), before_commit);
  EXPECT_TRUE(db_->FindCheckpoint(later));
}

// Reads have connections of their own, so a database only one connection
// could see must not open: WAL, which Open requires, needs a file.
TEST_F(LineageReadersTest, ADatabaseThatIsNotAFileIsRefused) {
  EXPECT_EQ(CodeOf([] { LineageDb::Open(":memory:"); }),
            ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace baton::store
