#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/json_util.h"
#include "stages/coordinator_client.h"

namespace baton::stages {

// Exit statuses of baton-worker (docs/worker-protocol.md).
constexpr int kExitRunOver = 0;      // the coordinator answered 410
constexpr int kExitUsage = 2;        // bad arguments or environment
constexpr int kExitUnreachable = 3;  // coordinator unreachable for 10 s
constexpr int kExitFatal = 4;        // the coordinator refused the worker

// Process-wide settings for a worker: `threads` LibTorch intra-op threads and
// as many OpenBLAS threads (when OpenBLAS is the BLAS loaded), and glibc
// malloc thresholds that keep the training loop's large buffers mapped
// instead of returning them to the kernel on every batch. Call once, early.
void ConfigureWorkerProcess(int threads);

struct WorkerOptions {
  int64_t worker_id = 0;
  // Receives one line per event (task start and end, epochs); default:
  // stderr with a "baton-worker[N]" prefix. Called from the heartbeat
  // thread too.
  std::function<void(const std::string&)> log;
  // How long the coordinator may go without answering a heartbeat before
  // the worker gives the task up and exits (kExitUnreachable); at most the
  // task's lease, after which the coordinator gives the task to another
  // worker anyway. Default: 10 s.
  std::chrono::milliseconds patience{10000};
};

// Takes task after task from the coordinator and runs it (see
// docs/worker-protocol.md): prepare tasks read and upload a dataset, train
// tasks build, initialise, train and report a model. Keeps the last dataset
// in memory between tasks. Not thread-safe; one per process.
class Worker {
 public:
  Worker(CoordinatorClient& client, WorkerOptions options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Loops until the run is over; returns the process exit status (kExit*).
  // A worker started as one rank of a group (BATON_WORLD_SIZE or Slurm's
  // SLURM_NTASKS > 1; data_parallel.h) joins it first: rank 0 takes tasks
  // from the coordinator and tells the other ranks which to train with it;
  // the others only train. A rank that fails makes the whole group exit.
  int Run();

  // Runs one task and reports how it ended (:complete, or :fail with status
  // "diverged" or "failed" and the reason). A task that gives a lease
  // ("lease_seconds", "heartbeat_seconds") gets heartbeats from a second
  // thread while it runs; when the coordinator says the attempt is no longer
  // this worker's (TaskSuperseded, from a heartbeat or a report) the task
  // stops at its next batch and is dropped without another report. Errors
  // of the task never escape; only CoordinatorUnreachable and RunOver do,
  // and a baton::Error when the coordinator refuses the report itself.
  void RunTask(const Json& task);

 private:
  int TakeTasks();  // rank 0, or a worker on its own
  int RunRank();    // ranks > 0
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace baton::stages
