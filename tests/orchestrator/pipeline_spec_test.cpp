#include "orchestrator/pipeline_spec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "tests/orchestrator/test_util.h"

namespace baton::orchestrator {
namespace {

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

TEST(PipelineSpecTest, ExampleFromTheRepoIsValidAndPlanned) {
  Pipeline p = LoadPipelineFile(std::string(BATON_EXAMPLES_DIR) + "/fashion-mnist.json");
  EXPECT_EQ(p.order, (std::vector<std::string>{"prep", "tune", "train"}));
  EXPECT_EQ(p.data_stage.at("tune"), "prep");
  EXPECT_EQ(p.data_stage.at("train"), "prep");
  EXPECT_EQ(p.id.size(), 64u);
}

// Each stage is typed once, its defaults applied in one place: what the
// coordinator, retention, the CLI and progress read.
TEST(PipelineSpecTest, StagesAreTypedWithTheirDefaults) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["tune"]["pruner"] = {{"type", "asha"}, {"reduction_factor", 2}};
  doc["stages"]["tune"]["checkpoints"] = {{"keep", {{"last_k", 1}}}};
  doc["stages"]["ablate"] = Json::parse(R"({"type": "ablate", "depends_on": ["tune"],
      "base": {"from": "tune", "trial": "best"}, "components": ["drop"], "epochs": 2})");
  doc["stages"]["tune"]["objective"] = {{"metric", "val_loss"}, {"mode", "min"}};
  const Pipeline p = LoadPipeline(doc);
  const StageSpec& tune = p.spec("tune");
  EXPECT_EQ(tune.type, StageType::kTune);
  EXPECT_EQ(tune.max_trials, 4);
  EXPECT_EQ(tune.max_epochs, 3);
  EXPECT_EQ(tune.max_parallel, 2);
  EXPECT_EQ(tune.timeout_seconds, 0);
  EXPECT_EQ(tune.max_attempts, 1);    // no "retry"
  EXPECT_EQ(tune.backoff_seconds, 1);
  EXPECT_EQ(tune.sampler.type, "random");
  EXPECT_FALSE(tune.synchronous);
  EXPECT_EQ(tune.pruner.type, "asha");
  EXPECT_EQ(tune.pruner.min_resource, 1);
  EXPECT_EQ(tune.pruner.max_resource, 3);  // max_epochs
  EXPECT_EQ(tune.pruner.reduction_factor, 2);
  ASSERT_TRUE(tune.keep.has_value());
  EXPECT_EQ(tune.keep->best_k, 0);
  EXPECT_EQ(tune.keep->last_k, 1);
  EXPECT_EQ(tune.objective.metric, "val_loss");
  EXPECT_TRUE(tune.objective.Better(0.1, 0.2));
  // An ablate stage without an objective ranks as its base tune stage does
  // (the web views used val_accuracy for it while the coordinator did this).
  EXPECT_FALSE(p.spec("ablate").objective_given);
  EXPECT_EQ(p.spec("ablate").objective.ToJson(), tune.objective.ToJson());
  EXPECT_EQ(p.spec("ablate").max_epochs, 2);
  EXPECT_FALSE(p.spec("ablate").keep.has_value());
  EXPECT_EQ(p.spec("train").max_epochs, 2);
  EXPECT_FALSE(p.spec("train").max_parallel.has_value());
  EXPECT_EQ(p.spec("prep").objective.ToJson(), Objective{}.ToJson());
  // A recorded stage: its own objective, else the one it resolved, else the default.
  const Json resolved = {{"objective", {{"metric", "train_loss"}, {"mode", "min"}}}};
  EXPECT_EQ(RecordedObjective(p.stage("tune"), resolved).metric, "val_loss");
  EXPECT_EQ(RecordedObjective(p.stage("ablate"), resolved).metric, "train_loss");
  EXPECT_EQ(RecordedObjective(p.stage("ablate"), Json::object()).metric, "val_accuracy");
}

