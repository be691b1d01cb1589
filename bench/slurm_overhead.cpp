// The example's tuning stage on the Slurm executor against the local pool:
// the same pipeline (the example's model, search space, sampler, seed and
// median pruner; a smaller budget by default), the same number of workers,
// each run on a fresh store, repeated; medians. Prints the tune stage's
// wall time of both, their ratio, the overhead per trial, and how long the
// first trial waited after the run started (sbatch to job start on Slurm,
// process start on the pool).
//
//   build/bench/bench_slurm_overhead [--trials 12] [--epochs 3] [--workers 2]
//       [--train-subset 8000] [--repeats 3] [--pipeline examples/fashion-mnist.json]
//       [--baton PATH] [--dir /tmp] [--keep 0]
//
// It starts its own single-node Slurm with scripts/slurm-up (folder
// /tmp/baton-bench-slurm, ports 16927/16928; installed with apt-get if
// missing) and stops it with scripts/slurm-down at the end. Run as root.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "common/json_util.h"
#include "common/vocabulary.h"
#include "store/lineage_db.h"

namespace fs = std::filesystem;
using baton::Is;
using baton::Json;
using baton::RunStatus;
using baton::bench::Median;
using baton::bench::Quote;

namespace {

const char* const kSlurmEnv =
    "SLURM_CI_DIR=/tmp/baton-bench-slurm SLURM_CI_CTLD_PORT=16927 SLURM_CI_SLURMD_PORT=16928 ";

struct Outcome {
  double tune_seconds = 0;   // the tune stage's started_at -> finished_at
  double run_seconds = 0;    // the whole `baton run` command
  double first_start = 0;    // run created -> the first trial of prep started
  int trials = 0;
  int epochs = 0;
};

Outcome RunOnce(const std::string& baton, const fs::path& dir, const Json& doc, const std::string& executor,
                int workers) {
  fs::create_directories(dir);
  std::ofstream(dir / "pipeline.json") << doc.dump(2);
  const fs::path store = dir / "store";
  const std::string cmd = Quote(baton) + " --store " + Quote(store.string()) + " run " +
                          Quote((dir / "pipeline.json").string()) + " --executor " + executor + " --workers " +
                          std::to_string(workers) + " --json --no-progress > " + Quote((dir / "run.json").string()) +
                          " 2> " + Quote((dir / "run.log").string());
  std::fprintf(stderr, "running %s\n", cmd.c_str());
  const auto t0 = std::chrono::steady_clock::now();
  const int rc = std::system(cmd.c_str());
  Outcome o;
  o.run_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rc != 0) throw std::runtime_error(executor + ": baton run failed; see " + (dir / "run.log").string());
  auto db = baton::store::LineageDb::Open(store / "lineage.db");
  const auto runs = db->ListRuns(1);
  if (runs.empty() || !Is(runs[0].status, RunStatus::kSucceeded)) throw std::runtime_error(executor + ": run failed");
  for (const auto& stage : db->GetStages(runs[0].id)) {
    const auto trials = db->GetTrials(stage.id);
    if (stage.name == "prep" && !trials.empty()) o.first_start = trials[0].started_at - runs[0].created_at;
    if (stage.name != "tune") continue;
    o.tune_seconds = stage.finished_at - stage.started_at;
    for (const auto& t : trials) {
      ++o.trials;
      o.epochs += static_cast<int>(db->GetEpochs(t.id).size());
    }
  }
  return o;
}

