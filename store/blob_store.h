#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace baton::store {

struct BlobStoreOptions {
  // Make every put durable before it returns. Default: true (an acknowledged
  // blob survives power loss).
  bool sync = true;
  // Verify the SHA-256 on every Get. RocksDB's own block checksums are turned
  // off for reads where this is on (the SHA-256 is stronger and, with SHA-NI,
  // faster than Debian's software CRC32C). Default: true.
  bool verify_on_read = true;
  // Blobs larger than this are stored in chunks of this size, so that a
  // tensor of hundreds of MB never has to sit in one RocksDB value.
  // Default: 16 MiB.
  uint64_t chunk_bytes = 16ull << 20;
  // With sync, blobs of at least this many bytes bypass RocksDB's write-ahead
  // log: their chunks are written unlogged, made durable by a flush of the
  // memtable into a synced blob file, and only then is the blob's record
  // published (with a synced log write). This writes a large blob's bytes to
  // disk once instead of twice (log, then blob file). A crash before the
  // record is published leaves no visible blob. Default: 4 MiB.
  uint64_t unlogged_min_bytes = 4ull << 20;
  // Blobs of at least this many bytes are stored as files
  // DIR/files/<first 2 hex>/<digest>, outside RocksDB, which then holds only
  // a small record naming the size. A file is written to a temporary file,
  // fsync'd and renamed into place, and its folder fsync'd, before its record
  // is written. A Writer holds up to this many bytes in memory before it
  // opens its file. UINT64_MAX keeps every blob in RocksDB. Default: 1 MiB
  // (bench/RESULTS.md: 16 MiB blobs are ingested 1.5-2x faster as files,
  // written once instead of to RocksDB's log and then its blob file; the
  // example CNN's 1.6 MB tensor commits as fast either way, within noise).
  uint64_t file_min_bytes = 1ull << 20;
};

// A blob to store under the digest its bytes must hash to.
struct ExpectedBlob {
  std::string_view digest;  // 64 lower-case hex characters
  std::string_view bytes;
};

struct BlobStoreStats {
  uint64_t blobs = 0;  // number of distinct blobs
  uint64_t bytes = 0;  // sum of their sizes
};

// Content-addressed bytes: the key is the SHA-256 of the bytes. Small blobs
// live in RocksDB with integrated BlobDB, large ones (file_min_bytes) in
// files named by digest, each with a record in RocksDB; a blob is visible
// once its record is. Open sweeps what a crash left behind: temporary files,
// and files of large blobs whose record was never written (they are removed,
// not adopted: their put never returned, so the caller puts them again).
// All methods are safe to call from many threads.
class BlobStore {
 public:
  // Opens or creates the store in `dir`. Throws Error(kUnavailable) if another
  // process holds it, Error(kCorrupt) if it cannot be read.
  static std::unique_ptr<BlobStore> Open(const std::filesystem::path& dir,
                                         const BlobStoreOptions& options = {});
  virtual ~BlobStore() = default;

  // Stores `bytes` and returns their digest. Idempotent: a blob the store
  // already has is not written again.
  virtual std::string Put(std::string_view bytes) = 0;
  // Stores `bytes` under `digest` after checking that they hash to it; throws
  // Error(kInvalidArgument) if they do not. Returns true if the blob was new.
  virtual bool PutExpected(std::string_view digest, std::string_view bytes) = 0;
  // Stores every blob of `blobs`, all or nothing: first checks that each
  // one's bytes hash to its digest and throws Error(kInvalidArgument) naming
  // the first that does not, having stored none; then publishes the new ones
  // together, with one durable write. A blob the store already has, or that
  // appears twice, is stored once. Returns how many blobs were new.
  virtual size_t PutExpectedAll(const std::vector<ExpectedBlob>& blobs) = 0;

  virtual bool Has(std::string_view digest) = 0;
  // Size in bytes; throws Error(kNotFound).
  virtual uint64_t Size(std::string_view digest) = 0;
  // Returns the subset of `digests` the store does not have, in order.
  virtual std::vector<std::string> Missing(const std::vector<std::string>& digests) = 0;

  // The bytes of a blob. Throws Error(kNotFound) if absent and
  // Error(kCorrupt) if they no longer hash to the digest (with verify_on_read);
  // never returns bad bytes.
  virtual std::string Get(std::string_view digest) = 0;
  // Streams a blob in chunks of at most chunk_bytes; verifies the digest over
  // the whole stream and throws Error(kCorrupt) at the end if it does not
  // match (the sink has then seen bad bytes and must discard them).
  virtual void Read(std::string_view digest,
                    const std::function<void(std::string_view)>& sink) = 0;

  // Writes a large blob piece by piece; the digest is known at Commit. The
  // blob is durable (with sync) and visible only once Commit returns.
  class Writer {
   public:
    virtual ~Writer() = default;
    virtual void Append(std::string_view bytes) = 0;
    // Makes the blob visible and returns its digest. Idempotent like Put.
    virtual std::string Commit() = 0;
  };
  virtual std::unique_ptr<Writer> NewWriter() = 0;

  // Calls `fn(digest, size)` for every blob (for fsck, gc and du).
  virtual void ForEach(const std::function<void(const std::string&, uint64_t)>& fn) = 0;
  // Deletes a blob; a missing one is not an error.
  virtual void Delete(std::string_view digest) = 0;
  virtual BlobStoreStats Stats() = 0;
};

}  // namespace baton::store
