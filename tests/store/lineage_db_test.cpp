#include "store/lineage_db.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

#include "common/digest.h"
#include "common/error.h"
#include "store/checkpoint.h"
#include "tests/store/temp_dir.h"

namespace baton::store {
namespace {

using testing::CodeOf;

using BlobList = std::vector<std::pair<std::string, uint64_t>>;

class LineageDbTest : public ::testing::Test {
 protected:
  void SetUp() override { db_ = LineageDb::Open(File()); }
  std::filesystem::path File() const {
    return dir_.path() / "sub" / "lineage.db";
  }

  // A run with one stage and one trial; returns the trial id.
  int64_t AddTrialInNewRun(const std::string& run_id,
                           const std::string& stage = "tune") {
    if (!db_->GetRun(run_id)) {
      db_->CreateRun(
          RunRecord{run_id, "pipe", "fashion-cnn", "running", 0, 0, ""});
    }
    StageRecord s;
    s.run_id = run_id;
    s.name = stage;
    s.type = "tune";
    s.status = "running";
    const int64_t stage_id = db_->AddStage(s);
    TrialRecord t;
    t.stage_id = stage_id;
    t.kind = "train";
    t.status = "running";
    return db_->AddTrial(t);
  }

  testing::TempDir dir_;
  std::unique_ptr<LineageDb> db_;
};

TEST_F(LineageDbTest, MigrationsSetTheSchemaVersion) {
  EXPECT_EQ(db_->SchemaVersion(), 4);
  db_.reset();
  db_ = LineageDb::Open(File());  // already migrated: a no-op
  EXPECT_EQ(db_->SchemaVersion(), 4);
}

TEST_F(LineageDbTest, AnIdempotencyKeyNamesItsFirstRunForGoodAndOutlivesTheConnection) {
  for (const char* id : {"r1", "r2"}) {
    RunRecord run;
    run.id = id;
    run.pipeline_id = "p";
    run.status = "pending";
    db_->CreateRun(run);
  }
  EXPECT_FALSE(db_->GetIdempotencyKey("k").has_value());
  db_->PutIdempotencyKey("k", "p", "r1");
  db_->PutIdempotencyKey("k", "q", "r2");  // the first run stays
  db_.reset();
  db_ = LineageDb::Open(File());
  auto key = db_->GetIdempotencyKey("k");
  ASSERT_TRUE(key.has_value());
  EXPECT_EQ(key->pipeline_id, "p");
  EXPECT_EQ(key->run_id, "r1");
  EXPECT_GT(key->created_at, 0);
  EXPECT_FALSE(db_->GetIdempotencyKey("K").has_value());  // keys are exact
}

TEST_F(LineageDbTest, PipelinesAreIdempotent) {
  const Json spec = {{"name", "p"}, {"stages", Json::object()}};
  db_->PutPipeline("abc", "p", spec);
  db_->PutPipeline("abc", "p", spec);
  EXPECT_EQ(db_->GetPipeline("abc"), spec);
  EXPECT_FALSE(db_->GetPipeline("nope").has_value());
  auto listed = db_->ListPipelines(10);
  ASSERT_EQ(listed.size(), 1u);  // stored once
  EXPECT_EQ(listed[0].id, "abc");
  EXPECT_EQ(listed[0].name, "p");
}

TEST_F(LineageDbTest, PipelinesListNewestFirstInPages) {
  for (const char* id : {"p1", "p2", "p3"}) {
    db_->PutPipeline(id, id, Json::object());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // distinct created_at
  }
  auto first = db_->ListPipelines(2);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0].id, "p3");
  EXPECT_EQ(first[1].id, "p2");
  auto rest = db_->ListPipelines(2, 2);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].id, "p1");
}

TEST_F(LineageDbTest, RunsRoundTripNewestFirst) {
  db_->CreateRun(RunRecord{"r1", "pipe", "a", "pending", 100.5, 0, ""});
  db_->CreateRun(RunRecord{"r2", "pipe", "b", "pending", 200.25, 0, ""});
  EXPECT_EQ(CodeOf([&] {
              db_->CreateRun(RunRecord{"r1", "pipe", "a", "pending", 1, 0, ""});
            }),
            ErrorCode::kConflict);
  db_->UpdateRun(RunRecord{"r1", "", "", "failed", 0, 150.75, "boom"});
  const auto r1 = db_->GetRun("r1");
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->status, "failed");
  EXPECT_EQ(r1->name, "a");
  EXPECT_DOUBLE_EQ(r1->created_at, 100.5);
  EXPECT_DOUBLE_EQ(r1->finished_at, 150.75);
  EXPECT_EQ(r1->error, "boom");
  const auto runs = db_->ListRuns();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].id, "r2");
  EXPECT_EQ(db_->ListRuns(1).size(), 1u);
  EXPECT_EQ(CodeOf([&] {
              db_->UpdateRun(RunRecord{"r9", "", "", "x", 0, 0, ""});
            }),
            ErrorCode::kNotFound);
}

