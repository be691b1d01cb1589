// Devices with the real binaries. Debian's LibTorch has no CUDA, so what
// can be checked here is checked with GPUs the test declares
// (CUDA_VISIBLE_DEVICES; nothing is read from hardware): the local pool
// gives each worker its own GPU slot and as many workers as GPUs, every
// attempt records the device it trained on and the GPUs it was let see,
// and "device": "cuda" is refused by a build without CUDA. On a machine
// whose LibTorch has CUDA the same tests expect training on the GPU.
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "common/json_util.h"
#include "orchestrator/pipeline_spec.h"
#include "tests/e2e/tiny_runs.h"
#include "tests/support/files.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

class DeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("baton-e2e-device-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    if (const char* env = std::getenv("CUDA_VISIBLE_DEVICES")) saved_ = env;
  }
  void TearDown() override {
    if (saved_) setenv("CUDA_VISIBLE_DEVICES", saved_->c_str(), 1);
    else unsetenv("CUDA_VISIBLE_DEVICES");
    fs::remove_all(dir_);
  }
  fs::path Write(const std::string& name, const Json& doc) {
    std::ofstream(dir_ / name) << doc.dump(2);
    return dir_ / name;
  }

  fs::path dir_;
  std::optional<std::string> saved_;
};

TEST_F(DeviceTest, EachWorkerGetsItsOwnGpuAndEveryAttemptRecordsItsDevice) {
  // Three GPUs, a stage that could use four workers: three workers, one GPU each.
  setenv("CUDA_VISIBLE_DEVICES", "0,1,2", 1);
  const Json doc = testing::LinearGridPipeline("e2e-gpus", 4, 600, {0.1, 0.05, 0.02, 0.01}, 2, 4);
  std::string out;
  ASSERT_EQ(testing::RunBaton(dir_ / "store", "run " + Write("p.json", doc).string() + " --no-progress", &out, "2>&1"),
            0)
      << out;
  std::string run_id;
  const testing::RunSnapshot run = testing::ReadNewestRun(dir_ / "store", &run_id);
  int logs = 0;
  for (const auto& e : fs::directory_iterator(dir_ / "store" / "logs" / run_id)) logs += e.path().extension() == ".log";
  EXPECT_EQ(logs, 3) << "one worker per GPU";
  std::map<int, std::string> gpu_of;  // worker -> its GPU
  for (const auto& [number, t] : run.at("tune")) {
    ASSERT_EQ(t.rec.placements.size(), 1u) << t.rec.placements.dump();
    const Json& p = t.rec.placements[0];
    ASSERT_EQ(p["gpus"].size(), 1u) << p.dump();
    const std::string gpu = p["gpus"][0];
    EXPECT_EQ(p["visible_gpus"], gpu) << "the worker was started with its GPU: " << p.dump();
    const int worker = p["worker"];
    if (gpu_of.count(worker)) EXPECT_EQ(gpu_of[worker], gpu) << "a worker keeps its GPU";
    gpu_of[worker] = gpu;
    // Trained where "auto" says: the GPU where the LibTorch has CUDA (and
    // the GPU is real), else the CPU.
    const std::string device = p["device"];
    if (!orchestrator::BuiltWithCuda()) {
      EXPECT_EQ(device, "cpu");
    } else {
      EXPECT_TRUE(device == "cpu" || device == "cuda:0") << device;
    }
  }
  std::set<std::string> distinct;
  for (const auto& [worker, gpu] : gpu_of) distinct.insert(gpu);
  EXPECT_EQ(distinct.size(), gpu_of.size()) << "no two workers share a GPU";
}

TEST_F(DeviceTest, CudaNeedsABuildWithCuda) {
  Json doc = testing::LinearGridPipeline("e2e-cuda", 4, 300, {0.1}, 1, 1);
  doc["stages"]["tune"]["device"] = "cuda";
  std::string out;
  const int rc =
      testing::RunBaton(dir_ / "store", "validate " + Write("p.json", doc).string(), &out, "2>&1");
  if (!orchestrator::BuiltWithCuda()) {
    EXPECT_NE(rc, 0) << out;
    EXPECT_NE(out.find("/stages/tune/device: \"cuda\" needs a LibTorch with CUDA"), std::string::npos) << out;
    // Nothing ran, nothing was stored.
    EXPECT_FALSE(fs::exists(dir_ / "store" / "lineage.db"));
  } else {
    EXPECT_EQ(rc, 0) << out;
  }
  doc["stages"]["tune"]["device"] = "cpu";
  EXPECT_EQ(testing::RunBaton(dir_ / "store", "validate " + Write("p.json", doc).string(), &out, "2>&1"), 0) << out;
}

}  // namespace
}  // namespace baton
