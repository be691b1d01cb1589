// Ablation studies on the orchestrator side: variants from components and
// features, their validation, results against the base, and the coordinator
// expanding an ablate stage into parallel, paired tasks.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include "common/error.h"
#include "orchestrator/internal/ablation.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"
#include "tests/orchestrator/fake_worker.h"
#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

using testing::CoordinatorTest;
using testing::FakeWorker;
using testing::HasPointer;
using testing::PipelineIssues;
using testing::SmallPipeline;

Json Cnn() {
  return Json::parse(R"({"layers": [
    {"name": "conv1", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
    {"name": "act1", "type": "relu"},
    {"name": "block2.conv", "type": "conv2d", "out_channels": 4, "kernel_size": 3},
    {"name": "block2.bn", "type": "batch_norm2d"},
    {"name": "flat", "type": "flatten"},
    {"name": "fc1", "type": "linear", "out_features": 8},
    {"name": "act3", "type": "relu"},
    {"name": "fc2", "type": "linear", "out_features": 10}]})");
}

TEST(AblationTest, VariantsFollowComponentsThenFeatures) {
  Json stage = {{"components", Json::parse(R"(["conv1", {"prefix": "block2."}, {"name": "head", "layers": ["fc1", "act3"]}])")},
                {"features", {"age"}}};
  auto v = AblationVariants(stage, Cnn());
  ASSERT_EQ(v.size(), 5u);
  EXPECT_EQ(v[0].name, "base");
  EXPECT_TRUE(v[0].layers.empty());
  EXPECT_EQ(v[1].name, "conv1");
  EXPECT_EQ(v[1].layers, (std::vector<std::string>{"conv1"}));
  EXPECT_EQ(v[2].name, "block2.*");
  EXPECT_EQ(v[2].layers, (std::vector<std::string>{"block2.conv", "block2.bn"}));
  EXPECT_EQ(v[3].name, "head");
  EXPECT_EQ(v[3].layers, (std::vector<std::string>{"fc1", "act3"}));
  EXPECT_EQ(v[4].name, "feature:age");
  EXPECT_EQ(v[4].features, (std::vector<std::string>{"age"}));
  Json removed = RemoveLayers(Cnn(), v[2].layers);
  ASSERT_EQ(removed["layers"].size(), 6u);
  EXPECT_EQ(removed["layers"][2]["name"], "flat");  // order kept, fields untouched
  EXPECT_EQ(removed["layers"][0], Cnn()["layers"][0]);
  EXPECT_THROW(AblationVariants({{"components", {"nope"}}}, Cnn()), Error);
}

TEST(AblationTest, ResultsArePairedByRepeatAndSortedByImpact) {
  std::vector<AblationVariant> variants = {{"base", "base", {}, {}}, {"a", "component", {"a"}, {}},
                                           {"b", "component", {"b"}, {}}, {"c", "component", {"c"}, {}}};
  auto run = [](const std::string& v, int r, double value) {
    AblationRun x;
    x.variant = v;
    x.repeat = r;
    x.status = "succeeded";
    x.has_value = true;
    x.value = value;
    x.epochs = 2;
    x.seconds = 1.5;
    return x;
  };
  std::vector<AblationRun> runs = {run("base", 0, 0.80), run("base", 1, 0.90), run("a", 0, 0.70), run("a", 1, 0.84),
                                   run("b", 0, 0.81), run("b", 1, 0.91)};
  AblationRun failed;
  failed.variant = "c";
  failed.status = "failed";
  failed.reason = "cannot build";
  runs.push_back(failed);
  Json r = AblationResults(runs, variants, "val_accuracy", "max");
  EXPECT_NEAR(r["base"]["objective_mean"].get<double>(), 0.85, 1e-12);
  EXPECT_NEAR(r["base"]["objective_sd"].get<double>(), 0.0707107, 1e-6);
  ASSERT_EQ(r["variants"].size(), 3u);
  // a: deltas -0.10 and -0.06 -> mean -0.08, sd 0.028284; impact +0.08 (worst first).
  EXPECT_EQ(r["variants"][0]["variant"], "a");
  EXPECT_NEAR(r["variants"][0]["delta_mean"].get<double>(), -0.08, 1e-12);
  EXPECT_NEAR(r["variants"][0]["delta_sd"].get<double>(), 0.0282843, 1e-6);
  EXPECT_NEAR(r["variants"][0]["impact"].get<double>(), 0.08, 1e-12);
  EXPECT_EQ(r["variants"][1]["variant"], "b");
  EXPECT_NEAR(r["variants"][1]["impact"].get<double>(), -0.01, 1e-12);  // b helps a little
  EXPECT_EQ(r["variants"][2]["variant"], "c");  // no value: last, with its reason
  EXPECT_FALSE(r["variants"][2].contains("impact"));
  EXPECT_EQ(r["variants"][2]["reasons"][0], "cannot build");
  EXPECT_EQ(r["variants"][2]["runs"]["failed"], 1);
  // For a loss, lower is better: a's impact is then -0.08.
  Json m = AblationResults(runs, variants, "val_loss", "min");
  EXPECT_EQ(m["variants"][0]["variant"], "b");
  EXPECT_NEAR(m["variants"][1]["impact"].get<double>(), -0.08, 1e-12);
}