TEST(PipelineSpecTest, SelectorsAreTypedWithTheirDefaults) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["ablate"] = Json::parse(R"({"type": "ablate", "depends_on": ["tune"],
      "base": {"from": "tune", "trial": 2}, "components": ["drop"], "epochs": 2,
      "init_from": {"stage": "tune", "trial": {"id": 3}, "epoch": 1}})");
  doc["stages"]["train"]["compare"] = {{"baseline", "kaiming_uniform"}, {"seeds", 3}};
  Pipeline p = LoadPipeline(doc);
  const StageSpec& train = p.spec("train");
  ASSERT_TRUE(train.hyperparameters_from.has_value());
  EXPECT_EQ(train.hyperparameters_from->stage, "tune");
  EXPECT_EQ(train.hyperparameters_from->rank, 1);  // "best"
  EXPECT_FALSE(train.hyperparameters_from->number.has_value());
  ASSERT_TRUE(train.init_from.has_value());
  EXPECT_EQ(train.init_from->epoch.kind, EpochSelector::Kind::kLast);
  EXPECT_EQ(train.init_from->epoch.ToJson(), "last");
  // compare without epochs_from starts from init_from's epoch; its target
  // defaults to 99% of the baseline's best.
  ASSERT_TRUE(train.compare.has_value());
  EXPECT_EQ(train.compare->seeds, 3);
  ASSERT_EQ(train.compare->epochs_from.size(), 1u);
  EXPECT_EQ(train.compare->epochs_from[0].Label(), "last");
  EXPECT_EQ(train.compare->target, Json({{"fraction_of_baseline_best", 0.99}}));
  const StageSpec& ablate = p.spec("ablate");
  ASSERT_TRUE(ablate.hyperparameters_from.has_value());
  EXPECT_EQ(ablate.hyperparameters_from->rank, 2);
  ASSERT_TRUE(ablate.init_from.has_value());
  EXPECT_EQ(ablate.init_from->trial.number, 3);
  EXPECT_EQ(ablate.init_from->epoch.kind, EpochSelector::Kind::kNumber);
  EXPECT_EQ(ablate.init_from->epoch.Label(), "1");
  EXPECT_FALSE(p.spec("tune").init_from.has_value());
  EXPECT_FALSE(p.spec("tune").compare.has_value());

  doc["stages"]["train"]["compare"]["epochs_from"] = {"initial", "best", 0};
  doc["stages"]["train"]["compare"]["target"] = {{"accuracy", 0.8}};
  p = LoadPipeline(doc);
  std::vector<std::string> labels;
  for (const auto& e : p.spec("train").compare->epochs_from) labels.push_back(e.Label());
  EXPECT_EQ(labels, (std::vector<std::string>{"initial", "best", "0"}));
  EXPECT_EQ(p.spec("train").compare->target, Json({{"accuracy", 0.8}}));
}

// "executor": local by default; Slurm's sbatch options typed; extra_args
// may not set what Baton sets itself.
TEST(PipelineSpecTest, TheExecutorIsTypedAndItsReservedArgumentsRefused) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  EXPECT_EQ(LoadPipeline(doc).executor.type, ExecutorType::kLocal);
  doc["executor"] = {{"type", "slurm"}, {"partition", "gpu"}, {"cpus_per_task", 4}, {"mem", "8G"},
                     {"time_limit", "1-02:00:00"}, {"extra_args", {"--qos=low"}}, {"pending_timeout_seconds", 30}};
  const ExecutorSpec e = LoadPipeline(doc).executor;
  EXPECT_EQ(e.type, ExecutorType::kSlurm);
  EXPECT_EQ(e.partition, "gpu");
  EXPECT_EQ(e.cpus_per_task, 4);
  EXPECT_EQ(e.mem, "8G");
  EXPECT_EQ(e.time_limit, "1-02:00:00");
  EXPECT_EQ(e.extra_args, std::vector<std::string>{"--qos=low"});
  EXPECT_EQ(e.pending_timeout_seconds, 30);
  doc["executor"]["extra_args"] = {"--qos=low", "--output=/etc/passwd", "--wrap=rm"};
  const auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/executor/extra_args/1", "--output is set by Baton itself")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/executor/extra_args/2", "--wrap is set by Baton itself")) << Dump(issues);
  EXPECT_EQ(issues.size(), 2u) << Dump(issues);
  doc["executor"]["extra_args"] = {"-x"};
  const auto short_option = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(short_option, "/executor/extra_args/0", "must match ^--[a-z]")) << Dump(short_option);
  EXPECT_TRUE(HasIssue(short_option, "/executor/extra_args/0", "not \"-x\"")) << Dump(short_option);
  doc["executor"]["extra_args"] = Json::array();
  doc["executor"]["mem"] = "lots";
  const auto mem = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(mem, "/executor/mem", "must match")) << Dump(mem);
  // ranks and device on the stages that train.
  doc["executor"].erase("mem");
  doc["stages"]["tune"]["ranks"] = 2;
  doc["stages"]["tune"]["device"] = "cpu";
  const Pipeline p = LoadPipeline(doc);
  EXPECT_EQ(p.spec("tune").ranks, 2);
  EXPECT_EQ(p.spec("tune").device, "cpu");
  doc["stages"]["tune"]["ranks"] = 0;
  doc["stages"]["tune"]["device"] = "tpu";
  const auto bad = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(bad, "/stages/tune/ranks", "must be at least 1")) << Dump(bad);
  // Importance partitioning shares data among ranks: it needs two.
  doc["stages"]["tune"]["ranks"] = 1;
  doc["stages"]["tune"]["device"] = "cpu";
  doc["stages"]["tune"]["partitioning"] = {{"type", "importance"}, {"heuristic", "sorted"}};
  const auto alone = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(alone, "/stages/tune/partitioning", "needs \"ranks\" of 2 or more")) << Dump(alone);
  doc["stages"]["tune"]["ranks"] = 2;
  const StageSpec::Partitioning part = LoadPipeline(doc).spec("tune").partitioning;
  EXPECT_EQ(part.type, "importance");
  EXPECT_EQ(part.heuristic, "sorted");
  EXPECT_EQ(part.warmup_epochs, 1);
  EXPECT_EQ(part.every, 1);
  EXPECT_THROW(ParseExecutorType("kubernetes"), Error);
}

