// Command stages: validation (every problem with its pointer), their typed
// spec, params substitution, and cache keys driven through the coordinator
// with an in-process worker that plays the command.
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/digest.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"
#include "store/file_artifact.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using testing::SmallPipeline;
using testing::TempDir;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

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

Json CommandPipeline() {
  return Json::parse(R"({
    "schema_version": "1", "name": "commands",
    "stages": {
      "clean": {"type": "command", "cmd": ["python3", "clean.py", "--rows", "${params.rows}", "--out", "out/clean.csv"],
                "deps": ["clean.py", "raw/"], "outs": ["out/clean.csv"], "params": {"rows": 100, "mode": "fast"},
                "env": {"MODE": "${params.mode}"}, "timeout_seconds": 30, "retry": {"max_attempts": 2}},
      "report": {"type": "command", "depends_on": ["clean"], "cmd": ["/bin/sh", "report.sh"],
                 "deps": ["out/clean.csv"], "outs": ["out/report/"]}
    }})");
}

TEST(CommandStageSpecTest, AValidCommandStageIsTypedAndPlanned) {
  const Pipeline p = LoadPipeline(CommandPipeline());
  EXPECT_EQ(p.order, (std::vector<std::string>{"clean", "report"}));
  EXPECT_EQ(p.data_stage.count("clean"), 0u);
  const StageSpec& clean = p.spec("clean");
  EXPECT_EQ(clean.type, StageType::kCommand);
  EXPECT_EQ(clean.max_attempts, 2);
  ASSERT_TRUE(clean.command);
  EXPECT_EQ(clean.command->cmd.size(), 6u);
  ASSERT_EQ(clean.command->deps.size(), 2u);
  EXPECT_EQ(clean.command->deps[1].path, "raw/");
  EXPECT_FALSE(clean.command->deps[1].checkpoint);
  EXPECT_EQ(clean.command->outs, (std::vector<std::string>{"out/clean.csv"}));
  EXPECT_EQ(clean.command->env.at("MODE"), "${params.mode}");
  EXPECT_EQ(clean.command->timeout_seconds, 30);
  EXPECT_EQ(clean.timeout_seconds, 0) << "a command's timeout is not a tuning budget";
}

TEST(CommandStageSpecTest, ParamsAreSubstitutedAsWritten) {
  const Json params = {{"rows", 100}, {"lr", 0.5}, {"mode", "fast"}, {"dry", false}};
  EXPECT_EQ(SubstituteParams("--rows=${params.rows}", params), "--rows=100");
  EXPECT_EQ(SubstituteParams("${params.mode}-${params.lr}-${params.dry}", params), "fast-0.5-false");
  EXPECT_EQ(SubstituteParams("no refs, ${HOME} stays", params), "no refs, ${HOME} stays");
  EXPECT_THROW(SubstituteParams("${params.nope}", params), Error);
}

TEST(CommandStageSpecTest, CheckpointDependenciesNameAnUpstreamTuneEpoch) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["export"] = {
      {"type", "command"}, {"depends_on", {"tune"}}, {"cmd", {"/bin/true"}},
      {"deps", Json::array({Json{{"checkpoint", {{"stage", "tune"}, {"trial", {{"id", 1}}}, {"epoch", "best"}}},
                                 {"path", "ckpt.safetensors"}}})}};
  const Pipeline p = LoadPipeline(doc);
  const auto& dep = p.spec("export").command->deps.at(0);
  ASSERT_TRUE(dep.checkpoint);
  EXPECT_EQ(dep.path, "ckpt.safetensors");
  EXPECT_EQ(dep.checkpoint->trial.stage, "tune");
  EXPECT_EQ(dep.checkpoint->trial.number, 1);
  EXPECT_EQ(dep.checkpoint->epoch.kind, EpochSelector::Kind::kBest);

  doc["stages"]["export"]["depends_on"] = {"prep"};
  doc["stages"]["export"]["deps"][0]["checkpoint"]["epoch"] = 7;
  doc["stages"]["export"]["deps"][0]["path"] = "../ckpt.safetensors";
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/export/deps/0/checkpoint/stage", "not upstream")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/export/deps/0/path", "inside the run's working directory")) << Dump(issues);
  doc["stages"]["export"]["deps"][0]["path"] = "ckpt.safetensors";
  doc["stages"]["export"]["depends_on"] = {"tune"};
  issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/export/deps/0/checkpoint/epoch", "0-based")) << Dump(issues);
}

