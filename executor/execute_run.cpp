#include "executor/execute_run.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "common/error.h"
#include "executor/local_pool.h"

namespace baton::executor {

int RanksPerWorker(const orchestrator::Pipeline& pipeline) {
  int ranks = 1;
  for (const auto& [name, spec] : pipeline.specs) ranks = std::max(ranks, spec.ranks);
  return ranks;
}

int WorkerCount(const orchestrator::Coordinator& coordinator, int asked) {
  if (asked > 0) return asked;
  // A worker of a data-parallel run is a group of processes, one core each.
  const int cores = static_cast<int>(std::thread::hardware_concurrency()) / RanksPerWorker(coordinator.pipeline());
  return std::max(1, std::min(cores, coordinator.MaxParallel()));
}

void ExecuteRun(orchestrator::Coordinator& coordinator, const ExecuteOptions& options,
                const std::function<void()>& tick) {
  const int workers = WorkerCount(coordinator, options.workers);
  std::unique_ptr<WorkerEndpoint> endpoint = options.serve(coordinator, workers);

  // A full disk stops the run (Coordinator::Interrupt), whichever thread's
  // write found it.
  auto interrupt_if_full = [&](const std::function<void()>& fn) {
    try {
      fn();
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kResourceExhausted || !coordinator.Interrupt(e)) throw;
    }
  };
  interrupt_if_full([&] { coordinator.Start(); });
  std::unique_ptr<Executor> executor;
  if (coordinator.HasWork()) {
    WorkerLaunch launch;
    launch.run_id = coordinator.run_id();
    launch.coordinator_url = endpoint->url();
    launch.token = endpoint->token();
    launch.workers = workers;
    launch.ranks = RanksPerWorker(coordinator.pipeline());
    launch.log_dir = options.log_dir;
    WorkerEvents events;
    events.on_exit = [&](int worker, const std::string& reason) {
      interrupt_if_full([&] { coordinator.WorkerLost(worker, reason); });
    };
    events.has_work = [&] { return coordinator.HasWork(); };
    events.on_placed = [&](int worker, Json placement) {
      interrupt_if_full([&] { coordinator.SetWorkerPlacement(worker, std::move(placement)); });
    };
    events.on_fatal = [&](const std::string& reason) { interrupt_if_full([&] { coordinator.Abort(reason); }); };
    executor = options.make_executor ? options.make_executor(launch, std::move(events))
                                     : MakeLocalPool(launch, std::move(events));
    executor->Start();
  }
  const auto check_every = std::clamp(coordinator.lease() / 4, std::chrono::milliseconds(50),
                                      std::chrono::milliseconds(1000));
  auto ticked = std::chrono::steady_clock::now();
  while (!coordinator.WaitFinished(check_every)) {
    for (int worker : coordinator.ExpireLeases()) {
      if (executor) executor->Kill(worker, "its lease expired");
    }
    if (std::chrono::steady_clock::now() - ticked >= std::chrono::seconds(1)) {
      ticked = std::chrono::steady_clock::now();
      tick();
    }
  }
  if (executor) executor->Stop(std::chrono::seconds(10));
}

}  // namespace baton::executor
