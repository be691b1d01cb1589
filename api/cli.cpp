#include "api/internal/cli.h"
#include "api/internal/view_source.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>

#include "common/error.h"
#include "store/guarded_blob_store.h"

namespace baton::api {
namespace {

int ExitCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return kExitInvalid;
    case ErrorCode::kNotFound: return kExitNotFound;
    case ErrorCode::kConflict: return kExitUnavailable;
    case ErrorCode::kUnavailable: return kExitUnavailable;
    case ErrorCode::kCorrupt: return kExitCorrupt;
    case ErrorCode::kInternal: return kExitInternal;
    case ErrorCode::kUnauthenticated: return kExitInvalid;
    case ErrorCode::kPermissionDenied: return kExitInvalid;
    case ErrorCode::kResourceExhausted: return kExitResourceExhausted;
    case ErrorCode::kAborted: return kExitUnavailable;
  }
  return kExitInternal;
}

// A store holds a user's lineage, data and weights: its folder is the
// owner's alone (0700), on a shared machine too. A folder that is not ours
// to change (a store shared on purpose) is left as it is.
void OwnerOnly(const std::string& dir) {
  std::error_code ignored;
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace,
                               ignored);
}

}  // namespace

StoreHandle OpenStore(const std::string& dir) {
  StoreHandle h;
  h.dir = dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::kUnavailable, "cannot create store folder " + dir + ": " + ec.message());
  OwnerOnly(dir);  // before anything is written in it
  // Guarded, so that a gc in this process (baton serve) may run while runs write.
  h.blobs = std::make_unique<store::GuardedBlobStore>(store::BlobStore::Open(std::filesystem::path(dir) / "blobs"));
  h.db = store::LineageDb::Open(std::filesystem::path(dir) / "lineage.db");
  // The files and folders just made (and those of a store made before
  // stores were private): 0600 and 0700. What RocksDB and SQLite create
  // later sits in folders only the owner may enter. Not the API token: one
  // that others could read may have been read, and `baton serve` refuses it
  // until its owner decides (chmod 600, or a new token).
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().filename() == "api-token") continue;
    std::error_code ignored;
    const bool folder = entry.is_directory(ignored);
    if (folder || entry.is_regular_file(ignored)) {
      std::filesystem::permissions(entry.path(),
                                   folder ? std::filesystem::perms::owner_all
                                          : std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
                                   std::filesystem::perm_options::replace, ignored);
    }
  }
  return h;
}

