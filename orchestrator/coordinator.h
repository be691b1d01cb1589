#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json_util.h"
#include "common/vocabulary.h"
#include "orchestrator/clock.h"
#include "orchestrator/events.h"
#include "orchestrator/pipeline_spec.h"
#include "store/blob_store.h"
#include "store/lineage_db.h"

namespace baton::orchestrator {

class RunState;      // internal/run_state.h
class StoreReads;    // internal/effects.h
class StoreEffects;
struct Instant;

struct CoordinatorOptions {
  // Slots when a tune stage gives no budget.max_parallel. Default: 1.
  int default_parallel = 1;
  // How long a running task's worker may stay silent (no report and no
  // heartbeat about the task) before ExpireLeases fails the attempt. The
  // task tells the worker this lease and to send a heartbeat every fifth of
  // it. Default: 30 s.
  std::chrono::milliseconds lease{30000};
  // The command that resumes a run, without the run id, for the message of
  // a run a full disk interrupted. Default: "baton resume".
  std::string resume_command = "baton resume";
  // What leases, retry backoff, stage timeouts and the recorded times read.
  // nullptr: SystemClock(). Must outlive the coordinator.
  const Clock* clock = nullptr;
};

// Creates the run: stores the pipeline, writes the run and every stage
// (status pending) with their part_of edges, and a non-empty
// `idempotency_key` with the run, in one transaction, before anything
// executes. Returns the run id.
std::string CreateRun(store::LineageDb& db, const Pipeline& pipeline, const std::string& idempotency_key = "");

// Why a full disk stopped run `run_id` (RESOURCE_EXHAUSTED, the write that
// failed) and the command that continues it once space is freed.
std::string OutOfSpaceReason(const std::string& run_id, const std::string& cause, const std::string& resume_command);

// Runs one run's stages: decides what is cached, expands stages into tasks,
// hands tasks to workers and records what they report. Transport-free: the
// HTTP face (api/) and the executors call these methods. All methods are
// thread-safe. The decisions are RunState's (internal/run_state.h); this
// class is its shell: the lock, the clock, waiting for tasks, and applying
// the state's effects to the store and the observers.
class Coordinator {
 public:
  Coordinator(store::BlobStore& blobs, store::LineageDb& db, Pipeline pipeline,
              std::string run_id, CoordinatorOptions options = {});
  ~Coordinator();

  // A coordinator for an existing run that has not finished (its process
  // was killed): the pipeline, stages and trials come from the lineage DB
  // (run_state_resume.cpp). Finished stages and trials stay as recorded and
  // are never rerun; a running stage's running or pending trials become
  // pending and, once started, continue from their last recorded epoch (a
  // `resumed_from` edge, as a retry), with their recorded hyperparameters
  // and seed; an attempt cut short this way does not count against
  // retry.max_attempts. The pruners see every recorded epoch; a trial whose
  // last epoch was answered "stop" (median rule, ASHA rung) before the
  // process ended is judged again on those epochs. Pending stages start when
  // their inputs are ready.
  // Start() marks the run running again. Throws Error(kNotFound) for an
  // unknown run, Error(kConflict) for one that has finished, and
  // Error(kCorrupt) when its records are inconsistent.
  static std::unique_ptr<Coordinator> ForResume(store::BlobStore& blobs, store::LineageDb& db,
                                                const std::string& run_id, CoordinatorOptions options = {});

  void AddObserver(Observer* observer);  // before Start
  // Marks the run running and starts every stage whose inputs are ready.
  void Start();

  enum class Next { kTask, kWait, kDone };
  // Gives `worker_id` the next runnable task (kTask, *task filled), or waits
  // up to `wait` for one (kWait), or says the run is over (kDone).
  Next NextTask(int worker_id, std::chrono::milliseconds wait, Json* task);

