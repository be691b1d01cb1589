#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <set>

#include "api/internal/cli.h"
#include "api/internal/view_source.h"
#include "api/internal/views.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/vocabulary.h"

namespace baton::api {
namespace {

std::string Short(const std::string& digest) { return digest.size() > 12 ? digest.substr(0, 12) : digest; }

// "kind:id" for what the user typed: a typed id, a run id, or a bare digest
// of a checkpoint or dataset artifact.
// A typed id must be well formed (digits for stages and trials, a digest
// for checkpoints and artifacts, a run id's characters for runs), else
// Error(kInvalidArgument); it need not exist.
std::string ResolveNode(StoreHandle& store, const std::string& id) {
  const auto digits = [](const std::string& v) {
    return !v.empty() && v.size() <= 18 && v.find_first_not_of("0123456789") == std::string::npos;
  };
  const auto run_id = [](const std::string& v) {
    return !v.empty() && v.size() <= 64 &&
           v.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-") == std::string::npos;
  };
  const std::pair<const char*, std::function<bool(const std::string&)>> kinds[] = {
      {"run:", run_id}, {"stage:", digits}, {"trial:", digits}, {"checkpoint:", IsDigest}, {"artifact:", IsDigest}};
  for (const auto& [kind, valid] : kinds) {
    if (id.rfind(kind, 0) != 0) continue;
    if (!valid(id.substr(std::string(kind).size()))) {
      throw Error(ErrorCode::kInvalidArgument,
                  "node \"" + id + "\" is not a well-formed " + std::string(kind, std::strlen(kind) - 1) +
                      " id (stage: and trial: take digits, checkpoint: and artifact: a SHA-256 digest, run: a run id)");
    }
    return id;
  }
  if (IsDigest(id)) {
    if (store.db->FindCheckpoint(id)) return "checkpoint:" + id;
    if (store.db->GetArtifact(id)) return "artifact:" + id;
    throw Error(ErrorCode::kNotFound, "no checkpoint or artifact " + id + " in the lineage DB");
  }
  if (auto run = store.db->GetRun(id)) {
    // A run's model: the output of its last train stage.
    auto stages = store.db->GetStages(id);
    for (auto it = stages.rbegin(); it != stages.rend(); ++it) {
      if (Is(it->type, StageType::kTrain) && !it->output.empty()) return "checkpoint:" + it->output;
    }
    return "run:" + id;
  }
  throw Error(ErrorCode::kNotFound, "no run, checkpoint or artifact named " + id);
}

// What a node is, in the user's words.
Json Describe(StoreHandle& store, const std::string& node) {
  const auto colon = node.find(':');
  const std::string kind = node.substr(0, colon), id = node.substr(colon + 1);
  Json d = {{"kind", kind}, {"id", id}};
  if (kind == "checkpoint") {
    if (auto at = store.db->FindCheckpoint(id)) {
      d["trial_id"] = at->first;
      d["epoch"] = at->second;
      d["bytes"] = store.db->CheckpointBytes(id, 0).first;
      if (auto t = store.db->GetTrial(at->first)) {
        if (auto s = store.db->GetStage(t->stage_id)) {
          d["stage"] = s->name;
          d["run_id"] = s->run_id;
          d["trial_number"] = t->number;
        }
      }
    }
  } else if (kind == "trial") {
    if (auto t = store.db->GetTrial(std::stoll(id))) {
      d["trial_number"] = t->number;
      d["status"] = t->status;
      d["hyperparameters"] = t->hyperparameters;
      if (auto s = store.db->GetStage(t->stage_id)) {
        d["stage"] = s->name;
        d["run_id"] = s->run_id;
      }
    }
  } else if (kind == "stage") {
    if (auto s = store.db->GetStage(std::stoll(id))) {
      d["stage"] = s->name;
      d["type"] = s->type;
      d["run_id"] = s->run_id;
      d["status"] = s->status;
    }
  } else if (kind == "artifact") {
    if (auto a = store.db->GetArtifact(id)) {
      d["artifact"] = *a;
      d["bytes"] = store.db->ArtifactBytes(id);
    }
  }
  return d;
}

std::string Label(const Json& d) {
  const std::string kind = d["kind"].get<std::string>();
  const std::string id = d["id"].get<std::string>();
  if (kind == "checkpoint") {
    std::string s = "checkpoint " + Short(id);
    if (d.contains("stage")) {
      int epoch = d["epoch"].get<int>();
      s += " (" + d["stage"].get<std::string>() + " trial " + std::to_string(d["trial_number"].get<int>()) + ", " +
           (epoch < 0 ? std::string("initial weights") : "epoch " + std::to_string(epoch)) + ")";
    }
    return s;
  }
  if (kind == "trial") {
    return "trial " + id + (d.contains("stage") ? " (" + d["stage"].get<std::string>() + " #" +
                                                      std::to_string(d["trial_number"].get<int>()) + ", " +
                                                      d["status"].get<std::string>() + ")"
                                                : "");
  }
  if (kind == "stage") {
    return "stage " + (d.contains("stage") ? d["stage"].get<std::string>() + " (" + d["type"].get<std::string>() +
                                                 ", run " + d["run_id"].get<std::string>() + ")"
                                           : id);
  }
  if (kind == "artifact") return "dataset artifact " + Short(id);
  return kind + " " + id;
}

}  // namespace

std::string HumanBytes(uint64_t n) {
  char buf[32];
  if (n >= (1ull << 30)) {
    std::snprintf(buf, sizeof(buf), "%.2f GiB", n / double(1ull << 30));
  } else if (n >= (1ull << 20)) {
    std::snprintf(buf, sizeof(buf), "%.2f MiB", n / double(1ull << 20));
  } else if (n >= 1024) {
    std::snprintf(buf, sizeof(buf), "%.1f KiB", n / 1024.0);
  } else {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(n));
  }
  return buf;
}

