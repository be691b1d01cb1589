// What the workers call: task hand-outs (tasks:next) and their reports on
// a task (initial checkpoint, epochs, completion, failure), and a worker
// process lost (docs/worker-protocol.md).
#include <algorithm>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "orchestrator/internal/run_state.h"
#include "store/checkpoint.h"

namespace baton::orchestrator {

Coordinator::Next RunState::NextTask(int worker_id, const Instant& at, Json* task, double* wake_at) {
  using Next = Coordinator::Next;
  now_ = at;
  *wake_at = 0;
  if (finished_) return Next::kDone;
  const double now = Now();
  double earliest_retry = 0;
  for (size_t i = 0; i < stages_.size() && !finished_; ++i) ApplyTimeout(*stages_[i]);
  if (finished_) return Next::kDone;
  for (auto& stage : stages_) {
    if (!Is(stage->rec.status, StageStatus::kRunning) || stage->running >= stage->max_parallel) continue;
    Task* t = Runnable(*stage, &earliest_retry);
    if (t == nullptr) continue;
    if (!t->sampled) SampleLazily(*stage, *t);
    t->rec.status = Name(TrialStatus::kRunning);
    t->rec.attempts += 1;
    t->rec.started_at = now;
    t->worker = worker_id;
    RenewLease(*t);
    t->stop_requested = false;
    t->stop_reason.clear();
    Json placement = {{"attempt", t->rec.attempts}, {"worker", worker_id}, {"executor", "local"}, {"started_at", now}};
    if (auto where = placements_.find(worker_id); where != placements_.end()) placement.update(where->second);
    if (!t->rec.placements.is_array()) t->rec.placements = Json::array();
    t->rec.placements.push_back(placement);
    UpdateTrial(t->rec);
    Crash("trial.started");
    stage->running += 1;
    *task = t->rec.task;
    (*task)["id"] = t->rec.id;
    (*task)["attempt"] = t->rec.attempts;
    (*task)["lease_seconds"] = static_cast<double>(options_.lease.count()) / 1000.0;
    (*task)["heartbeat_seconds"] = static_cast<double>(options_.lease.count()) / 5000.0;
    t->resume_from.clear();
    if (t->last_epoch >= 0) {
      (*task)["start_epoch"] = t->last_epoch + 1;
      (*task)["resume_checkpoint"] = t->last_checkpoint;
      t->resume_from = t->last_checkpoint;
    }
    Emit("trial_started", stage->rec.name, t->rec.id, t->rec.number,
         {{"attempt", t->rec.attempts}, {"worker", worker_id}, {"hyperparameters", t->rec.hyperparameters},
          {"start_epoch", t->last_epoch + 1}, {"placement", placement}});
    return Next::kTask;
  }
  // When a retry's backoff or a stage's budget runs out, a waiting worker
  // must look again.
  auto wake = [&](double when) {
    if (*wake_at == 0 || when < *wake_at) *wake_at = when;
  };
  if (earliest_retry > 0) wake(earliest_retry);
  for (auto& stage : stages_) {
    if (stage->typed->timeout_seconds > 0 && !stage->timed_out && Is(stage->rec.status, StageStatus::kRunning)) {
      wake(stage->rec.started_at + stage->typed->timeout_seconds);
    }
  }
  return Next::kWait;
}

bool RunState::IsRepeatedReport(int64_t task_id, std::optional<TrialStatus> status, const std::string& output) {
  // Workers retry a report whose answer they did not see; the retry must be
  // answered like the original, not refused.
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || Is(it->second->rec.status, TrialStatus::kRunning)) return false;
  const auto& rec = it->second->rec;
  if (status) {
    // A stopped trial completes as pruned.
    const bool same = Is(rec.status, *status) || (*status == TrialStatus::kSucceeded && Is(rec.status, TrialStatus::kPruned));
    return same && rec.output == output;
  }
  // A failure report for a task no longer running: it was already recorded
  // (failed, diverged, or pending again for a retry).
  return !Is(rec.status, TrialStatus::kSucceeded);
}

RunState::Task& RunState::FindTask(int64_t task_id) {
  if (!interrupted_.empty()) throw Error(ErrorCode::kResourceExhausted, interrupted_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) throw Error(ErrorCode::kNotFound, "no task " + std::to_string(task_id) + " in run " + run_id_);
  if (!Is(it->second->rec.status, TrialStatus::kRunning)) {
    throw Error(ErrorCode::kConflict, "task " + std::to_string(task_id) + " is " + it->second->rec.status + ", not running");
  }
  return *it->second;
}

