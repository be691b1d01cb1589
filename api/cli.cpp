#include "api/internal/cli.h"

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
  // Global options (--store, --server, --token, --max-model-bytes) also
  // after the subcommand: `baton run P --store DIR` as most CLIs allow.
  // Subcommands made below inherit this.
  app.fallthrough();
  GlobalOptions g;
  if (const char* env = std::getenv("BATON_STORE"); env != nullptr && *env) g.store_dir = env;
  if (g.store_dir.empty()) g.store_dir = "./baton-store";
  app.add_option("--store", g.store_dir, "store folder (default $BATON_STORE or ./baton-store)");
  if (const char* env = std::getenv("BATON_TOKEN"); env != nullptr) g.remote.token = env;
  app.add_option("--server", g.remote.url, "act through a `baton serve` at this URL (run, resume, runs, show, logs, lineage)");
  app.add_option("--token", g.remote.token, "the server's API token (default $BATON_TOKEN)");
  app.add_option("--max-model-bytes", g.limits.max_model_bytes,
                 "refuse a model that needs more memory than this at least (parameters with their gradients and "
                 "one batch's layer outputs; e.g. 8GiB; default: half this machine's memory) in validate, run and "
                 "the pipelines serve is sent")
      ->transform(CLI::AsSizeValue(false));

  // Each command's options live with the command.
  CliAction action;
  AddRunCommands(app, g, &action);    // validate, run, resume (cli_run.cpp)
  AddViewCommands(app, g, &action);   // runs, show, lineage (cli_show.cpp)
  AddStoreCommands(app, g, &action);  // store du|gc|fsck, pin, unpin (store_gc.cpp)
  AddServeCommand(app, g, &action);   // serve (cli_serve.cpp)

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? kExitOk : kExitInvalid;
  }

  try {
    return action ? action() : kExitOk;
  } catch (const Error& e) {
    std::fprintf(stderr, "baton: %s\n", e.what());
    return ExitCodeFor(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "baton: internal error: %s\n", e.what());
    return kExitInternal;
  }
}

void RefuseServer(const GlobalOptions& g, const std::string& command) {
  if (g.remote.url.empty()) return;
  throw Error(ErrorCode::kInvalidArgument,
              "--server works with run, resume, runs, show, logs and lineage, not " + command + " (it needs the store)");
}

}  // namespace baton::api