Json LineageJson(StoreHandle& store, const std::string& id, bool downstream, int depth) {
  const std::string root = ResolveNode(store, id);
  auto edges = downstream ? store.db->Downstream(root, depth) : store.db->Upstream(root, depth);
  Json out = {{"node", root}, {"direction", downstream ? "downstream" : "upstream"}, {"edges", Json::array()},
              {"nodes", Json::object()}};
  out["nodes"][root] = Describe(store, root);
  for (const auto& e : edges) {
    for (const std::string* n : {&e.src, &e.dst}) {
      if (!out["nodes"].contains(*n)) out["nodes"][*n] = Describe(store, *n);
    }
    out["edges"].push_back({{"src", e.src}, {"dst", e.dst}, {"kind", e.kind}, {"attrs", e.attrs}});
    if (e.kind == "initialized_from" && !out.contains("initialized_from")) {
      Json init = e.attrs;
      init["trial"] = e.src;
      init["checkpoint"] = e.dst.substr(e.dst.find(':') + 1);
      out["initialized_from"] = init;
    }
  }
  return out;
}

int CmdLineage(ViewSource& views, const std::string& id, bool downstream, int depth, bool json) {
  const Json lineage = views.Lineage(id, downstream, depth);
  if (json) {
    std::printf("%s\n", lineage.dump(2).c_str());
    return kExitOk;
  }
  const std::string root = lineage["node"].get<std::string>();
  std::vector<store::Edge> edges;
  for (const auto& e : lineage["edges"]) {
    edges.push_back({e["src"].get<std::string>(), e["dst"].get<std::string>(), e["kind"].get<std::string>(), e["attrs"]});
  }
  std::map<std::string, Json> nodes;
  for (const auto& [k, v] : lineage["nodes"].items()) nodes[k] = v;
  // A tree from the root; a node reached twice is printed once in full.
  std::multimap<std::string, const store::Edge*> children;
  for (const auto& e : edges) children.insert({downstream ? e.dst : e.src, &e});
  std::set<std::string> printed;
  std::function<void(const std::string&, int)> walk = [&](const std::string& node, int indent) {
    if (!printed.insert(node).second) return;
    auto range = children.equal_range(node);
    for (auto it = range.first; it != range.second; ++it) {
      const store::Edge& e = *it->second;
      const std::string next = downstream ? e.src : e.dst;
      std::string extra;
      if (e.kind == "initialized_from" && e.attrs.contains("transferred")) {
        extra = "  [" + std::to_string(e.attrs["transferred"].size()) + " tensors transferred, " +
                std::to_string(e.attrs.value("reinitialized", Json::array()).size()) + " re-initialised]";
      }
      std::printf("%*s%s %s%s%s\n", indent, "", downstream ? "<-" : "->", e.kind.c_str(),
                  (" " + Label(nodes[next])).c_str(), extra.c_str());
      walk(next, indent + 2);
    }
  };
  std::printf("%s\n", Label(nodes[root]).c_str());
  walk(root, 2);
  return kExitOk;
}

