#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "executor/executor.h"
#include "orchestrator/coordinator.h"

namespace baton::executor {

// Where a run's workers reach its coordinator: the HTTP face of the
// coordinator (/internal/v1, served by api/), up while this object lives.
class WorkerEndpoint {
 public:
  virtual ~WorkerEndpoint() = default;
  virtual std::string url() const = 0;
  virtual std::string token() const = 0;
};

struct ExecuteOptions {
  // Workers kept for the run; 0 = WorkerCount's default.
  int workers = 0;
  std::string log_dir;  // the workers' logs; "" = discard
  // Serves `coordinator` to `workers` workers (required).
  std::function<std::unique_ptr<WorkerEndpoint>(orchestrator::Coordinator& coordinator, int workers)> serve;
  // Where the workers run. Default: processes on this machine (LocalPool).
  ExecutorFactory make_executor;
  // GPUs of this machine for the local pool's workers (VisibleGpus()); a
  // run whose training stages may use one ("device" cuda or auto) gets one
  // worker slot per GPU (per `ranks` GPUs), at most its max_parallel,
  // unless `workers` says otherwise. Empty: none.
  std::vector<std::string> gpus;
};

// `asked` if positive, else min(cores / RanksPerWorker, the run's largest
// max_parallel), at least 1.
int WorkerCount(const orchestrator::Coordinator& coordinator, int asked);

// Processes per worker: the largest "ranks" of the pipeline's stages (a
// data-parallel group; 1 without one).
int RanksPerWorker(const orchestrator::Pipeline& pipeline);

// Whether a stage that trains asks for "device": "cuda" (`strictly`), or
// may use a GPU ("cuda" or "auto", the default).
bool WantsGpu(const orchestrator::Pipeline& pipeline, bool strictly);

// The GPUs this machine lets its processes use: CUDA_VISIBLE_DEVICES when
// set (its entries; "" or -1: none), else one per /proc/driver/nvidia/gpus
// entry ("0", "1", ...). Empty without an NVIDIA driver.
std::vector<std::string> VisibleGpus();

// Executes a created (or resumed) run to its end: serves its worker
// endpoint, starts the run, keeps the executor's workers while it has work,
// has the executor kill the workers whose lease expired (checked about four
// times per lease), and calls `tick` about once a second. A full disk, found
// by any of these writes, interrupts the run (Coordinator::Interrupt)
// instead of throwing. `baton run`, `baton resume` and `baton serve` all
// execute runs through it.
void ExecuteRun(orchestrator::Coordinator& coordinator, const ExecuteOptions& options,
                const std::function<void()>& tick);

}  // namespace baton::executor
