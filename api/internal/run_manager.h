#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/http_server.h"
#include "api/internal/cli.h"
#include "executor/execute_run.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"

namespace baton::api {

// Where and how a run's workers run (`baton run`, `resume`, `serve`).
struct WorkerOptions {
  // Workers kept for the run; 0 = min(cores, largest max_parallel) on the
  // local pool, the largest max_parallel on Slurm.
  int workers = 0;
  // "local" or "slurm"; "" = the pipeline's "executor" (local by default).
  std::string executor;
  WorkerAccess access;  // where the worker endpoint listens (loopback by default)
};

// How `baton run`, `resume` and `serve` execute a run (executor::ExecuteRun):
// the worker endpoint where `options.access` says with a fresh token, the
// workers on the chosen executor (the local pool, or Slurm jobs configured
// by the pipeline's "executor"), their logs under <store>/logs/<run>.
// Error(kInvalidArgument) for an unknown executor.
executor::ExecuteOptions Execution(StoreHandle& store, const orchestrator::Coordinator& coordinator,
                                   const WorkerOptions& options);

struct RunManagerOptions {
  int max_runs = 2;  // runs executing at once; later ones wait (pending)
  WorkerOptions workers;  // of every run
  std::chrono::milliseconds lease{30000};  // CoordinatorOptions::lease of every run. Default: 30 s
  // CoordinatorOptions::resume_command: how a client resumes a run here
  // (SetResumeCommand once the server's URL is known).
  std::string resume_command = "baton --server URL resume";
};

// One event of a run's stream, numbered from 1 in the order it happened.
struct RunEvent {
  int64_t id = 0;
  std::string type;  // as orchestrator::Event
  Json data;         // the event as JSON: type, stage, trial, data, time
};

// Executes the runs that `baton serve` is asked for, in the background: each
// run gets a coordinator, its own internal HTTP endpoint on loopback and a
// local pool of workers, exactly as `baton run` does, and goes on whether or
// not a client is still connected. At most max_runs execute at once; the
// others wait in order of arrival. Thread-safe.
class RunManager {
 public:
  RunManager(StoreHandle& store, RunManagerOptions options);
  // Cancels what is still queued or running ("the server stopped") and
  // waits for the runs' workers to end.
  ~RunManager();

  struct Triggered {
    std::string run_id;
    bool created = false;  // false: the Idempotency-Key named an earlier run
  };
  // Creates the run (its records are written before this returns) and
  // queues it. A non-empty `idempotency_key` seen before (by this server or
  // an earlier one on the store: keys live in the lineage DB) returns the
  // run it created, if the pipeline is the same; with another pipeline it
  // throws Error(kConflict).
  Triggered Trigger(const orchestrator::Pipeline& pipeline, const std::string& idempotency_key);
  // Queues an interrupted run (pending or running in the lineage DB, not
  // executed here, or "interrupted" by a full disk) to continue where it
  // stopped (Coordinator::ForResume).
  // Error(kNotFound) for an unknown run, Error(kConflict) for one that has
  // finished or that this server executes.
  void Resume(const std::string& run_id);
  // Cancels a queued or running run. Error(kNotFound) for an unknown run,
  // Error(kConflict) for one that has finished or that another process runs.
  void Cancel(const std::string& run_id, const std::string& reason);
  // The events of a run this server executes (or executed) after
  // `after_id`; waits up to `wait` while there are none. `*over` is set when
  // the run has finished and every event is in the answer. For a run it does
  // not know, one "run_status" event from the lineage DB, and over.
  std::vector<RunEvent> Events(const std::string& run_id, int64_t after_id, std::chrono::milliseconds wait,
                               bool* over);
  // Runs queued or executing now.
  int Active();
  // RunManagerOptions::resume_command for the runs that start from now on.
  void SetResumeCommand(const std::string& command);
  // What the lineage DB cannot say yet about a run this server executes:
  // one a full disk interrupted may still read "running" there (the DB was
  // on that disk too), so `run` gets "interrupted" and its reason; one
  // resumed but not yet started again reads "interrupted" there, so `run`
  // gets "pending". Other runs are left as they are.
  void Overlay(store::RunRecord& run);

 private:
  struct Entry;
  class Recorder;

  void Execute(Entry& entry);
  void Loop();
  void CancelQueued(Entry& entry, const std::string& reason);
  void EndUnexecuted(Entry& entry, const std::exception& e);
  void AppendRunFinished(Entry& entry, const std::string& status, const std::string& error);
  std::string ResumeCommand();

  StoreHandle& store_;
  RunManagerOptions options_;
  // Lock order: mu_, then a coordinator's own lock, then events_mu_ (the
  // coordinator calls Recorder with its lock held).
  std::mutex mu_;               // runs_, queue_, stopping_, Entry::coordinator, options_.resume_command; Idempotency-Keys
  std::condition_variable cv_;  // queue changes, shutdown
  std::mutex events_mu_;        // Entry::events, Entry::over and Entry::interrupted
  std::condition_variable events_cv_;
  std::map<std::string, std::shared_ptr<Entry>> runs_;
  std::deque<std::shared_ptr<Entry>> queue_;
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace baton::api
