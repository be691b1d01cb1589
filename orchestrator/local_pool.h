#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace baton::orchestrator {

struct LocalPoolOptions {
  std::string worker_binary;    // path to baton-worker
  std::string coordinator_url;  // e.g. "http://127.0.0.1:41234"
  std::string token;            // passed as BATON_WORKER_TOKEN
  int workers = 1;              // processes kept alive while there is work
  int threads_per_worker = 1;   // torch threads in each worker. Default: 1
  std::string log_dir;          // worker-N.log files go here; "" = discard
  // A worker that exits while there is work is replaced, at most this many
  // times in all (a crash loop must not spin forever). Default: 20.
  int max_respawns = 20;
};

// A pool of long-lived baton-worker processes on this machine (Boost.Process).
// Each takes task after task from the coordinator; one that dies is reported
// through `on_exit` and replaced while `has_work()` says so. Thread-safe.
class LocalPool {
 public:
  LocalPool(LocalPoolOptions options, std::function<void(int worker, const std::string& reason)> on_exit,
            std::function<bool()> has_work);
  ~LocalPool();  // Stop()

  void Start();
  // Waits up to `grace_ms` for workers to exit by themselves (they do once the
  // coordinator answers 410), then terminates the rest.
  void Stop(int grace_ms = 5000);
  int Alive();
  // Kills worker `worker_id` (SIGKILL) if it still runs, e.g. one whose
  // lease expired (hung, stopped, cut off): its exit is then reported
  // through `on_exit` with `why`, and it is replaced like any other.
  void Kill(int worker_id, const std::string& why);

 private:
  struct Worker;
  void Spawn(int id);
  void Monitor();

  LocalPoolOptions options_;
  std::function<void(int, const std::string&)> on_exit_;
  std::function<bool()> has_work_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stopping_{false};
  int respawns_ = 0;
  int next_id_ = 0;
  std::thread monitor_;
};

// The baton-worker binary: $BATON_WORKER if set, else beside this executable.
std::string FindWorkerBinary();

}  // namespace baton::orchestrator
