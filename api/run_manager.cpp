#include "api/internal/run_manager.h"

#include <algorithm>

#include "api/http_server.h"
#include "common/error.h"
#include "executor/slurm.h"
#include "common/vocabulary.h"
#include "orchestrator/events.h"

namespace baton::api {
namespace {

// Runs waiting for a slot before Trigger answers 503.
constexpr size_t kMaxQueued = 64;

}  // namespace

executor::ExecuteOptions Execution(StoreHandle& store, const orchestrator::Coordinator& coordinator,
                                   const WorkerOptions& workers) {
  executor::ExecuteOptions options;
  options.workers = workers.workers;
  options.log_dir = store.dir + "/logs/" + coordinator.run_id();
  store::BlobStore* blobs = store.blobs.get();
  const WorkerAccess access = workers.access;
  options.serve = [blobs, access](orchestrator::Coordinator& c, int n) { return ServeWorkers(c, *blobs, n, access); };
  orchestrator::ExecutorSpec spec = coordinator.pipeline().executor;
  if (!workers.executor.empty()) spec.type = orchestrator::ParseExecutorType(workers.executor);
  if (spec.type == orchestrator::ExecutorType::kSlurm) {
    // Slurm gives each job its own cores (and GPUs): as many workers as stages use.
    if (options.workers <= 0) options.workers = std::max(1, coordinator.MaxParallel());
    options.make_executor = executor::SlurmExecutorFactory(spec);
  } else {
    options.gpus = executor::VisibleGpus();
  }
  return options;
}

struct RunManager::Entry {
  std::string run_id;
  orchestrator::Pipeline pipeline;
  orchestrator::Coordinator* coordinator = nullptr;  // while it executes
  std::vector<RunEvent> events;
  bool over = false;
  std::string cancel_reason;  // asked before it started
  bool resume = false;        // an interrupted run, continued (Coordinator::ForResume)
  std::string interrupted;    // why a full disk stopped it (its run_finished event); under events_mu_
};

// Keeps a run's events for its stream. Called with the coordinator's lock
// held: it only appends under the manager's lock and wakes the readers.
class RunManager::Recorder : public orchestrator::Observer {
 public:
  Recorder(RunManager& manager, Entry& entry) : manager_(manager), entry_(entry) {}
  void OnEvent(const orchestrator::Event& e) override {
    Json data = {{"type", e.type}, {"run_id", e.run_id}, {"time", e.time}, {"data", e.data}};
    if (!e.stage.empty()) data["stage"] = e.stage;
    if (e.trial_id > 0) {
      data["trial_id"] = e.trial_id;
      data["trial_number"] = e.trial_number;
    }
    std::lock_guard<std::mutex> lock(manager_.events_mu_);
    if (e.type == "run_finished" && Is(e.data.value("status", ""), RunStatus::kInterrupted)) {
      entry_.interrupted = e.data.value("error", "");
    }
    const int64_t id = static_cast<int64_t>(entry_.events.size()) + 1;
    data["id"] = id;
    entry_.events.push_back(RunEvent{id, e.type, std::move(data)});
    manager_.events_cv_.notify_all();
  }

 private:
  RunManager& manager_;
  Entry& entry_;
};

RunManager::RunManager(StoreHandle& store, RunManagerOptions options) : store_(store), options_(options) {
  const int n = std::max(1, options_.max_runs);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { Loop(); });
}

RunManager::~RunManager() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (auto& entry : queue_) {
      try {
        CancelQueued(*entry, "the server stopped before the run started");
      } catch (const std::exception&) {
        // Not recorded (a full disk): the run stays pending, and the next
        // server on the store starts it.
      }
    }
    queue_.clear();
    for (auto& [id, entry] : runs_) {
      if (entry->coordinator) entry->coordinator->Cancel("the server stopped");
    }
    cv_.notify_all();
  }
  for (auto& t : threads_) t.join();
}

RunManager::Triggered RunManager::Trigger(const orchestrator::Pipeline& pipeline, const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) throw Error(ErrorCode::kUnavailable, "the server is stopping");
  if (!key.empty()) {
    // Kept in the lineage DB with the run, so a retry after a restart of
    // the server finds it too; mu_ makes lookup and creation one step.
    if (auto earlier = store_.db->GetIdempotencyKey(key)) {
      if (earlier->pipeline_id != pipeline.id) {
        throw Error(ErrorCode::kConflict, "Idempotency-Key \"" + key + "\" was used for run " + earlier->run_id +
                                              " of another pipeline (" + earlier->pipeline_id + ")");
      }
      return {earlier->run_id, false};
    }
  }
  if (queue_.size() >= kMaxQueued) {
    throw Error(ErrorCode::kUnavailable, std::to_string(queue_.size()) +
                                             " runs are already waiting to start; try again when some have finished");
  }
  auto entry = std::make_shared<Entry>();
  entry->pipeline = pipeline;
  entry->run_id = orchestrator::CreateRun(*store_.db, pipeline, key);
  runs_[entry->run_id] = entry;
  queue_.push_back(entry);
  cv_.notify_all();
  return {entry->run_id, true};
}

