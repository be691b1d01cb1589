#include "store/internal/rocks_blob_store.h"

#include <rocksdb/iterator.h>
#include <rocksdb/snapshot.h>

#include <unistd.h>

#include <cerrno>
#include <deque>
#include <set>
#include <system_error>
#include <unordered_set>

#include "store/internal/blob_store_errors.h"

namespace baton::store {
namespace detail {
namespace {

// Most bytes of chunks that one publishing write carries along with the
// records; the chunks of larger blobs are written ahead of it.
constexpr uint64_t kPublishBatchMax = 64ull << 20;

}  // namespace

RocksBlobStore::RocksBlobStore(std::filesystem::path dir,
                               const BlobStoreOptions& options,
                               rocksdb::DB* db)
    : dir_(std::move(dir)),
      files_(dir_ / "files"),
      options_(options),
      db_(db) {
  write_.sync = options_.sync;
  // Chunks written ahead of their record need no sync of their own: the
  // record's synced write syncs the log up to it, and unlogged chunks are
  // flushed first (MakeDurable).
  ahead_.sync = false;
  unlogged_.sync = false;
  unlogged_.disableWAL = true;
  // Records (small, in SST blocks) are always read with RocksDB's
  // checksums. Chunks are read without them when verify_on_read is on:
  // the SHA-256 is checked instead, and Debian's software CRC32C caps
  // BlobDB reads at ~1.4 GB/s.
  read_.verify_checksums = true;
  std::random_device device;
  rng_.seed((static_cast<uint64_t>(device()) << 32) ^ device());
}

RocksBlobStore::~RocksBlobStore() {
  // Every published blob is already durable; Close flushes at most the
  // chunks of unfinished writers, which the next Open sweeps anyway. Its
  // status has no caller left to report to.
  db_->Close().PermitUncheckedError();
}

void RocksBlobStore::Recover() {
  SweepFiles();
  rocksdb::WriteBatch batch;
  std::string lower = "p/", upper = "p0";
  ScanRange(lower, upper, [&](std::string_view key, std::string_view) {
    const std::string set(key.substr(2));
    const std::string begin = layout::ChunkPrefix(set);
    std::string end = begin;
    end.back() = '0';  // '/' + 1: just past every "z/<set>/..." key
    Check(batch.DeleteRange(begin, end), "sweeping an unfinished chunk set");
    Check(batch.Delete(std::string(key)), "sweeping an unfinished chunk set");
  });
  if (batch.Count() > 0) {
    Check(db_->Write(write_, &batch), "sweeping unfinished chunk sets");
  }
  uint64_t blobs = 0, bytes = 0;
  ForEach([&](const std::string&, uint64_t size) {
    ++blobs;
    bytes += size;
  });
  blobs_ = blobs;
  bytes_ = bytes;
}

std::string RocksBlobStore::Put(std::string_view bytes) {
  std::string digest = Sha256Hex(bytes);
  Store({ExpectedBlob{digest, bytes}});
  return digest;
}

bool RocksBlobStore::PutExpected(std::string_view digest,
                                 std::string_view bytes) {
  RequireDigest(digest);
  const std::string actual = Sha256Hex(bytes);
  if (actual != digest) {
    throw Error(ErrorCode::kInvalidArgument, "blob bytes hash to " + actual +
                                                 ", not the expected " +
                                                 std::string(digest));
  }
  return Store({ExpectedBlob{digest, bytes}}) > 0;
}

size_t RocksBlobStore::PutExpectedAll(const std::vector<ExpectedBlob>& blobs) {
  for (const ExpectedBlob& blob : blobs) RequireDigest(blob.digest);
  for (size_t i = 0; i < blobs.size(); ++i) {
    const std::string actual = Sha256Hex(blobs[i].bytes);
    if (actual != blobs[i].digest) {
      throw Error(ErrorCode::kInvalidArgument,
                  "blob " + std::to_string(i + 1) + " of " +
                      std::to_string(blobs.size()) + " (" +
                      std::string(blobs[i].digest) + ", " +
                      std::to_string(blobs[i].bytes.size()) +
                      " bytes): its bytes hash to " + actual +
                      "; none of the " + std::to_string(blobs.size()) +
                      " blobs was stored");
    }
  }
  return Store(blobs);
}

bool RocksBlobStore::Has(std::string_view digest) {
  RequireDigest(digest);
  return ReadRecord(digest).has_value();
}

uint64_t RocksBlobStore::Size(std::string_view digest) {
  return MustRecord(read_, digest).size;
}

std::vector<std::string> RocksBlobStore::Missing(
    const std::vector<std::string>& digests) {
  std::vector<std::string> missing;
  for (const std::string& d : digests) {
    if (!Has(d)) missing.push_back(d);
  }
  return missing;
}

std::string RocksBlobStore::Get(std::string_view digest) {
  rocksdb::ManagedSnapshot snapshot(db_.get());
  rocksdb::ReadOptions options = read_;
  options.snapshot = snapshot.snapshot();
  Record record = MustRecord(options, digest);
  std::string out;
  if (record.kind == Kind::kInline) {
    out.assign(record.Payload());
  } else if (record.kind == Kind::kFile) {
    FdCloser file{OpenFile(digest, record)};
    out.resize(record.size);
    for (uint64_t done = 0; done < record.size;) {
      const ssize_t n = ::pread(file.fd, out.data() + done,
                                record.size - done, static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) ThrowIo("blob store: reading " + FilePath(digest).string(), errno);
      if (n == 0) throw FileCorrupt(digest, "ends early");
      done += static_cast<uint64_t>(n);
    }
  } else {
    out.reserve(record.size);
    for (uint32_t i = 0; i < record.chunks; ++i) {
      rocksdb::PinnableSlice chunk;
      ReadChunk(options, digest, record, i, &chunk);
      out.append(chunk.data(), chunk.size());
    }
  }
  if (options_.verify_on_read) VerifyBytes(digest, Sha256Hex(out));
  return out;
}

void RocksBlobStore::Read(std::string_view digest,
                          const std::function<void(std::string_view)>& sink) {
  rocksdb::ManagedSnapshot snapshot(db_.get());
  rocksdb::ReadOptions options = read_;
  options.snapshot = snapshot.snapshot();
  Record record = MustRecord(options, digest);
  if (record.kind == Kind::kInline) {
    // Small enough to check before the sink sees anything.
    VerifyBytes(digest, Sha256Hex(record.Payload()));
    if (record.size > 0) sink(record.Payload());
    return;
  }
  Sha256 hash;
  if (record.kind == Kind::kFile) {
    FdCloser file{OpenFile(digest, record)};
    std::string buffer(std::max<uint64_t>(
                           1, std::min(record.size, options_.chunk_bytes)),
                       '\0');
    for (uint64_t done = 0; done < record.size;) {
      const ssize_t n =
          ::read(file.fd, buffer.data(),
                 std::min<uint64_t>(buffer.size(), record.size - done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) ThrowIo("blob store: reading " + FilePath(digest).string(), errno);
      if (n == 0) throw FileCorrupt(digest, "ends early");
      const std::string_view piece(buffer.data(), static_cast<size_t>(n));
      hash.Update(piece);
      sink(piece);
      done += static_cast<uint64_t>(n);
    }
    VerifyBytes(digest, hash.FinishHex());
    return;
  }
  for (uint32_t i = 0; i < record.chunks; ++i) {
    rocksdb::PinnableSlice chunk;
    ReadChunk(options, digest, record, i, &chunk);
    std::string_view piece(chunk.data(), chunk.size());
    hash.Update(piece);
    while (!piece.empty()) {
      const size_t n = std::min<uint64_t>(piece.size(), options_.chunk_bytes);
      sink(piece.substr(0, n));
      piece.remove_prefix(n);
    }
  }
  VerifyBytes(digest, hash.FinishHex());
}

std::unique_ptr<BlobStore::Writer> RocksBlobStore::NewWriter() {
  if (options_.file_min_bytes == UINT64_MAX) {
    return std::make_unique<ChunkWriter>(this);
  }
  return std::make_unique<FileWriter>(this);
}

void RocksBlobStore::ForEach(
    const std::function<void(const std::string&, uint64_t)>& fn) {
  ScanRange("", "g", [&](std::string_view key, std::string_view value) {
    if (!IsDigest(key)) {
      throw Error(ErrorCode::kCorrupt,
                  "blob store " + dir_.string() +
                      ": unexpected key in the blob range");
    }
    const std::string digest(key);
    fn(digest, Decode(digest, std::string(value)).size);
  });
}

void RocksBlobStore::Delete(std::string_view digest) {
  RequireDigest(digest);
  RecoverFromFullDisk();
  std::lock_guard<std::mutex> lock(StripeFor(digest));
  std::optional<Record> record = ReadRecord(digest);
  if (!record) return;
  rocksdb::WriteBatch batch;
  Check(batch.Delete(std::string(digest)), "deleting a blob");
  for (uint32_t i = 0; i < record->chunks; ++i) {
    Check(batch.Delete(layout::ChunkKey(record->chunk_set, i)),
          "deleting a blob");
  }
  Check(db_->Write(write_, &batch), "deleting blob " + std::string(digest));
  blobs_ -= 1;
  bytes_ -= record->size;
  // The record is gone; if the file stays (an unlink failing, a crash
  // now), the next Open removes it.
  if (record->kind == Kind::kFile) ::unlink(FilePath(digest).c_str());
}

BlobStoreStats RocksBlobStore::Stats() {
  return BlobStoreStats{blobs_.load(), bytes_.load()};
}

size_t RocksBlobStore::Store(const std::vector<ExpectedBlob>& blobs) {
  RecoverFromFullDisk();
  std::vector<Planned> plan;
  std::unordered_set<std::string_view> seen;
  for (const ExpectedBlob& blob : blobs) {
    if (!seen.insert(blob.digest).second) continue;
    if (ReadRecord(blob.digest)) continue;
    Planned p;
    p.digest = blob.digest;
    p.bytes = blob.bytes;
    if (blob.bytes.size() >= options_.file_min_bytes) {
      p.file = true;
    } else if (blob.bytes.size() > inline_max()) {
      const uint64_t count =
          layout::ChunkCount(blob.bytes.size(), options_.chunk_bytes);
      if (count > UINT32_MAX) {
        throw Error(ErrorCode::kInvalidArgument,
                    "blob of " + std::to_string(blob.bytes.size()) +
                        " bytes needs too many chunks");
      }
      p.chunks = static_cast<uint32_t>(count);
      p.set = NewChunkSet();
    }
    plan.push_back(std::move(p));
  }
  if (plan.empty()) return 0;

  // On a failure, drop the chunks written ahead so far (or leave them to
  // the next Open's sweep if that fails too).
  struct AheadGuard {
    RocksBlobStore* store;
    std::vector<Planned>* plan;
    bool armed = true;
    ~AheadGuard() {
      if (!armed) return;
      for (const Planned& p : *plan) {
        if (!p.ahead) continue;
        try {
          store->DiscardChunks(p.set, p.chunks);
        } catch (const Error&) {
        }
      }
    }
  } guard{this, &plan};

  // The files first: their writeback overlaps the copies of later ones.
  // Their data reaches the disk here, outside the locks; the fdatasyncs
  // after the renames below then commit metadata only (on ext4 the first
  // one commits the journal for every file and rename of the call, and
  // the folders' fsyncs find little left to do). Temporary files not
  // renamed below are removed with `plan`.
  std::deque<TempFile*> open_files;
  for (Planned& p : plan) {
    if (!p.file) continue;
    p.temp = std::make_unique<TempFile>(
        FileDir(p.digest) / (kTempPrefix + NewChunkSet()), options_.sync);
    p.temp->Write(p.bytes);
    p.temp->StartWriteback();
    open_files.push_back(p.temp.get());
    if (open_files.size() > kMaxOpenFiles) {
      open_files.front()->Finish();
      open_files.pop_front();
    }
  }
  for (TempFile* file : open_files) file->WaitWriteback();

  uint64_t carried = 0;  // chunk bytes in the publishing write
  bool flush = false;    // unlogged chunks not yet being flushed
  bool unlogged_any = false;
  for (Planned& p : plan) {
    if (p.chunks == 0 || p.file) continue;
    const bool unlogged = Unlogged(p.bytes.size());
    if (!unlogged && p.chunks == 1 &&
        carried + p.bytes.size() <= kPublishBatchMax) {
      carried += p.bytes.size();
      continue;
    }
    p.ahead = true;
    for (uint32_t i = 0; i < p.chunks; ++i) {
      if (unlogged && flush) StartFlush();  // overlaps the next copy
      WriteChunk(p.set, i,
                 p.bytes.substr(i * options_.chunk_bytes, options_.chunk_bytes),
                 unlogged);
      flush = flush || unlogged;
    }
    unlogged_any = unlogged_any || unlogged;
  }
  if (unlogged_any) MakeDurable();

  std::vector<std::unique_lock<std::mutex>> locks = LockStripes(plan);
  rocksdb::WriteBatch batch;
  size_t added = 0;
  uint64_t added_bytes = 0;
  std::set<fs::path> dirs;  // folders of files renamed into place
  for (Planned& p : plan) {
    if (ReadRecord(p.digest)) {  // stored meanwhile by another caller
      if (p.ahead) AddDiscard(&batch, p.set, p.chunks);
      p.temp.reset();  // removes its file
      continue;
    }
    const std::string digest(p.digest);
    if (p.file) {
      // A crash or failure from here on leaves files without records,
      // which the next Open removes.
      const fs::path dir = FileDir(digest);
      p.temp->RenameTo(dir / digest);
      dirs.insert(dir);
      Check(batch.Put(digest, layout::EncodeFile(p.bytes.size())),
            "committing a blob");
    } else if (p.chunks == 0) {
      Check(batch.Put(digest, layout::EncodeInline(p.bytes)),
            "committing a blob");
    } else {
      if (p.ahead) {
        Check(batch.Delete(layout::PendingKey(p.set)), "committing a blob");
      } else {
        Check(batch.Put(layout::ChunkKey(p.set, 0),
                        rocksdb::Slice(p.bytes.data(), p.bytes.size())),
              "committing a blob");
      }
      Check(batch.Put(digest, layout::EncodeChunked(p.bytes.size(),
                                                    options_.chunk_bytes,
                                                    p.chunks, p.set)),
            "committing a blob");
    }
    ++added;
    added_bytes += p.bytes.size();
  }
  for (const Planned& p : plan) {
    if (p.temp) p.temp->Finish();  // no-op for those closed or removed
  }
  if (options_.sync) {
    for (const fs::path& dir : dirs) SyncDir(dir);
  }
  if (batch.Count() > 0) {
    Check(db_->Write(write_, &batch),
          "committing " + std::to_string(added) + " blob(s)");
  }
  guard.armed = false;
  blobs_ += added;
  bytes_ += added_bytes;
  return added;
}

std::vector<std::unique_lock<std::mutex>> RocksBlobStore::LockStripes(
    const std::vector<Planned>& plan) {
  std::vector<size_t> indexes;
  for (const Planned& p : plan) indexes.push_back(StripeIndex(p.digest));
  std::sort(indexes.begin(), indexes.end());
  indexes.erase(std::unique(indexes.begin(), indexes.end()), indexes.end());
  std::vector<std::unique_lock<std::mutex>> locks;
  for (size_t i : indexes) locks.emplace_back(stripes_[i]);
  return locks;
}

void RocksBlobStore::RequireDigest(std::string_view digest) const {
  if (!IsDigest(digest)) {
    throw Error(
        ErrorCode::kInvalidArgument,
        "\"" + std::string(digest) +
            "\" is not a SHA-256 digest (64 lower-case hex characters)");
  }
}

size_t RocksBlobStore::StripeIndex(std::string_view digest) {
  return std::hash<std::string_view>{}(digest) % kStripes;
}

std::mutex& RocksBlobStore::StripeFor(std::string_view digest) {
  return stripes_[StripeIndex(digest)];
}

Record RocksBlobStore::Decode(std::string_view digest,
                              std::string value) const {
  return layout::Decode(digest, std::move(value),
                        "blob store " + dir_.string());
}

std::optional<Record> RocksBlobStore::ReadRecord(std::string_view digest) {
  return ReadRecord(read_, digest);
}

std::optional<Record> RocksBlobStore::ReadRecord(
    const rocksdb::ReadOptions& options, std::string_view digest) {
  std::string value;
  rocksdb::Status s =
      db_->Get(options, rocksdb::Slice(digest.data(), digest.size()), &value);
  if (s.IsNotFound()) return std::nullopt;
  Check(s, "reading blob " + std::string(digest));
  return Decode(digest, std::move(value));
}

Record RocksBlobStore::MustRecord(const rocksdb::ReadOptions& options,
                                  std::string_view digest) {
  RequireDigest(digest);
  std::optional<Record> record = ReadRecord(options, digest);
  if (!record) {
    throw Error(ErrorCode::kNotFound, "blob " + std::string(digest) +
                                          " is not in the store " +
                                          dir_.string());
  }
  return std::move(*record);
}

void RocksBlobStore::VerifyBytes(std::string_view digest,
                                 const std::string& actual) const {
  if (actual != digest) {
    throw Error(ErrorCode::kCorrupt,
                "blob " + std::string(digest) + " in store " + dir_.string() +
                    " is corrupt: its bytes hash to " + actual);
  }
}

void RocksBlobStore::ScanRange(
    const std::string& lower, const std::string& upper,
    const std::function<void(std::string_view, std::string_view)>& fn) {
  rocksdb::ReadOptions options = read_;
  rocksdb::Slice upper_slice(upper);
  options.iterate_upper_bound = &upper_slice;
  options.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(options));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    fn(std::string_view(it->key().data(), it->key().size()),
       std::string_view(it->value().data(), it->value().size()));
  }
  Check(it->status(), "listing blobs");
}

}  // namespace detail

