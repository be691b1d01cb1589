#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

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

// A `baton serve` to act through (--server, --token).
struct RemoteOptions {
  std::string url;    // http://host:port
  std::string token;  // --token or $BATON_TOKEN
};

// The options every command may read, parsed before it runs.
struct GlobalOptions {
  std::string store_dir;                // --store, $BATON_STORE, ./baton-store
  RemoteOptions remote;                 // empty url: the store itself
  orchestrator::PipelineLimits limits;  // --max-model-bytes
};
// Throws Error(kInvalidArgument) when --server was given to `command`,
// which needs the store itself.
void RefuseServer(const GlobalOptions& g, const std::string& command);

// What a parsed command does: its exit code, or a baton::Error RunCli turns
// into a message and an exit code.
using CliAction = std::function<int()>;
// Each file registers its commands and their options with `app`, and sets
// *action when one of them is the one given; the global options are read
// when the action runs.
void AddRunCommands(CLI::App& app, const GlobalOptions& g, CliAction* action);    // cli_run.cpp
void AddViewCommands(CLI::App& app, const GlobalOptions& g, CliAction* action);   // cli_show.cpp
void AddStoreCommands(CLI::App& app, const GlobalOptions& g, CliAction* action);  // store_gc.cpp
void AddServeCommand(CLI::App& app, const GlobalOptions& g, CliAction* action);   // cli_serve.cpp

// What --lease-seconds means, for run, resume and serve.
inline constexpr const char* kLeaseHelp =
    "seconds a worker may stay silent about its task before it is retried elsewhere and the worker killed "
    "(default 30)";

// The store commands (cli_lineage.cpp, store_gc.cpp, store_fsck.cpp).
int CmdStoreDu(StoreHandle& store, bool json);
// `baton store gc` (over maintenance/gc.h).
int CmdStoreGc(StoreHandle& store, bool apply, bool json);
// Pins or unpins a run: gc keeps every checkpoint of a pinned run.
int CmdPin(StoreHandle& store, const std::string& run_id, bool pin, bool json);
// Re-hashes every blob, parses every recorded manifest and resolves every
// lineage reference (maintenance/fsck.h); prints each corrupt, missing or
// orphaned blob with what refers to it. Returns kExitCorrupt if a blob is
// corrupt or missing; orphans alone are not damage (kExitOk).
int CmdStoreFsck(StoreHandle& store, bool json);

}  // namespace baton::api
