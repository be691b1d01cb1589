#pragma once

// A fault-injection hook for crash tests (tests/e2e/crash_points_test.cpp):
// the orchestrator calls CrashPoint("name") at the moments where a crash is
// most likely to lose or duplicate work, and the process ends there with
// SIGKILL when the environment names that point. Not a feature for users.
//
// BATON_CRASH_AT=NAME kills the process at the first hit of point NAME;
// BATON_CRASH_AT=NAME:N at its N-th hit (N >= 1, counted per process). Before
// dying it writes "baton: BATON_CRASH_AT: killed at NAME (hit N)" to stderr.
// The variable is read once, at the first call; a malformed value ends the
// process with exit status 2 and a message. Unset (the normal case), a call
// costs a load and a compare. Safe to call from any thread.
//
// The points (where; what the lineage DB holds when the process dies):
//   trial.started       Coordinator::NextTask: a task marked running, not yet
//                       handed to its worker.
//   initial.recorded    Coordinator::ReportInitial: a trial's initial
//                       checkpoint (and initialized_from edge) committed, the
//                       worker not yet answered.
//   epoch.unrecorded    Coordinator::ReportEpoch: the epoch's checkpoint and
//                       tensor blobs are in the blob store, its epoch row not
//                       yet committed.
//   epoch.recorded      Coordinator::ReportEpoch: the epoch row committed, the
//                       worker not yet answered (continue / stop).
//   trial.finished      Coordinator::FinishTask: a trial's end committed, its
//                       worker not yet answered.
//   stage.finished      Coordinator::MaybeFinishStage: a stage's end committed,
//                       the stages after it not yet started.
//   init_from.resolved  a train or ablate stage's init_from selected, inside
//                       the stage's start transaction: nothing of it committed.
//   stage.started       Coordinator::StartStage: a stage's tasks committed,
//                       none handed out yet.
//   resume.loaded       Coordinator::ForResume: an interrupted run's state
//                       rebuilt and committed, the run not yet started again.

namespace baton {

void CrashPoint(const char* name);

}  // namespace baton