void RunManager::Resume(const std::string& run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) throw Error(ErrorCode::kUnavailable, "the server is stopping");
  auto it = runs_.find(run_id);
  if (it != runs_.end()) {
    // One interrupted by a full disk has ended, though its workers may still
    // be stopping: it may be resumed at once.
    std::lock_guard<std::mutex> events_lock(events_mu_);
    if (!it->second->over && it->second->interrupted.empty()) {
      throw Error(ErrorCode::kConflict, "run " + run_id + " is already being executed here");
    }
  }
  auto run = store_.db->GetRun(run_id);
  if (!run) throw Error(ErrorCode::kNotFound, "no run " + run_id);
  if (RunFinished(run->status)) {
    throw Error(ErrorCode::kConflict, "run " + run_id + " already " + run->status + "; nothing to resume");
  }
  auto entry = std::make_shared<Entry>();
  entry->run_id = run_id;
  entry->resume = true;
  runs_[run_id] = entry;  // a new event stream for the resumed part
  queue_.push_back(entry);
  cv_.notify_all();
}

void RunManager::Loop() {
  while (true) {
    std::shared_ptr<Entry> entry;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      entry = queue_.front();
      queue_.pop_front();
    }
    try {
      Execute(*entry);
    } catch (const std::exception& e) {
      EndUnexecuted(*entry, e);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      entry->coordinator = nullptr;
    }
    std::lock_guard<std::mutex> lock(events_mu_);
    entry->over = true;
    events_cv_.notify_all();
  }
}

void RunManager::Execute(Entry& entry) {
  orchestrator::CoordinatorOptions coordinator_options;
  coordinator_options.lease = options_.lease;
  coordinator_options.resume_command = ResumeCommand();
  std::unique_ptr<orchestrator::Coordinator> owned =
      entry.resume ? orchestrator::Coordinator::ForResume(*store_.blobs, *store_.db, entry.run_id, coordinator_options)
                   : std::make_unique<orchestrator::Coordinator>(*store_.blobs, *store_.db, entry.pipeline, entry.run_id,
                                                                 coordinator_options);
  orchestrator::Coordinator& coordinator = *owned;
  Recorder recorder(*this, entry);
  coordinator.AddObserver(&recorder);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || !entry.cancel_reason.empty()) {
      CancelQueued(entry, stopping_ ? "the server stopped before the run started" : entry.cancel_reason);
      return;
    }
    entry.coordinator = &coordinator;  // Cancel may end it from here on
  }
  executor::ExecuteRun(coordinator, Execution(store_, coordinator, options_.workers), [] {});
  std::lock_guard<std::mutex> lock(mu_);
  entry.coordinator = nullptr;
}

void RunManager::SetResumeCommand(const std::string& command) {
  std::lock_guard<std::mutex> lock(mu_);
  options_.resume_command = command;
}

std::string RunManager::ResumeCommand() {
  std::lock_guard<std::mutex> lock(mu_);
  return options_.resume_command;
}

// With events_mu_ held.
void RunManager::AppendRunFinished(Entry& entry, const std::string& status, const std::string& error) {
  const int64_t id = static_cast<int64_t>(entry.events.size()) + 1;
  entry.events.push_back(RunEvent{id, "run_finished",
                                  {{"id", id}, {"type", "run_finished"}, {"run_id", entry.run_id},
                                   {"data", {{"status", status}, {"error", error}}}}});
  events_cv_.notify_all();
}

void RunManager::Overlay(store::RunRecord& run) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = runs_.find(run.id);
  if (it == runs_.end()) return;
  const Entry& entry = *it->second;
  std::lock_guard<std::mutex> events_lock(events_mu_);
  if (!entry.interrupted.empty()) {
    if (Is(run.status, RunStatus::kPending) || Is(run.status, RunStatus::kRunning)) {
      run.status = Name(RunStatus::kInterrupted);
      run.error = entry.interrupted;
    }
  } else if (!entry.over && Is(run.status, RunStatus::kInterrupted)) {
    // Resumed: queued, or starting, until its coordinator records "running".
    run.status = Name(RunStatus::kPending);
    run.error.clear();
  }
}

