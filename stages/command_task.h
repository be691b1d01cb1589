#pragma once

// A command stage's task (docs/worker-protocol.md, kind "command"), run by
// baton-worker without LibTorch: the command as a child process in the
// run's working directory, its outputs stored, its stdout and stderr kept.
#include <cstdint>
#include <functional>
#include <string>

#include "common/json_util.h"
#include "stages/coordinator_client.h"

namespace baton::stages {

struct CommandTaskOptions {
  // Where progress lines go. Default: nowhere.
  std::function<void(const std::string&)> log;
  // Called about every 100 ms while the command runs; throws to end the
  // attempt (a lost lease): the command's process group is killed and the
  // exception goes on. Default: never throws.
  std::function<void()> check_lost;
  // How many of stderr's last lines a failure's reason quotes. Default: 20
  // (and at most 4000 bytes).
  int stderr_lines = 20;
  // After a timeout's SIGTERM, how long the process group has before SIGKILL.
  // Default: 2 s.
  double kill_grace_seconds = 2.0;
};

// Runs task `task` (id `id`): writes its checkpoint dependencies as
// safetensors files, runs "cmd" in "workdir" in a process group of its own
// with "env" added to this process's environment, BATON_PARAMS naming a JSON
// file of "params" and BATON_STAGE the stage's name; kills the group after
// "timeout_seconds" (0: never). Then uploads its stdout and stderr as blobs
// and, when it exited with status 0, its "outs" as one "files" manifest
// (layout "folder", paths relative to the working directory), and reports
// :complete with that manifest or :fail with the exit status and the end of
// stderr; both carry "logs": {"stdout", "stderr"}. Throws what `client`
// throws, and Error for a task it cannot start (reported by the caller).
void RunCommandTask(CoordinatorClient& client, int64_t id, const Json& task, const CommandTaskOptions& options = {});

// The last `lines` lines of `text` (at most `max_bytes` bytes of them),
// without a final line end.
std::string TailLines(const std::string& text, int lines, size_t max_bytes);

}  // namespace baton::stages