TEST(PipelineSpecTest, IdIgnoresKeyOrderAndWhitespace) {
  TempDir dir;
  Json a = SmallPipeline(dir.path().string());
  Json b = Json::parse(a.dump(4));
  EXPECT_EQ(LoadPipeline(a).id, LoadPipeline(b).id);
  b["stages"]["train"]["epochs"] = 3;
  EXPECT_NE(LoadPipeline(a).id, LoadPipeline(b).id);
}

TEST(PipelineSpecTest, UnknownKeysAreRejectedWithTheirPointer) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["tune"]["budget"]["max_trails"] = 3;
  doc["colour"] = "blue";
  auto issues = ValidatePipeline(doc);
  // The pointer names the key itself, and a near miss is named.
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/budget/max_trails",
                       "unknown key \"max_trails\" (did you mean \"max_trials\"?)"))
      << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/colour", "unknown key \"colour\"")) << Dump(issues);
  EXPECT_FALSE(HasIssue(issues, "/colour", "did you mean")) << "nothing is near \"colour\": " << Dump(issues);
}

// Schema errors in a user's words, not the schema library's: unknown keys
// (every one of an object, with the nearest known key), types, bounds,
// enums, required keys; each with what was found.
TEST(PipelineSpecTest, SchemaErrorsArePlainWords) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stagse"] = Json::object();
  doc["seeed"] = 3;
  doc["stages"]["tune"]["budget"]["max_trials"] = 0;
  doc["stages"]["tune"]["budget"]["max_parallel"] = "two";
  doc["stages"]["tune"]["sampler"] = {{"type", "grd"}};
  doc["stages"]["tune"]["objective"] = {{"metric", "val_accuracy"}, {"mod", "max"}};
  doc["stages"]["prep"]["validation_fraction"] = 1.5;
  doc["stages"]["bad name!"] = {{"type", "prepare"}};
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stagse", "unknown key \"stagse\" (did you mean \"stages\"?)")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/seeed", "unknown key \"seeed\" (did you mean \"seed\"?)")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/budget/max_trials", "must be at least 1, not 0")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/budget/max_parallel", "must be an integer, not a string")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/sampler/type", "must be one of \"random\", \"grid\", \"tpe\", not \"grd\""))
      << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/objective/mod", "(did you mean \"mode\"?)")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/objective", "missing required key \"mode\"")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/prep/validation_fraction", "must be less than 1, not 1.5")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/bad name!", "is not allowed here: names must match")) << Dump(issues);
  for (const auto& d : issues) {
    for (const char* library : {"could not be validated", "Expected number", "not permitted by", "enum values",
                                "Missing required property"}) {
      EXPECT_EQ(d.message.find(library), std::string::npos) << d.pointer << ": " << d.message;
    }
  }
}

TEST(PipelineSpecTest, SchemaErrorsNameTheDeepestPointer) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["tune"]["budget"]["max_trials"] = 0;
  doc["stages"]["tune"]["model"]["layers"][2].erase("out_features");
  doc["stages"]["train"]["init_from"]["epoch"] = "first";
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/budget/max_trials", "")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/model/layers/2", "out_features")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/train/init_from/epoch", "")) << Dump(issues);
}