Json WithAblate(const std::string& data_dir, Json ablate) {
  Json doc = SmallPipeline(data_dir);
  ablate["type"] = "ablate";
  ablate["depends_on"] = {"tune"};
  doc["stages"]["ablate"] = ablate;
  return doc;
}

// examples/resnet18-fashion.json with an ablate stage of the train stage's
// model and hyperparameters leaving out `components`.
Json ResnetAblation(const Json& components) {
  std::ifstream in(std::string(BATON_EXAMPLES_DIR) + "/resnet18-fashion.json");
  Json doc = Json::parse(in);
  const Json& train = doc["stages"]["train"];
  doc["stages"]["ablate"] = {{"type", "ablate"},
                             {"depends_on", {"prep"}},
                             {"base", {{"model", train["model"]}, {"hyperparameters", train["hyperparameters"]}}},
                             {"components", components},
                             {"epochs", 1}};
  return doc;
}

TEST(AblationSpecTest, ResidualBlocksAreLeftOutByName) {
  const Json doc = ResnetAblation({"layer1_0", "layer3_1", Json{{"name", "stage4_tail"}, {"layers", {"layer4_1"}}}});
  const std::vector<std::string> issues = PipelineIssues(doc);
  EXPECT_TRUE(issues.empty()) << issues.front();
  const auto variants = AblationVariants(doc["stages"]["ablate"], doc["stages"]["train"]["model"]);
  ASSERT_EQ(variants.size(), 4u);
  EXPECT_EQ(variants[2].layers, (std::vector<std::string>{"layer3_1"}));
  // The block stays in the variant's model, marked for the worker to leave
  // out once it has checked the shapes; the others are untouched.
  const Json& model = doc["stages"]["train"]["model"];
  const Json without = RemoveLayers(model, variants[2].layers);
  ASSERT_EQ(without["layers"].size(), model["layers"].size());
  EXPECT_EQ(without["layers"][8]["name"], "layer3_1");
  EXPECT_EQ(without["layers"][8]["removed"], true);
  Json restored = without;
  restored["layers"][8].erase("removed");
  EXPECT_EQ(restored, model);
}

