#pragma once

// The blob store behind BlobStore::Open: RocksDB for records and chunks, files
// for large blobs. Its members are defined by responsibility in
//   rocks_blob_store.cpp   Open, the BlobStore calls, Store, records
//   blob_chunks.cpp        chunk sets and ChunkWriter
//   blob_files.cpp         file blobs and FileWriter
//   blob_store_errors.cpp  RocksDB statuses as errors, full-disk recovery
// Includes RocksDB, so only store/*.cpp may include this.
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/status.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "store/internal/blob_files.h"
#include "store/internal/blob_record.h"
#include "store/blob_store.h"

namespace baton::store::detail {

namespace layout = blob_record;
using layout::Kind;
using layout::Record;

// Stripes of the per-digest commit lock.
constexpr size_t kStripes = 64;

class RocksBlobStore;

// Streams a blob into a file once it reaches file_min_bytes (held in memory
// until then, and stored like Put if it never does); Commit publishes it.
// One Writer must be used by one thread at a time; the store must outlive it.
class FileWriter : public BlobStore::Writer {
 public:
  explicit FileWriter(RocksBlobStore* store) : store_(store) {}
  void Append(std::string_view bytes) override;
  std::string Commit() override;

 private:
  RocksBlobStore* store_;
  Sha256 hash_;
  std::string buffer_;  // the bytes so far, until the file is opened
  uint64_t size_ = 0;
  std::unique_ptr<TempFile> file_;
  bool finished_ = false;
};

// Streams a blob into chunks under a fresh chunk set; Commit publishes it.
// One Writer must be used by one thread at a time; the store must outlive it.
class ChunkWriter : public BlobStore::Writer {
 public:
  explicit ChunkWriter(RocksBlobStore* store);
  ~ChunkWriter() override;
  void Append(std::string_view bytes) override;
  std::string Commit() override;

 private:
  void Flush();

  RocksBlobStore* store_;
  Sha256 hash_;
  std::string buffer_;
  uint64_t size_ = 0;
  uint32_t chunks_ = 0;
  std::string set_;
  bool unlogged_ = false;   // some chunk bypassed the write-ahead log
  bool finished_ = false;   // Commit was called (the hash is final)
  bool published_ = false;  // the chunks now belong to a record or are gone
};

class RocksBlobStore : public BlobStore {
 public:
  RocksBlobStore(std::filesystem::path dir, const BlobStoreOptions& options,
                 rocksdb::DB* db);
  ~RocksBlobStore() override;

  // Removes chunk sets and files left behind by a crash and counts the
  // blobs.
  void Recover();

  std::string Put(std::string_view bytes) override;
  bool PutExpected(std::string_view digest, std::string_view bytes) override;
  size_t PutExpectedAll(const std::vector<ExpectedBlob>& blobs) override;
  bool Has(std::string_view digest) override;
  uint64_t Size(std::string_view digest) override;
  std::vector<std::string> Missing(
      const std::vector<std::string>& digests) override;

  // Get and Read see one snapshot, so a concurrent Delete cannot pull chunks
  // from under them. Get checks the SHA-256 with verify_on_read; Read always
  // does, as its contract says.
  std::string Get(std::string_view digest) override;
  void Read(std::string_view digest,
            const std::function<void(std::string_view)>& sink) override;

  std::unique_ptr<Writer> NewWriter() override;
  void ForEach(
      const std::function<void(const std::string&, uint64_t)>& fn) override;
  void Delete(std::string_view digest) override;
  BlobStoreStats Stats() override;

  // After a write failed for want of space, RocksDB refuses every write
  // (a background error) until it has recovered: by itself, checking every
  // 5 s whether the disk has kRoomToRecover free, or by Resume. While the
  // flag is up each write first resumes, or, when the disk has room and
  // RocksDB's own recovery is under way (Resume answers Busy), waits up to
  // kRecoveryWait for it. Otherwise the write fails with its reason.
  void RecoverFromFullDisk();

  // --- used by FileWriter --------------------------------------------------

  uint64_t file_min_bytes() const { return options_.file_min_bytes; }

  // A temporary file for a blob whose digest is not known yet.
  std::unique_ptr<TempFile> NewTempFile();

  // Stores bytes already hashed to `digest`, as Put does.
  void StoreHashed(const std::string& digest, std::string_view bytes);

  // Renames `file`, the whole blob `digest`, into place, makes it and its
  // folder durable and then writes its record (synced). Returns false, and
  // leaves `file` to its owner to remove, if the store already has the blob.
  bool PublishFile(const std::string& digest, TempFile* file, uint64_t size);

  // --- used by ChunkWriter -------------------------------------------------

  uint64_t chunk_bytes() const { return options_.chunk_bytes; }
  uint64_t inline_max() const {
    return std::min(layout::kInlineMax, options_.chunk_bytes);
  }
  // Whether a blob of (at least) `size` bytes is written unlogged.
  bool Unlogged(uint64_t size) const {
    return options_.sync && size >= options_.unlogged_min_bytes;
  }

