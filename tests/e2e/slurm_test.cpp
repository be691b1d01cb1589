// The Slurm executor against a real single-node Slurm (munged, slurmctld,
// slurmd started by scripts/slurm-up through the ctest fixture "slurm";
// SLURM_CONF points at it): the workers are sbatch jobs that squeue shows,
// a tuning run gives the local pool's results and checkpoints bit for bit,
// a pruned trial's job takes the next trial, the run's end leaves no job,
// a job cancelled mid-trial is retried from its last stored epoch, a
// partition Slurm does not have fails the run with Slurm's message, and
// `baton serve --executor slurm` runs what is triggered over HTTP.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "store/lineage_db.h"
#include "tests/e2e/background_run.h"
#include "tests/e2e/http_e2e.h"
#include "tests/e2e/processes.h"
#include "tests/e2e/serve_process.h"
#include "tests/e2e/tiny_runs.h"
#include "tests/e2e/weights.h"
#include "tests/support/files.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Capture;
using testing::ReadFile;

// squeue's lines for `format`, for the jobs in `states` ("" = Slurm's
// default: pending and running).
std::vector<std::string> Squeue(const std::string& format, const std::string& states = "") {
  const std::string cmd = "squeue -h " + (states.empty() ? "" : "-t " + states + " ") + "-o '" + format + "' 2>&1";
  testing::CmdResult r = Capture(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.out;
  std::vector<std::string> lines;
  std::string line;
  for (char c : r.out) {
    if (c != '\n') {
      line += c;
    } else {
      lines.push_back(line);
      line.clear();
    }
  }
  return lines;
}

// The Slurm job ids recorded with a trial's attempts, in order.
std::vector<std::string> JobIds(const store::TrialRecord& t) {
  std::vector<std::string> ids;
  for (const auto& p : t.placements) {
    if (p.value("executor", "") == "slurm") ids.push_back(p.value("slurm_job_id", ""));
  }
  return ids;
}

class SlurmExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(std::getenv("SLURM_CONF"), nullptr) << "the ctest fixture slurm sets SLURM_CONF";
    dir_ = fs::temp_directory_path() / ("baton-e2e-slurm-" + std::to_string(getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    run_.reset();  // kills a run still going
    fs::remove_all(dir_);
  }

  fs::path Write(const std::string& name, const Json& doc) {
    std::ofstream(dir_ / name) << doc.dump(2);
    return dir_ / name;
  }

  // `baton --store STORE run PIPELINE ARGS --no-progress` in the background.
  void StartRun(const fs::path& store, const fs::path& pipeline, const std::vector<std::string>& args) {
    run_ = std::make_unique<testing::BackgroundRun>(store, pipeline, args, dir_ / "run.log");
    ASSERT_TRUE(run_->started());
  }
  int WaitRun(std::chrono::seconds limit) { return run_->Wait(limit); }
  bool Running() { return run_->Running(); }

  fs::path dir_;
  std::unique_ptr<testing::BackgroundRun> run_;
};

TEST_F(SlurmExecutorTest, TuningMatchesTheLocalPoolAndEndsItsJobs) {
  // One slot, a grid whose second learning rate is far worse: the median
  // rule prunes it after its first epoch (and maybe later ones), and the
  // same job goes on with the next trial.
  Json doc = testing::LinearGridPipeline("e2e-slurm", 11, 1500, {0.1, 0.0005, 0.05, 0.02}, 3, 1);
  doc["stages"]["tune"]["pruner"] = {{"type", "median"}, {"min_resource", 1}, {"n_startup_trials", 1}};
  const fs::path pipeline = Write("pipeline.json", doc);

  std::string out;
  ASSERT_EQ(testing::RunBaton(dir_ / "local", "run " + pipeline.string() + " --executor local --workers 1 --no-progress",
                              &out, "2>&1"),
            0)
      << out;

  StartRun(dir_ / "slurm", pipeline, {"--executor", "slurm"});
  // Its worker job shows in squeue while the run goes on.
  std::set<std::string> seen;  // "name|state" of baton's jobs
  while (Running()) {
    for (const auto& line : Squeue("%j|%T")) {
      if (line.rfind("baton-", 0) == 0) seen.insert(line);
    }
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(WaitRun(120s), 0) << ReadFile(dir_ / "run.log");
  bool saw_running = false;
  for (const auto& s : seen) saw_running = saw_running || s.find("|RUNNING") != std::string::npos;
  EXPECT_TRUE(saw_running) << "squeue never showed a running baton job";

  std::string local_id, slurm_id;
  const testing::RunSnapshot local = testing::ReadNewestRun(dir_ / "local", &local_id);
  const testing::RunSnapshot slurm = testing::ReadNewestRun(dir_ / "slurm", &slurm_id);
  ASSERT_EQ(local.size(), slurm.size());
  int pruned = 0;
  for (const auto& [stage, trials] : local) {
    ASSERT_EQ(trials.size(), slurm.at(stage).size()) << stage;
    for (const auto& [number, l] : trials) {
      const testing::TrialState& s = slurm.at(stage).at(number);
      SCOPED_TRACE(stage + " trial " + std::to_string(number));
      EXPECT_EQ(s.rec.status, l.rec.status);
      EXPECT_EQ(s.rec.hyperparameters, l.rec.hyperparameters);
      EXPECT_EQ(s.rec.output, l.rec.output);
      ASSERT_EQ(s.epochs.size(), l.epochs.size());
      for (size_t e = 0; e < l.epochs.size(); ++e) {
        EXPECT_EQ(s.epochs[e].checkpoint, l.epochs[e].checkpoint) << "epoch " << e;
        Json sm = s.epochs[e].metrics, lm = l.epochs[e].metrics;
        sm.erase("samples_per_second");  // a timing, not a result
        lm.erase("samples_per_second");
        EXPECT_EQ(sm, lm) << "epoch " << e;
      }
      if (s.rec.status == "pruned") ++pruned;
      // Where each attempt ran is recorded: a Slurm job here, the pool there.
      ASSERT_EQ(JobIds(s.rec).size(), 1u) << s.rec.placements.dump();
      EXPECT_EQ(l.rec.placements.at(0).value("executor", ""), "local");
    }
  }
  EXPECT_GE(pruned, 1);
  EXPECT_EQ(slurm.at("tune").at(1).rec.status, "pruned");  // trials 2 and 3 ran after it
  // One slot: a single job ran every trial, the pruned one and the next.
  std::set<std::string> jobs;
  for (const auto& [stage, trials] : slurm) {
    for (const auto& [number, t] : trials) jobs.insert(JobIds(t.rec).at(0));
  }
  EXPECT_EQ(jobs.size(), 1u);
  // Slurm knows that job, and it is over: the run's end left no job behind.
  for (const auto& line : Squeue("%i|%j|%T", "all")) {
    if (line.rfind(*jobs.begin() + "|", 0) == 0) {
      EXPECT_EQ(line.find("|RUNNING"), std::string::npos) << line;
      EXPECT_EQ(line.find("|PENDING"), std::string::npos) << line;
    }
  }
  for (const auto& line : Squeue("%j")) {
    EXPECT_NE(line.rfind("baton-" + slurm_id + "-w", 0), 0u) << "still queued: " << line;
  }
  // `baton show` names the job.
  std::string show;
  testing::RunBaton(dir_ / "slurm", "show " + slurm_id + " --stage tune", &show, "2>&1");
  EXPECT_NE(show.find("slurm job " + *jobs.begin() + " (attempt 1)"), std::string::npos) << show;
}

TEST_F(SlurmExecutorTest, AJobCancelledMidTrialIsRetriedFromItsLastStoredEpoch) {
  constexpr int kEpochs = 20;
  Json doc = testing::LinearGridPipeline("e2e-slurm-scancel", 5, 12000, {0.05}, kEpochs, 1);
  doc["stages"]["tune"]["model"]["layers"] = Json::parse(R"([{"name": "flat", "type": "flatten"},
      {"name": "fc1", "type": "linear", "out_features": 512}, {"name": "act", "type": "relu"},
      {"name": "fc2", "type": "linear", "out_features": 10}])");
  doc["stages"]["tune"]["retry"] = {{"max_attempts", 2}, {"backoff_seconds", 0}};
  doc["executor"] = {{"type", "slurm"}};
  StartRun(dir_ / "store", Write("pipeline.json", doc), {});

  // Once two epochs are stored, scancel the job that runs the trial.
  store::TrialRecord victim;
  std::vector<store::EpochRecord> before;
  const auto until = Clock::now() + 120s;
  while (Clock::now() < until && Running()) {
    if (fs::exists(dir_ / "store" / "lineage.db")) {
      try {
        std::string run_id;
        const testing::RunSnapshot now = testing::ReadNewestRun(dir_ / "store", &run_id);
        if (now.count("tune") && now.at("tune").count(0) && now.at("tune").at(0).epochs.size() >= 2) {
          victim = now.at("tune").at(0).rec;
          before = now.at("tune").at(0).epochs;
          break;
        }
      } catch (const std::exception&) {
        // The schema may not be there yet.
      }
    }
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_FALSE(before.empty()) << ReadFile(dir_ / "run.log");
  ASSERT_LT(before.size(), static_cast<size_t>(kEpochs)) << "the trial finished before it could be cancelled";
  const std::vector<std::string> first = JobIds(victim);
  ASSERT_EQ(first.size(), 1u) << victim.placements.dump();
  ASSERT_EQ(Capture("scancel " + first[0] + " 2>&1").exit_code, 0);

  ASSERT_EQ(WaitRun(180s), 0) << ReadFile(dir_ / "run.log");
  auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
  const store::TrialRecord after = *db->GetTrial(victim.id);
  EXPECT_EQ(after.status, "succeeded");
  EXPECT_EQ(after.attempts, 2);
  // The first attempt failed with Slurm's word for it; the retry ran in a new job.
  EXPECT_NE(after.reason.find("Slurm job " + first[0] + ") ended: CANCELLED"), std::string::npos) << after.reason;
  const std::vector<std::string> jobs = JobIds(after);
  ASSERT_EQ(jobs.size(), 2u) << after.placements.dump();
  EXPECT_EQ(jobs[0], first[0]);
  EXPECT_NE(jobs[1], first[0]);
  // Every epoch once; those stored before the cancel unchanged; the retry
  // started from the last one stored when the job ended.
  const auto epochs = db->GetEpochs(victim.id);
  ASSERT_EQ(epochs.size(), static_cast<size_t>(kEpochs));
  for (size_t e = 0; e < before.size(); ++e) EXPECT_EQ(epochs[e].checkpoint, before[e].checkpoint);
  int resumed = 0;
  for (const auto& edge : db->Upstream("trial:" + std::to_string(victim.id), 1)) {
    if (edge.kind != "resumed_from") continue;
    ++resumed;
    const int start = edge.attrs.value("start_epoch", 0);
    EXPECT_GE(start, static_cast<int>(before.size()));
    ASSERT_GT(start, 0);
    EXPECT_EQ(edge.dst, "checkpoint:" + epochs[start - 1].checkpoint);
  }
  EXPECT_EQ(resumed, 1);
}

TEST_F(SlurmExecutorTest, ACommandStageRunsInASlurmJobAndItsOutputAndLogsAreStored) {
  // A command stage is a task like any other: on Slurm it runs in a worker
  // job, in the run's working directory (here on the one node's disk).
  Json doc = {{"schema_version", "1"}, {"name", "e2e-slurm-command"}, {"executor", {{"type", "slurm"}}}};
  doc["stages"]["where"] = {
      {"type", "command"},
      {"cmd", {"/bin/sh", "-c", "mkdir -p out && echo job=$SLURM_JOB_ID > out/where.txt && echo on-slurm"}},
      {"outs", {"out/where.txt"}}};
  Write("pipeline.json", doc);
  const std::string baton = "cd " + dir_.string() + " && BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store store ";
  const testing::CmdResult run = Capture(baton + "run pipeline.json --json 2>run.log");
  std::ifstream log_file(dir_ / "run.log");
  const std::string log((std::istreambuf_iterator<char>(log_file)), std::istreambuf_iterator<char>());
  ASSERT_EQ(run.exit_code, 0) << run.out << log;
  const std::string run_id = Json::parse(run.out).at("run_id").get<std::string>();

  std::ifstream where(dir_ / "out" / "where.txt");
  std::string line;
  std::getline(where, line);
  ASSERT_EQ(line.rfind("job=", 0), 0u) << line;
  const std::string job = line.substr(4);
  EXPECT_FALSE(job.empty()) << "the command ran outside a Slurm job";
  auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
  const auto stages = db->GetStages(run_id);
  ASSERT_EQ(stages.size(), 1u);
  EXPECT_EQ(stages[0].status, "succeeded") << stages[0].error;
  EXPECT_FALSE(stages[0].output.empty()) << "the out was not stored";
  const auto trials = db->GetTrials(stages[0].id);
  ASSERT_EQ(trials.size(), 1u);
  EXPECT_EQ(JobIds(trials[0]), std::vector<std::string>{job}) << "the attempt's placement names another job";
  const testing::CmdResult logs = Capture(baton + "logs " + run_id + " where 2>/dev/null");
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_EQ(logs.out, "on-slurm\n");
}

TEST_F(SlurmExecutorTest, APartitionSlurmDoesNotHaveFailsTheRunWithSlurmsMessage) {
  Json doc = testing::LinearGridPipeline("e2e-slurm-partition", 3, 300, {0.1}, 1, 1);
  doc["executor"] = {{"type", "slurm"}, {"partition", "no-such-partition"}};
  std::string out;
  const auto t0 = Clock::now();
  const int rc = testing::RunBaton(dir_ / "store", "run " + Write("pipeline.json", doc).string() + " --no-progress",
                                   &out, "2>&1");
  EXPECT_NE(rc, 0) << out;
  EXPECT_LT(Clock::now() - t0, 60s) << "the run waited for a job that cannot start";
  EXPECT_NE(out.find("Invalid partition name specified"), std::string::npos) << out;
  std::string run_id;
  const auto snapshot = testing::ReadNewestRun(dir_ / "store", &run_id);
  auto db = store::LineageDb::Open(dir_ / "store" / "lineage.db");
  const auto run = db->GetRun(run_id);
  EXPECT_EQ(run->status, "failed");
  EXPECT_NE(run->error.find("no-such-partition"), std::string::npos) << run->error;
}

TEST_F(SlurmExecutorTest, AJobThatNeverStartsFailsTheRunAfterThePendingTimeout) {
  Json doc = testing::LinearGridPipeline("e2e-slurm-pending", 3, 300, {0.1}, 1, 1);
  // Slurm holds the job for an hour; the run gives up after 3 s.
  doc["executor"] = {{"type", "slurm"}, {"extra_args", {"--begin=now+1hour"}}, {"pending_timeout_seconds", 3}};
  std::string out;
  const auto t0 = Clock::now();
  EXPECT_NE(testing::RunBaton(dir_ / "store", "run " + Write("pipeline.json", doc).string() + " --no-progress", &out,
                              "2>&1"),
            0)
      << out;
  EXPECT_LT(Clock::now() - t0, 60s);
  EXPECT_NE(out.find("pending, reason BeginTime"), std::string::npos) << out;
  EXPECT_NE(out.find("pending_timeout_seconds is 3"), std::string::npos) << out;
  // The held job was cancelled with the run.
  for (const auto& line : Squeue("%j|%T")) EXPECT_NE(line.find("e2e"), 0u) << line;
  for (const auto& line : Squeue("%j|%r")) EXPECT_EQ(line.find("BeginTime"), std::string::npos) << line;
}

TEST_F(SlurmExecutorTest, ServeWithTheSlurmExecutorRunsAPipelineTriggeredOverHttp) {
  // One worker job more than the node has CPUs: the last stays pending
  // (Resources) while the others run, until the run's end cancels it.
  const testing::CmdResult node = Capture("sinfo -h -o %c");
  ASSERT_EQ(node.exit_code, 0);
  const int workers = std::stoi(node.out) + 1;
  testing::Server server(dir_ / "store", "--executor slurm --workers " + std::to_string(workers));
  const Json doc = testing::LinearGridPipeline("e2e-slurm-serve", 9, 600, {0.1, 0.05}, 2, 2);
  const std::string run_id = testing::Trigger(server, doc);
  ASSERT_EQ(testing::WaitForRun(server, run_id, 120s), "succeeded") << ReadFile(dir_ / "store" / "serve.log");
  // Every job of the run ends with it; the one still pending is cancelled.
  const std::string prefix = "baton-" + run_id + "-w";
  std::map<std::string, std::string> states;  // job name -> state
  for (auto until = Clock::now() + 30s; Clock::now() < until;) {
    states.clear();
    bool live = false;
    for (const auto& line : Squeue("%j|%T", "all")) {
      if (line.rfind(prefix, 0) != 0) continue;
      const std::string state = line.substr(line.find('|') + 1);
      states[line.substr(0, line.find('|'))] = state;
      live = live || state == "PENDING" || state == "RUNNING" || state == "COMPLETING";
    }
    if (!live) break;
    std::this_thread::sleep_for(100ms);
  }
  // (A job Slurm starts in the instant between the run's end and the
  // cancel hears that the run is over and completes; one started later
  // would find the endpoint gone and fail.)
  ASSERT_EQ(states.size(), static_cast<size_t>(workers));
  for (const auto& [name, state] : states) {
    EXPECT_TRUE(state == "COMPLETED" || state == "CANCELLED") << name << " " << state;
  }
  const Json trials = testing::Parse(server.Client().Get(("/api/v1/runs/" + run_id + "/stages/tune/trials").c_str()));
  ASSERT_EQ(trials["trials"].size(), 2u) << trials.dump();
  for (const auto& t : trials["trials"]) {
    EXPECT_EQ(t["status"], "succeeded");
    ASSERT_EQ(t["placements"].size(), 1u) << t.dump();
    EXPECT_EQ(t["placements"][0]["executor"], "slurm");
    EXPECT_FALSE(t["placements"][0].value("slurm_job_id", "").empty());
  }
}

// "ranks": 2 on Slurm: one job of two tasks started by srun -n 2, which
// train the weights one local process trains.
TEST_F(SlurmExecutorTest, TwoRanksUnderSrunTrainTheWeightsOfOneLocalProcess) {
  std::string out;
  ASSERT_EQ(testing::RunBaton(dir_ / "one",
                              "run " + Write("one.json", testing::DataParallelPipeline("dp", 1, 1, 2000, 64)).string() +
                                  " --executor local --no-progress",
                              &out, "2>&1"),
            0)
      << out;
  ASSERT_EQ(testing::RunBaton(dir_ / "srun",
                              "run " + Write("two.json", testing::DataParallelPipeline("dp", 2, 1, 2000, 64)).string() +
                                  " --executor slurm --no-progress",
                              &out, "2>&1"),
            0)
      << out;
  std::string one_id, srun_id;
  const auto one = testing::ReadNewestRun(dir_ / "one", &one_id).at("train").at(0);
  const auto two = testing::ReadNewestRun(dir_ / "srun", &srun_id).at("train").at(0);
  ASSERT_EQ(two.epochs.size(), 1u);
  const double diff = testing::MaxAbsDifference(testing::CheckpointFloats(dir_ / "one", one.epochs[0].checkpoint),
                                                testing::CheckpointFloats(dir_ / "srun", two.epochs[0].checkpoint));
  std::printf("[ weights ] 1 local process vs srun -n 2 after an epoch: max |difference| %.3g\n", diff);
  EXPECT_LE(diff, 1e-5);
  // One job ran both ranks: Slurm counted two tasks for it.
  const std::vector<std::string> jobs = JobIds(two.rec);
  ASSERT_EQ(jobs.size(), 1u);
  const testing::CmdResult job = Capture("scontrol show job -o " + jobs[0] + " 2>&1");
  EXPECT_NE(job.out.find("NumTasks=2"), std::string::npos) << job.out;
}

// A rank of a group under srun that dies: srun ends its partner
// (--kill-on-bad-exit), the job ends, the attempt fails within seconds and
// the retry finishes the run in a new job.
TEST_F(SlurmExecutorTest, ARankKilledUnderSrunFailsTheAttemptAndTheRetryFinishes) {
  constexpr int kEpochs = 12;
  Json doc = testing::DataParallelPipeline("dp-srun-kill", 2, kEpochs, 12000, 256);
  doc["executor"] = {{"type", "slurm"}};
  StartRun(dir_ / "store", Write("p.json", doc), {});
  pid_t rank0 = -1, rank1 = -1;
  std::vector<store::EpochRecord> before;
  for (auto until = Clock::now() + 180s; Clock::now() < until && Running() && rank1 < 0;) {
    try {
      std::string run_id;
      if (fs::exists(dir_ / "store" / "lineage.db")) {
        const auto snapshot = testing::ReadNewestRun(dir_ / "store", &run_id);
        if (snapshot.count("train") && !snapshot.at("train").empty() && !snapshot.at("train").at(0).epochs.empty()) {
          before = snapshot.at("train").at(0).epochs;
          for (const auto& [pid, ppid] : testing::BatonWorkers()) {
            if (testing::EnvironOf(pid, "SLURM_NTASKS") != "2") continue;
            if (testing::EnvironOf(pid, "SLURM_PROCID") == "1") rank1 = pid;
            if (testing::EnvironOf(pid, "SLURM_PROCID") == "0") rank0 = pid;
          }
        }
      }
    } catch (const std::exception&) {
      // The schema may not be there yet.
    }
    if (rank1 < 0) std::this_thread::sleep_for(50ms);
  }
  ASSERT_GT(rank1, 0) << ReadFile(dir_ / "run.log");
  ASSERT_GT(rank0, 0);
  ASSERT_LT(before.size(), static_cast<size_t>(kEpochs));
  const auto killed_at = Clock::now();
  ASSERT_EQ(::kill(rank1, SIGKILL), 0);
  while (testing::Alive(rank0) && Clock::now() - killed_at < 10s) std::this_thread::sleep_for(20ms);
  std::printf("[ killed  ] rank 1 under srun after %zu epochs; rank 0 gone %.2f s later\n", before.size(),
              std::chrono::duration<double>(Clock::now() - killed_at).count());
  EXPECT_FALSE(testing::Alive(rank0)) << "rank 0 outlived its partner by 10 s";
  ASSERT_EQ(WaitRun(300s), 0) << ReadFile(dir_ / "run.log");
  std::string run_id;
  const auto after = testing::ReadNewestRun(dir_ / "store", &run_id).at("train").at(0);
  EXPECT_EQ(after.rec.status, "succeeded");
  EXPECT_EQ(after.rec.attempts, 2) << after.rec.reason;
  EXPECT_EQ(after.epochs.size(), static_cast<size_t>(kEpochs));
  const std::vector<std::string> jobs = JobIds(after.rec);
  ASSERT_EQ(jobs.size(), 2u) << after.rec.placements.dump();
  EXPECT_NE(jobs[0], jobs[1]);
}

}  // namespace
}  // namespace baton