TEST(AblationSpecTest, ResidualBlockThatChangesTheShapeIsRefused) {
  // layer2_0 halves height and width and doubles the channels: left out,
  // layer2_1 would get [64,28,28] where it needs [128,14,14].
  const std::vector<std::string> issues = PipelineIssues(ResnetAblation({"layer1_1", "layer2_0"}));
  ASSERT_EQ(issues.size(), 1u) << issues.front();
  EXPECT_EQ(issues[0].rfind("/stages/ablate/components/1: ", 0), 0u) << issues[0];
  EXPECT_NE(issues[0].find("\"layer2_0\""), std::string::npos) << issues[0];
  EXPECT_NE(issues[0].find("[64,28,28] into [128,14,14]"), std::string::npos) << issues[0];
  // A prefix takes the stage's first block with it.
  const std::vector<std::string> prefix = PipelineIssues(ResnetAblation(Json::array({Json{{"prefix", "layer4"}}})));
  ASSERT_EQ(prefix.size(), 1u) << prefix.front();
  EXPECT_EQ(prefix[0].rfind("/stages/ablate/components/0: ", 0), 0u) << prefix[0];
  EXPECT_NE(prefix[0].find("\"layer4_0\""), std::string::npos) << prefix[0];
  // Widths from fixed hyperparameters are known as well.
  Json doc = ResnetAblation({"layer2_0"});
  doc["stages"]["ablate"]["base"]["hyperparameters"]["width"] = 128;
  for (const char* path : {"/layers/0/out_channels", "/shortcut/0/out_channels"}) {
    doc["stages"]["ablate"]["base"]["model"]["layers"][5][Json::json_pointer(path)] = "$width";
  }
  doc["stages"]["ablate"]["base"]["model"]["layers"][5]["layers"][3]["out_channels"] = "$width";
  EXPECT_TRUE(HasPointer(PipelineIssues(doc), "/stages/ablate/components/0"));  // fixed: still known
}

TEST(AblationSpecTest, ComponentsFeaturesAndBaseAreChecked) {
  const std::string data = "/usr/share/datasets/fashion-mnist";
  Json good = WithAblate(data, {{"base", {{"from", "tune"}, {"trial", "best"}}},
                                {"components", {"drop", Json{{"prefix", "f"}}}},
                                {"init_from", {{"stage", "tune"}, {"trial", "best"}, {"epoch", "last"}}},
                                {"epochs", 2}, {"repeats", 2}});
  EXPECT_TRUE(PipelineIssues(good).empty()) << PipelineIssues(good).front();
  Json bad = good;
  bad["stages"]["ablate"]["components"] = {"drop", "conv9", Json{{"prefix", "zz"}}};
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/ablate/components/1"));
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/ablate/components/2/prefix"));
  bad = good;
  // Json::array: clang makes a braced list of one Json that Json itself.
  bad["stages"]["ablate"]["components"] = Json::array({Json{{"name", "all"}, {"layers", {"flat", "drop", "fc"}}}});
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/ablate/components/0"));  // removes every layer
  bad = good;
  bad["stages"]["ablate"]["features"] = {"age"};  // Fashion-MNIST has no columns
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/ablate/features"));
  bad = good;
  bad["stages"]["ablate"].erase("components");
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/ablate/components"));
  bad = good;
  bad["stages"]["ablate"]["base"]["model"] = good["stages"]["tune"]["model"];
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/ablate/base/model"));
  bad = good;
  bad["stages"]["ablate"]["base"] = {{"from", "prep"}, {"trial", "best"}};
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/ablate/base/from"));
  bad = good;
  bad["stages"]["ablate"]["init_from"]["epoch"] = 7;  // the tune stage trains 3 epochs
  EXPECT_TRUE(HasPointer(PipelineIssues(bad), "/stages/ablate/init_from/epoch"));
}

TEST(AblationSpecTest, FeaturesMustBeColumnsOfTheCsv) {
  testing::TempDir dir;
  const auto csv = dir.path() / "data.csv";
  std::ofstream(csv) << "age,income,label\n1,2,0\n3,4,1\n";
  Json doc = Json::parse(R"({"schema_version": "1", "name": "tab", "stages": {
    "prep": {"type": "prepare", "dataset": {"format": "csv", "path": "X", "label_column": "label"}},
    "ablate": {"type": "ablate", "depends_on": ["prep"],
               "base": {"model": {"layers": [{"name": "fc1", "type": "linear", "out_features": 8},
                                             {"name": "act", "type": "relu"},
                                             {"name": "fc2", "type": "linear", "out_features": 2}]},
                        "hyperparameters": {"lr": 0.1}},
               "features": ["age", "height", "label"], "epochs": 2}}})");
  doc["stages"]["prep"]["dataset"]["path"] = csv.string();
  auto issues = PipelineIssues(doc);
  EXPECT_FALSE(HasPointer(issues, "/stages/ablate/features/0"));
  EXPECT_TRUE(HasPointer(issues, "/stages/ablate/features/1"));  // no such column
  EXPECT_TRUE(HasPointer(issues, "/stages/ablate/features/2"));  // the label
  doc["stages"]["prep"]["dataset"]["path"] = (dir.path() / "missing.csv").string();
  EXPECT_TRUE(HasPointer(PipelineIssues(doc), "/stages/prep/dataset/path"));
}