int Run(int argc, char** argv) {
  int trials = 12, epochs = 3, workers = 2, subset = 8000, repeats = 3, keep = 0;
  std::string pipeline = BATON_SOURCE_DIR "/examples/fashion-mnist.json";
  std::string baton = ::baton::bench::BatonBinary();
  std::string base = "/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--trials") trials = std::stoi(v);
    else if (a == "--epochs") epochs = std::stoi(v);
    else if (a == "--workers") workers = std::stoi(v);
    else if (a == "--train-subset") subset = std::stoi(v);
    else if (a == "--repeats") repeats = std::stoi(v);
    else if (a == "--pipeline") pipeline = v;
    else if (a == "--baton") baton = v;
    else if (a == "--dir") base = v;
    else if (a == "--keep") keep = std::stoi(v);
    else throw std::runtime_error("unknown option " + a);
  }
  std::ifstream in(pipeline);
  if (!in) throw std::runtime_error("cannot read " + pipeline);
  Json doc = Json::parse(in);
  Json stages = {{"prep", doc["stages"]["prep"]}, {"tune", doc["stages"]["tune"]}};
  stages["prep"]["train_subset"] = subset;
  stages["tune"]["budget"] = {{"max_trials", trials}, {"max_parallel", workers}, {"max_epochs", epochs}};
  doc["stages"] = stages;

  const std::string up = std::string(kSlurmEnv) + Quote(BATON_SOURCE_DIR "/scripts/slurm-up") + " >&2";
  if (std::system(up.c_str()) != 0) throw std::runtime_error("scripts/slurm-up failed");
  setenv("SLURM_CONF", "/tmp/baton-bench-slurm/slurm.conf", 1);

  const fs::path dir = fs::path(base) / ("baton-bench-slurm-" + std::to_string(getpid()));
  std::vector<Outcome> local, slurm;
  try {
    for (int r = 0; r < repeats; ++r) {  // interleaved, so drift in the machine's load hits both
      local.push_back(RunOnce(baton, dir / ("local-" + std::to_string(r)), doc, "local", workers));
      slurm.push_back(RunOnce(baton, dir / ("slurm-" + std::to_string(r)), doc, "slurm", workers));
    }
  } catch (...) {
    std::system((std::string(kSlurmEnv) + Quote(BATON_SOURCE_DIR "/scripts/slurm-down") + " >&2").c_str());
    throw;
  }
  std::system((std::string(kSlurmEnv) + Quote(BATON_SOURCE_DIR "/scripts/slurm-down") + " >&2").c_str());

  auto med = [](const std::vector<Outcome>& v, double Outcome::*field) {
    std::vector<double> xs;
    for (const auto& o : v) xs.push_back(o.*field);
    return Median(xs);
  };
  const double lt = med(local, &Outcome::tune_seconds), st = med(slurm, &Outcome::tune_seconds);
  const double lr = med(local, &Outcome::run_seconds), sr = med(slurm, &Outcome::run_seconds);
  const double lf = med(local, &Outcome::first_start), sf = med(slurm, &Outcome::first_start);
  std::printf("Slurm executor vs local pool: the example's tune stage (%d trials x up to %d epochs, median pruner, "
              "train_subset %d), %d workers, %d repeats (medians), single-node Slurm on this machine\n\n",
              trials, epochs, subset, workers, repeats);
  std::printf("| executor | tune stage s | ratio to local | whole run s | ratio | first task started after s | "
              "trials | epochs trained |\n|---|---|---|---|---|---|---|---|\n");
  std::printf("| local pool (baseline) | %.2f | 1.000 | %.2f | 1.000 | %.2f | %d | %d |\n", lt, lr, lf,
              local[0].trials, local[0].epochs);
  std::printf("| slurm | %.2f | %.3f | %.2f | %.3f | %.2f | %d | %d |\n", st, st / lt, sr, sr / lr, sf,
              slurm[0].trials, slurm[0].epochs);
  std::printf("\n- overhead per trial (tune stage, Slurm minus local, / trials): %.3f s\n",
              (st - lt) / std::max(1, slurm[0].trials));
  std::printf("- whole-run overhead (job submission and start, once per worker slot): %+.2f s\n", sr - lr);
  if (!keep) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return ::baton::bench::GuardedMain("bench_slurm_overhead", Run, argc, argv); }
