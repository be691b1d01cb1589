// `baton store gc`, `baton pin` / `unpin`: the CLI's face of
// maintenance/gc.h.
#include <cstdio>

#include "api/internal/cli.h"
#include "common/error.h"
#include "maintenance/gc.h"

namespace baton::api {

int CmdStoreGc(StoreHandle& store, bool apply, bool json) {
  const maintenance::GcReport r = maintenance::CollectGarbage(*store.blobs, *store.db, apply);
  if (json) {
    std::printf("%s\n", maintenance::GcJson(r).dump(2).c_str());
    return kExitOk;
  }
  std::printf("retention %s %llu checkpoints and keeps %llu\n", apply ? "released" : "would release",
              static_cast<unsigned long long>(r.released_checkpoints),
              static_cast<unsigned long long>(r.kept_checkpoints));
  for (const auto& s : r.released) {
    std::printf("  run %s, stage %s: %llu checkpoints\n", s.run_id.c_str(), s.stage.c_str(),
                static_cast<unsigned long long>(s.checkpoints));
  }
  std::printf("%zu of %llu blobs are referenced by no kept run, checkpoint or artifact: %s\n", r.unreferenced.size(),
              static_cast<unsigned long long>(r.scanned), HumanBytes(r.bytes).c_str());
  if (r.spared > 0) {
    std::printf("%llu more (%s) were just used by a writer; a later gc frees them\n",
                static_cast<unsigned long long>(r.spared), HumanBytes(r.spared_bytes).c_str());
  }
  if (apply) {
    std::printf("deleted them: %s freed\n", HumanBytes(r.bytes).c_str());
  } else {
    std::printf("dry run: nothing released or deleted (baton store gc --apply does it)\n");
  }
  return kExitOk;
}

int CmdPin(StoreHandle& store, const std::string& run_id, bool pin, bool json) {
  pin ? store.db->PinRun(run_id) : store.db->UnpinRun(run_id);
  if (json) {
    std::printf("%s\n", Json{{"run_id", run_id}, {"pinned", pin}}.dump(2).c_str());
  } else {
    std::printf(pin ? "run %s pinned: store gc keeps every checkpoint of it\n"
                    : "run %s unpinned: store gc applies its stages' checkpoints.keep again\n",
                run_id.c_str());
  }
  return kExitOk;
}

void AddStoreCommands(CLI::App& app, const GlobalOptions& g, CliAction* action) {
  struct State {
    bool json = false;
    bool apply = false;
    std::string run_id;
  };
  auto st = std::make_shared<State>();
  // Each opens the store itself: --server does not reach it.
  auto on_store = [&g](const std::string& name, const std::function<int(StoreHandle&)>& command) {
    RefuseServer(g, name);
    StoreHandle store = OpenStore(g.store_dir);
    return command(store);
  };

  auto* store_cmd = app.add_subcommand("store", "inspect the store");
  store_cmd->require_subcommand(1);
  auto* du = store_cmd->add_subcommand("du", "disk use per run and stage, with bytes shared");
  du->add_flag("--json", st->json, "machine-readable output");
  du->callback([st, action, on_store] {
    *action = [st, on_store] { return on_store("store du", [&](StoreHandle& s) { return CmdStoreDu(s, st->json); }); };
  });
  auto* gc = store_cmd->add_subcommand(
      "gc",
      "release the checkpoints that retention does not keep and free the blobs nothing kept refers to (dry run "
      "first). Kept: per trial of a stage with \"checkpoints\": {\"keep\": {\"best_k\": K, \"last_k\": L}} its K "
      "best and L last epochs (no keep: every epoch), every checkpoint of unfinished and pinned runs, every epoch a "
      "pending init_from may still select, and whatever a stage resolved or was initialised from");
  gc->add_flag("--apply", st->apply, "release and delete them, and report the bytes freed (default: only report)");
  gc->add_flag("--json", st->json, "machine-readable output");
  gc->callback([st, action, on_store] {
    *action = [st, on_store] {
      return on_store("store gc", [&](StoreHandle& s) { return CmdStoreGc(s, st->apply, st->json); });
    };
  });
  auto* fsck = store_cmd->add_subcommand(
      "fsck", "re-hash every blob, check manifests and references (exit 5 if corrupt or missing)");
  fsck->add_flag("--json", st->json, "machine-readable output");
  fsck->callback([st, action, on_store] {
    *action = [st, on_store] {
      return on_store("store fsck", [&](StoreHandle& s) { return CmdStoreFsck(s, st->json); });
    };
  });

  auto* pin =
      app.add_subcommand("pin", "keep every checkpoint of a run through store gc, whatever checkpoints.keep says");
  auto* unpin = app.add_subcommand("unpin", "let store gc apply the retention policy to a pinned run again");
  for (const bool pinning : {true, false}) {
    CLI::App* c = pinning ? pin : unpin;
    c->add_option("RUN", st->run_id, "run id")->required();
    c->add_flag("--json", st->json, "machine-readable output");
    c->callback([st, action, on_store, pinning] {
      *action = [st, on_store, pinning] {
        return on_store(pinning ? "pin" : "unpin",
                        [&](StoreHandle& s) { return CmdPin(s, st->run_id, pinning, st->json); });
      };
    });
  }
}

}  // namespace baton::api