Json ResnetExample() {
  std::ifstream in(std::string(BATON_EXAMPLES_DIR) + "/resnet18-fashion.json");
  return Json::parse(in);
}

TEST(PipelineSpecTest, ResidualBlocksAreCheckedInside) {
  EXPECT_EQ(LoadPipelineFile(std::string(BATON_EXAMPLES_DIR) + "/resnet18-fashion.json").order,
            (std::vector<std::string>{"prep", "train"}));
  Json doc = ResnetExample();
  Json& layers = doc["stages"]["train"]["model"]["layers"];
  layers[3]["layers"][1]["momentum"] = 0.1;  // batch norm takes no momentum
  layers[6].erase("layers");                 // a block without layers
  layers[7]["activation"] = "tanh";
  layers[12]["output_size"] = Json::array({1, 1, 1});
  auto issues = ValidatePipeline(doc);
  const std::string m = "/stages/train/model/layers/";
  EXPECT_TRUE(HasIssue(issues, m + "3/layers/1/momentum", "unknown key")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, m + "6", "missing required key \"layers\"")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, m + "7/activation", "\"relu\", \"none\"")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, m + "12/output_size", "at most 2 items")) << Dump(issues);

  // What the schema cannot say, once it passes.
  doc = ResnetExample();
  Json& model = doc["stages"]["train"]["model"];
  model["layers"][4]["layers"][3]["out_channels"] = "$width";  // no such hyperparameter
  model["layers"][5]["shortcut"][1]["name"] = "conv";          // twice in the shortcut
  issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, m + "4/layers/3/out_channels", "\"$width\" names no")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, m + "5/shortcut/1/name", "duplicate layer name \"conv\"")) << Dump(issues);
  doc["stages"]["train"]["hyperparameters"]["width"] = 64;
  model["layers"][5]["shortcut"][1]["name"] = "bn";
  EXPECT_TRUE(ValidatePipeline(doc).empty()) << Dump(ValidatePipeline(doc));
}

// The size estimate walks into residual blocks: ResNet-18's 11,172,810
// parameters and its batch norms' 4,800 pairs of running statistics.
TEST(PipelineSpecTest, ModelSizeCountsResidualBlocks) {
  const Json doc = ResnetExample();
  PipelineLimits limits;
  limits.max_model_bytes = uint64_t{64} << 20;
  const auto issues = ValidatePipeline(doc, limits);
  ASSERT_EQ(issues.size(), 1u) << Dump(issues);
  // layer1_0 and layer1_1 hold the most layer outputs (64 x 28 x 28 each).
  EXPECT_EQ(issues[0].pointer, "/stages/train/model/layers/3");
  EXPECT_NE(issues[0].message.find("(1.118e+07 parameters"), std::string::npos) << issues[0].message;
  limits.max_model_bytes = uint64_t{1} << 30;
  EXPECT_TRUE(ValidatePipeline(doc, limits).empty()) << Dump(ValidatePipeline(doc, limits));
}

TEST(PipelineSpecTest, SearchSpaceBoundsAreChecked) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["tune"]["search_space"]["lr"]["low"] = 0;
  doc["stages"]["tune"]["search_space"]["dropout"]["high"] = -1;
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/search_space/lr/low", "must be > 0 when log is true")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/search_space/dropout/high", "must be > low")) << Dump(issues);
}

TEST(PipelineSpecTest, DependencyProblemsAreRejected) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["prep"]["depends_on"] = {"prep"};
  doc["stages"]["tune"]["depends_on"] = {"prep", "nowhere"};
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/prep/depends_on/0", "itself")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/depends_on/1", "unknown stage \"nowhere\"")) << Dump(issues);

  Json cyc = SmallPipeline(dir.path().string());
  cyc["stages"]["tune"]["depends_on"] = {"prep", "train"};
  issues = ValidatePipeline(cyc);
  ASSERT_FALSE(issues.empty());
  EXPECT_NE(issues.front().message.find("cycle"), std::string::npos) << Dump(issues);
}

TEST(PipelineSpecTest, SelectorsMustNameAnUpstreamTuneStage) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["train"]["init_from"]["stage"] = "prep";
  doc["stages"]["train"]["hyperparameters"]["from"] = "ghost";
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/train/init_from/stage", "only tune stages")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/train/hyperparameters/from", "unknown stage")) << Dump(issues);

  Json down = SmallPipeline(dir.path().string());
  down["stages"]["train"]["depends_on"] = {"prep"};
  issues = ValidatePipeline(down);
  EXPECT_TRUE(HasIssue(issues, "/stages/train/init_from/stage", "not upstream")) << Dump(issues);
}

