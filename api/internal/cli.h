#pragma once

#include <memory>
#include <string>

#include "orchestrator/pipeline_spec.h"
#include "store/guarded_blob_store.h"
#include "store/lineage_db.h"

namespace baton::api {

// Runs the `baton` command line; returns the process exit code.
int RunCli(int argc, char** argv);

// Exit codes, decided in one place (ExitCodeFor in cli.cpp).
enum ExitCode {
  kExitOk = 0,
  kExitRunFailed = 1,     // the command worked; the run it reports failed
  kExitInvalid = 2,       // bad input: pipeline, arguments
  kExitNotFound = 3,
  kExitUnavailable = 4,   // store locked / busy, conflict
  kExitCorrupt = 5,
  kExitResourceExhausted = 6,  // the store's disk is full: free space, then `baton resume RUN`
  kExitInternal = 70,
};

// A store folder opened for one command: blobs/ (RocksDB), lineage.db (SQLite).
struct StoreHandle {
  std::string dir;
  std::unique_ptr<store::GuardedBlobStore> blobs;  // gc may run beside writers
  std::unique_ptr<store::LineageDb> db;
};
StoreHandle OpenStore(const std::string& dir);
// 1.69 MiB, 12.0 KiB, 512 B.
std::string HumanBytes(uint64_t n);

// Commands (cli_run.cpp, cli_show.cpp). Each returns an exit code and throws
// baton::Error for failures the caller turns into messages and exit codes.
struct RunOptions {
  std::string pipeline_file;
  int workers = 0;         // 0 = min(number of cores, largest max_parallel)
  bool json = false;
  bool progress = true;    // live lines on a terminal
  // Seconds a worker may stay silent about its task before the attempt is
  // failed, retried and the worker killed (CoordinatorOptions::lease).
  // Default: 30.
  double lease_seconds = 30;
  orchestrator::PipelineLimits limits;  // --max-model-bytes
};
int CmdValidate(const std::string& file, bool json, const orchestrator::PipelineLimits& limits);
int CmdRun(const std::string& store_dir, const RunOptions& options);
// Resumes a run whose process ended before it did (Coordinator::ForResume),
// with options.workers, json and progress as CmdRun; pipeline_file unused.
int CmdResume(const std::string& store_dir, const std::string& run_id, const RunOptions& options);
// runs, show and lineage read a store or a server: view_source.h.
int CmdStoreDu(StoreHandle& store, bool json);

// `baton store gc` (store_gc.cpp, over maintenance/gc.h).
int CmdStoreGc(StoreHandle& store, bool apply, bool json);
// Pins or unpins a run: gc keeps every checkpoint of a pinned run.
int CmdPin(StoreHandle& store, const std::string& run_id, bool pin, bool json);
// Re-hashes every blob, parses every recorded manifest and resolves every
// lineage reference (store_fsck.cpp); prints each corrupt, missing or
// orphaned blob with what refers to it. Returns kExitCorrupt if a blob is
// corrupt or missing; orphans alone are not damage (kExitOk).
int CmdStoreFsck(StoreHandle& store, bool json);

struct ServeOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 8080;                  // 0 = any free port
  bool public_read = false;         // reads without the token
  int max_runs = 2;                 // runs executing at once
  int workers = 0;                  // worker processes per run (0 = as `baton run`)
  int threads = 16;                 // request threads (each event stream holds one)
  size_t max_body_bytes = 16u << 20;  // largest request body (413 above)
  std::string web_dir;              // a folder to serve the web UI from; "" = the files built into baton
  std::vector<std::string> data_roots;  // empty: the store and /usr/share/datasets
  double lease_seconds = 30;        // as RunOptions::lease_seconds, for every run it executes
  orchestrator::PipelineLimits limits;  // of the pipelines sent over HTTP (--max-model-bytes)
};
int CmdServe(const std::string& store_dir, const ServeOptions& options);
// run and resume through a `baton serve` (cli_remote.cpp).
struct RemoteOptions {
  std::string url;    // http://host:port
  std::string token;  // --token or $BATON_TOKEN
};
int RemoteRun(const RemoteOptions& remote, const RunOptions& options);
// POST /runs/{id}:resume, then follows the run as RemoteRun does.
int RemoteResume(const RemoteOptions& remote, const std::string& run_id, const RunOptions& options);
// <store>/api-token, created with mode 0600 on first use (*created).
std::string LoadOrCreateApiToken(const std::string& store_dir, bool* created);

}  // namespace baton::api