TEST(CommandStageSpecTest, ProblemsAreRefusedWithTheirPointers) {
  Json doc = CommandPipeline();
  doc["stages"]["clean"]["cmd"] = Json::array();
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(std::any_of(issues.begin(), issues.end(),
                          [](const ErrorDetail& d) { return d.pointer == "/stages/clean/cmd"; }))
      << Dump(issues);

  doc = CommandPipeline();
  doc["stages"]["clean"]["cmd"][1] = 7;
  doc["stages"]["clean"]["outs"][0] = 3;
  issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/clean/cmd/1", "string")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/clean/outs/0", "string")) << Dump(issues);

  doc = CommandPipeline();
  doc["stages"]["clean"]["shell"] = true;
  issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/clean/shell", "unknown key")) << Dump(issues);

  doc = CommandPipeline();
  doc["stages"]["clean"]["cmd"][3] = "${params.row}";
  doc["stages"]["clean"]["env"]["X"] = "${params.nope}";
  issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/clean/cmd/3", "${params.row}")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/clean/env/X", "${params.nope}")) << Dump(issues);

  doc = CommandPipeline();
  doc["stages"]["clean"]["deps"].push_back("out/./clean.csv");
  doc["stages"]["report"]["outs"] = {"/tmp/report", "../up", "out/clean.csv"};
  issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/clean/deps/2", "both a dependency and an output")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/report/outs/0", "inside the run's working directory")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/report/outs/1", "inside the run's working directory")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/report/outs/2", "also an output of stage \"clean\"") ||
              HasIssue(issues, "/stages/clean/outs/0", "also an output of stage \"report\""))
      << Dump(issues);

  // Reading another command's out needs that stage upstream.
  doc = CommandPipeline();
  doc["stages"]["report"]["depends_on"] = Json::array();
  issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/report/deps/0", "not upstream")) << Dump(issues);
}

TEST(CommandStageSpecTest, APrepareStageMayReadACommandsOutBeforeItExists) {
  Json doc = CommandPipeline();
  doc["stages"]["prep"] = {{"type", "prepare"}, {"depends_on", {"clean"}},
                           {"dataset", {{"format", "csv"}, {"path", "out/clean.csv"}}}};
  EXPECT_TRUE(ValidatePipeline(doc).empty()) << Dump(ValidatePipeline(doc));
  doc["stages"]["prep"]["depends_on"] = Json::array();
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/prep/dataset/path", "not upstream")) << Dump(issues);
}

// Plays a command task: writes each out (a file: the task's cmd joined;
// a folder: one file) and reports it, as baton-worker would. Counts runs.
class CommandPlayer {
 public:
  CommandPlayer(Coordinator& c, store::BlobStore& blobs) : c_(c), blobs_(blobs) {}
  int runs = 0;

  void Loop() {
    Json task;
    while (true) {
      const auto next = c_.NextTask(1, 50ms, &task);
      if (next == Coordinator::Next::kDone) return;
      if (next == Coordinator::Next::kWait) continue;
      ++runs;
      const fs::path workdir = task.at("workdir").get<std::string>();
      store::Manifest all;
      all.kind = store::kFilesKind;
      for (const auto& out : task["outs"]) {
        const fs::path path = workdir / out.get<std::string>();
        fs::create_directories(path.parent_path());
        std::ofstream(path) << task["cmd"].dump();
        store::FileBlobs one = store::ReadFileArtifact(path.string());
        for (auto e : one.manifest.tensors) {
          e.name = out.get<std::string>();
          all.tensors.push_back(e);
        }
        for (const auto& [d, bytes] : one.blobs) blobs_.Put(bytes);
      }
      all.meta = {{"layout", "folder"}};
      const std::string output = blobs_.Put(store::ManifestBytes(all));
      const std::string log = blobs_.Put("ran " + task["cmd"].dump() + "\n");
      c_.Complete(task["id"].get<int64_t>(), {{"output", output}, {"logs", {{"stdout", log}, {"stderr", log}}}});
    }
  }

 private:
  Coordinator& c_;
  store::BlobStore& blobs_;
};

class CommandCacheTest : public testing::CoordinatorTest {
 protected:
  void SetUp() override {
    testing::CoordinatorTest::SetUp();
    old_cwd_ = fs::current_path();
    work_ = dir_.path() / "work";
    fs::create_directories(work_ / "raw");
    fs::current_path(work_);  // the run's working directory
    Write("clean.py", "print('v1')\n");
    Write("raw/a.csv", "a\n1\n");
  }
  void TearDown() override { fs::current_path(old_cwd_); }

  void Write(const std::string& rel, const std::string& text) { std::ofstream(work_ / rel) << text; }