// The run could not be executed (its coordinator could not be made or
// started: a stored pipeline that no longer loads, a full disk while
// resuming). The run's records say what happened when the coordinator got
// that far; otherwise it is recorded here, if the disk lets it, and told to
// the run's event stream. A full disk leaves it "interrupted", to be resumed
// once there is space, not "failed".
void RunManager::EndUnexecuted(Entry& entry, const std::exception& e) {
  const auto* error = dynamic_cast<const Error*>(&e);
  const bool full = error != nullptr && error->code() == ErrorCode::kResourceExhausted;
  const std::string status(Name(full ? RunStatus::kInterrupted : RunStatus::kFailed));
  const std::string reason = full ? orchestrator::OutOfSpaceReason(entry.run_id, e.what(), ResumeCommand())
                                  : std::string("could not execute the run: ") + e.what();
  try {
    auto run = store_.db->GetRun(entry.run_id);
    if (run && (Is(run->status, RunStatus::kPending) || Is(run->status, RunStatus::kRunning) || (full && Is(run->status, RunStatus::kInterrupted)))) {
      run->status = status;
      run->error = reason;
      store_.db->UpdateRun(*run);
    }
  } catch (const std::exception&) {
    // The lineage DB is on the full disk too; Overlay tells readers.
  }
  std::lock_guard<std::mutex> lock(events_mu_);
  if (!entry.events.empty() && entry.events.back().type == "run_finished") return;  // the coordinator told it
  if (full) entry.interrupted = reason;
  AppendRunFinished(entry, status, reason);
}

// With mu_ held. The run never started: its records say so.
void RunManager::CancelQueued(Entry& entry, const std::string& reason) {
  auto run = store_.db->GetRun(entry.run_id);
  if (run) {
    run->status = Name(RunStatus::kCancelled);
    run->error = reason;
    store_.db->UpdateRun(*run);
    for (auto stage : store_.db->GetStages(entry.run_id)) {
      stage.status = Name(StageStatus::kCancelled);
      stage.error = reason;
      store_.db->UpdateStage(stage);
    }
  }
  std::lock_guard<std::mutex> lock(events_mu_);
  entry.over = true;
  AppendRunFinished(entry, std::string(Name(RunStatus::kCancelled)), reason);
}

void RunManager::Cancel(const std::string& run_id, const std::string& reason) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) {
    auto run = store_.db->GetRun(run_id);
    if (!run) throw Error(ErrorCode::kNotFound, "no run " + run_id);
    if (Is(run->status, RunStatus::kPending) || Is(run->status, RunStatus::kRunning)) {
      throw Error(ErrorCode::kConflict, "run " + run_id + " is " + run->status +
                                            " but not executed by this server (another process, or one that stopped)");
    }
    throw Error(ErrorCode::kConflict, "run " + run_id + " has already finished (" + run->status + ")");
  }
  Entry& entry = *it->second;
  bool over = false;
  {
    std::lock_guard<std::mutex> events_lock(events_mu_);
    over = entry.over;
  }
  auto run = store_.db->GetRun(run_id);
  if (over || (run && !Is(run->status, RunStatus::kPending) && !Is(run->status, RunStatus::kRunning))) {
    throw Error(ErrorCode::kConflict, "run " + run_id + " has already finished (" + (run ? run->status : "?") + ")");
  }
  auto queued = std::find(queue_.begin(), queue_.end(), it->second);
  if (queued != queue_.end()) {
    CancelQueued(entry, reason);
    queue_.erase(queued);
    cv_.notify_all();
    return;
  }
  if (entry.coordinator == nullptr) {
    entry.cancel_reason = reason;  // between the queue and its start
    return;
  }
  if (!entry.coordinator->Cancel(reason)) {
    throw Error(ErrorCode::kConflict, "run " + run_id + " is finishing");
  }
}

std::vector<RunEvent> RunManager::Events(const std::string& run_id, int64_t after_id, std::chrono::milliseconds wait,
                                         bool* over) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = runs_.find(run_id);
    if (it != runs_.end()) entry = it->second;
  }
  if (!entry) {
    auto run = store_.db->GetRun(run_id);
    if (!run) throw Error(ErrorCode::kNotFound, "no run " + run_id);
    *over = true;
    if (after_id >= 1) return {};
    return {RunEvent{1, "run_status",
                     {{"id", 1}, {"type", "run_status"}, {"run_id", run_id},
                      {"data", {{"status", run->status}, {"error", run->error}}}}}};
  }
  std::unique_lock<std::mutex> lock(events_mu_);
  events_cv_.wait_for(lock, wait, [&] { return entry->over || static_cast<int64_t>(entry->events.size()) > after_id; });
  std::vector<RunEvent> out;
  for (const RunEvent& e : entry->events) {
    if (e.id > after_id) out.push_back(e);
  }
  *over = entry->over;
  return out;
}

int RunManager::Active() {
  std::lock_guard<std::mutex> lock(mu_);
  std::lock_guard<std::mutex> events_lock(events_mu_);
  int n = 0;
  for (const auto& [id, entry] : runs_) n += entry->over ? 0 : 1;
  return n;
}

}  // namespace baton::api
