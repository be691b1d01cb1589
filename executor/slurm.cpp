#include "executor/slurm.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include <boost/process.hpp>

#include "common/error.h"
#include "executor/local_pool.h"

namespace baton::executor {

namespace bp = boost::process;

namespace {

// Pending reasons after which Slurm will never start the job as submitted
// (the job asks for what the partition, account or QOS cannot give).
const std::set<std::string>& NeverStarts() {
  static const std::set<std::string> kReasons = {
      "PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints", "InvalidAccount",
      "InvalidQOS",      "AccountNotAllowed",  "QOSNotAllowed",      "DependencyNeverSatisfied"};
  return kReasons;
}

bool Terminal(const std::string& state) {
  return state != "PENDING" && state != "RUNNING" && state != "CONFIGURING" && state != "COMPLETING" &&
         state != "SUSPENDED" && state != "REQUEUED" && state != "RESIZING" && state != "SIGNALING" &&
         state != "STAGE_OUT" && state != "STOPPED" && state != "REQUEUE_HOLD" && state != "REQUEUE_FED";
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n')) ++i;
  return s.substr(i);
}

// "Key=Value" from `scontrol show job -o`'s one line; "" if absent.
std::string Field(const std::string& line, const std::string& key) {
  const std::string needle = key + "=";
  size_t pos = 0;
  while ((pos = line.find(needle, pos)) != std::string::npos) {
    if (pos == 0 || line[pos - 1] == ' ') {
      const size_t start = pos + needle.size();
      return line.substr(start, line.find(' ', start) - start);
    }
    pos += needle.size();
  }
  return "";
}

std::string Join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

}  // namespace

CommandResult RunSlurmCommand(const std::string& program, const std::vector<std::string>& args,
                              const std::map<std::string, std::string>& env) {
  std::string path;
  const char* env_path = std::getenv("PATH");
  std::istringstream dirs(env_path != nullptr ? env_path : "/usr/bin:/bin");
  for (std::string dir; path.empty() && std::getline(dirs, dir, ':');) {
    const std::filesystem::path candidate = std::filesystem::path(dir.empty() ? "." : dir) / program;
    if (access(candidate.c_str(), X_OK) == 0) path = candidate.string();
  }
  if (path.empty()) {
    throw Error(ErrorCode::kUnavailable, "Slurm's " + program +
                                             " is not on PATH: install Slurm's clients (Debian: slurm-client) and "
                                             "set SLURM_CONF if the cluster's slurm.conf is not in /etc/slurm");
  }
  CommandResult r;
  try {
    bp::environment child_env = boost::this_process::environment();
    for (const auto& [k, v] : env) child_env[k] = v;
    bp::ipstream out, err;
    bp::child c(path, bp::args(args), child_env, bp::std_out > out, bp::std_err > err, bp::std_in < bp::null);
    std::stringstream o, e;
    o << out.rdbuf();
    e << err.rdbuf();
    c.wait();
    r.status = c.exit_code();
    r.out = o.str();
    r.err = e.str();
  } catch (const std::exception& ex) {
    throw Error(ErrorCode::kUnavailable, "cannot run " + path + ": " + ex.what());
  }
  return r;
}

SlurmExecutor::SlurmExecutor(WorkerLaunch launch, WorkerEvents events, Options options)
    : launch_(std::move(launch)), events_(std::move(events)), options_(std::move(options)) {}

SlurmExecutor::~SlurmExecutor() { Stop(std::chrono::seconds(2)); }

std::vector<std::string> SlurmExecutor::SbatchArgs(int worker_id) const {
  const auto& spec = options_.spec;
  std::string name = "baton-" + launch_.run_id + "-w" + std::to_string(worker_id);
  std::vector<std::string> args = {"--parsable", "--no-requeue", "--job-name=" + name};
  // Slurm's own requeue would start the same worker again behind the
  // coordinator's back; Baton resubmits instead, under the stage's retry.
  if (launch_.log_dir.empty()) {
    args.push_back("--output=/dev/null");
  } else {
    args.push_back("--output=" + launch_.log_dir + "/worker-" + std::to_string(worker_id) + ".log");
    args.push_back("--open-mode=append");
  }
  if (!spec.partition.empty()) args.push_back("--partition=" + spec.partition);
  if (!spec.account.empty()) args.push_back("--account=" + spec.account);
  const int cpus = spec.cpus_per_task > 0 ? spec.cpus_per_task : launch_.threads_per_worker;
  args.push_back("--cpus-per-task=" + std::to_string(cpus));
  if (!spec.mem.empty()) args.push_back("--mem=" + spec.mem);
  if (!spec.time_limit.empty()) args.push_back("--time=" + spec.time_limit);
  // A GPU per process: Slurm sets each one's CUDA_VISIBLE_DEVICES.
  if (launch_.gpu) args.push_back(launch_.ranks > 1 ? "--gpus-per-task=1" : "--gres=gpu:1");
  for (const auto& a : spec.extra_args) args.push_back(a);
  args.push_back("--export=ALL");
  const std::string worker = ShellQuote(options_.worker_binary) + " --coordinator " +
                             ShellQuote(launch_.coordinator_url) + " --worker-id " + std::to_string(worker_id) +
                             " --threads " + std::to_string(launch_.threads_per_worker);
  if (launch_.ranks <= 1) {
    args.push_back("--wrap=exec " + worker);
    return args;
  }
  // A data-parallel group: one job of `ranks` tasks started by srun (rank
  // from SLURM_PROCID); rank 0's TCPStore on the job's first node, on a port
  // derived from the job id so that jobs sharing a node do not clash.
  args.insert(args.begin() + 3, "--ntasks=" + std::to_string(launch_.ranks));
  args.push_back(
      "--wrap=export BATON_MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n1); "
      "export BATON_MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000)); "
      "exec srun --kill-on-bad-exit=1 -n " +
      std::to_string(launch_.ranks) + " " + worker);
  return args;
}

bool SlurmExecutor::Submit() {
  const int id = next_id_++;
  if (!launch_.log_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(launch_.log_dir, ec);
  }
  // The token travels in the job's environment (--export=ALL), never on a
  // command line that squeue shows. One BLAS thread per torch thread, as on
  // the local pool.
  const std::string threads = std::to_string(launch_.threads_per_worker);
  CommandResult r;
  try {
    r = RunSlurmCommand("sbatch", SbatchArgs(id),
                        {{"BATON_WORKER_TOKEN", launch_.token},
                         {"OMP_NUM_THREADS", threads},
                         {"OPENBLAS_NUM_THREADS", threads}});
  } catch (const Error& e) {
    fatal_ = true;
    pending_fatal_ = e.what();
    return false;
  }
  const std::string job = Trim(r.out.substr(0, r.out.find(';')));  // "ID" or "ID;CLUSTER"
  if (r.status != 0 || job.empty()) {
    fatal_ = true;
    // sbatch says it in two lines ("error: invalid partition specified: x",
    // "error: Batch job submission failed: ..."): one line here.
    std::string said = Trim(r.err.empty() ? r.out : r.err);
    std::replace(said.begin(), said.end(), '\n', ' ');
    pending_fatal_ = "Slurm refused the worker job (sbatch exited with status " + std::to_string(r.status) +
                     "): " + said;
    return false;
  }
  Job j;
  j.worker = id;
  j.id = job;
  j.submitted = std::chrono::steady_clock::now();
  jobs_.push_back(j);
  placed_.push_back({id, job});
  return true;
}

void SlurmExecutor::Start() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int i = 0; i < launch_.workers && !fatal_; ++i) Submit();
  }
  Announce();
  monitor_ = std::thread([this] { Monitor(); });
}

