#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/json_util.h"
#include "maintenance/safetensors_header.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"

// A checkpoint as the REST API shows it, and as a safetensors file
// (https://huggingface.co/docs/safetensors) that Python loads without Baton.
// The functions hold no state; they are as thread-safe as the BlobStore and
// LineageDb they are given (both are).
namespace baton::maintenance {

// The most `shared_with` digests listed per tensor.
constexpr int kMaxSharedWith = 100;

// The checkpoint as GET /api/v1/checkpoints/{digest} shows it:
// {"digest", "kind", "meta", "total_bytes" (sum of the tensors' bytes, not
// counting the manifest), "tensors": [{"name", "dtype", "shape", "bytes",
// "blob", "shared_with": digests of the other recorded checkpoints that hold
// the same blob, sorted, at most kMaxSharedWith}] in manifest order,
// "recorded": {"trial_id", "epoch"} of its first recording, or null}.
// Throws Error(kNotFound) when the store has no such blob,
// Error(kInvalidArgument) when the blob is not a checkpoint manifest (or
// `digest` is not a digest), Error(kCorrupt) when the stored bytes no
// longer match their digest.
Json CheckpointJson(store::BlobStore& blobs, store::LineageDb& db,
                    const std::string& digest);

// Bytes of the whole file: header plus every tensor's bytes.
uint64_t SafetensorsSize(const store::Manifest& manifest,
                         const std::string& digest);

// Reads every tensor blob of `manifest` once, one chunk at a time, checking
// that it is in the store with the size the manifest says and still hashes
// to its digest. Throws Error(kCorrupt) naming the first tensor whose blob
// is missing, of the wrong size or corrupt; Error(kInvalidArgument) as
// SafetensorsHeader. Lets an HTTP handler answer 500 before it commits to a
// 200 and a body.
void VerifyTensorBlobs(store::BlobStore& blobs, const store::Manifest& manifest,
                       const std::string& digest);

// Streams the file: the header, then each tensor's blob in manifest order.
// Every tensor blob is checked to be in the store with the size the
// manifest says before the first byte goes out: Error(kCorrupt) names the
// first that is missing or of the wrong size. Each tensor is then read whole
// with BlobStore::Get, which verifies its SHA-256, before any of its bytes
// reach `sink` (so at most one tensor is held in memory): the sink never
// sees a corrupt byte. A corrupt tensor throws Error(kCorrupt) before the
// header is sent if it is the first, else part way through the stream (the
// caller must then abort the transfer so that the reader sees it cut
// short). `sink` returns false to stop early, which is not an error.
void WriteSafetensors(store::BlobStore& blobs, const store::Manifest& manifest,
                      const std::string& digest,
                      const std::function<bool(std::string_view)>& sink);

}  // namespace baton::maintenance
