// A stage's TorchScript model file as a content-addressed artifact: read
// when the stage starts (its manifest digest joins the cache key), stored
// with the stage's expansion, handed to workers by digest (run_state.h).
#include <filesystem>

#include "common/digest.h"
#include "orchestrator/internal/run_state.h"

namespace baton::orchestrator {
namespace {

bool IsTorchScript(const Json* model) {
  return model != nullptr && model->is_object() && model->contains("torchscript") &&
         (*model)["torchscript"].is_string();
}

}  // namespace

const Json* RunState::StageModel(const Stage& stage) const {
  const StageSpec& spec = *stage.typed;
  const Json& doc = spec.doc;
  switch (spec.type) {
    case StageType::kPrepare:
      return nullptr;
    case StageType::kTune:
      return &doc.at("model");
    case StageType::kTrain:
      if (doc.contains("model")) return &doc["model"];
      break;
    case StageType::kAblate:
      if (doc.contains("base") && doc["base"].contains("model")) return &doc["base"]["model"];
      break;
  }
  if (!spec.hyperparameters_from) return nullptr;
  const Json& from = pipeline_.stage(spec.hyperparameters_from->stage);
  return from.contains("model") ? &from["model"] : nullptr;
}

void RunState::ReadModelFile(Stage& stage) {
  const Json* model = StageModel(stage);
  if (!IsTorchScript(model)) return;
  const std::string path = (*model)["torchscript"].get<std::string>();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kNotFound, "TorchScript model " + path + ": no such file");
  }
  store::FileBlobs blobs = store::ReadFileArtifact(path, {{"path", path}});
  stage.model_file = store::ManifestDigest(blobs.manifest);
  stage.model_file_blobs = std::move(blobs);
}

void RunState::StoreModelFile(Stage& stage) {
  if (!stage.model_file_blobs) return;
  const store::FileBlobs& file = *stage.model_file_blobs;
  const std::string manifest_bytes = store::ManifestBytes(file.manifest);
  BlobList blobs = {{PutBlob(manifest_bytes), manifest_bytes.size()}};
  for (const auto& [digest, bytes] : file.blobs) blobs.emplace_back(PutBlob(bytes), bytes.size());
  const store::TensorEntry& entry = file.manifest.tensors.front();
  Apply(effect::PutArtifact{stage.model_file, "model_file", stage.rec.id,
                            {{"path", file.manifest.meta.value("path", "")}, {"sha256", entry.blob},
                             {"bytes", entry.bytes}},
                            blobs});
  AddEdge(Node("stage", stage.rec.id), Node("artifact", stage.model_file), "model_from");
}

void RunState::RecordModelFile(Stage& stage) {
  if (!stage.model_file_blobs) return;
  const store::FileBlobs& file = *stage.model_file_blobs;
  stage.rec.resolved["torchscript"] = {{"path", file.manifest.meta.value("path", "")},
                                       {"manifest", stage.model_file},
                                       {"sha256", file.manifest.tensors.front().blob}};
  stage.model_file_blobs.reset();
}

bool RunState::AddModelFile(const Stage& stage, Json& task) {
  // find(), not operator[]: a task without a model (prepare, command, a
  // TPE trial not yet sampled) must not gain a null "model".
  auto model = task.find("model");
  if (model == task.end() || !IsTorchScript(&*model) || stage.model_file.empty()) return false;
  (*model)["manifest"] = stage.model_file;
  return true;
}

}  // namespace baton::orchestrator