  // Runs `doc` to its end with the player; the command stage's record.
  store::StageRecord RunOnce(const Json& doc, int* runs) {
    Pipeline p = LoadPipeline(doc);
    const std::string run_id = CreateRun(*db_, p);
    Coordinator c(*blobs_, *db_, p, run_id);
    c.Start();
    CommandPlayer player(c, *blobs_);
    std::thread t([&] { player.Loop(); });
    EXPECT_TRUE(c.WaitFinished(20s));
    t.join();
    *runs += player.runs;
    EXPECT_EQ(c.Status(), "succeeded") << db_->GetRun(run_id)->error;
    return Stage(run_id, "clean");
  }

  fs::path old_cwd_, work_;
};

TEST_F(CommandCacheTest, TheKeyChangesWithTheCommandItsDependenciesAndParamsOnly) {
  Json doc = CommandPipeline();
  doc["stages"].erase("report");
  int runs = 0;
  const store::StageRecord first = RunOnce(doc, &runs);
  EXPECT_EQ(first.status, "succeeded");
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(first.resolved.contains("logs")) << first.resolved.dump();
  EXPECT_EQ(first.resolved["deps"][0]["sha256"], Sha256Hex("print('v1')\n"));

  // Unchanged: a cache hit.
  store::StageRecord again = RunOnce(doc, &runs);
  EXPECT_EQ(again.status, "cached");
  EXPECT_EQ(again.cached_from, first.id);
  EXPECT_EQ(runs, 1);

  // A cached stage puts a missing or edited output back.
  fs::remove(work_ / "out/clean.csv");
  again = RunOnce(doc, &runs);
  EXPECT_EQ(again.status, "cached");
  std::ifstream restored(work_ / "out/clean.csv");
  std::stringstream text;
  text << restored.rdbuf();
  EXPECT_NE(text.str().find("clean.py"), std::string::npos) << text.str();

  std::string key = first.cache_key;
  auto reruns = [&](const std::string& what) {
    const store::StageRecord s = RunOnce(doc, &runs);
    EXPECT_EQ(s.status, "succeeded") << what;
    EXPECT_NE(s.cache_key, key) << what;
    key = s.cache_key;
  };
  Write("clean.py", "print('v2')\n");
  reruns("a file dependency changed");
  Write("raw/b.csv", "b\n2\n");
  reruns("a file was added to a folder dependency");
  doc["stages"]["clean"]["params"]["rows"] = 200;
  reruns("a param changed");
  doc["stages"]["clean"]["env"]["EXTRA"] = "1";
  reruns("the environment changed");
  doc["stages"]["clean"]["cmd"].push_back("--verbose");
  reruns("the command changed");
  EXPECT_EQ(runs, 6);
}

TEST_F(CommandCacheTest, ACommandInterruptedWithItsProcessRunsAgainOnResume) {
  Json doc = CommandPipeline();
  doc["stages"].erase("report");
  Pipeline p = LoadPipeline(doc);
  const std::string run_id = CreateRun(*db_, p);
  {
    // The first process hands the command out, then ends before it reports.
    Coordinator c(*blobs_, *db_, p, run_id);
    c.Start();
    Json task;
    ASSERT_EQ(c.NextTask(1, 1s, &task), Coordinator::Next::kTask);
    EXPECT_EQ(task["kind"], "command");
    EXPECT_EQ(task["cmd"][3], "100");
    EXPECT_EQ(task["env"]["MODE"], "fast");
  }
  ASSERT_EQ(db_->GetRun(run_id)->status, "running");
  auto c = Coordinator::ForResume(*blobs_, *db_, run_id);
  c->Start();
  CommandPlayer player(*c, *blobs_);
  std::thread t([&] { player.Loop(); });
  EXPECT_TRUE(c->WaitFinished(20s));
  t.join();
  EXPECT_EQ(player.runs, 1);
  EXPECT_EQ(c->Status(), "succeeded") << db_->GetRun(run_id)->error;
  const store::StageRecord clean = Stage(run_id, "clean");
  EXPECT_EQ(clean.status, "succeeded");
  EXPECT_TRUE(fs::exists(work_ / "out/clean.csv"));
}

TEST_F(CommandCacheTest, AMissingDependencyFailsTheStageAndNamesIt) {
  Json doc = CommandPipeline();
  doc["stages"].erase("report");
  fs::remove(work_ / "clean.py");
  Pipeline p = LoadPipeline(doc);
  const std::string run_id = CreateRun(*db_, p);
  Coordinator c(*blobs_, *db_, p, run_id);
  c.Start();
  ASSERT_TRUE(c.WaitFinished(5s));
  EXPECT_EQ(c.Status(), "failed");
  const std::string error = Stage(run_id, "clean").error;
  EXPECT_NE(error.find("dependency clean.py"), std::string::npos) << error;
}

}  // namespace
}  // namespace baton::orchestrator
