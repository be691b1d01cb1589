#pragma once

#include <cstdint>
#include <string>
#include <string_view>

// The blob store's key/value layout, apart from RocksDB so that it can be
// read (and tested) on its own. Internal to store/.
//
// Keys (one RocksDB, default column family):
//
//   <digest>          64 lower-case hex characters: the blob's record.
//   p/<set>           a chunk set being written; swept on Open.
//   z/<set>/<index>   chunk <index> (8 hex digits) of chunk set <set>.
//
// Every key other than a record sorts after "f", so listing the records means
// iterating ["", "g") only.
//
// A record is always small (under kMinBlobSize), so it stays in the SST files
// and Has, Size, ForEach and Stats never read BlobDB's blob files:
//
//   [0]      record version (1 or 2)
//   [1]      kind: 0 = inline, 1 = chunked, 2 = file (version 2 only)
//   [2, 10)  size of the blob in bytes (u64, little-endian)
//   inline:  [10, 10 + size) the bytes themselves
//   chunked: [10, 18) chunk size (u64), [18, 22) chunk count (u32),
//            [22, ...) the chunk set id
//   file:    nothing more: the bytes are the file files/<first 2 hex>/<digest>
//            under the store's folder
//
// Version 2 only adds the file kind. Inline and chunked records are still
// written as version 1, so a store without file blobs stays readable by
// binaries that know version 1 only; a version 1 store reads unchanged.
//
// Blobs of up to kInlineMax bytes are inline; larger ones are chunked (one or
// more chunks of at most the store's chunk_bytes), and their chunks, being
// at least kMinBlobSize, live in blob files. Chunks are written under a fresh
// chunk set id and become reachable only when the record is committed, so a
// crash mid-write never leaves a record pointing at missing chunks.

namespace baton::store::blob_record {

// RocksDB's min_blob_size: values from this size on go to blob files.
constexpr uint64_t kMinBlobSize = 4096;
// Largest inline blob: its record stays below kMinBlobSize.
constexpr uint64_t kInlineMax = kMinBlobSize - 64;
constexpr uint64_t kHeaderBytes = 10;

enum class Kind : char { kInline = 0, kChunked = 1, kFile = 2 };

struct Record {
  std::string value;  // the encoded record
  Kind kind = Kind::kInline;
  uint64_t size = 0;        // blob bytes
  uint64_t chunk_size = 0;  // chunked only
  uint32_t chunks = 0;      // chunked only
  std::string chunk_set;    // chunked only

  // The bytes of an inline blob.
  std::string_view Payload() const {
    return std::string_view(value).substr(kHeaderBytes);
  }
  // Size of chunk `index`: chunk_size for all but the last one.
  uint64_t ChunkLength(uint32_t index) const {
    return index + 1 < chunks ? chunk_size : size - chunk_size * (chunks - 1);
  }
};

std::string EncodeInline(std::string_view bytes);
std::string EncodeChunked(uint64_t size, uint64_t chunk_size, uint32_t chunks,
                          const std::string& chunk_set);
std::string EncodeFile(uint64_t size);
// Decodes and checks a record; throws Error(kCorrupt) naming `digest` and
// `where` (the store) if it is malformed.
Record Decode(std::string_view digest, std::string value,
              const std::string& where);

uint64_t ChunkCount(uint64_t size, uint64_t chunk_size);
std::string ChunkPrefix(const std::string& chunk_set);  // "z/<set>/"
std::string ChunkKey(const std::string& chunk_set, uint64_t index);
std::string PendingKey(const std::string& chunk_set);  // "p/<set>"

}  // namespace baton::store::blob_record
