#include "orchestrator/internal/effects.h"

#include <filesystem>

#include "common/crash_point.h"
#include "common/error.h"
#include "common/file_digest.h"
#include "store/file_artifact.h"

namespace baton::orchestrator {
namespace {

template <class... F>
struct Overload : F... {
  using F::operator()...;
};
template <class... F>
Overload(F...) -> Overload<F...>;

}  // namespace

std::string Describe(const Effect& effect) {
  return std::visit(
      Overload{
          [](const effect::UpdateRun& e) { return "update_run " + e.run.id + " " + e.run.status; },
          [](const effect::UpdateStage& e) { return "update_stage " + e.stage.name + " " + e.stage.status; },
          [](const effect::AddTrial& e) { return "add_trial " + std::to_string(e.trial.number); },
          [](const effect::UpdateTrial& e) {
            return "update_trial " + std::to_string(e.trial.id) + " " + e.trial.status;
          },
          [](const effect::AddEdge& e) { return "add_edge " + e.edge.src + " " + e.edge.kind + " " + e.edge.dst; },
          [](const effect::RecordEpoch& e) {
            return "record_epoch " + std::to_string(e.epoch.trial_id) + " " + std::to_string(e.epoch.epoch);
          },
          [](const effect::RecordCheckpoint& e) {
            return "record_checkpoint " + std::to_string(e.trial_id) + " " + std::to_string(e.epoch);
          },
          [](const effect::PutArtifact& e) { return "put_artifact " + e.kind; },
          [](const effect::PutBlob&) { return std::string("put_blob"); },
          [](const effect::Emit& e) { return "emit " + e.event.type; },
          [](const effect::CrashPoint& e) { return std::string("crash_point ") + e.name; },
          [](const effect::Wake&) { return std::string("wake"); },
          [](const effect::CheckoutFiles& e) { return "checkout_files " + e.manifest; },
      },
      effect);
}

void StoreEffects::CheckoutFiles(const std::string& digest, const std::string& dest) {
  store::Manifest manifest = store::ParseManifest(blobs_.Get(digest));
  // Only what is missing or differs is written: a file a later stage has
  // open keeps its inode when it is already right.
  std::vector<store::TensorEntry> stale;
  for (const store::TensorEntry& e : manifest.tensors) {
    const std::string path = (std::filesystem::path(dest) / e.name).string();
    std::string have;
    try {
      have = FileSha256(path);
    } catch (const Error&) {
    }
    if (have != e.blob) stale.push_back(e);
  }
  if (stale.empty()) return;
  manifest.tensors = std::move(stale);
  store::WriteFileArtifact(manifest, [&](const std::string& blob) { return blobs_.Get(blob); }, dest);
}

Applied StoreEffects::Apply(Effect effect) {
  Applied out;
  std::visit(Overload{
                 [&](effect::UpdateRun& e) { db_.UpdateRun(e.run); },
                 [&](effect::UpdateStage& e) { db_.UpdateStage(e.stage); },
                 [&](effect::AddTrial& e) { out.id = db_.AddTrial(e.trial); },
                 [&](effect::UpdateTrial& e) { db_.UpdateTrial(e.trial); },
                 [&](effect::AddEdge& e) { db_.AddEdge(e.edge); },
                 [&](effect::RecordEpoch& e) { db_.RecordEpoch(e.epoch, e.blobs); },
                 [&](effect::RecordCheckpoint& e) { db_.RecordCheckpoint(e.digest, e.trial_id, e.epoch, e.blobs); },
                 [&](effect::PutArtifact& e) { db_.PutArtifact(e.digest, e.kind, e.stage_id, e.meta, e.blobs); },
                 [&](effect::PutBlob& e) { out.digest = blobs_.Put(e.bytes); },
                 [&](effect::Emit& e) {
                   if (on_event_) on_event_(e.event);
                 },
                 [&](effect::CrashPoint& e) { CrashPoint(e.name); },
                 [&](effect::Wake&) {
                   if (on_wake_) on_wake_();
                 },
                 [&](effect::CheckoutFiles& e) { CheckoutFiles(e.manifest, e.dest); },
             },
             effect);
  return out;
}

}  // namespace baton::orchestrator