// Tells the run what Submit learnt (placements, a refusal), outside the lock.
void SlurmExecutor::Announce() {
  std::vector<std::pair<int, std::string>> placed;
  std::string fatal;
  {
    std::lock_guard<std::mutex> lock(mu_);
    placed.swap(placed_);
    fatal.swap(pending_fatal_);
  }
  for (const auto& [worker, job] : placed) {
    if (events_.on_placed) events_.on_placed(worker, Json{{"executor", "slurm"}, {"slurm_job_id", job}});
  }
  if (!fatal.empty()) Fatal(fatal);
}

void SlurmExecutor::Fatal(const std::string& reason) {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fatal_ = true;
    for (const auto& j : jobs_) {
      if (!j.ended) ids.push_back(j.id);
    }
  }
  if (!ids.empty()) {
    try {
      RunSlurmCommand("scancel", ids);
    } catch (const Error&) {
    }
  }
  if (events_.on_fatal) events_.on_fatal(reason);
}

void SlurmExecutor::Monitor() {
  auto next = std::chrono::steady_clock::now();
  while (!stopping_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (std::chrono::steady_clock::now() < next) continue;
    next = std::chrono::steady_clock::now() + options_.poll;
    try {
      Poll();
    } catch (const Error&) {
      // squeue failed (slurmctld busy or restarting): ask again next time.
    }
  }
}

