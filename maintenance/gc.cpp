// Retention and garbage collection of the store: the checkpoints the
// retention policy releases (orchestrator/retention.h), then every blob no
// kept checkpoint, artifact, run or stage refers to (released checkpoints,
// uploads whose epoch report never came, runs cancelled or killed
// mid-upload).
#include "maintenance/gc.h"

#include <algorithm>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "orchestrator/retention.h"

namespace baton::maintenance {
namespace {

// Thrown to roll a dry run's release marks back.
struct DryRun {};

}  // namespace

GcReport CollectGarbage(store::GuardedBlobStore& blobs, store::LineageDb& db, bool apply) {
  GcReport report;
  report.applied = apply;
  std::vector<std::pair<std::string, uint64_t>> garbage;
  // One transaction decides on one view of the lineage: a stage that
  // resolves its init_from does so wholly before (its choice is kept) or
  // after (it sees the release). The marks are committed before any blob
  // goes, so a crash in between leaves blobs nothing refers to, never a
  // kept checkpoint without its blobs.
  auto decide = [&] {
    const orchestrator::RetentionPlan plan = orchestrator::PlanRetention(db);
    std::vector<std::string> digests;
    std::map<std::pair<std::string, std::string>, uint64_t> per_stage;
    for (const auto& c : plan.release) {
      digests.push_back(c.digest);
      ++per_stage[{c.run_id, c.stage}];
    }
    for (const auto& [key, n] : per_stage) report.released.push_back({key.first, key.second, n});
    report.released_checkpoints = digests.size();
    report.kept_checkpoints = plan.kept;
    db.ReleaseCheckpoints(digests);
    const std::vector<std::string> referenced = db.ReferencedBlobs();
    const std::unordered_set<std::string> keep(referenced.begin(), referenced.end());
    blobs.ForEach([&](const std::string& digest, uint64_t size) {
      ++report.scanned;
      if (!keep.count(digest)) garbage.emplace_back(digest, size);
    });
  };
  if (apply) {
    db.InTransaction(decide);
  } else {
    try {
      db.InTransaction([&] {
        decide();
        throw DryRun{};
      });
    } catch (const DryRun&) {
    }
  }
  for (const auto& [digest, size] : garbage) {
    if (!apply || blobs.DeleteUnlessRecent(digest)) {
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

Json RetentionJson(store::LineageDb& db, const std::vector<std::string>& digests) {
  const std::unordered_set<std::string> asked(digests.begin(), digests.end());
  const orchestrator::RetentionPlan plan = orchestrator::PlanRetention(db, &asked);
  // Checkpoints gone (released earlier) or going (released by this plan).
  const std::vector<std::string> released = db.ReleasedCheckpoints();
  std::unordered_set<std::string> gone(released.begin(), released.end());
  for (const auto& c : plan.release) gone.insert(c.digest);
  // Whether every checkpoint that holds `blob` is gone; once per blob (the
  // checkpoints of one trial share many).
  std::unordered_map<std::string, bool> freed_blobs;
  auto freed = [&](const std::string& blob) {
    auto [it, added] = freed_blobs.try_emplace(blob, false);
    if (!added) return it->second;
    constexpr int kHolders = 1000;  // more: counted as kept, not searched
    const std::vector<std::string> holders = db.CheckpointsWithBlob(blob, kHolders);
    it->second = holders.size() < static_cast<size_t>(kHolders) &&
                 std::all_of(holders.begin(), holders.end(), [&](const std::string& h) { return gone.count(h) > 0; });
    return it->second;
  };
  Json out = {{"checkpoints", Json::object()}, {"would_release", plan.release.size()}, {"kept", plan.kept}};
  for (const std::string& d : asked) {
    Json c = {{"reasons", Json::array()}};
    if (!db.FindCheckpoint(d)) {
      c["state"] = "not_recorded";
    } else if (const double released_at = db.CheckpointReleasedAt(d); released_at > 0) {
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
    if (c["state"] != "not_recorded") c["bytes"] = db.CheckpointBytes(d, 0).first;
    if (c["state"] == "would_release") {
      // From the lineage, not the blob store: reading a blob would make
      // gc spare it for a while (store/guarded_blob_store.h).
      uint64_t frees = 0;
      for (const auto& [blob, size] : db.CheckpointBlobs(d)) frees += freed(blob) ? size : 0;
      c["frees_bytes"] = frees;
    }
    out["checkpoints"][d] = std::move(c);
  }
  return out;
}

}  // namespace baton::maintenance
