// Garbage collection of the blob store: blobs that nothing in the lineage
// refers to (uploads whose epoch report never came, runs cancelled or killed
// mid-upload). Retention of recorded checkpoints is not decided here.
#include <cstdio>
#include <unordered_set>

#include "api/cli.h"
#include "common/error.h"

namespace baton::api {

GcReport CollectGarbage(StoreHandle& store, bool apply) {
  const std::vector<std::string> referenced = store.db->ReferencedBlobs();
  const std::unordered_set<std::string> keep(referenced.begin(), referenced.end());
  GcReport report;
  report.applied = apply;
  std::vector<std::pair<std::string, uint64_t>> garbage;
  store.blobs->ForEach([&](const std::string& digest, uint64_t size) {
    ++report.scanned;
    if (!keep.count(digest)) garbage.emplace_back(digest, size);
  });
  for (const auto& [digest, size] : garbage) {
    if (apply) store.blobs->Delete(digest);
    report.unreferenced.push_back(digest);
    report.bytes += size;
  }
  return report;
}

Json GcJson(const GcReport& r) {
  Json out = {{"applied", r.applied}, {"blobs_scanned", r.scanned}, {"unreferenced_blobs", r.unreferenced.size()},
              {"bytes", r.bytes}, {"blobs", Json::array()}};
  for (size_t i = 0; i < r.unreferenced.size() && i < 1000; ++i) out["blobs"].push_back(r.unreferenced[i]);
  return out;
}

int CmdStoreGc(StoreHandle& store, bool apply, bool json) {
  const GcReport r = CollectGarbage(store, apply);
  if (json) {
    std::printf("%s\n", GcJson(r).dump(2).c_str());
    return kExitOk;
  }
  std::printf("%zu of %llu blobs are referenced by no run, checkpoint or artifact: %s\n", r.unreferenced.size(),
              static_cast<unsigned long long>(r.scanned), HumanBytes(r.bytes).c_str());
  std::printf(apply ? "deleted them\n" : "dry run: nothing deleted (baton store gc --apply deletes them)\n");
  return kExitOk;
}

}  // namespace baton::api
