// Command stages in the run state machine: their cache key's dependency
// digests, their task, their outputs put back on a cache hit, and what a
// worker's report of one records (run_state.h).
#include <filesystem>

#include "common/digest.h"
#include "common/error.h"
#include "common/file_digest.h"
#include "orchestrator/internal/run_state.h"
#include "orchestrator/internal/search.h"
#include "store/file_artifact.h"

namespace baton::orchestrator {

std::string RunState::WorkingDirectory() { return std::filesystem::current_path().string(); }

Json RunState::CommandDepDigests(const Stage& stage) {
  Json digests = Json::array();
  for (const CommandSpec::Dep& dep : stage.typed->command->deps) {
    if (dep.checkpoint) {
      try {
        digests.push_back({{"path", dep.path}, {"checkpoint", ResolveInit(*dep.checkpoint)["checkpoint"]}});
      } catch (const Error& e) {
        // ExpandCommand fails the stage with the same reason.
        digests.push_back({{"path", dep.path}, {"unresolved", e.what()}});
      }
      continue;
    }
    try {
      digests.push_back({{"path", dep.path}, {"sha256", PathDigest(dep.path)}});
    } catch (const Error&) {
      digests.push_back({{"path", dep.path}, {"sha256", nullptr}});  // ExpandCommand says it is missing
    }
  }
  return digests;
}

bool RunState::RestoreCommandOutputs(const Stage& stage, const std::string& manifest) {
  try {
    Apply(effect::CheckoutFiles{manifest, WorkingDirectory()});
    return true;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kResourceExhausted) throw;
    // Released by gc or unreadable: the command runs again instead.
    Emit("stage_outputs_not_restored", stage.rec.name, 0, -1, {{"output", manifest}, {"reason", e.what()}});
    return false;
  }
}

void RunState::ExpandCommand(Stage& stage, const TaskAdder& add_task) {
  const CommandSpec& command = *stage.typed->command;
  const std::string& name = stage.rec.name;
  Json cmd = Json::array();
  for (const std::string& item : command.cmd) cmd.push_back(SubstituteParams(item, command.params));
  Json env = Json::object();
  for (const auto& [k, v] : command.env) env[k] = SubstituteParams(v, command.params);
  Json checkpoints = Json::array();
  Json resolved = Json::object();
  resolved["deps"] = Json::array();
  for (const CommandSpec::Dep& dep : command.deps) {
    if (dep.checkpoint) {
      Json from;
      try {
        from = ResolveInit(*dep.checkpoint);
      } catch (const Error& e) {
        throw Error(e.code(), "checkpoint dependency " + dep.path + ": " + e.what());
      }
      checkpoints.push_back({{"path", dep.path}, {"checkpoint", from["checkpoint"]}});
      resolved["deps"].push_back({{"path", dep.path}, {"checkpoint", from}});
      continue;
    }
    std::string digest;
    try {
      digest = PathDigest(dep.path);
    } catch (const Error&) {
      throw Error(ErrorCode::kNotFound, "dependency " + dep.path + " of stage " + name + " does not exist (in " +
                                            WorkingDirectory() + ")");
    }
    resolved["deps"].push_back({{"path", dep.path}, {"sha256", digest}});
  }
  resolved["workdir"] = WorkingDirectory();
  stage.rec.resolved = resolved;
  Json task = {{"kind", Name(TaskKind::kCommand)},
               {"cmd", cmd},
               {"env", env},
               {"params", command.params},
               {"workdir", WorkingDirectory()},
               {"outs", command.outs},
               {"checkpoints", checkpoints},
               {"timeout_seconds", command.timeout_seconds}};
  add_task(0, command.params, task, DeriveSeed(pipeline_.seed, name));
  for (const Json& c : checkpoints) {
    AddEdge(Node("stage", stage.rec.id), Node("checkpoint", c["checkpoint"].get<std::string>()), "derived_from",
            {{"dep", c["path"]}});
  }
  std::vector<std::string> paths;
  for (const CommandSpec::Dep& dep : command.deps) {
    if (!dep.checkpoint) paths.push_back(dep.path);
  }
  LinkCommandOutputs(stage, paths);
}

void RunState::LinkCommandOutputs(Stage& stage, const std::vector<std::string>& paths) {
  auto normal = [](const std::string& p) {
    std::string n = std::filesystem::path(p).lexically_normal().generic_string();
    while (n.size() > 1 && n.back() == '/') n.pop_back();
    return n;
  };
  for (const std::string& path : paths) {
    const std::string p = normal(path);
    for (const auto& other : stages_) {
      if (other.get() == &stage || other->typed->type != StageType::kCommand || other->rec.output.empty()) continue;
      for (const std::string& out : other->typed->command->outs) {
        const std::string o = normal(out);
        if (p == o || (p.size() > o.size() && p.compare(0, o.size(), o) == 0 && p[o.size()] == '/')) {
          AddEdge(Node("stage", stage.rec.id), Node("artifact", other->rec.output), "derived_from", {{"dep", path}});
        }
      }
    }
  }
}

void RunState::RecordCommandLogs(Task& t, const Json& body) {
  if (!body.contains("logs") || !body["logs"].is_object()) return;
  Json logs = Json::object();
  for (const char* stream : {"stdout", "stderr"}) {
    const std::string digest = body["logs"].value(stream, "");
    if (IsDigest(digest) && reads_.HasBlob(digest)) logs[stream] = digest;
  }
  logs["attempt"] = t.rec.attempts;
  logs["trial_id"] = t.rec.id;
  t.stage->rec.resolved["logs"] = logs;
  UpdateStage(t.stage->rec);
}

void RunState::CompleteCommand(Task& t, const std::string& output) {
  auto blob_list = CheckpointBlobs(output);
  store::Manifest m = store::ParseManifest(reads_.Blob(output));
  if (m.kind != store::kFilesKind) {
    throw Error(ErrorCode::kInvalidArgument, "command output " + output + " is not a files manifest");
  }
  effects_.Atomically([&] {
    Apply(effect::PutArtifact{output, store::kFilesKind, t.stage->rec.id, m.meta, blob_list});
    AddEdge(Node("artifact", output), Node("stage", t.stage->rec.id), "derived_from", Json::object());
  });
}

}  // namespace baton::orchestrator
