// TorchScript models in pipelines: validation, and the coordinator storing
// the file as an artifact that is part of the cache key and the lineage
// (with fake workers, which never load it).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/digest.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"
#include "store/checkpoint.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using testing::CoordinatorTest;
using testing::SmallPipeline;
using testing::TempDir;

bool HasIssue(const std::vector<ErrorDetail>& issues, const std::string& pointer, const std::string& fragment) {
  return std::any_of(issues.begin(), issues.end(), [&](const ErrorDetail& d) {
    return d.pointer == pointer && d.message.find(fragment) != std::string::npos;
  });
}

std::string Dump(const std::vector<ErrorDetail>& issues) {
  std::string s;
  for (const auto& d : issues) s += d.pointer + ": " + d.message + "\n";
  return s;
}

// SmallPipeline with the tune stage's model the TorchScript file `path`.
Json ScriptPipeline(const std::string& data, const std::string& path) {
  Json doc = SmallPipeline(data);
  doc["stages"]["tune"]["model"] = {{"torchscript", path}};
  return doc;
}

TEST(TorchScriptPipelineTest, AnExistingFileIsValidAndAMissingOneNamesItsPointer) {
  TempDir dir;
  const std::string file = (dir.path() / "model.pt").string();
  std::ofstream(file) << "scripted";
  EXPECT_TRUE(ValidatePipeline(ScriptPipeline(dir.path().string(), file)).empty())
      << Dump(ValidatePipeline(ScriptPipeline(dir.path().string(), file)));

  auto issues = ValidatePipeline(ScriptPipeline(dir.path().string(), file + ".missing"));
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/model/torchscript", "no such file: " + file + ".missing"))
      << Dump(issues);

  // A relative path is relative to the working directory, as dataset paths are.
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  issues = ValidatePipeline(ScriptPipeline(dir.path().string(), "model.pt"));
  std::filesystem::current_path(cwd);
  EXPECT_TRUE(issues.empty()) << Dump(issues);
}

TEST(TorchScriptPipelineTest, AModelIsEitherLayersOrAFile) {
  TempDir dir;
  const std::string file = (dir.path() / "model.pt").string();
  std::ofstream(file) << "scripted";
  Json both = SmallPipeline(dir.path().string());
  both["stages"]["tune"]["model"]["torchscript"] = file;
  auto issues = ValidatePipeline(both);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/model/torchscript", "not both")) << Dump(issues);

  Json neither = SmallPipeline(dir.path().string());
  neither["stages"]["tune"]["model"] = Json::object();
  issues = ValidatePipeline(neither);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/model", "needs \"layers\"")) << Dump(issues);

  Json empty = ScriptPipeline(dir.path().string(), "");
  EXPECT_FALSE(ValidatePipeline(empty).empty());
}

TEST(TorchScriptPipelineTest, ItsLayersCannotBeAblatedAndItsSizeIsNotEstimated) {
  TempDir dir;
  const std::string file = (dir.path() / "model.pt").string();
  std::ofstream(file) << "scripted";
  Json doc = ScriptPipeline(dir.path().string(), file);
  doc["stages"]["ablate"] = Json::parse(R"({"type": "ablate", "depends_on": ["tune"],
      "base": {"from": "tune", "trial": "best"}, "components": ["fc"], "epochs": 2})");
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/ablate/components", "TorchScript")) << Dump(issues);

  Json own = SmallPipeline(dir.path().string());
  own["stages"]["ablate"] = Json::parse(R"({"type": "ablate", "depends_on": ["prep"],
      "base": {"hyperparameters": {"lr": 0.1}}, "components": ["fc"], "epochs": 2})");
  own["stages"]["ablate"]["base"]["model"] = {{"torchscript", file}};
  issues = ValidatePipeline(own);
  EXPECT_TRUE(HasIssue(issues, "/stages/ablate/components", "TorchScript")) << Dump(issues);

  PipelineLimits tiny;
  tiny.max_model_bytes = 1;
  issues = ValidatePipeline(ScriptPipeline(dir.path().string(), file), tiny);
  EXPECT_TRUE(issues.empty()) << Dump(issues);
}

