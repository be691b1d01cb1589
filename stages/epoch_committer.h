#pragma once

#include <atomic>
#include <exception>
#include <functional>
#include <thread>

namespace baton::stages {

// Commits a trial's epochs in the background, so that training does not wait
// for the disk: the trainer encodes the epoch's state (a copy of the weights,
// which later steps do not touch) and hands the upload and the epoch report
// to Submit, then trains on. One commit is in flight at a time, so the
// coordinator sees the reports in order. The answer to a report ("stop") or
// a failed commit raises StopRequested, which the trainer checks between
// batches; Wait then returns false or rethrows the failure.
//
// Not thread-safe itself: one trainer thread calls Submit, Wait and
// StopRequested. The commit functions run on the committer's thread, one
// after the other, each starting after the previous one has returned; while
// one runs the trainer must not use what it uses (the coordinator client).
class EpochCommitter {
 public:
  // Returns false for "stop"; may throw.
  using Commit = std::function<bool()>;

  EpochCommitter() = default;
  EpochCommitter(const EpochCommitter&) = delete;
  EpochCommitter& operator=(const EpochCommitter&) = delete;
  // Waits for the commit in flight; its failure is dropped (the caller is
  // already leaving because of another one).
  ~EpochCommitter();

  // Waits for the commit in flight (rethrowing its failure), then starts
  // `commit` on the committer's thread. Returns false without starting it
  // when an earlier commit answered "stop".
  bool Submit(Commit commit);
  // Waits for the commit in flight. False once any commit answered "stop";
  // rethrows the failure of a commit that threw.
  bool Wait();
  // True once a commit answered "stop" or threw, possibly while it is still
  // being waited for: the trainer stops at the next batch and calls Wait.
  bool StopRequested() const { return stop_.load(std::memory_order_acquire); }

 private:
  std::thread thread_;
  std::exception_ptr failure_;  // written by thread_, read after joining it
  bool stopped_ = false;        // a commit answered "stop"; read after joining
  std::atomic<bool> stop_{false};
};

}  // namespace baton::stages