  std::string NewChunkSet();

  // Writes chunk `index` of `set` ahead of its record, unsynced, and
  // `unlogged` also without the write-ahead log; the first chunk also marks
  // the set pending (in the same write, so the marker is as durable as any
  // chunk of the set: a crash leaves either nothing or a set that Open
  // sweeps).
  void WriteChunk(const std::string& set, uint32_t index,
                  std::string_view bytes, bool unlogged);

  // Starts flushing the memtable in the background, so that the next chunk
  // is copied in while this one is written out (the last call before
  // MakeDurable is then cheaper to wait for).
  void StartFlush();

  // Makes every unlogged write so far durable: flushes the memtable into
  // synced SST and blob files, and waits for earlier flushes too.
  void MakeDurable();

  // Drops a chunk set that will never be committed. Unsynced: if the drop
  // is lost in a crash, the set's pending marker comes back with it.
  void DiscardChunks(const std::string& set, uint32_t chunks);

  // Publishes a record with a durable write. Returns false (and writes
  // nothing) if the blob already exists. `set` is non-empty for chunked
  // records, whose chunks must already be durable or in the log.
  bool CommitRecord(const std::string& digest, const std::string& record,
                    uint64_t size, const std::string& set);

 private:
  // A blob of a Store call that the store lacked when the call began.
  struct Planned {
    std::string_view digest;
    std::string_view bytes;
    uint32_t chunks = 0;  // 0: inline
    std::string set;      // its chunk set, when chunked
    bool ahead = false;   // chunks written ahead of the record (set pending)
    bool file = false;    // stored as a file (then chunks is 0)
    std::unique_ptr<TempFile> temp;  // the file, written ahead of the record
  };

  // Stores blobs whose digests are already checked; returns how many were
  // new. Blobs of file_min_bytes and more are written to temporary files
  // first; under the digests' locks they are renamed into place, each
  // fdatasync'd, each folder touched fsync'd once, and one synced write then
  // publishes every record (and the small blobs). Small chunked blobs travel
  // in that write; larger ones are written ahead (unlogged when Unlogged),
  // then made durable, then published.
  size_t Store(const std::vector<ExpectedBlob>& blobs);

  void AddDiscard(rocksdb::WriteBatch* batch, const std::string& set,
                  uint32_t chunks);

  // Locks the stripes of every planned digest, in index order (no deadlock
  // between two calls that share stripes).
  std::vector<std::unique_lock<std::mutex>> LockStripes(
      const std::vector<Planned>& plan);

  void RequireDigest(std::string_view digest) const;

  static size_t StripeIndex(std::string_view digest);
  std::mutex& StripeFor(std::string_view digest);

  void Check(const rocksdb::Status& s, const std::string& action) const;

  Record Decode(std::string_view digest, std::string value) const;

  std::optional<Record> ReadRecord(std::string_view digest);
  std::optional<Record> ReadRecord(const rocksdb::ReadOptions& options,
                                   std::string_view digest);
  Record MustRecord(const rocksdb::ReadOptions& options,
                    std::string_view digest);

  void ReadChunk(const rocksdb::ReadOptions& options, std::string_view digest,
                 const Record& record, uint32_t index,
                 rocksdb::PinnableSlice* out);

  fs::path FileDir(std::string_view digest) const;
  fs::path FilePath(std::string_view digest) const;

  Error FileCorrupt(std::string_view digest, const std::string& what) const;

  // Opens the file of a file blob, checking its size against the record.
  int OpenFile(std::string_view digest, const Record& record);

  // Creates files/ and its 256 folders if missing; removes temporary files
  // and files that no record names (a crash between renaming a file into
  // place and writing its record, or after deleting a record).
  void SweepFiles();

  void VerifyBytes(std::string_view digest, const std::string& actual) const;

  // Calls fn(key, value) for every key in [lower, upper).
  void ScanRange(
      const std::string& lower, const std::string& upper,
      const std::function<void(std::string_view, std::string_view)>& fn);

  friend class FileWriter;

  const std::filesystem::path dir_;
  const std::filesystem::path files_;  // large blobs: files/<2 hex>/<digest>
  const BlobStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_;     // publishing: synced with options_.sync
  rocksdb::WriteOptions ahead_;     // chunks ahead of their record
  rocksdb::WriteOptions unlogged_;  // large chunks: no write-ahead log
  rocksdb::ReadOptions read_;
  // Serialise check-then-write per digest, so a blob is committed (and
  // counted) once however many threads put it.
  std::array<std::mutex, kStripes> stripes_;
  std::atomic<uint64_t> blobs_{0};
  std::atomic<uint64_t> bytes_{0};
  // A write failed for want of space (see RecoverFromFullDisk).
  mutable std::atomic<bool> out_of_space_{false};
  std::mutex recovery_mu_;  // one writer waits for the recovery at a time
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

}  // namespace baton::store::detail
