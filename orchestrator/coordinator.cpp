// The coordinator is the run state machine's shell (internal/run_state.h):
// it holds the lock, reads the clock, waits for tasks, and applies the
// state's effects to the store and the observers as they are decided.
#include "orchestrator/coordinator.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>

#include "common/crash_point.h"
#include "common/error.h"
#include "orchestrator/internal/effects.h"
#include "orchestrator/internal/run_state.h"

namespace baton::orchestrator {
namespace {

std::string NewRunId() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y%m%d-%H%M%S", std::gmtime(&t));
  std::random_device rd;
  char suffix[8];
  std::snprintf(suffix, sizeof(suffix), "%04x", static_cast<unsigned>(rd() & 0xffff));
  return std::string(buf) + "-" + suffix;
}

}  // namespace

std::string CreateRun(store::LineageDb& db, const Pipeline& pipeline, const std::string& idempotency_key) {
  store::RunRecord run;
  run.id = NewRunId();
  run.pipeline_id = pipeline.id;
  run.name = pipeline.name;
  run.status = Name(RunStatus::kPending);
  run.created_at = SystemClock().Now();
  db.InTransaction([&] {
    db.PutPipeline(pipeline.id, pipeline.name, pipeline.doc);
    db.CreateRun(run);
    for (const auto& name : pipeline.order) {
      store::StageRecord stage;
      stage.run_id = run.id;
      stage.name = name;
      stage.type = pipeline.stage(name).at("type").get<std::string>();
      stage.status = Name(StageStatus::kPending);
      stage.spec = pipeline.stage(name);
      int64_t id = db.AddStage(stage);
      db.AddEdge({"stage:" + std::to_string(id), "run:" + run.id, "part_of", Json::object()});
    }
    if (!idempotency_key.empty()) db.PutIdempotencyKey(idempotency_key, pipeline.id, run.id);
  });
  return run.id;
}

std::string OutOfSpaceReason(const std::string& run_id, const std::string& cause, const std::string& resume_command) {
  return "run " + run_id + " stopped: the store is out of space (RESOURCE_EXHAUSTED): " + cause +
         "; once space is freed, `" + resume_command + " " + run_id + "` continues it from its last stored epochs";
}

Coordinator::Coordinator(store::BlobStore& blobs, store::LineageDb& db, Pipeline pipeline,
                         std::string run_id, CoordinatorOptions options)
    : blobs_(blobs), db_(db), pipeline_(std::move(pipeline)), run_id_(std::move(run_id)),
      options_(options),
      clock_(options.clock ? *options.clock : SystemClock()),
      reads_(std::make_unique<StoreReads>(db_, blobs_)),
      effects_(std::make_unique<StoreEffects>(
          db_, blobs_,
          [this](const Event& event) {
            for (Observer* o : observers_) o->OnEvent(event);
          },
          [this] { cv_.notify_all(); })),
      state_(std::make_unique<RunState>(pipeline_, run_id_, options_, *reads_, *effects_)) {}

Coordinator::~Coordinator() = default;

std::unique_ptr<Coordinator> Coordinator::ForResume(store::BlobStore& blobs, store::LineageDb& db,
                                                    const std::string& run_id, CoordinatorOptions options) {
  auto run = db.GetRun(run_id);
  if (!run) throw Error(ErrorCode::kNotFound, "no run " + run_id);
  if (RunFinished(run->status)) {
    throw Error(ErrorCode::kConflict, "run " + run_id + " already " + run->status + "; nothing to resume");
  }
  auto doc = db.GetPipeline(run->pipeline_id);
  if (!doc) {
    throw Error(ErrorCode::kCorrupt, "run " + run_id + ": its pipeline " + run->pipeline_id +
                                         " is not in the lineage DB");
  }
  // No model limit: the pipeline was accepted when the run was created.
  PipelineLimits accepted;
  accepted.max_model_bytes = UINT64_MAX;
  accepted.cuda = true;
  Pipeline pipeline = LoadPipeline(*doc, accepted);
  if (pipeline.id != run->pipeline_id) {
    throw Error(ErrorCode::kCorrupt, "run " + run_id + ": the stored pipeline's digest is " + pipeline.id +
                                         ", not " + run->pipeline_id);
  }
  auto c = std::make_unique<Coordinator>(blobs, db, std::move(pipeline), run_id, options);
  {
    std::lock_guard<std::mutex> lock(c->mu_);
    c->state_->LoadForResume(c->At());
  }
  CrashPoint("resume.loaded");
  return c;
}

