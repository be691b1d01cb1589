#include "stages/epoch_committer.h"

namespace baton::stages {

EpochCommitter::~EpochCommitter() {
  if (thread_.joinable()) thread_.join();
}

bool EpochCommitter::Wait() {
  if (thread_.joinable()) thread_.join();
  if (failure_) {
    std::exception_ptr failure = failure_;
    failure_ = nullptr;
    std::rethrow_exception(failure);
  }
  return !stopped_;
}

bool EpochCommitter::Submit(Commit commit) {
  if (!Wait()) return false;
  thread_ = std::thread([this, commit = std::move(commit)] {
    try {
      if (!commit()) {
        stopped_ = true;
        stop_.store(true, std::memory_order_release);
      }
    } catch (...) {
      failure_ = std::current_exception();
      stop_.store(true, std::memory_order_release);
    }
  });
  return true;
}

}  // namespace baton::stages
