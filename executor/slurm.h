#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "executor/executor.h"
#include "orchestrator/pipeline_spec.h"

namespace baton::executor {

// The Slurm executor: each worker is one `sbatch` job running baton-worker
// (LibTorch starts once per job; the worker takes task after task from the
// coordinator, as on the local pool). Job state comes from `squeue` (and
// `scontrol show job` once a job ended); `scancel` ends a worker whose lease
// expired and every job left when the run ends. A job Slurm ends (time
// limit, node failure, preemption, scancel) is reported through on_exit
// with Slurm's state and reason, and replaced while the run has work. A job
// Slurm says can never start (a bad partition, an impossible request), or
// that stays pending longer than the spec's pending_timeout_seconds while no
// worker of the run runs, fails the run through on_fatal with Slurm's
// message. Thread-safe.
class SlurmExecutor : public Executor {
 public:
  struct Options {
    orchestrator::ExecutorSpec spec;  // partition, cpus, memory, time limit, ...
    std::string worker_binary;        // the baton-worker path on the nodes
    // How often squeue is asked. Default: 1 s.
    std::chrono::milliseconds poll{1000};
  };
  SlurmExecutor(WorkerLaunch launch, WorkerEvents events, Options options);
  ~SlurmExecutor() override;  // Stop(2 s)

  void Start() override;
  // scancel of the worker's job.
  void Kill(int worker_id, const std::string& why) override;
  // Waits up to `grace` for running jobs to end by themselves, then
  // scancels every job of the run still pending or running.
  void Stop(std::chrono::milliseconds grace) override;
  int Alive() override;

  // The sbatch arguments of worker `worker_id` (without the program):
  // what Start submits, for tests and `--dry-run`-like messages.
  std::vector<std::string> SbatchArgs(int worker_id) const;

 private:
  struct Job {
    int worker = 0;
    std::string id;     // Slurm job id
    std::string state;  // last squeue state (PENDING, RUNNING, ...)
    std::string reason;
    std::chrono::steady_clock::time_point submitted;
    bool started = false;
    bool ended = false;
    std::string killed_because;
  };
  // Submits a job for a new worker (under mu_); false if sbatch refused,
  // which Announce then reports through on_fatal.
  bool Submit();
  void Announce();
  void Monitor();
  void Poll();
  void Fatal(const std::string& reason);

  const WorkerLaunch launch_;
  const WorkerEvents events_;
  const Options options_;
  std::mutex mu_;
  std::vector<Job> jobs_;
  std::atomic<bool> stopping_{false};
  bool fatal_ = false;
  std::vector<std::pair<int, std::string>> placed_;  // (worker, job) not yet announced
  std::string pending_fatal_;                       // a refusal not yet announced
  int respawns_ = 0;
  int next_id_ = 0;
  std::thread monitor_;
};

// A Slurm executor for `spec` with FindWorkerBinary()'s worker.
ExecutorFactory SlurmExecutorFactory(const orchestrator::ExecutorSpec& spec);

// Runs a Slurm client command (sbatch, squeue, scontrol, scancel); its
// exit status, stdout and stderr. Error(kUnavailable) when it cannot be
// started at all (Slurm's clients are not installed).
struct CommandResult {
  int status = 0;
  std::string out;
  std::string err;
};
// `env` is added to this process's environment for the command.
CommandResult RunSlurmCommand(const std::string& program, const std::vector<std::string>& args,
                              const std::map<std::string, std::string>& env = {});

}  // namespace baton::executor
