#include "maintenance/fsck.h"

#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/error.h"
#include "store/checkpoint.h"

namespace baton::maintenance {
namespace {

// What refers to a damaged blob, listed per problem at most this many times.
constexpr int kMaxReferrers = 20;

// A missing file or chunk of a blob whose record is still there: the store
// reports it as corrupt, saying "... is missing".
bool SaysMissing(const Error& e) {
  const std::string text = e.what();
  const std::string tail = " is missing";
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

class Fsck {
 public:
  Fsck(store::BlobStore& blobs, store::LineageDb& db, const FsckProgress& progress)
      : blobs_(blobs), db_(db), progress_(progress) {}

  FsckReport Check() {
    HashEveryBlob();
    CheckManifests(db_.ListCheckpoints(), "checkpoint", &report_.checkpoints);
    CheckManifests(db_.ListArtifacts(), "artifact", &report_.artifacts);
    CheckReferences();
    for (auto& [digest, p] : damaged_) report_.problems.push_back(std::move(p));
    for (auto& p : orphans_) report_.problems.push_back(std::move(p));
    return std::move(report_);
  }

 private:
  void Damaged(Damage d, const std::string& digest, uint64_t size, const std::string& message) {
    auto [it, added] = damaged_.try_emplace(digest);
    if (!added) return;  // the first finding stands
    it->second = Problem{d, digest, size, message, {}};
    ++(d == Damage::kMissing ? report_.missing : report_.corrupt);
  }

  void HashEveryBlob() {
    std::vector<std::pair<std::string, uint64_t>> all;
    uint64_t total = 0;
    blobs_.ForEach([&](const std::string& digest, uint64_t size) {
      all.emplace_back(digest, size);
      total += size;
    });
    for (const auto& [digest, size] : all) {
      try {
        blobs_.Read(digest, [](std::string_view) {});
        sizes_.emplace(digest, size);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kNotFound) continue;  // deleted since ForEach
        if (e.code() != ErrorCode::kCorrupt) throw;
        sizes_.emplace(digest, size);
        Damaged(SaysMissing(e) ? Damage::kMissing : Damage::kCorrupt, digest, size, e.what());
      }
      ++report_.blobs;
      report_.bytes += size;
      if (progress_) progress_(report_.blobs, report_.bytes, all.size(), total);
    }
  }

  // Each manifest parses and lists tensor blobs the store has, of the sizes
  // it states. A manifest already found damaged is not read again.
  void CheckManifests(const std::vector<std::string>& digests, const std::string& kind, uint64_t* count) {
    for (const std::string& digest : digests) {
      ++*count;
      const std::string node = kind + ":" + digest;
      if (damaged_.count(digest)) continue;
      if (!sizes_.count(digest)) {
        Damaged(Damage::kMissing, digest, 0, "the " + kind + "'s manifest is not in the store");
        continue;
      }
      store::Manifest manifest;
      try {
        manifest = store::ParseManifest(blobs_.Get(digest));
      } catch (const Error& e) {
        if (e.code() != ErrorCode::kCorrupt && e.code() != ErrorCode::kNotFound) throw;
        Damaged(e.code() == ErrorCode::kNotFound ? Damage::kMissing : Damage::kCorrupt, digest, sizes_[digest],
                "the " + kind + "'s manifest does not parse: " + e.what());
        continue;
      }
      for (const store::TensorEntry& t : manifest.tensors) {
        tensor_uses_[t.blob].insert(node + " " + t.name);
        auto size = sizes_.find(t.blob);
        if (size == sizes_.end()) {
          Damaged(Damage::kMissing, t.blob, t.bytes, "not in the store");
        } else if (size->second != t.bytes) {
          Damaged(Damage::kCorrupt, t.blob, size->second,
                  "the store has " + std::to_string(size->second) + " bytes, " + kind + " " + digest +
                      " says tensor \"" + t.name + "\" has " + std::to_string(t.bytes));
        }
      }
    }
  }

  void CheckReferences() {
    const std::vector<std::string> referenced = db_.ReferencedBlobs();
    report_.referenced = referenced.size();
    const std::unordered_set<std::string> keep(referenced.begin(), referenced.end());
    for (const std::string& digest : referenced) {
      if (!sizes_.count(digest)) Damaged(Damage::kMissing, digest, 0, "not in the store");
    }
    for (const auto& [digest, size] : sizes_) {
      if (keep.count(digest) || damaged_.count(digest)) continue;
      orphans_.push_back(Problem{Damage::kOrphaned, digest, size, "nothing refers to it", {}});
      ++report_.orphaned;
      report_.orphaned_bytes += size;
    }
    std::sort(orphans_.begin(), orphans_.end(),
              [](const Problem& a, const Problem& b) { return a.digest < b.digest; });
    for (auto& [digest, p] : damaged_) {
      auto uses = tensor_uses_.find(digest);
      if (uses != tensor_uses_.end()) p.tensors = uses->second;
    }
  }

  store::BlobStore& blobs_;
  store::LineageDb& db_;
  const FsckProgress& progress_;
  FsckReport report_;
  std::unordered_map<std::string, uint64_t> sizes_;  // every blob the store lists
  std::map<std::string, Problem> damaged_;           // corrupt or missing, by digest
  std::vector<Problem> orphans_;
  std::unordered_map<std::string, std::set<std::string>> tensor_uses_;  // blob -> "node name"
};

// One referrer in the user's words, with the run, stage and trial it is part of.
class Describer {
 public:
  explicit Describer(store::LineageDb& db) : db_(db) {}

