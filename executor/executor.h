#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/json_util.h"

namespace baton::executor {

// What every worker of a run is started with, wherever it runs.
struct WorkerLaunch {
  std::string run_id;           // names the workers where the executor shows names (Slurm job names)
  std::string coordinator_url;  // where the worker reaches the coordinator's /internal/v1
  std::string token;            // the run's worker token (BATON_WORKER_TOKEN)
  int workers = 1;              // workers kept while the run has work
  int threads_per_worker = 1;   // torch threads in each worker. Default: 1
  // GPUs the local pool hands out, one per worker process (CUDA_VISIBLE_DEVICES);
  // empty: none.
  std::vector<std::string> gpus;
  // Each worker process needs a GPU: a stage asks for "device": "cuda"
  // (Slurm: --gres=gpu:1, or --gpus-per-task=1 for a group).
  bool gpu = false;
  // Processes per worker: a data-parallel group of this many ranks, of
  // which rank 0 talks to the coordinator (the largest "ranks" of the run's
  // stages). Default: 1.
  int ranks = 1;
  std::string log_dir;          // worker-N.log files go here; "" = discard
  // A worker that ends while there is work is replaced, at most this many
  // times in all (a crash loop must not spin forever). Default: 20.
  int max_respawns = 20;
};

// What an executor tells the run, and asks it.
struct WorkerEvents {
  // A worker ended (exit, signal, job end) with a reason a user can read;
  // its running task, if any, fails with it.
  std::function<void(int worker_id, const std::string& reason)> on_exit;
  // Whether the run still has pending or running tasks: a worker that ends
  // is replaced only then.
  std::function<bool()> has_work;
  // Where a worker runs, once it is known (e.g. {"executor": "slurm",
  // "slurm_job_id": "42"}): recorded with every attempt it starts. May be
  // empty.
  std::function<void(int worker_id, Json placement)> on_placed;
  // The executor cannot run workers for this run (a partition that does not
  // exist, a job that cannot start): the run fails with `reason`. May be
  // empty.
  std::function<void(const std::string& reason)> on_fatal;
};

// Keeps N workers for one run wherever they run (processes on this machine;
// Slurm jobs), replaces the ones that die and kills the one it is told to.
// Workers take their tasks from the coordinator themselves. Thread-safe.
class Executor {
 public:
  virtual ~Executor() = default;
  // Starts launch.workers workers.
  virtual void Start() = 0;
  // Ends worker `worker_id` now if it still runs (one whose lease expired:
  // hung, stopped or cut off). Its end is reported through on_exit with
  // `why`, and it is replaced like any other.
  virtual void Kill(int worker_id, const std::string& why) = 0;
  // Waits up to `grace` for the workers to end by themselves (they do once
  // the coordinator says the run is over), then ends the rest.
  virtual void Stop(std::chrono::milliseconds grace) = 0;
  // Workers running now.
  virtual int Alive() = 0;
};

// Makes the executor of one run.
using ExecutorFactory = std::function<std::unique_ptr<Executor>(const WorkerLaunch&, WorkerEvents)>;

}  // namespace baton::executor
