#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "api/internal/cli.h"
#include "api/internal/cli_run.h"
#include "api/internal/progress.h"
#include "api/internal/run_manager.h"
#include "api/internal/view_source.h"
#include "common/error.h"
#include "common/vocabulary.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"

namespace baton::api {

int CmdValidate(const std::string& file, bool json, const orchestrator::PipelineLimits& limits) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read pipeline file " + file);
  std::stringstream buf;
  buf << in.rdbuf();
  std::optional<orchestrator::Pipeline> p;
  std::vector<ErrorDetail> issues;
  try {
    p = orchestrator::LoadPipeline(ParseJson(buf.str(), file), limits);
  } catch (const Error& e) {
    if (e.details().empty()) issues.push_back({"", e.what()});  // not JSON
    else issues = e.details();
  }
  if (json) {
    Json out = {{"file", file}, {"valid", issues.empty()}, {"errors", Json::array()}};
    for (const auto& i : issues) out["errors"].push_back({{"pointer", i.pointer}, {"message", i.message}});
    if (p) {
      out["pipeline_id"] = p->id;
      out["stages"] = p->order;
    }
    std::printf("%s\n", out.dump(2).c_str());
  } else if (p) {
    std::string chain;
    for (const auto& s : p->order) chain += (chain.empty() ? "" : " -> ") + s;
    std::printf("%s: valid pipeline \"%s\" (%zu stages: %s)\n", file.c_str(), p->name.c_str(), p->order.size(),
                chain.c_str());
  } else {
    std::fprintf(stderr, "%s: %zu problem%s\n", file.c_str(), issues.size(), issues.size() == 1 ? "" : "s");
    for (const auto& i : issues) {
      std::fprintf(stderr, "  %s: %s\n", i.pointer.empty() ? "/" : i.pointer.c_str(), i.message.c_str());
    }
  }
  return issues.empty() ? kExitOk : kExitInvalid;
}

namespace {

// Executes a run to its end with `baton run`'s progress lines and result:
// shared by CmdRun and CmdResume. `verb` says what the first line says.
int ExecuteWithProgress(StoreHandle& store, orchestrator::Coordinator& coordinator, const RunOptions& options,
                        const char* verb) {
  const orchestrator::Pipeline& pipeline = coordinator.pipeline();
  const std::string run_id = coordinator.run_id();
  std::FILE* out = options.json ? stderr : stdout;
  const bool live = options.progress && isatty(fileno(out));
  if (!options.json) std::fprintf(out, "%s %s of pipeline %s (store %s)\n", verb, run_id.c_str(),
                                  pipeline.name.c_str(), store.dir.c_str());
  ProgressPrinter printer(out, live, pipeline.specs, pipeline.order);
  coordinator.AddObserver(&printer);

  executor::ExecuteRun(coordinator, Execution(store, coordinator, options.workers), [&] { printer.Tick(); });
  printer.Finish();

  const std::string status = coordinator.Status();
  if (options.json) {
    auto run = store.db->GetRun(run_id);
    Json result = {{"run_id", run_id}, {"status", status}, {"error", run->error}, {"stages", Json::array()}};
    for (const auto& s : store.db->GetStages(run_id)) {
      result["stages"].push_back({{"name", s.name}, {"status", s.status}, {"output", s.output},
                                  {"cache_key", s.cache_key}, {"cached_from", s.cached_from}});
    }
    std::printf("%s\n", result.dump(2).c_str());
  } else {
    std::fprintf(out, "\nrun %s %s\n", run_id.c_str(), status.c_str());
    CmdShow(*LocalViews(store), run_id, "", false);
  }
  // The store is full: exit with RESOURCE_EXHAUSTED's code and reason.
  if (const std::string reason = coordinator.InterruptReason(); !reason.empty()) {
    throw Error(ErrorCode::kResourceExhausted, reason);
  }
  return Is(status, RunStatus::kSucceeded) ? kExitOk : kExitRunFailed;
}

orchestrator::CoordinatorOptions CoordinatorOptionsFor(const RunOptions& options) {
  orchestrator::CoordinatorOptions out;
  out.lease = std::chrono::milliseconds(static_cast<int64_t>(options.lease_seconds * 1000));
  return out;
}

}  // namespace

