// Orchestration overhead per trial: many trivial trials through the full
// Baton path vs Optuna with SQLite storage.
//   Baton: the real `baton run` of a generated pipeline: a prepare stage on a
//     tiny Fashion-MNIST subset, then a tune stage of N one-epoch trials of a
//     tiny model (flatten -> linear 10) over lr (float, log), momentum (float)
//     and batch_size (categorical), on W long-lived workers (max_parallel W).
//     Trials/s = N / (tune stage finished_at - started_at) from the lineage DB;
//     the prepare stage and process start-up are outside that window.
//   Optuna: bench/optuna_trivial.py (Debian's python3-optuna, clean env): the
//     same N trials with the same search space and sampler, SQLite storage,
//     an objective that trains nothing; n_jobs=1 (and n_jobs=W, optionally).
// Samplers: random (Baton's "random", Optuna's RandomSampler) and TPE (Baton's
// "tpe", Optuna's TPESampler; both n_startup_trials 10, n_ei_candidates 24).
// Repeats are interleaved (Baton and Optuna of one repeat run back to back);
// medians, and each repeat's own ratio.
//
//   build/bench/bench_trial_overhead [--trials 500] [--workers 2] [--repeats 3]
//       [--samplers random,tpe] [--optuna-jobs 1,2] [--baton PATH]
//       [--python /usr/bin/python3] [--script PATH] [--dir /tmp] [--keep 1]
//
// baton-worker is found beside baton (or BATON_WORKER).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "common/json_util.h"
#include "common/vocabulary.h"
#include "store/lineage_db.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using baton::Is;
using baton::Json;
using baton::TrialStatus;

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

