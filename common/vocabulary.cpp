#include "common/vocabulary.h"

#include <iterator>

namespace baton {
namespace {

// The one place the words are spelled, in each enum's declaration order.
constexpr std::string_view kRunWords[] = {"pending", "running", "succeeded", "failed", "cancelled", "interrupted"};
constexpr std::string_view kStageWords[] = {"pending", "running",   "succeeded", "failed",
                                            "cached",  "skipped",   "cancelled", "interrupted"};
constexpr std::string_view kTrialWords[] = {"pending", "running", "succeeded", "failed",
                                            "diverged", "pruned", "skipped",   "cancelled"};
constexpr std::string_view kTypeWords[] = {"prepare", "tune", "ablate", "train", "command"};
constexpr std::string_view kKindWords[] = {"prepare", "train", "command"};
static_assert(std::size(kRunWords) == std::size(kRunStatuses));
static_assert(std::size(kStageWords) == std::size(kStageStatuses));
static_assert(std::size(kTrialWords) == std::size(kTrialStatuses));
static_assert(std::size(kTypeWords) == std::size(kStageTypes));
static_assert(std::size(kKindWords) == std::size(kTaskKinds));

template <class E, size_t N>
std::optional<E> Find(std::string_view s, const E (&all)[N]) {
  for (E e : all) {
    if (Name(e) == s) return e;
  }
  return std::nullopt;
}

}  // namespace

std::string_view Name(RunStatus s) { return kRunWords[static_cast<size_t>(s)]; }
std::string_view Name(StageStatus s) { return kStageWords[static_cast<size_t>(s)]; }
std::string_view Name(TrialStatus s) { return kTrialWords[static_cast<size_t>(s)]; }
std::string_view Name(StageType t) { return kTypeWords[static_cast<size_t>(t)]; }
std::string_view Name(TaskKind k) { return kKindWords[static_cast<size_t>(k)]; }

std::optional<RunStatus> ParseRunStatus(std::string_view s) { return Find(s, kRunStatuses); }
std::optional<StageStatus> ParseStageStatus(std::string_view s) { return Find(s, kStageStatuses); }
std::optional<TrialStatus> ParseTrialStatus(std::string_view s) { return Find(s, kTrialStatuses); }
std::optional<StageType> ParseStageType(std::string_view s) { return Find(s, kStageTypes); }
std::optional<TaskKind> ParseTaskKind(std::string_view s) { return Find(s, kTaskKinds); }

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
