// Retention and garbage collection of the store: the checkpoints the
// retention policy releases (orchestrator/retention.h), then every blob no
// kept checkpoint, artifact, run or stage refers to (released checkpoints,
// uploads whose epoch report never came, runs cancelled or killed
// mid-upload); `baton pin` / `unpin`.
#include <algorithm>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "api/internal/cli.h"
#include "common/error.h"
#include "orchestrator/retention.h"

namespace baton::api {
namespace {

// Thrown to roll a dry run's release marks back.
struct DryRun {};

}  // namespace

GcReport CollectGarbage(StoreHandle& store, bool apply) {
  GcReport report;
  report.applied = apply;
  std::vector<std::pair<std::string, uint64_t>> garbage;
  // One transaction decides on one view of the lineage: a stage that
  // resolves its init_from does so wholly before (its choice is kept) or
  // after (it sees the release). The marks are committed before any blob
  // goes, so a crash in between leaves blobs nothing refers to, never a
  // kept checkpoint without its blobs.
  auto decide = [&] {
    const orchestrator::RetentionPlan plan = orchestrator::PlanRetention(*store.db);
    std::vector<std::string> digests;
    std::map<std::pair<std::string, std::string>, uint64_t> per_stage;
    for (const auto& c : plan.release) {
      digests.push_back(c.digest);
      ++per_stage[{c.run_id, c.stage}];
    }
    for (const auto& [key, n] : per_stage) report.released.push_back({key.first, key.second, n});
    report.released_checkpoints = digests.size();
    report.kept_checkpoints = plan.kept;
    store.db->ReleaseCheckpoints(digests);
    const std::vector<std::string> referenced = store.db->ReferencedBlobs();
    const std::unordered_set<std::string> keep(referenced.begin(), referenced.end());
    store.blobs->ForEach([&](const std::string& digest, uint64_t size) {
      ++report.scanned;
      if (!keep.count(digest)) garbage.emplace_back(digest, size);
    });
  };
  if (apply) {
    store.db->InTransaction(decide);
  } else {
    try {
      store.db->InTransaction([&] {
        decide();
        throw DryRun{};
      });
    } catch (const DryRun&) {
    }
  }
  for (const auto& [digest, size] : garbage) {
    if (!apply || store.blobs->DeleteUnlessRecent(digest)) {
      report.unreferenced.push_back(digest);
      report.bytes += size;
    } else {
      ++report.spared;
      report.spared_bytes += size;
    }
  }
  return report;
}

Json GcJson(const GcReport& r) {
  Json out = {{"applied", r.applied},
              {"blobs_scanned", r.scanned},
              {"unreferenced_blobs", r.unreferenced.size()},
              {"bytes", r.bytes},
              {"bytes_freed", r.applied ? r.bytes : 0},
              {"spared_blobs", r.spared},
              {"spared_bytes", r.spared_bytes},
              {"released_checkpoints", r.released_checkpoints},
              {"kept_checkpoints", r.kept_checkpoints},
              {"released", Json::array()},
              {"blobs", Json::array()}};
  for (const auto& s : r.released) {
    out["released"].push_back({{"run_id", s.run_id}, {"stage", s.stage}, {"checkpoints", s.checkpoints}});
  }
  for (size_t i = 0; i < r.unreferenced.size() && i < 1000; ++i) out["blobs"].push_back(r.unreferenced[i]);
  return out;
}

Json RetentionJson(StoreHandle& store, const std::vector<std::string>& digests) {
  const std::unordered_set<std::string> asked(digests.begin(), digests.end());
  const orchestrator::RetentionPlan plan = orchestrator::PlanRetention(*store.db, &asked);
  // Checkpoints gone (released earlier) or going (released by this plan).
  const std::vector<std::string> released = store.db->ReleasedCheckpoints();
  std::unordered_set<std::string> gone(released.begin(), released.end());
  for (const auto& c : plan.release) gone.insert(c.digest);
  // Whether every checkpoint that holds `blob` is gone; once per blob (the
  // checkpoints of one trial share many).
  std::unordered_map<std::string, bool> freed_blobs;
  auto freed = [&](const std::string& blob) {
    auto [it, added] = freed_blobs.try_emplace(blob, false);
    if (!added) return it->second;
    constexpr int kHolders = 1000;  // more: counted as kept, not searched
    const std::vector<std::string> holders = store.db->CheckpointsWithBlob(blob, kHolders);
    it->second = holders.size() < static_cast<size_t>(kHolders) &&
                 std::all_of(holders.begin(), holders.end(), [&](const std::string& h) { return gone.count(h) > 0; });
    return it->second;
  };
  Json out = {{"checkpoints", Json::object()}, {"would_release", plan.release.size()}, {"kept", plan.kept}};
  for (const std::string& d : asked) {
    Json c = {{"reasons", Json::array()}};
    if (!store.db->FindCheckpoint(d)) {
      c["state"] = "not_recorded";
    } else if (const double released_at = store.db->CheckpointReleasedAt(d); released_at > 0) {
      c["state"] = "released";
      c["released_at"] = released_at;
    } else if (gone.count(d)) {
      c["state"] = "would_release";
    } else {
      c["state"] = "kept";
      auto it = plan.kept_because.find(d);
      if (it != plan.kept_because.end()) {
        for (const auto why : it->second) c["reasons"].push_back(orchestrator::KeptBecauseName(why));
      }
    }
    if (c["state"] != "not_recorded") c["bytes"] = store.db->CheckpointBytes(d, 0).first;
    if (c["state"] == "would_release") {
      // From the lineage, not the blob store: reading a blob would make
      // gc spare it for a while (store/guarded_blob_store.h).
      uint64_t frees = 0;
      for (const auto& [blob, size] : store.db->CheckpointBlobs(d)) frees += freed(blob) ? size : 0;
      c["frees_bytes"] = frees;
    }
    out["checkpoints"][d] = std::move(c);
  }
  return out;
}

int CmdStoreGc(StoreHandle& store, bool apply, bool json) {
  const GcReport r = CollectGarbage(store, apply);
  if (json) {
    std::printf("%s\n", GcJson(r).dump(2).c_str());
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
