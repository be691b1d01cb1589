#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "executor/executor.h"

namespace baton::executor {

// The default executor: long-lived baton-worker processes on this machine
// (Boost.Process). Each takes task after task from the coordinator; one that
// dies is reported and replaced while the run has work.
class LocalPool : public Executor {
 public:
  // `worker_binary`: the baton-worker to start (FindWorkerBinary()).
  LocalPool(WorkerLaunch launch, WorkerEvents events, std::string worker_binary);
  ~LocalPool() override;  // Stop(2 s)

  void Start() override;
  // SIGKILL, which ends a stopped process too.
  void Kill(int worker_id, const std::string& why) override;
  void Stop(std::chrono::milliseconds grace) override;
  int Alive() override;

 private:
  struct Worker;
  void Spawn(int id);
  // The GPUs of a new worker's `ranks` processes (under mu_).
  std::vector<std::string> PickGpus(int ranks);
  void Monitor();

  const WorkerLaunch launch_;
  const WorkerEvents events_;
  const std::string worker_binary_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stopping_{false};
  int respawns_ = 0;
  int next_id_ = 0;
  std::thread monitor_;
};

// The local pool of `FindWorkerBinary()`'s workers.
std::unique_ptr<Executor> MakeLocalPool(const WorkerLaunch& launch, WorkerEvents events);

// The baton-worker binary: $BATON_WORKER if set, else beside this executable.
std::string FindWorkerBinary();

}  // namespace baton::executor