TEST_F(CoordinatorTest, AblationRunsPairedVariantsAndKeepsFailedOnesAsResults) {
  Json doc = WithAblate(data_.string(), {{"base", {{"from", "tune"}, {"trial", "best"}}},
                                         {"components", {"drop", "fc"}},
                                         {"init_from", {{"stage", "tune"}, {"trial", "best"}, {"epoch", "last"}}},
                                         {"epochs", 2}, {"repeats", 2}, {"budget", {{"max_parallel", 3}}}});
  doc["stages"].erase("train");
  std::string run_id = Run(doc, 3, [](FakeWorker& w) {
    w.fail_variants = {"fc"};  // removing the only linear layer cannot be built
    w.task_accuracy = [](const Json& task, int epoch) {
      if (task.value("variant", "") == "drop") return 0.70 + 0.01 * epoch + 0.01 * task.value("repeat", 0);
      if (task.contains("variant")) return 0.75 + 0.01 * epoch + 0.02 * task.value("repeat", 0);
      return FakeWorker::Accuracy(task["hyperparameters"], epoch);
    };
  });
  ASSERT_EQ(db_->GetRun(run_id)->status, "succeeded") << db_->GetRun(run_id)->error;
  auto stage = Stage(run_id, "ablate");
  EXPECT_EQ(stage.status, "succeeded");
  auto tasks = db_->GetTrials(stage.id);
  ASSERT_EQ(tasks.size(), 6u);  // (base + 2 components) x 2 repeats
  std::map<std::string, std::map<int, store::TrialRecord>> by;
  for (const auto& t : tasks) by[t.task["variant"].get<std::string>()][t.task["repeat"].get<int>()] = t;
  // The base is the best tune trial, its model minus the component.
  const Json best = stage.resolved["base"];
  EXPECT_EQ(by["base"][0].hyperparameters, best["hyperparameters"]);
  EXPECT_EQ(by["drop"][0].task["model"]["layers"].size(), 2u);
  EXPECT_EQ(by["base"][0].task["model"]["layers"].size(), 3u);
  for (const auto& [v, repeats] : by) {
    for (const auto& [r, t] : repeats) {
      // Paired: repeat r has one seed across variants; all start from init_from.
      EXPECT_EQ(t.seed, by["base"][r].seed) << v;
      EXPECT_EQ(t.task["init_checkpoint"], stage.resolved["init_from"]["checkpoint"]) << v;
    }
  }
  EXPECT_NE(by["base"][0].seed, by["base"][1].seed);
  EXPECT_EQ(by["fc"][0].status, "failed");
  // Results: drop is 0.05 and 0.06 worse than the base (repeats 0, 1); fc has no value.
  Json results = ParseJson(blobs_->Get(stage.output), "ablation output");
  EXPECT_NEAR(results["base"]["objective_mean"].get<double>(), 0.77, 1e-9);
  ASSERT_EQ(results["variants"].size(), 2u);
  EXPECT_EQ(results["variants"][0]["variant"], "drop");
  EXPECT_NEAR(results["variants"][0]["impact"].get<double>(), 0.055, 1e-9);
  EXPECT_NEAR(results["variants"][0]["delta_sd"].get<double>(), 0.007071, 1e-5);
  EXPECT_EQ(results["variants"][1]["variant"], "fc");
  EXPECT_NE(results["variants"][1]["reasons"][0].get<std::string>().find("build"), std::string::npos);
}

}  // namespace
}  // namespace baton::orchestrator
