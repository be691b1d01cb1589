#pragma once

// A check of the whole store: every blob re-hashed, every recorded
// manifest parsed and its tensors checked against the store, every lineage
// reference resolved. Problems name the digest and what refers to it;
// nothing is repaired or deleted (`baton store fsck`).
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "store/blob_store.h"
#include "store/lineage_db.h"

namespace baton::maintenance {


enum class Damage { kCorrupt, kMissing, kOrphaned };

// "corrupt", "missing", "orphaned".
const char* DamageName(Damage d);

struct Problem {
  Damage damage = Damage::kCorrupt;
  std::string digest;
  uint64_t size = 0;      // bytes the store (or a manifest) says; 0 if unknown
  std::string message;    // why, in the store's or the manifest's words
  std::set<std::string> tensors;  // "checkpoint:<d> <tensor name>" uses
  // Corrupt or missing: what refers to it (at most 20), each described by
  // its run, stage, trial and epoch (DescribeReferrer words it).
  Json referenced_by = Json::array();
};

struct FsckReport {
  uint64_t blobs = 0;
  uint64_t bytes = 0;
  uint64_t checkpoints = 0;
  uint64_t artifacts = 0;
  uint64_t referenced = 0;
  uint64_t corrupt = 0;
  uint64_t missing = 0;
  uint64_t orphaned = 0;
  uint64_t orphaned_bytes = 0;
  std::vector<Problem> problems;  // corrupt and missing first, then orphans
};

// Called after each blob is hashed: blobs and bytes done, of all.
using FsckProgress = std::function<void(uint64_t blobs, uint64_t bytes, uint64_t all_blobs, uint64_t all_bytes)>;

// Checks the store. Damage is reported, not thrown; only what stops the
// check itself (the lineage DB cannot be read) throws.
FsckReport CheckStore(store::BlobStore& blobs, store::LineageDb& db, const FsckProgress& progress = {});
// The report as `baton store fsck --json` prints it.
Json FsckJson(const FsckReport& report);
// A referrer (an entry of Problem::referenced_by) in words: 'tensor "fc.weight"
// of checkpoint D (trial 3, epoch 2, stage tune, run R)'.
std::string DescribeReferrer(const Json& referrer);

}  // namespace baton::maintenance
