#include "executor/local_pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>

#include <boost/process.hpp>

#include "common/error.h"

namespace baton::executor {

namespace bp = boost::process;

struct LocalPool::Worker {
  int id = 0;
  // Its processes: one, or a data-parallel group's ranks (rank 0 first).
  std::vector<bp::child> ranks;
  std::vector<std::string> gpus;  // CUDA_VISIBLE_DEVICES of each rank; empty: none
  bool reported = false;
  std::string killed_because;  // Kill's reason

  bool AllRunning() {
    std::error_code ec;
    for (auto& c : ranks) {
      if (!c.running(ec)) return false;
    }
    return true;
  }
  bool AnyRunning() {
    std::error_code ec;
    for (auto& c : ranks) {
      if (c.running(ec)) return true;
    }
    return false;
  }
};

namespace {

// A TCP port free on loopback now (for a group's TCPStore); 0 if none.
int FreeLoopbackPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// "worker 3 exited with status 4", "worker 3's rank 1 was killed by signal 9".
std::string EndOf(int id, int rank, int ranks, bp::child& c) {
  const int native = c.native_exit_code();
  const std::string who = "worker " + std::to_string(id) + (ranks > 1 ? "'s rank " + std::to_string(rank) : "");
  return WIFSIGNALED(native) ? who + " was killed by signal " + std::to_string(WTERMSIG(native))
                             : who + " exited with status " + std::to_string(c.exit_code());
}

}  // namespace

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
  const int ranks = std::max(1, launch_.ranks);
  // Said even for 1: a `baton run` inside a Slurm allocation must not make
  // its local workers read SLURM_NTASKS as their group.
  child_env["BATON_WORLD_SIZE"] = std::to_string(ranks);
  if (ranks > 1) {
    // A data-parallel group: rank 0 serves its TCPStore on loopback.
    child_env["BATON_MASTER_ADDR"] = "127.0.0.1";
    child_env["BATON_MASTER_PORT"] = std::to_string(FreeLoopbackPort());
  }
  std::vector<std::string> args = {"--coordinator", launch_.coordinator_url, "--worker-id",
                                   std::to_string(id), "--threads", std::to_string(launch_.threads_per_worker)};
  auto w = std::make_unique<Worker>();
  w->id = id;
  w->gpus = PickGpus(ranks);
  try {
    if (!launch_.log_dir.empty()) std::filesystem::create_directories(launch_.log_dir);
    for (int rank = 0; rank < ranks; ++rank) {
      if (ranks > 1) child_env["BATON_RANK"] = std::to_string(rank);
      if (!w->gpus.empty()) child_env["CUDA_VISIBLE_DEVICES"] = w->gpus[rank];
      if (launch_.log_dir.empty()) {
        w->ranks.emplace_back(worker_binary_, bp::args(args), child_env, bp::std_out > bp::null,
                              bp::std_err > bp::null, bp::std_in < bp::null);
      } else {
        std::string log = launch_.log_dir + "/worker-" + std::to_string(id) +
                          (rank > 0 ? "-rank-" + std::to_string(rank) : "") + ".log";
        w->ranks.emplace_back(worker_binary_, bp::args(args), child_env, (bp::std_out & bp::std_err) > log,
                              bp::std_in < bp::null);
      }
    }
  } catch (const std::exception& e) {
    for (auto& c : w->ranks) {
      std::error_code ec;
      ::kill(c.id(), SIGKILL);
      c.wait(ec);
    }
    throw Error(ErrorCode::kUnavailable, "cannot start worker " + worker_binary_ + ": " + e.what());
  }
  if (!w->gpus.empty() && events_.on_placed) events_.on_placed(id, {{"executor", "local"}, {"gpus", w->gpus}});
  workers_.push_back(std::move(w));
}

std::vector<std::string> LocalPool::PickGpus(int ranks) {
  if (launch_.gpus.empty()) return {};
  // The GPUs the fewest live workers use, in their order: a replaced
  // worker's GPU goes to its replacement.
  std::map<std::string, int> use;
  for (const auto& g : launch_.gpus) use[g] = 0;
  for (auto& w : workers_) {
    if (w->reported) continue;
    for (const auto& g : w->gpus) use[g] += 1;
  }
  std::vector<std::string> order = launch_.gpus;
  std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) { return use[a] < use[b]; });
  std::vector<std::string> out;
  for (int r = 0; r < ranks; ++r) out.push_back(order[static_cast<size_t>(r) % order.size()]);
  return out;
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
        if (w->reported || w->AllRunning()) continue;
        // One process of the worker ended: the worker has. A group's other
        // ranks cannot go on without it.
        w->reported = true;
        std::string reason;
        const int n = static_cast<int>(w->ranks.size());
        for (int r = 0; r < n && reason.empty(); ++r) {
          std::error_code ec;
          if (!w->ranks[r].running(ec)) reason = EndOf(w->id, r, n, w->ranks[r]);
        }
        for (auto& c : w->ranks) {
          std::error_code ec;
          if (c.running(ec)) ::kill(c.id(), SIGKILL);
          c.wait(ec);
        }
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
    while (w->AnyRunning() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (auto& c : w->ranks) {
      std::error_code ec;
      if (c.running(ec)) c.terminate(ec);
      c.wait(ec);
    }
  }
}

void LocalPool::Kill(int worker_id, const std::string& why) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& w : workers_) {
    if (w->id != worker_id || w->reported || !w->AnyRunning()) continue;
    w->killed_because = why;
    // SIGKILL ends a stopped process too. Not child.terminate(): that marks
    // the child gone before it is reaped, so Monitor would neither reap it
    // nor see its signal.
    for (auto& c : w->ranks) {
      std::error_code ec;
      if (c.running(ec)) ::kill(c.id(), SIGKILL);
    }
  }
}

int LocalPool::Alive() {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (auto& w : workers_) {
    if (w->AllRunning()) ++n;
  }
  return n;
}

}  // namespace baton::executor
