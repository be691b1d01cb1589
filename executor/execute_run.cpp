#include "executor/execute_run.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/vocabulary.h"
#include "executor/local_pool.h"

namespace baton::executor {

int RanksPerWorker(const orchestrator::Pipeline& pipeline) {
  int ranks = 1;
  for (const auto& [name, spec] : pipeline.specs) ranks = std::max(ranks, spec.ranks);
  return ranks;
}

bool WantsGpu(const orchestrator::Pipeline& pipeline, bool strictly) {
  for (const auto& [name, spec] : pipeline.specs) {
    if (spec.type == StageType::kPrepare) continue;
    if (spec.device == "cuda" || (!strictly && spec.device == "auto")) return true;
  }
  return false;
}

std::vector<std::string> VisibleGpus() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("CUDA_VISIBLE_DEVICES"); env != nullptr) {
    std::stringstream in(env);
    for (std::string id; std::getline(in, id, ',');) {
      if (id == "-1") break;  // CUDA stops at the first invalid entry
      if (!id.empty()) out.push_back(id);
    }
    return out;
  }
  std::error_code ec;
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/driver/nvidia/gpus", ec)) {
    (void)e;
    ++n;
  }
  for (int i = 0; i < n; ++i) out.push_back(std::to_string(i));
  return out;
}

int WorkerCount(const orchestrator::Coordinator& coordinator, int asked) {
  if (asked > 0) return asked;
  // A worker of a data-parallel run is a group of processes, one core each.
  const int cores = static_cast<int>(std::thread::hardware_concurrency()) / RanksPerWorker(coordinator.pipeline());
  return std::max(1, std::min(cores, coordinator.MaxParallel()));
}

void ExecuteRun(orchestrator::Coordinator& coordinator, const ExecuteOptions& options,
                const std::function<void()>& tick) {
  int workers = WorkerCount(coordinator, options.workers);
  const int ranks = RanksPerWorker(coordinator.pipeline());
  const bool use_gpus = !options.gpus.empty() && WantsGpu(coordinator.pipeline(), /*strictly=*/false);
  if (use_gpus && options.workers <= 0) {
    // One GPU per process: as many workers as the GPUs hold, at most what
    // the stages use.
    workers = std::max(1, std::min(static_cast<int>(options.gpus.size()) / ranks, coordinator.MaxParallel()));
  }
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
    launch.ranks = ranks;
    if (use_gpus) launch.gpus = options.gpus;
    launch.gpu = WantsGpu(coordinator.pipeline(), /*strictly=*/true);
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
