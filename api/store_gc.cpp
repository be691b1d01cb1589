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

}  // namespace baton::api