TEST(PipelineSpecTest, InitEpochMustExistAndRefsMustResolve) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["train"]["init_from"]["epoch"] = 3;  // tune runs epochs 0..2
  doc["stages"]["tune"]["model"]["layers"][2]["out_features"] = "$width";
  auto issues = ValidatePipeline(doc);
  EXPECT_TRUE(HasIssue(issues, "/stages/train/init_from/epoch", "0-based")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/tune/model/layers/2/out_features", "$width")) << Dump(issues);
}

TEST(PipelineSpecTest, LoadThrowsWithEveryProblemListed) {
  TempDir dir;
  Json doc = SmallPipeline(dir.path().string());
  doc["stages"]["prep"]["dataset"]["path"] = "/no/such/folder";
  doc["stages"]["tune"]["search_space"]["lr"]["low"] = -1;
  try {
    LoadPipeline(doc);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(e.details().size(), 2u) << e.what();
    EXPECT_NE(std::string(e.what()).find("/stages/prep/dataset/path"), std::string::npos);
  }
}

// Image folders, npy folders and npz files validate with their own fields;
// fields of other formats, bad values and the wrong kind of path are refused
// at their pointers.
TEST(PipelineSpecTest, ImageFolderAndArrayDatasetsAreCheckedAtTheirPointers) {
  TempDir dir;
  std::ofstream(dir.path() / "data.npz") << "zip";
  auto with = [&](const Json& dataset, const Json& extra = Json::object()) {
    Json doc = SmallPipeline(dir.path().string());
    doc["stages"]["prep"] = {{"type", "prepare"}, {"dataset", dataset}};
    doc["stages"]["prep"].update(extra);
    return ValidatePipeline(doc);
  };
  const std::string folder = dir.path().string(), npz = (dir.path() / "data.npz").string();
  auto issues = with({{"format", "image_folder"}, {"path", folder}, {"image_size", {28, 28}}, {"channels", 1}},
                     {{"split_seed", 4}, {"test_fraction", 0.25}});
  EXPECT_TRUE(issues.empty()) << Dump(issues);
  issues = with({{"format", "npz"}, {"path", npz}, {"x", "features"}, {"y", "labels"}, {"x_test", "xt"}});
  EXPECT_TRUE(issues.empty()) << Dump(issues);
  issues = with({{"format", "npy"}, {"path", folder}, {"x", "features.npy"}});
  EXPECT_TRUE(issues.empty()) << Dump(issues);

  issues = with({{"format", "npz"}, {"path", folder}, {"channels", 3}}, {{"train_subset", 100}});
  EXPECT_TRUE(HasIssue(issues, "/stages/prep/dataset/path", "no such file")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/prep/dataset/channels", "\"image_folder\" format only")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/prep/train_subset", "\"idx\" and \"csv\" formats only")) << Dump(issues);
  issues = with({{"format", "image_folder"}, {"path", npz}, {"x", "x"}});
  EXPECT_TRUE(HasIssue(issues, "/stages/prep/dataset/path", "no such directory")) << Dump(issues);
  EXPECT_TRUE(HasIssue(issues, "/stages/prep/dataset/x", "\"npy\" and \"npz\" formats only")) << Dump(issues);
  issues = with({{"format", "idx"}, {"path", folder}}, {{"split_seed", 1}});
  EXPECT_TRUE(HasIssue(issues, "/stages/prep/split_seed", "formats only")) << Dump(issues);
  EXPECT_FALSE(with({{"format", "image_folder"}, {"path", folder}, {"channels", 2}}).empty());
  EXPECT_FALSE(with({{"format", "image_folder"}, {"path", folder}, {"image_size", {0, 4}}}).empty());
  EXPECT_FALSE(with({{"format", "npy"}, {"path", folder}, {"x", "../outside"}}).empty());
  EXPECT_FALSE(with({{"format", "tiff"}, {"path", folder}}).empty());
}

TEST(PipelineSpecTest, NotJsonNamesTheFile) {
  TempDir dir;
  std::string path = (dir.path() / "p.json").string();
  std::ofstream(path) << "{\"schema_version\": ";
  try {
    LoadPipelineFile(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
}

}  // namespace
}  // namespace baton::orchestrator