  // Worker reports (see docs/worker-protocol.md). Throw Error(kNotFound) for
  // an unknown task, Error(kConflict) for a task that is not running, and
  // Error(kInvalidArgument) for a malformed body or a checkpoint the store
  // does not have. A body's "attempt" (the task's, as NextTask gave it) is
  // fenced: a report of an attempt that the coordinator ended (lease
  // expired, worker lost, run cancelled) or that a newer attempt superseded
  // throws Error(kAborted) naming why, and nothing of it is recorded. A
  // report of the running attempt renews its lease.
  void ReportInitial(int64_t task_id, const Json& body);
  // Returns "continue" or "stop". A repeated report of a recorded epoch is
  // answered again without recording twice.
  std::string ReportEpoch(int64_t task_id, const Json& body);
  void Complete(int64_t task_id, const Json& body);
  void Fail(int64_t task_id, const Json& body);
  // A worker process ended; its running task (if any) fails with `reason`.
  void WorkerLost(int worker_id, const std::string& reason);
  // A worker says it still runs the task's attempt `body["attempt"]`: renews
  // the lease and returns {"lease_seconds": ...}. Error(kAborted) when that
  // attempt is no longer running (see the reports above), Error(kConflict)
  // when the task is not running for another reason (it just ended).
  Json Heartbeat(int64_t task_id, const Json& body);
  // Fails every running attempt whose lease ran out (options.lease without
  // a word from its worker) with the reason "lease expired: worker W sent
  // nothing for S s", fences it and retries the task per its stage's retry
  // policy from its last stored epoch. Returns the workers that held those
  // attempts: the executor kills them (hung, stopped or cut off), so no
  // stray process remains. Call it about every lease/4 (ExecuteRun does).
  std::vector<int> ExpireLeases();

  // Ends the run now as "cancelled" with `reason`: pending and running tasks
  // and unfinished stages become "cancelled" (epochs already stored stay);
  // workers are told the run is over, and their late reports are refused.
  // Returns false if the run had already finished.
  bool Cancel(const std::string& reason);
  // Ends the run now as "failed" with `reason`, as Cancel does: the
  // executor cannot run its workers (a Slurm partition that does not exist,
  // a job that cannot start). False if the run had already finished.
  bool Abort(const std::string& reason);
  // Where worker `worker_id` runs (e.g. {"executor": "slurm",
  // "slurm_job_id": "42"}): recorded with every attempt it starts (the
  // trial's placements) and in its trial_started event.
  void SetWorkerPlacement(int worker_id, Json placement);
  // Stops the run because the store is out of space: `cause` is the
  // Error(kResourceExhausted) a store write threw, here or in the HTTP face.
  // The run becomes "interrupted" with a reason that names the cause and
  // `baton resume RUN` (recorded if the lineage DB still takes the write;
  // else it stays "running", which resumes alike). Unlike a failure it
  // touches no trial: running ones stay running in the lineage, so a resume
  // continues each from its last stored epoch without spending an attempt.
  // Workers are told the run is over; their reports throw an
  // Error(kResourceExhausted) with the reason. False if the run had already
  // finished.
  bool Interrupt(const Error& cause);
  // Why the run was interrupted; "" if it was not.
  std::string InterruptReason();

  // True while some task is pending or running.
  bool HasWork();
  // Blocks until the run has finished or `timeout` passed; true if finished.
  bool WaitFinished(std::chrono::milliseconds timeout);
  std::string run_id() const { return run_id_; }
  const Pipeline& pipeline() const { return pipeline_; }
  std::chrono::milliseconds lease() const { return options_.lease; }
  // The run's final status (pending/running while not finished).
  std::string Status();
  // Largest max_parallel of any stage: how many workers can be busy at once.
  int MaxParallel() const;

 private:
  // The time decisions are made at: the clock's wall and steady time.
  Instant At() const;

  store::BlobStore& blobs_;
  store::LineageDb& db_;
  const Pipeline pipeline_;
  const std::string run_id_;
  const CoordinatorOptions options_;
  const Clock& clock_;
  std::vector<Observer*> observers_;

  std::mutex mu_;  // guards everything below and the state's decisions
  std::condition_variable cv_;  // the state's Wake effects notify it
  // The state machine decides; it reads the store through reads_ and
  // changes it only through effects_, which applies each effect at once
  // (internal/run_state.h, internal/effects.h).
  std::unique_ptr<StoreReads> reads_;
  std::unique_ptr<StoreEffects> effects_;
  std::unique_ptr<RunState> state_;
};

}  // namespace baton::orchestrator