void SlurmExecutor::Poll() {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& j : jobs_) {
      if (!j.ended) ids.push_back(j.id);
    }
  }
  if (ids.empty()) return;
  // id -> (state, reason)
  std::map<std::string, std::pair<std::string, std::string>> seen;
  auto ask = [&](const std::vector<std::string>& which) {
    CommandResult r = RunSlurmCommand("squeue", {"-h", "-t", "all", "-j", Join(which, ","), "-o", "%i|%T|%r"});
    if (r.status != 0) return false;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) {
      const auto a = line.find('|'), b = line.rfind('|');
      if (a == std::string::npos || b == a) continue;
      seen[line.substr(0, a)] = {line.substr(a + 1, b - a - 1), line.substr(b + 1)};
    }
    return true;
  };
  if (!ask(ids)) {
    // squeue refuses the whole list when one id is no longer known (its
    // record aged out): ask one by one; an unknown job has ended.
    for (const auto& id : ids) {
      if (!ask({id})) seen[id] = {"UNKNOWN", "no longer known to Slurm"};
    }
  }

  std::vector<std::pair<int, std::string>> exited;
  std::string fatal;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    bool any_started = false;
    for (auto& j : jobs_) {
      if (auto it = seen.find(j.id); it != seen.end()) {
        j.state = it->second.first;
        j.reason = it->second.second;
      }
      if (j.state == "RUNNING" || j.state == "COMPLETING") j.started = true;
      if (j.started && !j.ended) any_started = true;
    }
    for (auto& j : jobs_) {
      if (j.ended || j.state.empty()) continue;
      if (j.state == "PENDING") {
        const double pending_s = std::chrono::duration<double>(now - j.submitted).count();
        const std::string where = options_.spec.partition.empty() ? "the default partition"
                                                                  : "partition " + options_.spec.partition;
        if (NeverStarts().count(j.reason) != 0 && fatal.empty()) {
          fatal = "Slurm cannot start worker job " + j.id + " in " + where + ": it is pending with reason " +
                  j.reason + " (the job asks for more than the partition, account or QOS allows)";
        } else if (!any_started && pending_s > options_.spec.pending_timeout_seconds && fatal.empty()) {
          std::ostringstream msg;
          msg << "Slurm has not started worker job " << j.id << " in " << where << " after " << static_cast<int>(pending_s)
              << " s (pending, reason " << j.reason << "), and no worker of the run runs; the executor's "
              << "pending_timeout_seconds is " << options_.spec.pending_timeout_seconds;
          fatal = msg.str();
        }
        continue;
      }
      if (!Terminal(j.state)) continue;
      j.ended = true;
      std::string detail;
      try {
        CommandResult r = RunSlurmCommand("scontrol", {"show", "job", "-o", j.id});
        if (r.status == 0) {
          const std::string exit = Field(r.out, "ExitCode");
          const std::string reason = Field(r.out, "Reason");
          if (!reason.empty() && reason != "None") detail += ", reason " + reason;
          if (!exit.empty()) detail += ", exit code " + exit;
        }
      } catch (const Error&) {
      }
      std::string why = "worker " + std::to_string(j.worker) + " (Slurm job " + j.id + ") ended: " + j.state + detail;
      if (j.state == "UNKNOWN") why = "worker " + std::to_string(j.worker) + " (Slurm job " + j.id + ") is " + j.reason;
      if (!j.killed_because.empty()) why += " (cancelled by Baton: " + j.killed_because + ")";
      exited.push_back({j.worker, why});
    }
  }
  if (!fatal.empty()) {
    Fatal(fatal);
    return;
  }
  for (const auto& [worker, why] : exited) {
    events_.on_exit(worker, why);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || fatal_ || !events_.has_work() || respawns_ >= launch_.max_respawns) continue;
      ++respawns_;
      Submit();
    }
    Announce();
  }
}

void SlurmExecutor::Stop(std::chrono::milliseconds grace) {
  if (stopping_.exchange(true)) {
    if (monitor_.joinable()) monitor_.join();
    return;
  }
  if (monitor_.joinable()) monitor_.join();
  // Pending jobs would only start to hear that the run is over: cancel them
  // at once, before the CPUs the first workers free let them start. Running
  // workers end by themselves once the coordinator says the run is over.
  std::vector<std::string> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& j : jobs_) {
      if (!j.ended && !j.started) pending.push_back(j.id);
    }
  }
  if (!pending.empty()) {
    try {
      pending.insert(pending.begin(), "--state=PENDING");
      RunSlurmCommand("scancel", pending);
    } catch (const Error&) {
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    bool running = false;
    try {
      Poll();
    } catch (const Error&) {
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& j : jobs_) running = running || (!j.ended && j.state != "PENDING");
    }
    if (!running) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& j : jobs_) {
      if (!j.ended) ids.push_back(j.id);
      j.ended = true;
    }
  }
  if (ids.empty()) return;
  try {
    RunSlurmCommand("scancel", ids);
  } catch (const Error&) {
  }
}

void SlurmExecutor::Kill(int worker_id, const std::string& why) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& j : jobs_) {
      if (j.worker != worker_id || j.ended) continue;
      j.killed_because = why;
      id = j.id;
    }
  }
  if (id.empty()) return;
  try {
    RunSlurmCommand("scancel", {id});
  } catch (const Error&) {
  }
}

int SlurmExecutor::Alive() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(std::count_if(jobs_.begin(), jobs_.end(), [](const Job& j) { return !j.ended; }));
}

ExecutorFactory SlurmExecutorFactory(const orchestrator::ExecutorSpec& spec) {
  return [spec](const WorkerLaunch& launch, WorkerEvents events) -> std::unique_ptr<Executor> {
    SlurmExecutor::Options options;
    options.spec = spec;
    options.worker_binary = FindWorkerBinary();
    return std::make_unique<SlurmExecutor>(launch, std::move(events), options);
  };
}

}  // namespace baton::executor
