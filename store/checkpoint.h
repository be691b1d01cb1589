#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/json_util.h"

namespace baton::store {

// One tensor of a checkpoint or dataset: its bytes live in the blob store as
// raw contiguous little-endian data under `blob` (their SHA-256).
struct TensorEntry {
  std::string name;            // e.g. "conv1.weight"
  std::string dtype;           // "float32", "float64", "int64", "int32", "uint8", "bool"
  std::vector<int64_t> shape;  // empty for a scalar
  std::string blob;            // SHA-256 hex of the raw bytes
  uint64_t bytes = 0;          // size of the raw bytes; must equal numel * DtypeSize
};

// A checkpoint (kind "model") or prepared dataset (kind "dataset") manifest.
// Its canonical JSON is stored as a blob; that blob's digest is the id. Two
// manifests with equal tensors have equal ids, so a stage initialised from a
// checkpoint without changes stores no new bytes at all.
struct Manifest {
  static constexpr const char* kFormat = "baton.checkpoint/1";
  std::string kind = "model";
  std::vector<TensorEntry> tensors;  // kept sorted by name
  Json meta = Json::object();        // kind-specific facts (datasets: shapes, classes)
};

// Bytes per element of `dtype`; throws Error(kInvalidArgument) for an unknown one.
size_t DtypeSize(const std::string& dtype);

Json ManifestToJson(const Manifest& manifest);
// Validates the structure (format, names unique, sizes consistent, digests
// well-formed); throws Error(kCorrupt) naming what is wrong.
Manifest ManifestFromJson(const Json& json);

// Canonical bytes of the manifest (tensors sorted by name) and their digest.
std::string ManifestBytes(const Manifest& manifest);
std::string ManifestDigest(const Manifest& manifest);
Manifest ParseManifest(const std::string& bytes);

// Looks a tensor up by name; nullptr when absent.
const TensorEntry* FindTensor(const Manifest& manifest, const std::string& name);

}  // namespace baton::store