std::string Fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream list(s);
  std::string item;
  while (std::getline(list, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

struct ChildResult {
  int status = -1;  // exit status, or -1 when killed
  std::string out;  // stdout
  double seconds = 0;
};

// Runs argv with exactly `env` (nullptr: this process's environment),
// capturing stdout; stderr goes to `log`.
ChildResult RunChild(const std::vector<std::string>& argv, const std::vector<std::string>* env, const fs::path& log) {
  int out_pipe[2];
  if (pipe(out_pipe) != 0) throw std::runtime_error("pipe failed");
  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  if (env) {
    for (const auto& e : *env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const auto start = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(out_pipe[1], 1);
    if (log_fd >= 0) dup2(log_fd, 2);
    close(out_pipe[0]);
    close(out_pipe[1]);
    if (env) {
      execve(args[0], args.data(), envp.data());
    } else {
      execv(args[0], args.data());
    }
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(out_pipe[1]);
  if (log_fd >= 0) close(log_fd);
  ChildResult r;
  char buf[4096];
  ssize_t got;
  while ((got = read(out_pipe[0], buf, sizeof(buf))) > 0) r.out.append(buf, static_cast<size_t>(got));
  close(out_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Json PipelineJson(const std::string& sampler, int trials, int workers) {
  Json pipeline = Json::parse(R"({
  "schema_version": "1",
  "name": "bench-trial-overhead",
  "seed": 7,
  "stages": {
    "prep": {"type": "prepare",
             "dataset": {"format": "idx", "path": "/usr/share/datasets/fashion-mnist"},
             "train_subset": 100, "test_subset": 10, "validation_fraction": 0.1, "normalize": true},
    "tune": {"type": "tune", "depends_on": ["prep"],
             "model": {"layers": [{"name": "flat", "type": "flatten"},
                                  {"name": "fc", "type": "linear", "out_features": 10}]},
             "search_space": {
               "lr": {"type": "float", "low": 0.001, "high": 0.3, "log": true},
               "momentum": {"type": "float", "low": 0.5, "high": 0.99},
               "batch_size": {"type": "categorical", "values": [16, 32, 64]}},
             "objective": {"metric": "val_accuracy", "mode": "max"},
             "budget": {"max_trials": 1, "max_parallel": 1, "max_epochs": 1}}
  }
})");
  pipeline.merge_patch({{"stages",
                     {{"tune",
                       {{"sampler", {{"type", sampler}}},
                        {"budget", {{"max_trials", trials}, {"max_parallel", workers}, {"max_epochs", 1}}}}}}}});
  return pipeline;
}

// One `baton run`, timed from the lineage DB (coordinator clock).
struct BatonRun {
  double tune_seconds = 0;  // tune stage finished_at - started_at
  double wall_seconds = 0;  // the whole `baton run` command
  double prep_seconds = 0;  // prep stage finished_at - started_at
  int succeeded = 0;
  // Per trial (medians over the run's trials):
  std::vector<double> trial;  // finished_at - started_at
  std::vector<double> start;  // started_at -> epoch 0 report, minus the epoch's seconds
  std::vector<double> epoch;  // the epoch's train + eval seconds (as the worker measured them)
  std::vector<double> end;    // epoch 0 report -> finished_at
};

BatonRun RunBaton(const std::string& baton, const fs::path& dir, const fs::path& pipeline, int workers,
                  const std::string& tag) {
  const fs::path store = dir / ("store-" + tag);
  fs::remove_all(store);
  const fs::path log = dir / "baton.log";
  ChildResult r = RunChild({baton, "--store", store.string(), "run", pipeline.string(), "--json", "--no-progress",
                            "--workers", std::to_string(workers)},
                           nullptr, log);
  if (r.status != 0) {
    throw std::runtime_error("baton run failed (exit status " + std::to_string(r.status) + "); see " + log.string());
  }
  const std::string run_id = Json::parse(r.out).at("run_id");
  BatonRun b;
  b.wall_seconds = r.seconds;
  auto db = baton::store::LineageDb::Open(store / "lineage.db");
  for (const auto& stage : db->GetStages(run_id)) {
    if (stage.name == "prep") b.prep_seconds = stage.finished_at - stage.started_at;
    if (stage.name != "tune") continue;
    b.tune_seconds = stage.finished_at - stage.started_at;
    for (const auto& t : db->GetTrials(stage.id)) {
      if (!Is(t.status, TrialStatus::kSucceeded)) continue;
      ++b.succeeded;
      b.trial.push_back(t.finished_at - t.started_at);
      const auto epochs = db->GetEpochs(t.id);
      if (epochs.size() != 1) continue;
      b.epoch.push_back(epochs[0].seconds);
      b.start.push_back(epochs[0].created_at - epochs[0].seconds - t.started_at);
      b.end.push_back(t.finished_at - epochs[0].created_at);
    }
  }
  db.reset();
  fs::remove_all(store);
  return b;
}

struct OptunaRun {
  double seconds = 0;
  double rate = 0;
  std::string version;
};

OptunaRun RunOptuna(const std::string& python, const std::string& script, const fs::path& dir, int trials,
                    const std::string& sampler, int jobs, int seed) {
  const fs::path log = dir / "optuna.log";
  // A clean environment: Debian's python and its packages only.
  const std::vector<std::string> env = {"PATH=/usr/bin:/bin"};
  ChildResult r = RunChild({python, script, "--dir", dir.string(), "--trials", std::to_string(trials), "--sampler",
                            sampler, "--jobs", std::to_string(jobs), "--seed", std::to_string(seed)},
                           &env, log);
  const size_t at = r.out.rfind("RESULT ");
  if (r.status != 0 || at == std::string::npos) {
    throw std::runtime_error("the Optuna script failed (exit status " + std::to_string(r.status) + "); see " +
                             log.string());
  }
  const Json res = Json::parse(r.out.substr(at + 7));
  if (res.at("trials").get<int>() != trials) throw std::runtime_error("Optuna completed fewer trials than asked");
  return {res.at("seconds").get<double>(), res.at("trials_per_second").get<double>(),
          res.at("optuna").get<std::string>()};
}

struct Row {
  std::string sampler;
  std::vector<double> baton_rate, baton_wall, baton_prep;
  std::vector<BatonRun> baton_runs;
  std::map<int, std::vector<double>> optuna_rate;  // by n_jobs
};

int Run(int argc, char** argv) {
  int trials = 500, workers = 2, repeats = 3;
  std::string samplers_arg = "random,tpe", jobs_arg = "1";
  std::string python = "/usr/bin/python3";
  std::string baton = ::baton::bench::BatonBinary();
  std::string script = (::baton::bench::BenchDir() / "optuna_trivial.py").string();
  std::string base = fs::temp_directory_path().string();
  bool keep = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--trials") trials = std::stoi(v);
    else if (a == "--workers") workers = std::stoi(v);
    else if (a == "--repeats") repeats = std::stoi(v);
    else if (a == "--samplers") samplers_arg = v;
    else if (a == "--optuna-jobs") jobs_arg = v;
    else if (a == "--baton") baton = v;
    else if (a == "--python") python = v;
    else if (a == "--script") script = v;
    else if (a == "--dir") base = v;
    else if (a == "--keep") keep = v == "1";
    else {
      std::fprintf(stderr, "unknown option %s (see the comment at the top of bench/trial_overhead.cpp)\n", a.c_str());
      return 2;
    }
  }
  if (argc % 2 == 0) {
    std::fprintf(stderr, "option %s needs a value\n", argv[argc - 1]);
    return 2;
  }
  std::vector<int> jobs;
  for (const auto& j : Split(jobs_arg)) jobs.push_back(std::stoi(j));
  if (jobs.empty() || jobs[0] != 1) jobs.insert(jobs.begin(), 1);

  const fs::path dir = fs::path(base) / ("baton-bench-trials-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);

  std::vector<Row> rows;
  for (const auto& s : Split(samplers_arg)) {
    if (s != "random" && s != "tpe") {
      std::fprintf(stderr, "unknown sampler %s (random or tpe)\n", s.c_str());
      return 2;
    }
    rows.push_back({s, {}, {}, {}, {}, {}});
    const std::string text = PipelineJson(s, trials, workers).dump(2);
    std::ofstream(dir / ("pipeline-" + s + ".json")) << text;
  }

  std::string optuna_version;
  std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M", std::localtime(&now));
  std::printf("trial overhead: %d trivial trials x %d repeats (median), %d Baton workers, started %s, dir %s\n", trials,
              repeats, workers, when, dir.c_str());
  for (int r = 0; r < repeats; ++r) {
    for (auto& row : rows) {
      // Alternate which side goes first.
      for (int side = 0; side < 2; ++side) {
        if ((side + r) % 2 == 0) {
          BatonRun b = RunBaton(baton, dir, dir / ("pipeline-" + row.sampler + ".json"), workers,
                                row.sampler + "-" + std::to_string(r));
          if (b.succeeded != trials) {
            std::fprintf(stderr, "warning: %d of %d Baton trials succeeded\n", b.succeeded, trials);
          }
          row.baton_rate.push_back(trials / b.tune_seconds);
          row.baton_wall.push_back(b.wall_seconds);
          row.baton_prep.push_back(b.prep_seconds);
          std::fprintf(stderr, "repeat %d %-6s baton : %7.1f trials/s (tune %.2f s, command %.2f s)\n", r + 1,
                       row.sampler.c_str(), row.baton_rate.back(), b.tune_seconds, b.wall_seconds);
          row.baton_runs.push_back(std::move(b));
        } else {
          for (int j : jobs) {
            OptunaRun o = RunOptuna(python, script, dir, trials, row.sampler, j, 7 + r);
            optuna_version = o.version;
            row.optuna_rate[j].push_back(o.rate);
            std::fprintf(stderr, "repeat %d %-6s optuna n_jobs=%d: %7.1f trials/s (%.2f s)\n", r + 1,
                         row.sampler.c_str(), j, o.rate, o.seconds);
          }
        }
      }
    }
  }

  std::printf("\nTarget (from the issue; not asserted): Baton's trials/s >= 2x Optuna's with the same sampler.\n\n");
  std::printf("| sampler | Baton trials/s (%d workers) | Optuna %s trials/s (n_jobs=1) | ratio Baton/Optuna | per repeat "
              "| target |\n|---|---|---|---|---|---|\n",
              workers, optuna_version.c_str());
  for (const auto& row : rows) {
    const auto& o = row.optuna_rate.at(1);
    std::string each;
    for (size_t i = 0; i < std::min(row.baton_rate.size(), o.size()); ++i) {
      each += (each.empty() ? "" : ", ") + Fixed(row.baton_rate[i] / o[i], 2);
    }
    const double ratio = Median(row.baton_rate) / Median(o);
    std::printf("| %s | %.1f | %.1f | %.2f | %s | >= 2: %s |\n", row.sampler.c_str(), Median(row.baton_rate),
                Median(o), ratio, each.c_str(), ratio >= 2 ? "met" : "missed");
  }
  if (jobs.size() > 1) {
    std::printf("\n| sampler | Baton trials/s (%d workers) |", workers);
    for (int j : jobs) std::printf(" Optuna n_jobs=%d |", j);
    for (int j : jobs) std::printf(" Baton/Optuna(n_jobs=%d) |", j);
    std::printf("\n|---|---|");
    for (size_t k = 0; k < 2 * jobs.size(); ++k) std::printf("---|");
    std::printf("\n");
    for (const auto& row : rows) {
      std::printf("| %s | %.1f |", row.sampler.c_str(), Median(row.baton_rate));
      for (int j : jobs) std::printf(" %.1f |", Median(row.optuna_rate.at(j)));
      for (int j : jobs) std::printf(" %.2f |", Median(row.baton_rate) / Median(row.optuna_rate.at(j)));
      std::printf("\n");
    }
  }

  std::printf("\nWhere a Baton trial's time goes (coordinator clock, medians over all trials of all repeats, ms):\n\n");
  std::printf("| sampler | trial (hand-out -> :complete) | hand-out -> epoch report, less the epoch | epoch: train + "
              "eval | epoch report -> :complete | between trials per worker (W x tune time / N - trial) | `baton run` "
              "command, s (prep stage, s) |\n|---|---|---|---|---|---|---|\n");
  for (const auto& row : rows) {
    std::vector<double> trial, start, epoch, end, gap;
    for (const auto& b : row.baton_runs) {
      trial.insert(trial.end(), b.trial.begin(), b.trial.end());
      start.insert(start.end(), b.start.begin(), b.start.end());
      epoch.insert(epoch.end(), b.epoch.begin(), b.epoch.end());
      end.insert(end.end(), b.end.begin(), b.end.end());
      gap.push_back(workers * b.tune_seconds / trials - Mean(b.trial));
    }
    std::printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f (%.2f) |\n", row.sampler.c_str(), Median(trial) * 1e3,
                Median(start) * 1e3, Median(epoch) * 1e3, Median(end) * 1e3, Median(gap) * 1e3,
                Median(row.baton_wall), Median(row.baton_prep));
  }
  std::printf(
      "\n- Baton: trials/s = N / (tune stage finished_at - started_at) in the lineage DB; the prepare stage "
      "(100 training examples read, 90 kept for training and 10 for validation, normalised, uploaded as a dataset artifact) and the `baton`/worker start-up are "
      "outside that window (the command's wall time above includes them). Every trial is the full path: task hand-out "
      "over HTTP (tasks:next, the trial's start written to SQLite), model build (flatten -> linear 10), the initial "
      "checkpoint (encode, SHA-256, missing-blob query, upload, report: lineage transaction), one epoch of training "
      "on 90 examples + evaluation on 10, the epoch's checkpoint upload, the epoch report (one SQLite transaction, "
      "synchronous=FULL, before the answer), and :complete (the trial's end written). Store as `baton run` opens "
      "it: RocksDB with sync on, SQLite WAL synchronous=FULL. TPE samples each trial when it starts, from the trials "
      "finished by then.\n"
      "- Optuna: bench/optuna_trivial.py, `study.optimize(objective, n_trials=N, n_jobs=J)` on "
      "`sqlite:///DIR/optuna-*.db`, timed around optimize (create_study excluded); the objective suggests the same "
      "three parameters and returns a number computed from them: trial bookkeeping only, no training, no "
      "checkpoints. Debian's python3 in a clean environment (env -i PATH=/usr/bin:/bin). Optuna's SQLite storage "
      "uses SQLite's defaults (rollback journal, synchronous=FULL).\n");
  if (!keep) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return ::baton::bench::GuardedMain("bench_trial_overhead", Run, argc, argv); }