int CmdRun(const std::string& store_dir, const RunOptions& options) {
  orchestrator::Pipeline pipeline = orchestrator::LoadPipelineFile(options.pipeline_file, options.limits);
  StoreHandle store = OpenStore(store_dir);
  const std::string run_id = orchestrator::CreateRun(*store.db, pipeline);
  orchestrator::Coordinator coordinator(*store.blobs, *store.db, pipeline, run_id, CoordinatorOptionsFor(options));
  return ExecuteWithProgress(store, coordinator, options, "run");
}

int CmdResume(const std::string& store_dir, const std::string& run_id, const RunOptions& options) {
  StoreHandle store = OpenStore(store_dir);
  auto coordinator = orchestrator::Coordinator::ForResume(*store.blobs, *store.db, run_id, CoordinatorOptionsFor(options));
  return ExecuteWithProgress(store, *coordinator, options, "resuming run");
}

void AddWorkerOptions(CLI::App* command, WorkerOptions* options) {
  command->add_option("--workers", options->workers,
                      "workers kept for a run (default: cores, at most what stages use; on Slurm what stages use)");
  command->add_option("--executor", options->executor,
                      "where workers run: local (processes here) or slurm (one sbatch job per worker); default: the "
                      "pipeline's \"executor\", else local")
      ->check(CLI::IsMember({"local", "slurm"}));
  command->add_option("--bind", options->access.bind,
                      "address the workers' endpoint listens on (default 127.0.0.1; Slurm nodes other than this "
                      "machine need one they can reach, e.g. 0.0.0.0)");
  command->add_option("--worker-port", options->access.port, "port of the workers' endpoint (default: any free one)")
      ->check(CLI::Range(0, 65535));
  command->add_option("--worker-url", options->access.url,
                      "URL the workers are given for that endpoint (default http://BIND:PORT, this host's name for "
                      "0.0.0.0)");
}

void AddRunCommands(CLI::App& app, const GlobalOptions& g, CliAction* action) {
  struct State {
    std::string file;
    bool json = false;
    RunOptions run;
    bool no_progress = false;
    std::string run_id;
  };
  auto st = std::make_shared<State>();

  auto* validate = app.add_subcommand("validate", "check a pipeline file and print every problem");
  validate->add_option("PIPELINE", st->file, "pipeline JSON file")->required();
  validate->add_flag("--json", st->json, "machine-readable output");
  validate->callback([&g, st, action] {
    *action = [&g, st] { return CmdValidate(st->file, st->json, g.limits); };
  });

  auto* run = app.add_subcommand("run", "run a pipeline");
  run->add_option("PIPELINE", st->run.pipeline_file, "pipeline JSON file")->required();
  auto* resume =
      app.add_subcommand("resume", "resume a run whose `baton run` was killed or ran out of disk, where it stopped");
  resume->add_option("RUN", st->run_id, "run id")->required();
  for (CLI::App* c : {run, resume}) {
    AddWorkerOptions(c, &st->run.workers);
    c->add_flag("--json", st->run.json, "print the result as JSON");
    c->add_flag("--no-progress", st->no_progress, "plain log lines even on a terminal");
    c->add_option("--lease-seconds", st->run.lease_seconds, kLeaseHelp)->check(CLI::Range(0.1, 86400.0));
  }
  run->callback([&g, st, action] {
    *action = [&g, st] {
      st->run.progress = !st->no_progress;
      st->run.limits = g.limits;
      return g.remote.url.empty() ? CmdRun(g.store_dir, st->run) : RemoteRun(g.remote, st->run);
    };
  });
  resume->callback([&g, st, action] {
    *action = [&g, st] {
      st->run.progress = !st->no_progress;
      return g.remote.url.empty() ? CmdResume(g.store_dir, st->run_id, st->run)
                                  : RemoteResume(g.remote, st->run_id, st->run);
    };
  });
}

}  // namespace baton::api