TEST_F(LineageDbTest, StagesAndTrialsRoundTrip) {
  db_->CreateRun(RunRecord{"r1", "pipe", "a", "running", 0, 0, ""});
  StageRecord stage;
  stage.run_id = "r1";
  stage.name = "tune";
  stage.type = "tune";
  stage.status = "pending";
  stage.cache_key = "key1";
  stage.spec = {{"budget", {{"max_trials", 12}}}};
  const int64_t stage_id = db_->AddStage(stage);
  EXPECT_GT(stage_id, 0);
  EXPECT_EQ(CodeOf([&] { db_->AddStage(stage); }), ErrorCode::kConflict);
  stage.run_id = "missing-run";
  EXPECT_EQ(CodeOf([&] { db_->AddStage(stage); }), ErrorCode::kNotFound);

  StageRecord update = *db_->GetStage(stage_id);
  EXPECT_EQ(update.spec, stage.spec);
  EXPECT_FALSE(db_->FindCachedStage("key1"));
  update.status = "succeeded";
  update.output = std::string(64, 'a');
  update.resolved = {{"init_from", {{"trial", 3}}}};
  update.finished_at = 42.5;
  db_->UpdateStage(update);
  const auto cached = db_->FindCachedStage("key1");
  ASSERT_TRUE(cached);
  EXPECT_EQ(cached->id, stage_id);
  EXPECT_EQ(cached->resolved, update.resolved);
  EXPECT_EQ(db_->GetStages("r1").size(), 1u);

  TrialRecord trial;
  trial.stage_id = stage_id;
  trial.number = 1;
  trial.kind = "train";
  trial.hyperparameters = {{"lr", 0.01}, {"batch_size", 128}};
  trial.status = "pending";
  trial.seed = 7;
  const int64_t t1 = db_->AddTrial(trial);
  trial.number = 0;
  const int64_t t0 = db_->AddTrial(trial);
  const auto trials = db_->GetTrials(stage_id);
  ASSERT_EQ(trials.size(), 2u);
  EXPECT_EQ(trials[0].id, t0);
  EXPECT_EQ(trials[1].id, t1);
  EXPECT_EQ(trials[0].hyperparameters["lr"], 0.01);

  TrialRecord done = *db_->GetTrial(t1);
  done.status = "pruned";
  done.reason = "median rule";
  done.attempts = 2;
  EXPECT_EQ(done.placements, Json::array());  // none until an attempt starts
  done.placements = {{{"attempt", 1}, {"executor", "slurm"}, {"slurm_job_id", "17"}},
                     {{"attempt", 2}, {"executor", "slurm"}, {"slurm_job_id", "18"}}};
  db_->UpdateTrial(done);
  EXPECT_EQ(db_->GetTrial(t1)->reason, "median rule");
  EXPECT_EQ(db_->GetTrial(t1)->attempts, 2);
  EXPECT_EQ(db_->GetTrial(t1)->placements, done.placements);
  trial.stage_id = 999;
  EXPECT_EQ(CodeOf([&] { db_->AddTrial(trial); }), ErrorCode::kNotFound);
}