std::unique_ptr<BlobStore> BlobStore::Open(const std::filesystem::path& dir,
                                           const BlobStoreOptions& options) {
  if (options.chunk_bytes == 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "blob store chunk_bytes must be > 0");
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    throw Error(ErrorCode::kUnavailable,
                "blob store " + dir.string() +
                    ": cannot create the folder: " + ec.message());
  }

  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.info_log = std::make_shared<detail::InfoLog>(dir);
  db_options.max_background_jobs = 2;
  db_options.enable_blob_files = true;
  db_options.min_blob_size = detail::layout::kMinBlobSize;
  db_options.blob_compression_type =
      rocksdb::kNoCompression;  // tensors barely compress
  // No blob garbage collection during compactions: it relocates the live
  // blobs of the oldest blob files whenever their keys are compacted, which
  // with a flush per large blob (see unlogged_min_bytes) re-reads and
  // re-writes most chunks once more. Blobs here are immutable and deleted
  // only by gc, which must then compact with it on to free their space.
  db_options.enable_blob_garbage_collection = false;
  // Room for memtables being flushed in the background (StartFlush) while
  // the next chunk is written. Default: 2.
  db_options.max_write_buffer_number = 4;

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir.string(), &raw);
  if (!s.ok()) {
    const ErrorCode code = detail::CodeFor(s);
    std::string message = "blob store " + dir.string() + ": ";
    if (code == ErrorCode::kUnavailable) {
      message += "in use by another process (a `baton serve` or `baton run` on this store: act through "
                 "that server with `baton --server URL ...`, or wait until it ends) or already open in this one: ";
    } else if (code == ErrorCode::kResourceExhausted) {
      message += std::string(detail::kFreeSpace) + ": cannot open: ";
    } else {
      message += "cannot open: ";
    }
    throw Error(code, message + s.ToString());
  }
  auto store = std::make_unique<detail::RocksBlobStore>(dir, options, raw);
  store->Recover();
  return store;
}

}  // namespace baton::store
