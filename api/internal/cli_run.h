#pragma once

// `baton run` and `resume`, on the store (cli_run.cpp) or through a server
// (cli_remote.cpp).
#include <string>

#include "api/internal/cli.h"
#include "api/internal/run_manager.h"
#include "orchestrator/pipeline_spec.h"

namespace baton::api {

struct RunOptions {
  std::string pipeline_file;
  WorkerOptions workers;   // where the workers run (--workers, --executor, --bind, ...)
  bool json = false;
  bool progress = true;    // live lines on a terminal
  // Seconds a worker may stay silent about its task before the attempt is
  // failed, retried and the worker killed (CoordinatorOptions::lease).
  // Default: 30.
  double lease_seconds = 30;
  orchestrator::PipelineLimits limits;  // --max-model-bytes
};
// --workers, --executor, --bind, --worker-port and --worker-url, shared by
// run, resume and serve.
void AddWorkerOptions(CLI::App* command, WorkerOptions* options);
int CmdValidate(const std::string& file, bool json, const orchestrator::PipelineLimits& limits);
int CmdRun(const std::string& store_dir, const RunOptions& options);
// Resumes a run whose process ended before it did (Coordinator::ForResume),
// with options.workers, json and progress as CmdRun; pipeline_file unused.
int CmdResume(const std::string& store_dir, const std::string& run_id, const RunOptions& options);
// The same through a `baton serve`: POST /runs (or /runs/{id}:resume),
// then the run followed to its end as `baton run` shows it.
int RemoteRun(const RemoteOptions& remote, const RunOptions& options);
int RemoteResume(const RemoteOptions& remote, const std::string& run_id, const RunOptions& options);

}  // namespace baton::api
