#pragma once

#include <optional>
#include <string_view>

// The words Baton writes for the states of runs, stages and trials and for
// stage types, typed. The strings are the wire format: the lineage DB, the
// REST API, events and `--json` output use exactly these, so they never
// change; code compares enums or asks these functions, never spells them.
namespace baton {

enum class RunStatus { kPending, kRunning, kSucceeded, kFailed, kCancelled, kInterrupted };
enum class StageStatus { kPending, kRunning, kSucceeded, kFailed, kCached, kSkipped, kCancelled, kInterrupted };
enum class TrialStatus { kPending, kRunning, kSucceeded, kFailed, kDiverged, kPruned, kSkipped, kCancelled };
enum class StageType { kPrepare, kTune, kAblate, kTrain, kCommand };
// What a worker is asked to do (a task's "kind", docs/worker-protocol.md):
// prepare a dataset, or train a model for some epochs (tune, ablate and
// train stages all hand out train tasks), or run a command stage's command.
enum class TaskKind { kPrepare, kTrain, kCommand };

std::string_view Name(RunStatus s);
std::string_view Name(StageStatus s);
std::string_view Name(TrialStatus s);
std::string_view Name(StageType t);
std::string_view Name(TaskKind k);

// The value a word names; nullopt for any other string.
std::optional<RunStatus> ParseRunStatus(std::string_view s);
std::optional<StageStatus> ParseStageStatus(std::string_view s);
std::optional<TrialStatus> ParseTrialStatus(std::string_view s);
std::optional<StageType> ParseStageType(std::string_view s);
std::optional<TaskKind> ParseTaskKind(std::string_view s);

// Finished: it ended and will not run again, not even on resume.
// Interrupted runs and stages are not finished (resume goes on with them);
// pending and running are not. For a run: succeeded, failed, cancelled.
// For a stage: succeeded, failed, cached, skipped, cancelled. For a trial:
// succeeded, failed, diverged, pruned, skipped, cancelled.
bool IsFinished(RunStatus s);
bool IsFinished(StageStatus s);
bool IsFinished(TrialStatus s);

// The same for a stored word; false for a word that names no status.
bool RunFinished(std::string_view status);
bool StageFinished(std::string_view status);
bool TrialFinished(std::string_view status);

// Whether a stored word names this value: Is(stage.type, StageType::kTune).
inline bool Is(std::string_view word, RunStatus s) { return word == Name(s); }
inline bool Is(std::string_view word, StageStatus s) { return word == Name(s); }
inline bool Is(std::string_view word, TrialStatus s) { return word == Name(s); }
inline bool Is(std::string_view word, StageType t) { return word == Name(t); }
inline bool Is(std::string_view word, TaskKind k) { return word == Name(k); }

// Every value of each enum, in declaration order (for tests and listings).
inline constexpr RunStatus kRunStatuses[] = {RunStatus::kPending,   RunStatus::kRunning,   RunStatus::kSucceeded,
                                             RunStatus::kFailed,    RunStatus::kCancelled, RunStatus::kInterrupted};
inline constexpr StageStatus kStageStatuses[] = {
    StageStatus::kPending, StageStatus::kRunning,  StageStatus::kSucceeded, StageStatus::kFailed,
    StageStatus::kCached,  StageStatus::kSkipped, StageStatus::kCancelled, StageStatus::kInterrupted};
inline constexpr TrialStatus kTrialStatuses[] = {
    TrialStatus::kPending, TrialStatus::kRunning, TrialStatus::kSucceeded, TrialStatus::kFailed,
    TrialStatus::kDiverged, TrialStatus::kPruned, TrialStatus::kSkipped,   TrialStatus::kCancelled};
inline constexpr StageType kStageTypes[] = {StageType::kPrepare, StageType::kTune, StageType::kAblate,
                                            StageType::kTrain, StageType::kCommand};
inline constexpr TaskKind kTaskKinds[] = {TaskKind::kPrepare, TaskKind::kTrain, TaskKind::kCommand};

}  // namespace baton