  Json Node(const std::string& node) {
    const size_t colon = node.find(':');
    const std::string kind = node.substr(0, colon);
    const std::string id = node.substr(colon + 1);
    Json out = {{"node", node}};
    if (kind == "checkpoint") {
      out["checkpoint"] = id;
      if (auto found = db_.FindCheckpoint(id)) {
        out["epoch"] = found->second;
        AddTrial(found->first, &out);
      }
    } else if (kind == "artifact") {
      out["artifact"] = id;
      if (auto artifact = db_.GetArtifact(id); artifact && (*artifact)["stage_id"].get<int64_t>() != 0) {
        AddStage((*artifact)["stage_id"].get<int64_t>(), &out);
      }
    } else if (kind == "trial") {
      AddTrial(std::stoll(id), &out);
    } else if (kind == "stage") {
      AddStage(std::stoll(id), &out);
    }
    return out;
  }

  static std::string Text(const Json& d) {
    const std::string trial = d.contains("trial_id") ? "trial " + std::to_string(d["trial_id"].get<int64_t>()) : "";
    std::string text;
    std::vector<std::string> where;
    if (d.contains("checkpoint") || d.contains("artifact")) {
      text = d.contains("checkpoint") ? "checkpoint " + d["checkpoint"].get<std::string>()
                                      : "artifact " + d["artifact"].get<std::string>();
      if (!trial.empty()) where.push_back(trial);
      if (d.contains("epoch")) {
        const int epoch = d["epoch"];
        where.push_back(epoch < 0 ? std::string("initial weights") : "epoch " + std::to_string(epoch));
      }
    } else if (!trial.empty()) {
      text = trial;
    } else if (d.contains("stage")) {
      text = "stage " + d["stage"].get<std::string>();
    } else {
      text = d["node"].get<std::string>();
    }
    if (d.contains("tensor")) text = "tensor \"" + d["tensor"].get<std::string>() + "\" of " + text;
    if (d.contains("stage") && text.rfind("stage ", 0) != 0) where.push_back("stage " + d["stage"].get<std::string>());
    if (d.contains("run_id")) where.push_back("run " + d["run_id"].get<std::string>());
    if (!where.empty()) {
      text += " (";
      for (size_t i = 0; i < where.size(); ++i) text += (i ? ", " : "") + where[i];
      text += ")";
    }
    return text;
  }

 private:
  void AddTrial(int64_t trial_id, Json* out) {
    (*out)["trial_id"] = trial_id;
    auto trial = db_.GetTrial(trial_id);
    if (!trial) return;
    (*out)["trial_number"] = trial->number;
    AddStage(trial->stage_id, out);
  }
  void AddStage(int64_t stage_id, Json* out) {
    auto stage = db_.GetStage(stage_id);
    if (!stage) return;
    (*out)["stage"] = stage->name;
    (*out)["run_id"] = stage->run_id;
  }

  store::LineageDb& db_;
};

// Every referrer of a damaged blob; a checkpoint or artifact that lists it
// as a tensor says which.
Json ReferencedBy(store::LineageDb& db, Describer& describe, const Problem& p) {
  Json out = Json::array();
  if (p.damage == Damage::kOrphaned) return out;
  std::multimap<std::string, std::string> tensor_of;  // node -> tensor name
  for (const std::string& use : p.tensors) {
    const size_t space = use.find(' ');
    tensor_of.emplace(use.substr(0, space), use.substr(space + 1));
  }
  for (const std::string& node : db.BlobReferrers(p.digest, kMaxReferrers)) {
    const Json d = describe.Node(node);
    auto [first, last] = tensor_of.equal_range(node);
    if (first == last) out.push_back(d);
    for (auto it = first; it != last; ++it) {
      Json with = d;
      with["tensor"] = it->second;
      out.push_back(with);
    }
  }
  return out;
}

}  // namespace

const char* DamageName(Damage d) {
  switch (d) {
    case Damage::kCorrupt: return "corrupt";
    case Damage::kMissing: return "missing";
    case Damage::kOrphaned: return "orphaned";
  }
  return "corrupt";
}

FsckReport CheckStore(store::BlobStore& blobs, store::LineageDb& db, const FsckProgress& progress) {
  FsckReport report = Fsck(blobs, db, progress).Check();
  Describer describe(db);
  for (Problem& p : report.problems) p.referenced_by = ReferencedBy(db, describe, p);
  return report;
}

Json FsckJson(const FsckReport& r) {
  Json out = {{"ok", r.corrupt + r.missing == 0},
              {"blobs_checked", r.blobs},
              {"bytes_checked", r.bytes},
              {"checkpoints", r.checkpoints},
              {"artifacts", r.artifacts},
              {"referenced_blobs", r.referenced},
              {"corrupt", r.corrupt},
              {"missing", r.missing},
              {"orphaned", r.orphaned},
              {"orphaned_bytes", r.orphaned_bytes},
              {"problems", Json::array()}};
  for (const Problem& p : r.problems) {
    Json row = {{"kind", DamageName(p.damage)}, {"digest", p.digest}, {"message", p.message}};
    if (p.size > 0) row["bytes"] = p.size;
    if (p.damage != Damage::kOrphaned) row["referenced_by"] = p.referenced_by;
    out["problems"].push_back(std::move(row));
  }
  return out;
}

std::string DescribeReferrer(const Json& referrer) { return Describer::Text(referrer); }

}  // namespace baton::maintenance