TEST_F(LineageDbTest,
       RecordEpochIsIdempotentAndConflictsOnADifferentCheckpoint) {
  const int64_t trial = AddTrialInNewRun("r1");
  const std::string ck = Sha256Hex("ck0");
  const BlobList blobs = {{Sha256Hex("w"), 100}, {ck, 10}};
  EpochRecord epoch{trial, 0, {{"val_accuracy", 0.8}}, ck, 1.5, 0};
  db_->RecordEpoch(epoch, blobs);
  db_->RecordEpoch(epoch, blobs);
  auto epochs = db_->GetEpochs(trial);
  ASSERT_EQ(epochs.size(), 1u);
  EXPECT_EQ(epochs[0].metrics["val_accuracy"], 0.8);
  EXPECT_GT(epochs[0].created_at, 0);

  EpochRecord other = epoch;
  other.checkpoint = Sha256Hex("ck-other");
  EXPECT_EQ(CodeOf([&] { db_->RecordEpoch(other, {}); }), ErrorCode::kConflict);
  EXPECT_FALSE(db_->FindCheckpoint(other.checkpoint));

  EXPECT_EQ(db_->FindCheckpoint(ck), std::make_pair(trial, 0));
  const auto up = db_->Upstream("checkpoint:" + ck);
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0].dst, "trial:" + std::to_string(trial));
  EXPECT_EQ(up[0].kind, "derived_from");

  epoch.trial_id = 12345;
  EXPECT_EQ(CodeOf([&] { db_->RecordEpoch(epoch, blobs); }),
            ErrorCode::kNotFound);
  EpochRecord bad{trial, 1, Json::object(), Sha256Hex("ck1"), 0, 0};
  EXPECT_EQ(CodeOf([&] {
              db_->RecordEpoch(bad, {{"not-a-digest", 1}});
            }),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(db_->GetEpochs(trial).size(), 1u);  // nothing partial left
}

TEST_F(LineageDbTest, EdgesUpstreamDownstreamWithDepthAndCycles) {
  // model <- ckpt <- trial <- stage <- run, and a cycle b <-> c.
  db_->AddEdge(Edge{"model", "ckpt", "initialized_from", {{"epoch", 4}}});
  db_->AddEdge(Edge{"ckpt", "trial", "derived_from", Json::object()});
  db_->AddEdge(Edge{"trial", "stage", "part_of", Json::object()});
  db_->AddEdge(
      Edge{"trial", "stage", "part_of", Json::object()});  // idempotent
  db_->AddEdge(Edge{"stage", "run", "part_of", Json::object()});
  db_->AddEdge(Edge{"trial", "data", "trained_on", Json::object()});

  const auto all = db_->Upstream("model");
  EXPECT_EQ(all.size(), 5u);
  EXPECT_EQ(all[0].attrs["epoch"], 4);
  EXPECT_EQ(db_->Upstream("model", 2).size(), 2u);
  EXPECT_EQ(db_->Upstream("model", 0).size(), 0u);
  const auto down = db_->Downstream("run");
  ASSERT_EQ(down.size(), 4u);
  EXPECT_EQ(down.back().src, "model");
  EXPECT_EQ(db_->Downstream("data").size(), 3u);

  db_->AddEdge(Edge{"b", "c", "derived_from", Json::object()});
  db_->AddEdge(Edge{"c", "b", "derived_from", Json::object()});
  db_->AddEdge(Edge{"c", "d", "derived_from", Json::object()});
  const auto cyc = db_->Upstream("b");
  EXPECT_EQ(cyc.size(), 3u);
  std::set<std::string> seen;
  for (const Edge& e : cyc) seen.insert(e.src + ">" + e.dst);
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(db_->Downstream("b").size(), 2u);
}

TEST_F(LineageDbTest, UsageSeparatesNewFromReferencedBytes) {
  const int64_t t1 = AddTrialInNewRun("r1", "tune");
  const int64_t t2 = AddTrialInNewRun("r1", "train");
  const std::string w1 = Sha256Hex("w1"), w2 = Sha256Hex("w2");

  Manifest m;
  m.tensors = {TensorEntry{"a", "float32", {250}, w1, 1000},
               TensorEntry{"b", "float32", {500}, w2, 2000}};
  const std::string bytes = ManifestBytes(m);
  const std::string ck = Sha256Hex(bytes);
  const BlobList blobs = {{w1, 1000}, {w2, 2000}, {ck, bytes.size()}};
  db_->RecordEpoch(EpochRecord{t1, 0, Json::object(), ck, 1, 0}, blobs);

  // The train stage starts from the same weights: same manifest, no new bytes.
  db_->RecordCheckpoint(ck, t2, -1, blobs);
  // Its first epoch changes only the meta: a new manifest, same tensor blobs.
  m.meta = {{"epoch", 0}};
  const std::string bytes2 = ManifestBytes(m);
  const std::string ck2 = Sha256Hex(bytes2);
  db_->RecordEpoch(EpochRecord{t2, 0, Json::object(), ck2, 1, 0},
                   {{w1, 1000}, {w2, 2000}, {ck2, bytes2.size()}});
  EXPECT_EQ(db_->FindCheckpoint(ck), std::make_pair(t1, 0));
  EXPECT_EQ(db_->Upstream("checkpoint:" + ck).size(), 1u);  // only t1 made it

  db_->CreateRun(RunRecord{"r2", "pipe", "other", "running", 0, 0, ""});
  auto usage = db_->Usage("r1");
  ASSERT_EQ(usage.size(), 2u);
  EXPECT_EQ(usage[0].stage_name, "tune");
  EXPECT_EQ(usage[0].checkpoints, 1u);
  EXPECT_EQ(usage[0].referenced_bytes, 3000u + bytes.size());
  EXPECT_EQ(usage[0].new_bytes, 3000u + bytes.size());
  EXPECT_EQ(usage[1].stage_name, "train");
  EXPECT_EQ(usage[1].checkpoints, 2u);
  EXPECT_EQ(usage[1].referenced_bytes, 3000u + bytes.size() + bytes2.size());
  EXPECT_EQ(usage[1].new_bytes, bytes2.size());

  // An artifact's blobs count for its stage too.
  const int64_t prep = db_->GetTrial(t1)->stage_id;
  const std::string data = Sha256Hex("images");
  db_->PutArtifact(Sha256Hex("dataset"), "dataset", prep, {{"classes", 10}},
                   {{data, 500}, {w1, 1000}});
  db_->PutArtifact(Sha256Hex("dataset"), "dataset", prep, {{"classes", 10}},
                   {{data, 500}, {w1, 1000}});
  EXPECT_EQ(db_->GetArtifact(Sha256Hex("dataset"))->at("meta")["classes"], 10);
  usage = db_->Usage();
  EXPECT_EQ(usage[0].referenced_bytes, 3500u + bytes.size());
  EXPECT_EQ(usage[0].new_bytes, 3500u + bytes.size());
}

