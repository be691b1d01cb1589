// What the executors ask of the machine without starting anything: the
// sbatch arguments of a Slurm worker (partition, resources, GPUs, a
// data-parallel group under srun, the token kept off the command line) and
// the GPUs the local pool hands out.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "executor/execute_run.h"
#include "executor/slurm.h"

namespace baton::executor {
namespace {

bool Has(const std::vector<std::string>& args, const std::string& arg) {
  return std::find(args.begin(), args.end(), arg) != args.end();
}

std::string Wrap(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a.rfind("--wrap=", 0) == 0) return a.substr(7);
  }
  return "";
}

SlurmExecutor Make(WorkerLaunch launch, orchestrator::ExecutorSpec spec = {}) {
  SlurmExecutor::Options options;
  options.spec = spec;
  options.worker_binary = "/opt/baton/baton-worker";
  return SlurmExecutor(launch, WorkerEvents{}, options);
}

WorkerLaunch Launch() {
  WorkerLaunch launch;
  launch.run_id = "20261206-120000-abcd";
  launch.coordinator_url = "http://head:7000";
  launch.token = "secret-token";
  launch.log_dir = "/store/logs/run";
  return launch;
}

TEST(SlurmArgsTest, AWorkerIsOneBatchJobOfBatonWorker) {
  orchestrator::ExecutorSpec spec;
  spec.partition = "gpu";
  spec.account = "lab";
  spec.mem = "8G";
  spec.time_limit = "01:00:00";
  spec.extra_args = {"--qos=low"};
  const auto args = Make(Launch(), spec).SbatchArgs(3);
  EXPECT_TRUE(Has(args, "--parsable"));
  EXPECT_TRUE(Has(args, "--no-requeue"));
  EXPECT_TRUE(Has(args, "--job-name=baton-20261206-120000-abcd-w3"));
  EXPECT_TRUE(Has(args, "--output=/store/logs/run/worker-3.log"));
  EXPECT_TRUE(Has(args, "--partition=gpu"));
  EXPECT_TRUE(Has(args, "--account=lab"));
  EXPECT_TRUE(Has(args, "--mem=8G"));
  EXPECT_TRUE(Has(args, "--time=01:00:00"));
  EXPECT_TRUE(Has(args, "--cpus-per-task=1"));  // the worker's torch threads
  EXPECT_TRUE(Has(args, "--qos=low"));
  EXPECT_TRUE(Has(args, "--export=ALL"));
  EXPECT_EQ(Wrap(args),
            "exec '/opt/baton/baton-worker' --coordinator 'http://head:7000' --worker-id 3 --threads 1");
  for (const auto& a : args) {
    EXPECT_EQ(a.find("secret-token"), std::string::npos) << "the token travels in the environment: " << a;
    EXPECT_EQ(a.find("--gres"), std::string::npos) << a;
    EXPECT_EQ(a.find("--ntasks"), std::string::npos) << a;
  }
}

TEST(SlurmArgsTest, GpusAndRankGroupsAskSlurmForThem) {
  WorkerLaunch launch = Launch();
  launch.gpu = true;
  EXPECT_TRUE(Has(Make(launch).SbatchArgs(0), "--gres=gpu:1"));

  launch.ranks = 2;
  const auto group = Make(launch).SbatchArgs(0);
  EXPECT_TRUE(Has(group, "--ntasks=2"));
  EXPECT_TRUE(Has(group, "--gpus-per-task=1"));
  const std::string wrap = Wrap(group);
  EXPECT_NE(wrap.find("exec srun --kill-on-bad-exit=1 -n 2 '/opt/baton/baton-worker'"), std::string::npos) << wrap;
  EXPECT_NE(wrap.find("BATON_MASTER_ADDR=$(scontrol show hostnames"), std::string::npos) << wrap;
  EXPECT_NE(wrap.find("BATON_MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))"), std::string::npos) << wrap;
}

TEST(VisibleGpusTest, CudaVisibleDevicesDecidesWhenSet) {
  const char* before = std::getenv("CUDA_VISIBLE_DEVICES");
  const std::string saved = before != nullptr ? before : "";
  setenv("CUDA_VISIBLE_DEVICES", "1,3", 1);
  EXPECT_EQ(VisibleGpus(), (std::vector<std::string>{"1", "3"}));
  setenv("CUDA_VISIBLE_DEVICES", "0,-1,2", 1);  // CUDA stops at an invalid entry
  EXPECT_EQ(VisibleGpus(), (std::vector<std::string>{"0"}));
  setenv("CUDA_VISIBLE_DEVICES", "", 1);
  EXPECT_TRUE(VisibleGpus().empty());
  if (before != nullptr) setenv("CUDA_VISIBLE_DEVICES", saved.c_str(), 1);
  else unsetenv("CUDA_VISIBLE_DEVICES");
}

}  // namespace
}  // namespace baton::executor
