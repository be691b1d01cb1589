// Bring-your-own data through the real binaries: an image folder and an
// .npz archive that the test writes each feed a train stage, and the
// prepare stage's cache key follows the images' bytes.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "tests/support/data_files.h"
#include "tests/support/files.h"
#include "tests/support/shell.h"
#include "tests/support/temp_dir.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using testing::Capture;
using testing::CmdResult;
using testing::GreyPng;
using testing::NpyOf;
using testing::TempDir;
using testing::WriteFile;
using testing::ZipBytes;

class DataFormatsTest : public ::testing::Test {
 protected:
  CmdResult Baton(const std::string& args) {
    return Capture("BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + dir_.File("store") + " " + args +
                   " 2>>" + dir_.File("stderr.log"));
  }
  // Runs `doc` and returns `run --json`'s document.
  Json Run(const Json& doc) {
    WriteFile(dir_.File("pipeline.json"), doc.dump());
    CmdResult r = Baton("run " + dir_.File("pipeline.json") + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.out << testing::ReadFile(dir_.File("stderr.log"));
    return r.exit_code == 0 ? Json::parse(r.out) : Json::object();
  }
  static Json StageOf(const Json& run, const std::string& name) {
    for (const Json& s : run.value("stages", Json::array())) {
      if (s["name"] == name) return s;
    }
    return Json::object();
  }
  // The train stage's one trial's last epoch.
  Json LastEpoch(const Json& run) {
    CmdResult r = Baton("show " + run["run_id"].get<std::string>() + " --stage train --json");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    Json train = Json::parse(r.out);
    EXPECT_EQ(train["trials"].size(), 1u);
    return train["trials"][0]["epochs"].back();
  }
  static Json Pipeline(const std::string& name, const Json& prep, int classes) {
    Json doc = {{"schema_version", "1"}, {"name", name}, {"seed", 5}};
    doc["stages"]["prep"] = prep;
    doc["stages"]["train"] = {
        {"type", "train"},
        {"depends_on", {"prep"}},
        {"model", {{"layers", {{{"name", "flat"}, {"type", "flatten"}},
                               {{"name", "fc"}, {"type", "linear"}, {"out_features", classes}}}}}},
        {"hyperparameters", {{"batch_size", 4}, {"optimizer", "sgd"}, {"lr", 0.1}}},
        {"epochs", 1}};
    return doc;
  }

  TempDir dir_{"baton-e2e-data"};
};

TEST_F(DataFormatsTest, ImageFolderTrainsAndItsCacheKeyFollowsTheImages) {
  const fs::path images = dir_.path() / "images";
  for (const auto& [name, base] : {std::pair{"dark", 10}, std::pair{"light", 200}}) {
    fs::create_directories(images / name);
    for (int i = 0; i < 10; ++i) {
      WriteFile(images / name / ("img" + std::to_string(i) + ".png"), GreyPng(8, 6, static_cast<uint8_t>(base + 3 * i)));
    }
  }
  const Json doc = Pipeline("e2e-images",
                            {{"type", "prepare"},
                             {"dataset", {{"format", "image_folder"}, {"path", images.string()}, {"image_size", {6, 8}},
                                          {"channels", 1}}},
                             {"validation_fraction", 0.2},
                             {"test_fraction", 0.2},
                             {"normalize", true}},
                            2);
  const Json first = Run(doc);
  ASSERT_EQ(first.value("status", ""), "succeeded") << first.dump();
  EXPECT_GE(LastEpoch(first)["metrics"]["test_accuracy"].get<double>(), 0.5);
  const std::string prepared = StageOf(first, "prep")["output"].get<std::string>();

  const Json unchanged = Run(doc);
  EXPECT_EQ(StageOf(unchanged, "prep")["status"], "cached");
  EXPECT_EQ(StageOf(unchanged, "prep")["output"], prepared);

  WriteFile(images / "light" / "img4.png", GreyPng(8, 6, 255));
  const Json changed = Run(doc);
  ASSERT_EQ(changed.value("status", ""), "succeeded");
  EXPECT_EQ(StageOf(changed, "prep")["status"], "succeeded") << "a changed image must re-prepare";
  EXPECT_NE(StageOf(changed, "prep")["output"], prepared);
  EXPECT_NE(StageOf(changed, "train")["status"], "cached");
}

TEST_F(DataFormatsTest, NpzArraysTrain) {
  // Two classes of 4 features, apart along the first; 40 training and 10
  // test examples.
  auto arrays = [](int n, int offset) {
    std::vector<float> x;
    std::vector<int64_t> y;
    for (int i = 0; i < n; ++i) {
      const int label = i % 2;
      x.insert(x.end(), {label ? 2.0f : -2.0f, 0.1f * ((i + offset) % 7), 0.5f, -0.05f * (i % 3)});
      y.push_back(label);
    }
    return std::pair{NpyOf("<f4", {n, 4}, x), NpyOf("<i8", {n}, y)};
  };
  auto [x, y] = arrays(40, 0);
  auto [x_test, y_test] = arrays(10, 3);
  WriteFile(dir_.File("data.npz"),
            ZipBytes({{"features.npy", x}, {"labels.npy", y}, {"x_test.npy", x_test}, {"y_test.npy", y_test}},
                     /*deflate=*/true));
  const Json doc = Pipeline("e2e-npz",
                            {{"type", "prepare"},
                             {"dataset", {{"format", "npz"}, {"path", dir_.File("data.npz")}, {"x", "features"},
                                          {"y", "labels"}}},
                             {"validation_fraction", 0.25}},
                            2);
  const Json run = Run(doc);
  ASSERT_EQ(run.value("status", ""), "succeeded") << run.dump();
  EXPECT_GE(LastEpoch(run)["metrics"]["test_accuracy"].get<double>(), 0.8);
  EXPECT_EQ(StageOf(Run(doc), "prep")["status"], "cached");
}

}  // namespace
}  // namespace baton