int CmdStoreDu(StoreHandle& store, bool json) {
  auto usage = store.db->Usage();
  auto stats = store.blobs->Stats();
  // What each init_from start cost: usually nothing, since its tensors are
  // the selected trial epoch's blobs.
  Json initial = Json::array();
  for (const auto& u : usage) {
    auto stage = store.db->GetStage(u.stage_id);
    if (!stage || !stage->resolved.contains("init_from")) continue;
    for (const auto& t : store.db->GetTrials(u.stage_id)) {
      if (t.initial_checkpoint.empty()) continue;
      auto [bytes, fresh] = store.db->CheckpointBytes(t.initial_checkpoint, u.stage_id);
      initial.push_back({{"run_id", u.run_id}, {"stage", u.stage_name}, {"trial_id", t.id},
                         {"checkpoint", t.initial_checkpoint}, {"bytes", bytes}, {"new_bytes", fresh},
                         {"source", stage->resolved["init_from"]["checkpoint"]}});
    }
  }
  if (json) {
    Json out = {{"store", store.dir}, {"blobs", stats.blobs}, {"bytes", stats.bytes}, {"stages", Json::array()},
                {"initial_checkpoints", initial}};
    for (const auto& u : usage) {
      out["stages"].push_back({{"run_id", u.run_id}, {"stage", u.stage_name}, {"stage_id", u.stage_id},
                               {"checkpoints", u.checkpoints}, {"referenced_bytes", u.referenced_bytes},
                               {"new_bytes", u.new_bytes}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  std::printf("store %s: %llu blobs, %s\n", store.dir.c_str(), static_cast<unsigned long long>(stats.blobs),
              HumanBytes(stats.bytes).c_str());
  std::printf("%-22s %-12s %-12s %-14s %s\n", "RUN", "STAGE", "CHECKPOINTS", "REFERENCED", "NEW");
  for (const auto& u : usage) {
    std::printf("%-22s %-12s %-12llu %-14s %s\n", u.run_id.c_str(), u.stage_name.c_str(),
                static_cast<unsigned long long>(u.checkpoints), HumanBytes(u.referenced_bytes).c_str(),
                HumanBytes(u.new_bytes).c_str());
  }
  for (const auto& c : initial) {
    std::printf("%s/%s started from checkpoint %s: %s, %s of them new\n", c["run_id"].get<std::string>().c_str(),
                c["stage"].get<std::string>().c_str(), Short(c["checkpoint"].get<std::string>()).c_str(),
                HumanBytes(c["bytes"].get<uint64_t>()).c_str(), HumanBytes(c["new_bytes"].get<uint64_t>()).c_str());
  }
  return kExitOk;
}

}  // namespace baton::api