BlobList RunState::CheckpointBlobs(const std::string& digest) {
  if (!IsDigest(digest)) throw Error(ErrorCode::kInvalidArgument, "not a digest: " + digest);
  std::string bytes;
  try {
    bytes = reads_.Blob(digest);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kNotFound) {
      throw Error(ErrorCode::kInvalidArgument, "checkpoint " + digest + " was not uploaded");
    }
    throw;
  }
  store::Manifest m = store::ParseManifest(bytes);
  BlobList out;
  out.push_back({digest, bytes.size()});
  for (const auto& t : m.tensors) {
    if (!reads_.HasBlob(t.blob)) {
      throw Error(ErrorCode::kInvalidArgument, "checkpoint " + digest + " names tensor blob " + t.blob +
                                                   " (" + t.name + ") that was not uploaded");
    }
    out.push_back({t.blob, t.bytes});
  }
  return out;
}

void RunState::ReportInitial(int64_t task_id, const Json& body, const Instant& now) {
  now_ = now;
  CheckAttempt(task_id, body);
  Task& t = FindTask(task_id);
  const std::string digest = body.at("checkpoint").get<std::string>();
  // The device the worker chose ("cpu", "cuda:0") and the GPUs it was let
  // see (CUDA_VISIBLE_DEVICES): recorded with the attempt.
  const bool has_device = body.contains("device") && body["device"].is_string() &&
                          t.rec.placements.is_array() && !t.rec.placements.empty();
  if (has_device) {
    t.rec.placements.back()["device"] = body["device"];
    if (body.contains("visible_gpus") && body["visible_gpus"].is_string()) {
      t.rec.placements.back()["visible_gpus"] = body["visible_gpus"];
    }
  }
  if (body.value("resumed", false)) {
    // The state the worker loaded to resume, encoded again: it must be the
    // checkpoint it was given, bit for bit.
    if (t.resume_from.empty()) {
      throw Error(ErrorCode::kInvalidArgument, "task " + std::to_string(task_id) + " was not given a checkpoint to resume from");
    }
    if (digest != t.resume_from) {
      throw Error(ErrorCode::kInvalidArgument, "task " + std::to_string(task_id) + " resumed to state " + digest +
                                                   ", not the checkpoint it was given (" + t.resume_from + ")");
    }
    // Idempotent on (trial, checkpoint): the first resumption from it is kept.
    Json attrs = {{"epoch", t.last_epoch}, {"start_epoch", t.last_epoch + 1},
                  {"promoted", t.promoted_at > 0 && t.promoted_at == t.last_epoch + 1},
                  {"attempt", t.rec.attempts}, {"loaded", digest}};
    if (!t.retry_reason.empty()) attrs["after"] = t.retry_reason;  // why the attempt before failed
    if (has_device) UpdateTrial(t.rec);
    AddEdge(Node("trial", t.rec.id), Node("checkpoint", digest), "resumed_from", attrs);
    return;
  }
  auto blob_list = CheckpointBlobs(digest);
  const Json init = body.value("init", Json::object());
  effects_.Atomically([&] {
    Apply(effect::RecordCheckpoint{digest, t.rec.id, -1, blob_list});
    t.rec.initial_checkpoint = digest;
    UpdateTrial(t.rec);
    if (init.contains("source") && init["source"].is_string()) {
      Json attrs = init;
      const Json& resolved = t.stage->rec.resolved;
      if (resolved.contains("init_from")) {
        attrs["trial_id"] = resolved["init_from"]["trial_id"];
        attrs["trial_number"] = resolved["init_from"]["trial_number"];
        attrs["epoch"] = resolved["init_from"]["epoch"];
        attrs["stage"] = resolved["init_from"]["stage"];
      }
      if (resolved.contains("compare") && t.rec.task.contains("variant")) {
        // A compare run starts from its own epoch of the same trial.
        for (const auto& v : resolved["compare"]["variants"]) {
          if (v["variant"] == t.rec.task["variant"] && v.contains("epoch")) attrs["epoch"] = v["epoch"];
        }
      }
      AddEdge(Node("trial", t.rec.id), Node("checkpoint", init["source"].get<std::string>()), "initialized_from",
              attrs);
    }
  });
  Crash("initial.recorded");
}

