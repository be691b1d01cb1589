// Leases: a running task's attempt belongs to its worker while the worker
// keeps talking about it (reports, heartbeats). One that falls silent for
// the lease is failed, fenced and retried (docs/worker-protocol.md).
#include <cstdio>

#include "common/error.h"
#include "orchestrator/internal/run_state.h"

namespace baton::orchestrator {
namespace {

// "2.5 s", "30 s".
std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g s", s);
  return buf;
}

double LeaseSeconds(std::chrono::milliseconds lease) { return static_cast<double>(lease.count()) / 1000.0; }

}  // namespace

void RunState::RenewLease(Task& t) {
  t.heard_at = now_.steady;
  t.lease_until = t.heard_at + options_.lease;
}

void RunState::FenceAttempt(Task& t, const std::string& reason) {
  t.fenced_attempt = t.rec.attempts;
  t.fenced_reason = reason;
}

void RunState::CheckAttempt(int64_t task_id, const Json& body) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end() || !body.is_object() || !body.contains("attempt")) return;
  Task& t = *it->second;
  const Json& field = body["attempt"];
  if (!field.is_number_integer() || field.get<int64_t>() < 1) {
    throw Error(ErrorCode::kInvalidArgument, "\"attempt\" must be an integer >= 1, got " + field.dump());
  }
  const int64_t attempt = field.get<int64_t>();
  const std::string what = "task " + std::to_string(task_id) + " attempt " + std::to_string(attempt);
  if (attempt > t.rec.attempts) {
    throw Error(ErrorCode::kInvalidArgument,
                what + " was never started (the task is at attempt " + std::to_string(t.rec.attempts) + ")");
  }
  if (attempt < t.rec.attempts) {
    std::string why = attempt == t.fenced_attempt ? " (" + t.fenced_reason + ")" : "";
    throw Error(ErrorCode::kAborted, what + " was superseded by attempt " + std::to_string(t.rec.attempts) + why +
                                         "; its reports are no longer recorded");
  }
  if (attempt == t.fenced_attempt) {
    throw Error(ErrorCode::kAborted, what + " was ended by the coordinator (" + t.fenced_reason +
                                         "); its reports are no longer recorded");
  }
  if (Is(t.rec.status, TrialStatus::kRunning)) RenewLease(t);
}

Json RunState::Heartbeat(int64_t task_id, const Json& body, const Instant& now) {
  now_ = now;
  CheckAttempt(task_id, body);
  Task& t = FindTask(task_id);
  RenewLease(t);
  return {{"lease_seconds", LeaseSeconds(options_.lease)}};
}

std::vector<int> RunState::ExpireLeases(const Instant& at) {
  now_ = at;
  std::vector<int> lost;
  if (finished_) return lost;
  const auto now = at.steady;
  for (auto& [id, t] : tasks_) {
    if (!Is(t->rec.status, TrialStatus::kRunning) || now < t->lease_until) continue;
    const int worker = t->worker;
    const double silent = std::chrono::duration<double>(now - t->heard_at).count();
    const std::string reason = "lease expired: worker " + std::to_string(worker) + " sent nothing for " +
                               Seconds(silent) + " (lease " + Seconds(LeaseSeconds(options_.lease)) + ")";
    FenceAttempt(*t, reason);
    FinishTask(*t, TrialStatus::kFailed, reason);
    lost.push_back(worker);
    if (finished_) break;  // the run ended with it
  }
  return lost;
}

}  // namespace baton::orchestrator