Instant Coordinator::At() const { return {clock_.Now(), clock_.Steady()}; }

void Coordinator::AddObserver(Observer* observer) { observers_.push_back(observer); }

int Coordinator::MaxParallel() const { return state_->MaxParallel(); }

void Coordinator::Start() {
  std::lock_guard<std::mutex> lock(mu_);
  state_->Start(At());
}

Coordinator::Next Coordinator::NextTask(int worker_id, std::chrono::milliseconds wait, Json* task) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    const Instant now = At();
    double wake_at = 0;
    const Next next = state_->NextTask(worker_id, now, task, &wake_at);
    if (next != Next::kWait) return next;
    auto until = deadline;
    if (wake_at > 0) {
      until = std::min(until, std::chrono::steady_clock::now() +
                                  std::chrono::milliseconds(static_cast<int64_t>((wake_at - now.wall) * 1000) + 1));
    }
    if (std::chrono::steady_clock::now() >= deadline) return Next::kWait;
    cv_.wait_until(lock, until);
  }
}

void Coordinator::ReportInitial(int64_t task_id, const Json& body) {
  std::lock_guard<std::mutex> lock(mu_);
  state_->ReportInitial(task_id, body, At());
}

std::string Coordinator::ReportEpoch(int64_t task_id, const Json& body) {
  std::lock_guard<std::mutex> lock(mu_);
  return state_->ReportEpoch(task_id, body, At());
}

void Coordinator::Complete(int64_t task_id, const Json& body) {
  std::lock_guard<std::mutex> lock(mu_);
  state_->Complete(task_id, body, At());
}

void Coordinator::Fail(int64_t task_id, const Json& body) {
  std::lock_guard<std::mutex> lock(mu_);
  state_->Fail(task_id, body, At());
}

void Coordinator::WorkerLost(int worker_id, const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  state_->WorkerLost(worker_id, reason, At());
}

Json Coordinator::Heartbeat(int64_t task_id, const Json& body) {
  std::lock_guard<std::mutex> lock(mu_);
  return state_->Heartbeat(task_id, body, At());
}

std::vector<int> Coordinator::ExpireLeases() {
  std::lock_guard<std::mutex> lock(mu_);
  return state_->ExpireLeases(At());
}

bool Coordinator::Cancel(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  return state_->Cancel(reason, At());
}

bool Coordinator::Abort(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  return state_->Abort(reason, At());
}

void Coordinator::SetWorkerPlacement(int worker_id, Json placement) {
  std::lock_guard<std::mutex> lock(mu_);
  state_->SetPlacement(worker_id, std::move(placement));
}

bool Coordinator::Interrupt(const Error& cause) {
  std::lock_guard<std::mutex> lock(mu_);
  return state_->Interrupt(cause, At());
}

std::string Coordinator::InterruptReason() {
  std::lock_guard<std::mutex> lock(mu_);
  return state_->interrupt_reason();
}

bool Coordinator::HasWork() {
  std::lock_guard<std::mutex> lock(mu_);
  return state_->HasWork();
}

bool Coordinator::WaitFinished(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return state_->finished(); });
}

std::string Coordinator::Status() {
  std::lock_guard<std::mutex> lock(mu_);
  return state_->status();
}

}  // namespace baton::orchestrator