std::string RunState::ReportEpoch(int64_t task_id, const Json& body, const Instant& now) {
  now_ = now;
  CheckAttempt(task_id, body);
  Task& t = FindTask(task_id);
  store::EpochRecord e;
  e.trial_id = t.rec.id;
  e.epoch = body.at("epoch").get<int>();
  e.metrics = body.at("metrics");
  e.checkpoint = body.at("checkpoint").get<std::string>();
  e.seconds = body.value("seconds", 0.0);
  e.created_at = Now();
  if (e.epoch <= t.last_epoch) return "continue";  // a retried report
  if (e.epoch != t.last_epoch + 1) {
    throw Error(ErrorCode::kInvalidArgument, "epoch " + std::to_string(e.epoch) + " reported after epoch " +
                                                 std::to_string(t.last_epoch));
  }
  Stage& stage = *t.stage;
  const bool tune = Is(stage.rec.type, StageType::kTune);
  if (tune && !(e.metrics.contains(stage.objective().metric) && e.metrics[stage.objective().metric].is_number())) {
    throw Error(ErrorCode::kInvalidArgument, "epoch report lacks the objective metric " + stage.objective().metric);
  }
  auto blob_list = CheckpointBlobs(e.checkpoint);
  Crash("epoch.unrecorded");
  const Json partitioning = body.value("partitioning", Json());
  if (partitioning.is_object() && t.rec.task.contains("dataset")) {
    // Importance partitioning: which examples each rank trained this epoch
    // on (the index lists' digests) and how they were chosen, recorded with
    // the epoch, in one transaction.
    effects_.Atomically([&] {
      Apply(effect::RecordEpoch{e, blob_list});
      AddEdge(Node("checkpoint", e.checkpoint), Node("artifact", t.rec.task["dataset"].get<std::string>()),
              "partitioned", partitioning);
    });
  } else {
    Apply(effect::RecordEpoch{e, blob_list});
  }
  Crash("epoch.recorded");
  t.last_epoch = e.epoch;
  t.last_checkpoint = e.checkpoint;
  if (tune) {
    t.values.resize(static_cast<size_t>(e.epoch));  // a retry may resume below what was kept
    t.values.push_back(e.metrics[stage.objective().metric].get<double>());
  }
  Emit("epoch", stage.rec.name, t.rec.id, t.rec.number,
       {{"epoch", e.epoch}, {"metrics", e.metrics}, {"checkpoint", e.checkpoint}, {"seconds", e.seconds},
        {"epochs", t.rec.task.value("epochs", 0)}});
  const std::string reason = tune ? PruneReason(stage, t) : "";
  if (reason.empty()) return "continue";
  t.stop_requested = true;
  t.stop_reason = reason;
  Emit("trial_stopping", stage.rec.name, t.rec.id, t.rec.number, {{"epoch", e.epoch}, {"reason", reason}});
  return "stop";
}

void RunState::Complete(int64_t task_id, const Json& body, const Instant& now) {
  now_ = now;
  CheckAttempt(task_id, body);
  const std::string output = body.at("output").get<std::string>();
  if (IsRepeatedReport(task_id, TrialStatus::kSucceeded, output)) return;
  Task& t = FindTask(task_id);
  if (t.promoted_at > 0 && t.last_epoch + 1 <= t.promoted_at && output == t.last_checkpoint) {
    // A late repeat of the :complete that paused it, arriving after its
    // promotion: the promoted segment has not reported an epoch yet.
    return;
  }
  if (t.stop_requested) {
    if (output != t.last_checkpoint) {
      throw Error(ErrorCode::kInvalidArgument, "output " + output + " is not the last reported checkpoint");
    }
    t.rec.output = output;
    FinishTask(t, TrialStatus::kPruned, t.stop_reason);
    return;
  }
  if (Is(t.rec.kind, TaskKind::kPrepare)) {
    auto blob_list = CheckpointBlobs(output);
    store::Manifest m = store::ParseManifest(reads_.Blob(output));
    if (m.kind != "dataset") throw Error(ErrorCode::kInvalidArgument, "prepare output " + output + " is not a dataset manifest");
    effects_.Atomically([&] {
      Apply(effect::PutArtifact{output, "dataset", t.stage->rec.id, m.meta, blob_list});
      AddEdge(Node("artifact", output), Node("stage", t.stage->rec.id), "derived_from", Json::object());
    });
  } else if (Is(t.rec.kind, TaskKind::kCommand)) {
    CompleteCommand(t, output);
    RecordCommandLogs(t, body);
  } else if (output != t.last_checkpoint) {
    throw Error(ErrorCode::kInvalidArgument, "output " + output + " is not the last reported checkpoint");
  }
  t.rec.output = output;
  FinishTask(t, TrialStatus::kSucceeded, "");
}

void RunState::Fail(int64_t task_id, const Json& body, const Instant& now) {
  now_ = now;
  CheckAttempt(task_id, body);
  if (IsRepeatedReport(task_id, std::nullopt, "")) return;
  Task& t = FindTask(task_id);
  if (Is(t.rec.kind, TaskKind::kCommand)) RecordCommandLogs(t, body);
  // A divergence is reported as such (it is not retried); anything else fails.
  const auto said = ParseTrialStatus(body.value("status", ""));
  FinishTask(t, said == TrialStatus::kDiverged ? TrialStatus::kDiverged : TrialStatus::kFailed,
             body.value("reason", "no reason given"));
}

void RunState::WorkerLost(int worker_id, const std::string& reason, const Instant& now) {
  now_ = now;
  for (auto& [id, t] : tasks_) {
    if (!Is(t->rec.status, TrialStatus::kRunning) || t->worker != worker_id) continue;
    FenceAttempt(*t, reason);
    FinishTask(*t, TrialStatus::kFailed, reason);
  }
}

}  // namespace baton::orchestrator