int RunCli(int argc, char** argv) {
  CLI::App app{"Baton: pipelines of data preparation, tuning and training, with every checkpoint kept"};
  app.require_subcommand(1);
  // Global options (--store, --server, --token) also after the subcommand:
  // `baton run P --store DIR` as most CLIs allow. Subcommands made below
  // inherit this.
  app.fallthrough();
  std::string store_dir;
  if (const char* env = std::getenv("BATON_STORE"); env != nullptr && *env) store_dir = env;
  if (store_dir.empty()) store_dir = "./baton-store";
  app.add_option("--store", store_dir, "store folder (default $BATON_STORE or ./baton-store)");
  bool json = false;
  RemoteOptions remote;
  if (const char* env = std::getenv("BATON_TOKEN"); env != nullptr) remote.token = env;
  app.add_option("--server", remote.url, "act through a `baton serve` at this URL (run, resume, runs, show, lineage)");
  app.add_option("--token", remote.token, "the server's API token (default $BATON_TOKEN)");
  orchestrator::PipelineLimits limits;
  app.add_option("--max-model-bytes", limits.max_model_bytes,
                 "refuse a model that needs more memory than this at least (parameters with their gradients and "
                 "one batch's layer outputs; e.g. 8GiB; default: half this machine's memory) in validate, run and "
                 "the pipelines serve is sent")
      ->transform(CLI::AsSizeValue(false));

  auto* validate = app.add_subcommand("validate", "check a pipeline file and print every problem");
  std::string file;
  validate->add_option("PIPELINE", file, "pipeline JSON file")->required();
  validate->add_flag("--json", json, "machine-readable output");

  auto* run = app.add_subcommand("run", "run a pipeline");
  RunOptions run_options;
  run->add_option("PIPELINE", run_options.pipeline_file, "pipeline JSON file")->required();
  run->add_option("--workers", run_options.workers, "worker processes (default: cores, at most what stages use)");
  run->add_flag("--json", run_options.json, "print the result as JSON");
  bool no_progress = false;
  run->add_flag("--no-progress", no_progress, "plain log lines even on a terminal");
  const char* lease_help = "seconds a worker may stay silent about its task before it is retried elsewhere and the "
                           "worker killed (default 30)";
  run->add_option("--lease-seconds", run_options.lease_seconds, lease_help)->check(CLI::Range(0.1, 86400.0));

  auto* resume = app.add_subcommand("resume", "resume a run whose `baton run` was killed or ran out of disk, where it stopped");
  std::string resume_run;
  resume->add_option("RUN", resume_run, "run id")->required();
  resume->add_option("--workers", run_options.workers, "worker processes (default: cores, at most what stages use)");
  resume->add_flag("--json", run_options.json, "print the result as JSON");
  resume->add_flag("--no-progress", no_progress, "plain log lines even on a terminal");
  resume->add_option("--lease-seconds", run_options.lease_seconds, lease_help)->check(CLI::Range(0.1, 86400.0));

  auto* runs = app.add_subcommand("runs", "list runs, newest first");
  runs->add_flag("--json", json, "machine-readable output");
  bool quiet = false;
  runs->add_flag("-q,--quiet", quiet, "only run ids");

  auto* show = app.add_subcommand("show", "show a run, or one of its stages");
  std::string run_id, stage;
  show->add_option("RUN", run_id, "run id")->required();
  show->add_option("--stage", stage, "stage name: its trials or training epochs");
  show->add_flag("--json", json, "machine-readable output");

  auto* lineage = app.add_subcommand("lineage", "what a model, checkpoint, trial or run came from");
  std::string node;
  bool downstream = false;
  int depth = 64;
  lineage->add_option("ID", node, "run id, checkpoint or artifact digest, trial:N, stage:N")->required();
  lineage->add_flag("--downstream", downstream, "what was made from it instead");
  lineage->add_option("--depth", depth, "hops to follow (default 64)");
  lineage->add_flag("--json", json, "machine-readable output");

  auto* store_cmd = app.add_subcommand("store", "inspect the store");
  store_cmd->require_subcommand(1);
  auto* du = store_cmd->add_subcommand("du", "disk use per run and stage, with bytes shared");
  du->add_flag("--json", json, "machine-readable output");
  auto* gc = store_cmd->add_subcommand(
      "gc",
      "release the checkpoints that retention does not keep and free the blobs nothing kept refers to (dry run "
      "first). Kept: per trial of a stage with \"checkpoints\": {\"keep\": {\"best_k\": K, \"last_k\": L}} its K "
      "best and L last epochs (no keep: every epoch), every checkpoint of unfinished and pinned runs, every epoch a "
      "pending init_from may still select, and whatever a stage resolved or was initialised from");
  bool apply = false;
  gc->add_flag("--apply", apply, "release and delete them, and report the bytes freed (default: only report)");
  gc->add_flag("--json", json, "machine-readable output");
  auto* fsck = store_cmd->add_subcommand("fsck", "re-hash every blob, check manifests and references (exit 5 if corrupt or missing)");
  fsck->add_flag("--json", json, "machine-readable output");

  std::string pin_run;
  auto* pin = app.add_subcommand("pin", "keep every checkpoint of a run through store gc, whatever checkpoints.keep says");
  pin->add_option("RUN", pin_run, "run id")->required();
  pin->add_flag("--json", json, "machine-readable output");
  auto* unpin = app.add_subcommand("unpin", "let store gc apply the retention policy to a pinned run again");
  unpin->add_option("RUN", pin_run, "run id")->required();
  unpin->add_flag("--json", json, "machine-readable output");

  auto* serve = app.add_subcommand("serve", "serve the REST API (/api/v1), the web UI and runs triggered over HTTP");
  ServeOptions serve_options;
  serve->add_option("--host", serve_options.host, "address to listen on (default 127.0.0.1)");
  serve->add_option("--port", serve_options.port, "port (default 8080; 0 = any free one)");
  serve->add_flag("--public-read", serve_options.public_read, "let reads through without the token");
  serve->add_option("--max-runs", serve_options.max_runs, "runs executing at once (default 2)")->check(CLI::PositiveNumber);
  serve->add_option("--workers", serve_options.workers, "worker processes per run (default: as baton run)");
  serve->add_option("--lease-seconds", serve_options.lease_seconds, lease_help)->check(CLI::Range(0.1, 86400.0));
  serve->add_option("--web-dir", serve_options.web_dir,
                    "serve the web UI from this folder (e.g. node web/build.mjs DIR --dev) instead of the files built "
                    "into baton; for working on the UI");
  serve->add_option("--data-root", serve_options.data_roots,
                    "folder that pipelines sent over HTTP may read data from; repeatable (default: the store and "
                    "/usr/share/datasets)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitInvalid;
  }

  try {
    run_options.limits = limits;
    serve_options.limits = limits;
    if (*validate) return CmdValidate(file, json, limits);
    if (!remote.url.empty()) {
      run_options.progress = !no_progress;
      if (*run) return RemoteRun(remote, run_options);
      if (*resume) return RemoteResume(remote, resume_run, run_options);
      if (*runs || *show || *lineage) {
        auto views = RemoteViews(remote);
        if (*runs) return CmdRuns(*views, json, quiet);
        if (*show) return CmdShow(*views, run_id, stage, json);
        return CmdLineage(*views, node, downstream, depth, json);
      }
      throw Error(ErrorCode::kInvalidArgument, "--server works with run, resume, runs, show and lineage");
    }
    if (*run) {
      run_options.progress = !no_progress;
      return CmdRun(store_dir, run_options);
    }
    if (*resume) {
      run_options.progress = !no_progress;
      return CmdResume(store_dir, resume_run, run_options);
    }
    if (*serve) return CmdServe(store_dir, serve_options);
    StoreHandle store = OpenStore(store_dir);
    if (*runs || *show || *lineage) {
      auto views = LocalViews(store);
      if (*runs) return CmdRuns(*views, json, quiet);
      if (*show) return CmdShow(*views, run_id, stage, json);
      return CmdLineage(*views, node, downstream, depth, json);
    }
    if (*du) return CmdStoreDu(store, json);
    if (*gc) return CmdStoreGc(store, apply, json);
    if (*pin || *unpin) return CmdPin(store, pin_run, /*pin=*/pin->parsed(), json);
    if (*fsck) return CmdStoreFsck(store, json);
  } catch (const Error& e) {
    std::fprintf(stderr, "baton: %s\n", e.what());
    return ExitCodeFor(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "baton: internal error: %s\n", e.what());
    return kExitInternal;
  }
  return kExitOk;
}

}  // namespace baton::api
