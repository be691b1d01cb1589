#include "maintenance/checkpoint_export.h"

#include <map>
#include <set>
#include <vector>

#include "common/error.h"

namespace baton::maintenance {
namespace {

// A manifest is a few hundred bytes per tensor; a blob far larger than any
// real one is a tensor or dataset, and is not read into memory to find out.
constexpr uint64_t kMaxManifestBytes = 64ull << 20;

store::Manifest LoadManifest(store::BlobStore& blobs,
                             const std::string& digest) {
  const uint64_t size = blobs.Size(digest);  // kNotFound when absent
  if (size > kMaxManifestBytes) {
    throw Error(ErrorCode::kInvalidArgument,
                "blob " + digest + " is not a checkpoint manifest (" +
                    std::to_string(size) + " bytes)");
  }
  const std::string bytes = blobs.Get(digest);
  try {
    return store::ParseManifest(bytes);
  } catch (const Error& e) {
    // ParseManifest says kCorrupt: of a blob stored as a manifest it would
    // be; here the caller named a blob that is something else.
    throw Error(ErrorCode::kInvalidArgument,
                "blob " + digest + " is not a checkpoint manifest: " + e.what());
  }
}

// The other checkpoints that hold `blob`, sorted, at most kMaxSharedWith.
std::vector<std::string> SharedWith(store::LineageDb& db,
                                    const std::string& blob,
                                    const std::string& self) {
  std::vector<std::string> digests =
      db.CheckpointsWithBlob(blob, kMaxSharedWith + 1);  // +1: self may be one
  for (auto it = digests.begin(); it != digests.end(); ++it) {
    if (*it == self) {
      digests.erase(it);
      break;
    }
  }
  if (digests.size() > static_cast<size_t>(kMaxSharedWith)) {
    digests.resize(kMaxSharedWith);
  }
  return digests;
}

Json RecordedJson(store::LineageDb& db, const std::string& digest) {
  const auto found = db.FindCheckpoint(digest);
  if (!found) return nullptr;
  return Json{{"trial_id", found->first}, {"epoch", found->second}};
}

// The manifest validated and sorted by name, as ManifestFromJson leaves it;
// a hand-built one that would not round-trip is the caller's mistake.
store::Manifest Checked(const store::Manifest& manifest) {
  try {
    return store::ManifestFromJson(store::ManifestToJson(manifest));
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument, e.what(), e.pointer());
  }
}

uint64_t TensorBytes(const store::Manifest& manifest) {
  uint64_t total = 0;
  for (const store::TensorEntry& t : manifest.tensors) total += t.bytes;
  return total;
}

// Fails before anything is sent rather than part way through the stream.
void RequireTensorBlobs(store::BlobStore& blobs,
                        const store::Manifest& manifest,
                        const std::string& digest) {
  for (const store::TensorEntry& t : manifest.tensors) {
    const std::string what =
        "checkpoint " + digest + ": tensor \"" + t.name + "\"'s blob " + t.blob;
    if (!blobs.Has(t.blob)) {
      throw Error(ErrorCode::kCorrupt, what + " is missing from the store");
    }
    const uint64_t size = blobs.Size(t.blob);
    if (size != t.bytes) {
      throw Error(ErrorCode::kCorrupt,
                  what + " has " + std::to_string(size) + " bytes, the manifest says " +
                      std::to_string(t.bytes));
    }
  }
}

// One tensor's bytes, verified against its digest (BlobStore::Get) and the
// size the header promised, before any of them is sent.
std::string VerifiedTensor(store::BlobStore& blobs, const store::TensorEntry& t,
                           const std::string& digest) {
  std::string bytes = blobs.Get(t.blob);  // kCorrupt when they no longer hash to t.blob
  if (bytes.size() != t.bytes) {
    throw Error(ErrorCode::kCorrupt, "checkpoint " + digest + ": tensor \"" + t.name + "\"'s blob " + t.blob +
                                         " has " + std::to_string(bytes.size()) + " bytes, the manifest says " +
                                         std::to_string(t.bytes));
  }
  return bytes;
}

}  // namespace

Json CheckpointJson(store::BlobStore& blobs, store::LineageDb& db,
                    const std::string& digest) {
  const store::Manifest manifest = LoadManifest(blobs, digest);
  // Tensors often share a blob within one checkpoint (equal zero biases).
  std::map<std::string, std::vector<std::string>> shared;
  Json tensors = Json::array();
  for (const store::TensorEntry& t : manifest.tensors) {
    auto it = shared.find(t.blob);
    if (it == shared.end()) {
      it = shared.emplace(t.blob, SharedWith(db, t.blob, digest)).first;
    }
    tensors.push_back({{"name", t.name},
                       {"dtype", t.dtype},
                       {"shape", t.shape},
                       {"bytes", t.bytes},
                       {"blob", t.blob},
                       {"shared_with", it->second}});
  }
  return Json{{"digest", digest},
              {"kind", manifest.kind},
              {"meta", manifest.meta},
              {"total_bytes", TensorBytes(manifest)},
              {"tensors", std::move(tensors)},
              {"recorded", RecordedJson(db, digest)}};
}

uint64_t SafetensorsSize(const store::Manifest& manifest,
                         const std::string& digest) {
  const store::Manifest checked = Checked(manifest);
  // SafetensorsHeader has checked that the sum does not overflow.
  return SafetensorsHeader(checked, digest).size() + TensorBytes(checked);
}

void VerifyTensorBlobs(store::BlobStore& blobs, const store::Manifest& manifest,
                       const std::string& digest) {
  const store::Manifest checked = Checked(manifest);
  SafetensorsHeader(checked, digest);  // what WriteSafetensors would refuse, refused here
  RequireTensorBlobs(blobs, checked, digest);
  std::set<std::string> verified;  // tensors often share a blob
  for (const store::TensorEntry& t : checked.tensors) {
    if (!verified.insert(t.blob).second) continue;
    try {
      blobs.Read(t.blob, [](std::string_view) {});
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kCorrupt && e.code() != ErrorCode::kNotFound) throw;
      throw Error(ErrorCode::kCorrupt, "checkpoint " + digest + ": tensor \"" + t.name + "\": " + e.what());
    }
  }
}

void WriteSafetensors(store::BlobStore& blobs, const store::Manifest& manifest,
                      const std::string& digest,
                      const std::function<bool(std::string_view)>& sink) {
  const store::Manifest checked = Checked(manifest);
  const std::string header = SafetensorsHeader(checked, digest);
  RequireTensorBlobs(blobs, checked, digest);
  if (checked.tensors.empty()) {
    sink(header);
    return;
  }
  for (size_t i = 0; i < checked.tensors.size(); ++i) {
    // One tensor in memory at a time; the first is read before the header
    // goes out, so that its corruption still leaves nothing sent.
    const std::string bytes = VerifiedTensor(blobs, checked.tensors[i], digest);
    if (i == 0 && !sink(header)) return;
    if (!sink(bytes)) return;  // the reader went away: not an error
  }
}

}  // namespace baton::maintenance