TEST_F(LineageDbTest, ReopenKeepsEverything) {
  const int64_t trial = AddTrialInNewRun("r1");
  db_->RecordEpoch(
      EpochRecord{trial, 0, {{"loss", 1.25}}, Sha256Hex("c"), 2, 0},
      {{Sha256Hex("c"), 3}});
  db_.reset();
  db_ = LineageDb::Open(File());
  ASSERT_TRUE(db_->GetRun("r1"));
  ASSERT_EQ(db_->GetEpochs(trial).size(), 1u);
  EXPECT_EQ(db_->GetEpochs(trial)[0].metrics["loss"], 1.25);
  EXPECT_EQ(db_->Usage().at(0).new_bytes, 3u);
}

TEST_F(LineageDbTest, InTransactionRollsBackOnThrow) {
  EXPECT_THROW(db_->InTransaction([&] {
    db_->CreateRun(RunRecord{"r1", "pipe", "a", "running", 0, 0, ""});
    db_->InTransaction([&] {
      db_->AddEdge(Edge{"x", "y", "part_of", Json::object()});
    });
    throw std::runtime_error("stop");
  }),
               std::runtime_error);
  EXPECT_FALSE(db_->GetRun("r1"));
  EXPECT_TRUE(db_->Upstream("x").empty());

  // A nested failure that the outer one catches undoes only the inner part.
  db_->InTransaction([&] {
    db_->CreateRun(RunRecord{"r2", "pipe", "a", "running", 0, 0, ""});
    try {
      db_->InTransaction([&] {
        db_->AddEdge(Edge{"x", "y", "part_of", Json::object()});
        throw std::runtime_error("inner");
      });
    } catch (const std::runtime_error&) {
    }
  });
  EXPECT_TRUE(db_->GetRun("r2"));
  EXPECT_TRUE(db_->Upstream("x").empty());
}

TEST_F(LineageDbTest, NewerSchemaIsRefused) {
  db_.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(File().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(raw, "PRAGMA user_version = 99", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(raw);
  EXPECT_EQ(CodeOf([&] { LineageDb::Open(File()); }), ErrorCode::kConflict);
}

TEST_F(LineageDbTest, GarbageFileIsCorrupt) {
  const auto garbage = dir_.path() / "garbage.db";
  std::ofstream(garbage) << std::string(8192, 'x');
  EXPECT_EQ(CodeOf([&] { LineageDb::Open(garbage); }), ErrorCode::kCorrupt);
}

TEST_F(LineageDbTest, TwoConnectionsAndThreadsShareTheFile) {
  auto other = LineageDb::Open(File());
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      LineageDb* db = i % 2 == 0 ? db_.get() : other.get();
      for (int j = 0; j < 20; ++j) {
        db->CreateRun(RunRecord{std::to_string(i) + "-" + std::to_string(j),
                                "p", "n", "pending", 0, 0, ""});
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(db_->ListRuns(1000).size(), 80u);
}

}  // namespace
}  // namespace baton::store
