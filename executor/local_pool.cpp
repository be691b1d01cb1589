#include "executor/local_pool.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include <boost/process.hpp>

#include "common/error.h"

namespace baton::executor {

namespace bp = boost::process;

struct LocalPool::Worker {
  int id = 0;
  bp::child child;
  bool reported = false;
  std::string killed_because;  // Kill's reason
};

std::string FindWorkerBinary() {
  if (const char* env = std::getenv("BATON_WORKER"); env != nullptr && *env) return env;
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (auto candidate : {self.parent_path() / "baton-worker", self.parent_path() / "stages" / "baton-worker",
                           self.parent_path().parent_path() / "stages" / "baton-worker"}) {
      if (std::filesystem::exists(candidate, ec)) return candidate.string();
    }
  }
  throw Error(ErrorCode::kNotFound,
              "cannot find the baton-worker binary beside " + self.string() + "; set BATON_WORKER to its path");
}

LocalPool::LocalPool(WorkerLaunch launch, WorkerEvents events, std::string worker_binary)
    : launch_(std::move(launch)), events_(std::move(events)), worker_binary_(std::move(worker_binary)) {}

LocalPool::~LocalPool() { Stop(std::chrono::seconds(2)); }

std::unique_ptr<Executor> MakeLocalPool(const WorkerLaunch& launch, WorkerEvents events) {
  return std::make_unique<LocalPool>(launch, std::move(events), FindWorkerBinary());
}

void LocalPool::Spawn(int id) {
  auto env = boost::this_process::environment();
  bp::environment child_env = env;
  child_env["BATON_WORKER_TOKEN"] = launch_.token;
  // One BLAS/OpenMP thread per torch thread: N workers on N cores must not
  // each spawn N BLAS threads. (The worker also tells OpenBLAS and sets its
  // malloc thresholds itself; see stages::ConfigureWorkerProcess.)
  child_env["OMP_NUM_THREADS"] = std::to_string(launch_.threads_per_worker);
  child_env["OPENBLAS_NUM_THREADS"] = std::to_string(launch_.threads_per_worker);
  std::vector<std::string> args = {"--coordinator", launch_.coordinator_url, "--worker-id",
                                   std::to_string(id), "--threads", std::to_string(launch_.threads_per_worker)};
  auto w = std::make_unique<Worker>();
  w->id = id;
  try {
    if (launch_.log_dir.empty()) {
      w->child = bp::child(worker_binary_, bp::args(args), child_env, bp::std_out > bp::null,
                           bp::std_err > bp::null, bp::std_in < bp::null);
    } else {
      std::filesystem::create_directories(launch_.log_dir);
      std::string log = launch_.log_dir + "/worker-" + std::to_string(id) + ".log";
      w->child = bp::child(worker_binary_, bp::args(args), child_env, (bp::std_out & bp::std_err) > log,
                           bp::std_in < bp::null);
    }
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kUnavailable, "cannot start worker " + worker_binary_ + ": " + e.what());
  }
  workers_.push_back(std::move(w));
}

void LocalPool::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  for (int i = 0; i < launch_.workers; ++i) Spawn(next_id_++);
  monitor_ = std::thread([this] { Monitor(); });
}

void LocalPool::Monitor() {
  while (!stopping_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::vector<std::pair<int, std::string>> exited;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& w : workers_) {
        if (w->reported) continue;
        std::error_code ec;
        if (w->child.running(ec)) continue;
        w->reported = true;
        int code = w->child.exit_code();
        int native = w->child.native_exit_code();
        std::string reason = WIFSIGNALED(native) ? "worker " + std::to_string(w->id) + " was killed by signal " +
                                                       std::to_string(WTERMSIG(native))
                                                 : "worker " + std::to_string(w->id) + " exited with status " +
                                                       std::to_string(code);
        if (!w->killed_because.empty()) reason += " (killed by Baton: " + w->killed_because + ")";
        exited.push_back({w->id, reason});
      }
    }
    for (auto& [id, reason] : exited) {
      events_.on_exit(id, reason);
      std::lock_guard<std::mutex> lock(mu_);
      if (!stopping_ && events_.has_work() && respawns_ < launch_.max_respawns) {
        ++respawns_;
        try {
          Spawn(next_id_++);
        } catch (const Error&) {
          // The coordinator keeps the task pending; other workers take it.
        }
      }
    }
  }
}

void LocalPool::Stop(std::chrono::milliseconds grace) {
  if (stopping_.exchange(true)) {
    if (monitor_.joinable()) monitor_.join();
    return;
  }
  if (monitor_.joinable()) monitor_.join();
  std::lock_guard<std::mutex> lock(mu_);
  auto deadline = std::chrono::steady_clock::now() + grace;
  for (auto& w : workers_) {
    std::error_code ec;
    while (w->child.running(ec) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (w->child.running(ec)) w->child.terminate(ec);
    w->child.wait(ec);
  }
}

void LocalPool::Kill(int worker_id, const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : workers_) {
    std::error_code ec;
    if (w->id != worker_id || w->reported || !w->child.running(ec)) continue;
    w->killed_because = why;
    // SIGKILL ends a stopped process too. Not child.terminate(): that marks
    // the child gone before it is reaped, so Monitor would neither reap it
    // nor see its signal.
    ::kill(w->child.id(), SIGKILL);
  }
}

int LocalPool::Alive() {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (auto& w : workers_) {
    std::error_code ec;
    if (w->child.running(ec)) ++n;
  }
  return n;
}

}  // namespace baton::executor
