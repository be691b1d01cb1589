#include "common/vocabulary.h"

namespace baton {
namespace {

// The one place the words are spelled.
template <class E, size_t N>
std::optional<E> Find(std::string_view s, const E (&all)[N]) {
  for (E e : all) {
    if (Name(e) == s) return e;
  }
  return std::nullopt;
}

}  // namespace

std::string_view Name(RunStatus s) {
  switch (s) {
    case RunStatus::kPending: return "pending";
    case RunStatus::kRunning: return "running";
    case RunStatus::kSucceeded: return "succeeded";
    case RunStatus::kFailed: return "failed";
    case RunStatus::kCancelled: return "cancelled";
    case RunStatus::kInterrupted: return "interrupted";
  }
  return "?";
}

std::string_view Name(StageStatus s) {
  switch (s) {
    case StageStatus::kPending: return "pending";
    case StageStatus::kRunning: return "running";
    case StageStatus::kSucceeded: return "succeeded";
    case StageStatus::kFailed: return "failed";
    case StageStatus::kCached: return "cached";
    case StageStatus::kSkipped: return "skipped";
    case StageStatus::kCancelled: return "cancelled";
    case StageStatus::kInterrupted: return "interrupted";
  }
  return "?";
}

std::string_view Name(TrialStatus s) {
  switch (s) {
    case TrialStatus::kPending: return "pending";
    case TrialStatus::kRunning: return "running";
    case TrialStatus::kSucceeded: return "succeeded";
    case TrialStatus::kFailed: return "failed";
    case TrialStatus::kDiverged: return "diverged";
    case TrialStatus::kPruned: return "pruned";
    case TrialStatus::kSkipped: return "skipped";
    case TrialStatus::kCancelled: return "cancelled";
  }
  return "?";
}

std::string_view Name(StageType t) {
  switch (t) {
    case StageType::kPrepare: return "prepare";
    case StageType::kTune: return "tune";
    case StageType::kAblate: return "ablate";
    case StageType::kTrain: return "train";
  }
  return "?";
}

std::optional<RunStatus> ParseRunStatus(std::string_view s) { return Find(s, kRunStatuses); }
std::optional<StageStatus> ParseStageStatus(std::string_view s) { return Find(s, kStageStatuses); }
std::optional<TrialStatus> ParseTrialStatus(std::string_view s) { return Find(s, kTrialStatuses); }
std::optional<StageType> ParseStageType(std::string_view s) { return Find(s, kStageTypes); }

bool IsFinished(RunStatus s) {
  return s == RunStatus::kSucceeded || s == RunStatus::kFailed || s == RunStatus::kCancelled;
}

bool IsFinished(StageStatus s) {
  return s == StageStatus::kSucceeded || s == StageStatus::kFailed || s == StageStatus::kCached ||
         s == StageStatus::kSkipped || s == StageStatus::kCancelled;
}

bool IsFinished(TrialStatus s) {
  return s != TrialStatus::kPending && s != TrialStatus::kRunning;
}

bool RunFinished(std::string_view status) {
  const auto s = ParseRunStatus(status);
  return s && IsFinished(*s);
}

bool StageFinished(std::string_view status) {
  const auto s = ParseStageStatus(status);
  return s && IsFinished(*s);
}

bool TrialFinished(std::string_view status) {
  const auto s = ParseTrialStatus(status);
  return s && IsFinished(*s);
}

}  // namespace baton