class TorchScriptRunTest : public CoordinatorTest {};

TEST_F(TorchScriptRunTest, TheFileIsAStoredArtifactInTheCacheKeyAndTheLineage) {
  const std::string file = (dir_.path() / "model.pt").string();
  std::ofstream(file) << "scripted bytes, version 1";
  const Json doc = ScriptPipeline(data_.string(), file);
  const std::string first = Run(doc);
  ASSERT_EQ(db_->GetRun(first)->status, "succeeded");
  const store::StageRecord tune = Stage(first, "tune");
  const std::string manifest = tune.resolved["torchscript"]["manifest"].get<std::string>();
  EXPECT_EQ(tune.resolved["torchscript"]["path"], file);
  EXPECT_EQ(tune.resolved["torchscript"]["sha256"], Sha256Hex("scripted bytes, version 1"));
  // Stored: the manifest, and the file's bytes under their digest.
  const store::Manifest m = store::ParseManifest(blobs_->Get(manifest));
  EXPECT_EQ(m.kind, "files");
  ASSERT_EQ(m.tensors.size(), 1u);
  EXPECT_EQ(blobs_->Get(m.tensors[0].blob), "scripted bytes, version 1");
  auto artifact = db_->GetArtifact(manifest);
  ASSERT_TRUE(artifact.has_value());
  EXPECT_EQ((*artifact)["kind"], "model_file");
  // Every trial's task names it, and the lineage says so.
  const auto trials = db_->GetTrials(tune.id);
  ASSERT_FALSE(trials.empty());
  for (const auto& t : trials) {
    EXPECT_EQ(t.task["model"]["manifest"], manifest);
    EXPECT_EQ(t.task["model"]["torchscript"], file);
    bool edge = false;
    for (const auto& e : db_->Upstream("trial:" + std::to_string(t.id), 1)) {
      edge |= e.kind == "model_from" && e.dst == "artifact:" + manifest;
    }
    EXPECT_TRUE(edge) << "trial " << t.number;
  }
  // The train stage takes the tune stage's model with its hyperparameters.
  const store::StageRecord train = Stage(first, "train");
  EXPECT_EQ(train.resolved["torchscript"]["manifest"], manifest);
  EXPECT_EQ(db_->GetTrials(train.id).front().task["model"]["manifest"], manifest);

  // Unchanged: cache hits. Changed bytes at the same path: the stages rerun.
  const std::string second = Run(doc);
  EXPECT_EQ(Stage(second, "tune").status, "cached");
  EXPECT_EQ(Stage(second, "train").status, "cached");
  std::ofstream(file) << "scripted bytes, version 2";
  const std::string third = Run(doc);
  EXPECT_EQ(Stage(third, "prep").status, "cached");
  EXPECT_EQ(Stage(third, "tune").status, "succeeded");
  EXPECT_NE(Stage(third, "tune").cache_key, tune.cache_key);
  EXPECT_NE(Stage(third, "tune").resolved["torchscript"]["manifest"], manifest);
}

TEST_F(TorchScriptRunTest, AFileRemovedAfterValidationFailsItsStage) {
  const std::string file = (dir_.path() / "model.pt").string();
  std::ofstream(file) << "scripted";
  const Json doc = ScriptPipeline(data_.string(), file);
  Pipeline p = LoadPipeline(doc);
  std::filesystem::remove(file);
  const std::string run_id = CreateRun(*db_, p);
  Coordinator c(*blobs_, *db_, p, run_id, options_);
  c.Start();
  // prep needs a worker: one fake runs the run.
  testing::FakeWorker worker(c, *blobs_, 0);
  std::thread t([&] { worker.Loop(); });
  EXPECT_TRUE(c.WaitFinished(std::chrono::seconds(30)));
  t.join();
  EXPECT_EQ(Stage(run_id, "tune").status, "failed");
  EXPECT_NE(Stage(run_id, "tune").error.find("no such file"), std::string::npos) << Stage(run_id, "tune").error;
}

}  // namespace
}  // namespace baton::orchestrator
