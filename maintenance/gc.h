#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "store/guarded_blob_store.h"
#include "store/lineage_db.h"

namespace baton::maintenance {

// Retention and garbage collection: the checkpoints the
// retention policy releases (orchestrator/retention.h), then the blobs that
// no kept run, checkpoint or artifact refers to. A dry run changes nothing;
// `apply` marks the checkpoints released (their lineage rows stay) and
// deletes the blobs, except those a writer in this process may still rely
// on (store/guarded_blob_store.h), which a later gc frees.
struct GcReport {
  bool applied = false;
  uint64_t scanned = 0;                    // blobs in the store
  std::vector<std::string> unreferenced;   // blobs freed (dry run: to free)
  uint64_t bytes = 0;                      // their bytes
  uint64_t spared = 0;                     // unreferenced blobs left for a later gc
  uint64_t spared_bytes = 0;
  struct StageRelease {
    std::string run_id;
    std::string stage;
    uint64_t checkpoints = 0;
  };
  std::vector<StageRelease> released;      // per run and stage
  uint64_t released_checkpoints = 0;
  uint64_t kept_checkpoints = 0;
};
GcReport CollectGarbage(store::GuardedBlobStore& blobs, store::LineageDb& db, bool apply);
Json GcJson(const GcReport& report);
// What gc would do to the given checkpoints, without changing anything
// (GET /api/v1/store/retention): {"checkpoints": {digest: {"state":
// "kept" | "would_release" | "released" | "not_recorded", "reasons": [why
// it stays: orchestrator::KeptBecauseName], "bytes", "frees_bytes" (would
// release: its blobs that no staying checkpoint holds), "released_at"}},
// "would_release", "kept"} (the counts over the whole store).
Json RetentionJson(store::LineageDb& db, const std::vector<std::string>& digests);

}  // namespace baton::maintenance
