#include "store/blob_store.h"

#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/status.h>
#include <rocksdb/write_batch.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <system_error>
#include <thread>
#include <unordered_set>

#include "common/digest.h"
#include "common/error.h"
#include "store/blob_record.h"

namespace baton::store {
namespace {

namespace layout = blob_record;
using layout::Kind;
using layout::Record;

// Stripes of the per-digest commit lock.
constexpr size_t kStripes = 64;
// Most bytes of chunks that one publishing write carries along with the
// records; the chunks of larger blobs are written ahead of it.
constexpr uint64_t kPublishBatchMax = 64ull << 20;

// What the user should do once a write failed for want of space.
constexpr char kFreeSpace[] =
    "out of space; free space on its file system, then retry (a stopped run: "
    "`baton resume RUN`)";

// A full disk or quota: RocksDB reports ENOSPC as NoSpace, EDQUOT and EFBIG
// as plain IO errors carrying strerror's text.
bool IsOutOfSpace(const rocksdb::Status& s) {
  if (s.IsNoSpace()) return true;
  if (!s.IsIOError()) return false;
  const std::string text = s.ToString();
  for (int err : {ENOSPC, EDQUOT, EFBIG}) {
    if (text.find(std::strerror(err)) != std::string::npos) return true;
  }
  return false;
}

ErrorCode CodeFor(const rocksdb::Status& s) {
  if (s.IsIOError() && s.ToString().find("/LOCK") != std::string::npos) {
    return ErrorCode::kUnavailable;
  }
  if (IsOutOfSpace(s)) return ErrorCode::kResourceExhausted;
  if (s.IsBusy() || s.IsTryAgain() || s.IsTimedOut()) {
    return ErrorCode::kUnavailable;
  }
  if (s.IsCorruption()) return ErrorCode::kCorrupt;
  return ErrorCode::kInternal;
}


namespace fs = std::filesystem;

// RocksDB's info log (DIR/LOG; the previous session's in DIR/LOG.old),
// written with plain write(2)s whose failures are ignored. RocksDB's own
// file logger aborts the process (an assertion left on in Debian's build)
// when it logs again after a write failed, as it does on a full disk.
class InfoLog : public rocksdb::Logger {
 public:
  explicit InfoLog(const fs::path& dir)
      : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {
    const fs::path file = dir / "LOG";
    ::rename(file.c_str(), (dir / "LOG.old").c_str());  // absent at first
    fd_ = ::open(file.c_str(),
                 O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
  }
  ~InfoLog() override {
    if (fd_ >= 0) ::close(fd_);
  }

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override {
    if (fd_ < 0) return;
    char line[1024];
    const std::time_t now = std::time(nullptr);
    struct tm utc;
    gmtime_r(&now, &utc);
    size_t n = std::strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%SZ ", &utc);
    const int m = std::vsnprintf(line + n, sizeof(line) - n - 1, format, ap);
    n = std::min(sizeof(line) - 2, n + static_cast<size_t>(std::max(m, 0)));
    line[n++] = '\n';
    if (::write(fd_, line, n) < 0) {
      // A full disk: the line is lost, the store goes on.
    }
  }

 private:
  int fd_ = -1;
};

// How long a write waits for RocksDB to recover from a full disk once the
// disk has kRoomToRecover bytes free again: RocksDB checks every 5 s, and
// resumes once a memtable's worth (write_buffer_size, 64 MiB by default)
// is free.
constexpr std::chrono::seconds kRecoveryWait{7};
constexpr uint64_t kRoomToRecover = 64ull << 20;

// Bytes of a blob file written between two requests to start writing them
// back (sync_file_range), so that the disk works while later bytes are copied
// in and the final fdatasync has little left to wait for.
constexpr uint64_t kWritebackBytes = 8ull << 20;
// Most blob files of one put kept open until they are renamed into place;
// beyond that, older ones are fdatasync'd and closed before the rename.
constexpr size_t kMaxOpenFiles = 64;
// Name prefix of temporary blob files; Open removes every file that has it.
constexpr char kTempPrefix[] = ".tmp-";

[[noreturn]] void ThrowIo(const std::string& action, int err) {
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
    throw Error(ErrorCode::kResourceExhausted,
                action + ": " + std::strerror(err) + ": " + kFreeSpace);
  }
  const bool busy = err == EMFILE || err == ENFILE || err == ENOMEM;
  throw Error(busy ? ErrorCode::kUnavailable : ErrorCode::kInternal,
              action + ": " + std::strerror(err));
}

// Makes the entries of folder `dir` (a new or renamed file) durable.
void SyncDir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) ThrowIo("blob store: opening folder " + dir.string(), errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) ThrowIo("blob store: syncing folder " + dir.string(), err);
}

// A temporary blob file being written. Removed when destroyed unless it was
// renamed into place. Used by one thread at a time.
class TempFile {
 public:
  // Creates `path`, which must not exist.
  TempFile(fs::path path, bool sync) : path_(std::move(path)), sync_(sync) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) ThrowIo("blob store: creating " + path_.string(), errno);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!renamed_) ::unlink(path_.c_str());  // best effort; Open sweeps it
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  // Appends `bytes` (no copy) and, with sync, starts writing them back every
  // kWritebackBytes.
  void Write(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        ThrowIo("blob store: writing " + path_.string(), errno);
      }
      bytes.remove_prefix(static_cast<size_t>(n));
      written_ += static_cast<uint64_t>(n);
      if (written_ - started_ >= kWritebackBytes) StartWriteback();
    }
  }
  // With sync, starts writing back what has not been yet (a hint: errors show
  // up in Finish's fdatasync).
  void StartWriteback() {
    if (!sync_ || written_ == started_) return;
    ::sync_file_range(fd_, static_cast<off_t>(started_),
                      static_cast<off_t>(written_ - started_),
                      SYNC_FILE_RANGE_WRITE);
    started_ = written_;
  }
  // With sync, waits until every byte written has reached the disk (no
  // journal commit, no cache flush: that is left to Finish, which then has
  // only metadata to commit).
  void WaitWriteback() {
    if (!sync_ || fd_ < 0) return;
    StartWriteback();
    ::sync_file_range(fd_, 0, 0,
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                          SYNC_FILE_RANGE_WAIT_AFTER);
  }
  // With sync, makes the bytes durable (fdatasync: a new file's size is
  // part of its data); then closes the file. Once closed, does nothing.
  void Finish() {
    if (fd_ < 0) return;
    if (sync_ && ::fdatasync(fd_) != 0) {
      ThrowIo("blob store: syncing " + path_.string(), errno);
    }
    ::close(fd_);
    fd_ = -1;
  }
  // Renames the file to `target` (replacing a leftover there, which holds
  // the same bytes or is one that no record names). The file may still be
  // open: a crash before Finish leaves a file that no record names, which
  // Open removes.
  void RenameTo(const fs::path& target) {
    if (::rename(path_.c_str(), target.c_str()) != 0) {
      ThrowIo("blob store: renaming " + path_.string() + " to " +
                  target.string(),
              errno);
    }
    renamed_ = true;
  }

 private:
  fs::path path_;
  bool sync_;
  int fd_ = -1;
  uint64_t written_ = 0;  // bytes written
  uint64_t started_ = 0;  // bytes whose writeback was started
  bool renamed_ = false;
};

// Closes a file descriptor on scope exit.
struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

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

  ~RocksBlobStore() override {
    // Every published blob is already durable; Close flushes at most the
    // chunks of unfinished writers, which the next Open sweeps anyway. Its
    // status has no caller left to report to.
    db_->Close().PermitUncheckedError();
  }

  // Removes chunk sets and files left behind by a crash and counts the
  // blobs.
  void Recover() {
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

  std::string Put(std::string_view bytes) override {
    std::string digest = Sha256Hex(bytes);
    Store({ExpectedBlob{digest, bytes}});
    return digest;
  }

  bool PutExpected(std::string_view digest, std::string_view bytes) override {
    RequireDigest(digest);
    const std::string actual = Sha256Hex(bytes);
    if (actual != digest) {
      throw Error(ErrorCode::kInvalidArgument, "blob bytes hash to " + actual +
                                                   ", not the expected " +
                                                   std::string(digest));
    }
    return Store({ExpectedBlob{digest, bytes}}) > 0;
  }

  size_t PutExpectedAll(const std::vector<ExpectedBlob>& blobs) override {
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

  bool Has(std::string_view digest) override {
    RequireDigest(digest);
    return ReadRecord(digest).has_value();
  }

  uint64_t Size(std::string_view digest) override {
    return MustRecord(read_, digest).size;
  }

  std::vector<std::string> Missing(
      const std::vector<std::string>& digests) override {
    std::vector<std::string> missing;
    for (const std::string& d : digests) {
      if (!Has(d)) missing.push_back(d);
    }
    return missing;
  }

  // Get and Read see one snapshot, so a concurrent Delete cannot pull chunks
  // from under them. Get checks the SHA-256 with verify_on_read; Read always
  // does, as its contract says.
  std::string Get(std::string_view digest) override {
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

  void Read(std::string_view digest,
            const std::function<void(std::string_view)>& sink) override {
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

  std::unique_ptr<Writer> NewWriter() override {
    if (options_.file_min_bytes == UINT64_MAX) {
      return std::make_unique<ChunkWriter>(this);
    }
    return std::make_unique<FileWriter>(this);
  }

  void ForEach(
      const std::function<void(const std::string&, uint64_t)>& fn) override {
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

  void Delete(std::string_view digest) override {
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

  BlobStoreStats Stats() override {
    return BlobStoreStats{blobs_.load(), bytes_.load()};
  }

  // After a write failed for want of space, RocksDB refuses every write
  // (a background error) until it has recovered: by itself, checking every
  // 5 s whether the disk has kRoomToRecover free, or by Resume. While the
  // flag is up each write first resumes, or, when the disk has room and
  // RocksDB's own recovery is under way (Resume answers Busy), waits up to
  // kRecoveryWait for it. Otherwise the write fails with its reason.
  void RecoverFromFullDisk() {
    if (!out_of_space_.load()) return;
    std::lock_guard<std::mutex> lock(recovery_mu_);
    const auto give_up = std::chrono::steady_clock::now() + kRecoveryWait;
    while (out_of_space_.load()) {
      const rocksdb::Status s = db_->Resume();
      if (s.ok()) {
        out_of_space_.store(false);
        return;
      }
      struct statvfs st;
      if (!s.IsBusy() || ::statvfs(dir_.c_str(), &st) != 0 ||
          static_cast<uint64_t>(st.f_bavail) * st.f_frsize < kRoomToRecover ||
          std::chrono::steady_clock::now() >= give_up) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  // --- used by FileWriter --------------------------------------------------

  uint64_t file_min_bytes() const { return options_.file_min_bytes; }

  // A temporary file for a blob whose digest is not known yet.
  std::unique_ptr<TempFile> NewTempFile() {
    return std::make_unique<TempFile>(files_ / (kTempPrefix + NewChunkSet()),
                                      options_.sync);
  }

  // Stores bytes already hashed to `digest`, as Put does.
  void StoreHashed(const std::string& digest, std::string_view bytes) {
    Store({ExpectedBlob{digest, bytes}});
  }

  // Renames `file`, the whole blob `digest`, into place, makes it and its
  // folder durable and then writes its record (synced). Returns false, and
  // leaves `file` to its owner to remove, if the store already has the blob.
  bool PublishFile(const std::string& digest, TempFile* file, uint64_t size) {
    RecoverFromFullDisk();
    if (ReadRecord(digest)) return false;
    file->WaitWriteback();
    std::lock_guard<std::mutex> lock(StripeFor(digest));
    if (ReadRecord(digest)) return false;
    const fs::path dir = FileDir(digest);
    file->RenameTo(dir / digest);
    file->Finish();
    if (options_.sync) SyncDir(dir);
    Check(db_->Put(write_, digest, layout::EncodeFile(size)),
          "committing blob " + digest);
    blobs_ += 1;
    bytes_ += size;
    return true;
  }

  // --- used by ChunkWriter -------------------------------------------------

  uint64_t chunk_bytes() const { return options_.chunk_bytes; }
  uint64_t inline_max() const {
    return std::min(layout::kInlineMax, options_.chunk_bytes);
  }
  // Whether a blob of (at least) `size` bytes is written unlogged.
  bool Unlogged(uint64_t size) const {
    return options_.sync && size >= options_.unlogged_min_bytes;
  }

  std::string NewChunkSet() {
    std::lock_guard<std::mutex> lock(rng_mu_);
    char buf[40];
    std::snprintf(buf, sizeof(buf), "%016llx%016llx",
                  static_cast<unsigned long long>(rng_()),
                  static_cast<unsigned long long>(rng_()));
    return buf;
  }

  // Writes chunk `index` of `set` ahead of its record, unsynced, and
  // `unlogged` also without the write-ahead log; the first chunk also marks
  // the set pending (in the same write, so the marker is as durable as any
  // chunk of the set: a crash leaves either nothing or a set that Open
  // sweeps).
  void WriteChunk(const std::string& set, uint32_t index,
                  std::string_view bytes, bool unlogged) {
    if (index == 0) RecoverFromFullDisk();
    rocksdb::WriteBatch batch;
    if (index == 0) {
      Check(batch.Put(layout::PendingKey(set), ""), "writing a blob chunk");
    }
    Check(batch.Put(layout::ChunkKey(set, index),
                    rocksdb::Slice(bytes.data(), bytes.size())),
          "writing a blob chunk");
    Check(db_->Write(unlogged ? unlogged_ : ahead_, &batch),
          "writing a blob chunk");
  }

  // Starts flushing the memtable in the background, so that the next chunk
  // is copied in while this one is written out (the last call before
  // MakeDurable is then cheaper to wait for).
  void StartFlush() {
    rocksdb::FlushOptions flush;
    flush.wait = false;
    flush.allow_write_stall = true;
    Check(db_->Flush(flush), "flushing blob chunks to disk");
  }

  // Makes every unlogged write so far durable: flushes the memtable into
  // synced SST and blob files, and waits for earlier flushes too.
  void MakeDurable() {
    rocksdb::FlushOptions flush;
    flush.wait = true;
    flush.allow_write_stall = true;
    Check(db_->Flush(flush), "flushing blob chunks to disk");
  }

  // Drops a chunk set that will never be committed. Unsynced: if the drop
  // is lost in a crash, the set's pending marker comes back with it.
  void DiscardChunks(const std::string& set, uint32_t chunks) {
    rocksdb::WriteBatch batch;
    AddDiscard(&batch, set, chunks);
    Check(db_->Write(ahead_, &batch), "discarding blob chunks");
  }

  // Publishes a record with a durable write. Returns false (and writes
  // nothing) if the blob already exists. `set` is non-empty for chunked
  // records, whose chunks must already be durable or in the log.
  bool CommitRecord(const std::string& digest, const std::string& record,
                    uint64_t size, const std::string& set) {
    RecoverFromFullDisk();
    std::lock_guard<std::mutex> lock(StripeFor(digest));
    if (ReadRecord(digest)) return false;
    rocksdb::WriteBatch batch;
    Check(batch.Put(digest, record), "committing a blob");
    if (!set.empty()) {
      Check(batch.Delete(layout::PendingKey(set)), "committing a blob");
    }
    Check(db_->Write(write_, &batch), "committing blob " + digest);
    blobs_ += 1;
    bytes_ += size;
    return true;
  }

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
  size_t Store(const std::vector<ExpectedBlob>& blobs) {
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

  void AddDiscard(rocksdb::WriteBatch* batch, const std::string& set,
                  uint32_t chunks) {
    for (uint32_t i = 0; i < chunks; ++i) {
      Check(batch->Delete(layout::ChunkKey(set, i)), "discarding blob chunks");
    }
    Check(batch->Delete(layout::PendingKey(set)), "discarding blob chunks");
  }

  // Locks the stripes of every planned digest, in index order (no deadlock
  // between two calls that share stripes).
  std::vector<std::unique_lock<std::mutex>> LockStripes(
      const std::vector<Planned>& plan) {
    std::vector<size_t> indexes;
    for (const Planned& p : plan) indexes.push_back(StripeIndex(p.digest));
    std::sort(indexes.begin(), indexes.end());
    indexes.erase(std::unique(indexes.begin(), indexes.end()), indexes.end());
    std::vector<std::unique_lock<std::mutex>> locks;
    for (size_t i : indexes) locks.emplace_back(stripes_[i]);
    return locks;
  }

  void RequireDigest(std::string_view digest) const {
    if (!IsDigest(digest)) {
      throw Error(
          ErrorCode::kInvalidArgument,
          "\"" + std::string(digest) +
              "\" is not a SHA-256 digest (64 lower-case hex characters)");
    }
  }

  static size_t StripeIndex(std::string_view digest) {
    return std::hash<std::string_view>{}(digest) % kStripes;
  }
  std::mutex& StripeFor(std::string_view digest) {
    return stripes_[StripeIndex(digest)];
  }

  void Check(const rocksdb::Status& s, const std::string& action) const {
    if (s.ok()) return;
    const ErrorCode code = CodeFor(s);
    std::string message =
        "blob store " + dir_.string() + ": " + action + ": " + s.ToString();
    if (code == ErrorCode::kResourceExhausted) {
      message += std::string(": ") + kFreeSpace;
      out_of_space_.store(true);
    }
    throw Error(code, message);
  }

  Record Decode(std::string_view digest, std::string value) const {
    return layout::Decode(digest, std::move(value),
                          "blob store " + dir_.string());
  }

  std::optional<Record> ReadRecord(std::string_view digest) {
    return ReadRecord(read_, digest);
  }

  std::optional<Record> ReadRecord(const rocksdb::ReadOptions& options,
                                   std::string_view digest) {
    std::string value;
    rocksdb::Status s =
        db_->Get(options, rocksdb::Slice(digest.data(), digest.size()), &value);
    if (s.IsNotFound()) return std::nullopt;
    Check(s, "reading blob " + std::string(digest));
    return Decode(digest, std::move(value));
  }

  Record MustRecord(const rocksdb::ReadOptions& options,
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

  void ReadChunk(const rocksdb::ReadOptions& options, std::string_view digest,
                 const Record& record, uint32_t index,
                 rocksdb::PinnableSlice* out) {
    rocksdb::ReadOptions chunk_options = options;
    chunk_options.verify_checksums = !options_.verify_on_read;
    rocksdb::Status s =
        db_->Get(chunk_options, db_->DefaultColumnFamily(),
                 layout::ChunkKey(record.chunk_set, index), out);
    const std::string what = "chunk " + std::to_string(index) + " of blob " +
                             std::string(digest) + " in store " + dir_.string();
    if (s.IsNotFound()) throw Error(ErrorCode::kCorrupt, what + " is missing");
    Check(s, "reading " + what);
    if (out->size() != record.ChunkLength(index)) {
      throw Error(ErrorCode::kCorrupt,
                  what + " has " + std::to_string(out->size()) +
                      " bytes, expected " +
                      std::to_string(record.ChunkLength(index)));
    }
  }

  fs::path FileDir(std::string_view digest) const {
    return files_ / std::string(digest.substr(0, 2));
  }
  fs::path FilePath(std::string_view digest) const {
    return FileDir(digest) / std::string(digest);
  }

  Error FileCorrupt(std::string_view digest, const std::string& what) const {
    return Error(ErrorCode::kCorrupt, "blob " + std::string(digest) +
                                          " in store " + dir_.string() +
                                          " is corrupt: its file " +
                                          FilePath(digest).string() + " " + what);
  }

  // Opens the file of a file blob, checking its size against the record.
  int OpenFile(std::string_view digest, const Record& record) {
    const fs::path path = FilePath(digest);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err != ENOENT) ThrowIo("blob store: opening " + path.string(), err);
      if (!ReadRecord(digest)) {  // deleted meanwhile
        throw Error(ErrorCode::kNotFound, "blob " + std::string(digest) +
                                              " is not in the store " +
                                              dir_.string());
      }
      throw FileCorrupt(digest, "is missing");
    }
    FdCloser closer{fd};
    struct stat st;
    if (::fstat(fd, &st) != 0) ThrowIo("blob store: reading " + path.string(), errno);
    if (static_cast<uint64_t>(st.st_size) != record.size) {
      throw FileCorrupt(digest, "has " + std::to_string(st.st_size) +
                                    " bytes, expected " +
                                    std::to_string(record.size));
    }
    closer.fd = -1;
    return fd;
  }

  // Creates files/ and its 256 folders if missing; removes temporary files
  // and files that no record names (a crash between renaming a file into
  // place and writing its record, or after deleting a record).
  void SweepFiles() {
    bool created = false;
    auto make_dir = [&](const fs::path& dir) {
      std::error_code ec;
      created = fs::create_directory(dir, ec) || created;
      if (ec.value() == ENOSPC || ec.value() == EDQUOT) {
        ThrowIo("blob store " + dir_.string() + ": creating " + dir.string(),
                ec.value());
      }
      if (ec) {
        throw Error(ErrorCode::kUnavailable, "blob store " + dir_.string() +
                                                 ": cannot create " +
                                                 dir.string() + ": " +
                                                 ec.message());
      }
    };
    make_dir(files_);
    for (int i = 0; i < 256; ++i) {
      char name[3];
      std::snprintf(name, sizeof(name), "%02x", i);
      make_dir(files_ / name);
    }
    if (created && options_.sync) {
      SyncDir(files_);
      SyncDir(dir_);
    }
    auto is_temp = [](const std::string& name) {
      return name.rfind(kTempPrefix, 0) == 0;
    };
    std::error_code ec;
    for (const fs::directory_entry& entry : fs::directory_iterator(files_)) {
      const std::string name = entry.path().filename().string();
      if (is_temp(name)) fs::remove(entry.path(), ec);
    }
    for (int i = 0; i < 256; ++i) {
      char prefix[3];
      std::snprintf(prefix, sizeof(prefix), "%02x", i);
      for (const fs::directory_entry& entry :
           fs::directory_iterator(files_ / prefix)) {
        const std::string name = entry.path().filename().string();
        if (is_temp(name)) {
          fs::remove(entry.path(), ec);
        } else if (IsDigest(name) && name.compare(0, 2, prefix) == 0) {
          std::optional<Record> record = ReadRecord(name);
          if (!record || record->kind != Kind::kFile) {
            fs::remove(entry.path(), ec);
          }
        }
      }
    }
  }

  void VerifyBytes(std::string_view digest, const std::string& actual) const {
    if (actual != digest) {
      throw Error(ErrorCode::kCorrupt,
                  "blob " + std::string(digest) + " in store " + dir_.string() +
                      " is corrupt: its bytes hash to " + actual);
    }
  }

  // Calls fn(key, value) for every key in [lower, upper).
  void ScanRange(
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

void FileWriter::Append(std::string_view bytes) {
  if (finished_) {
    throw Error(ErrorCode::kInternal, "blob writer used after Commit");
  }
  hash_.Update(bytes);
  size_ += bytes.size();
  if (!file_) {
    if (size_ < store_->file_min_bytes()) {
      buffer_.append(bytes.data(), bytes.size());
      return;
    }
    file_ = store_->NewTempFile();
    file_->Write(buffer_);
    std::string().swap(buffer_);
  }
  file_->Write(bytes);
}

std::string FileWriter::Commit() {
  if (finished_) {
    throw Error(ErrorCode::kInternal, "blob writer committed twice");
  }
  finished_ = true;
  const std::string digest = hash_.FinishHex();
  if (!file_) {
    store_->StoreHashed(digest, buffer_);
    std::string().swap(buffer_);
    return digest;
  }
  store_->PublishFile(digest, file_.get(), size_);
  file_.reset();  // removes the file unless it was renamed into place
  return digest;
}

ChunkWriter::ChunkWriter(RocksBlobStore* store) : store_(store) {}

ChunkWriter::~ChunkWriter() {
  if (published_ || chunks_ == 0) return;
  // An abandoned writer: drop its chunks now; if that fails, the pending
  // marker makes the next Open sweep them.
  try {
    store_->DiscardChunks(set_, chunks_);
  } catch (const Error&) {
  }
}

void ChunkWriter::Append(std::string_view bytes) {
  if (finished_) {
    throw Error(ErrorCode::kInternal, "blob writer used after Commit");
  }
  hash_.Update(bytes);
  size_ += bytes.size();
  const uint64_t chunk = store_->chunk_bytes();
  while (!bytes.empty()) {
    // A full buffer is written only once more bytes arrive, so a blob that
    // fits in one buffer can still be stored inline at Commit.
    if (buffer_.size() == chunk) Flush();
    if (buffer_.capacity() < chunk) {
      buffer_.reserve(std::min<uint64_t>(chunk, 64ull << 20));
    }
    const size_t n = std::min<uint64_t>(bytes.size(), chunk - buffer_.size());
    buffer_.append(bytes.data(), n);
    bytes.remove_prefix(n);
  }
}

void ChunkWriter::Flush() {
  if (chunks_ == UINT32_MAX) {
    throw Error(ErrorCode::kInvalidArgument, "blob needs too many chunks");
  }
  if (set_.empty()) set_ = store_->NewChunkSet();
  const bool unlogged = store_->Unlogged(size_);
  if (unlogged && unlogged_) store_->StartFlush();  // the previous chunk
  store_->WriteChunk(set_, chunks_, buffer_, unlogged);
  unlogged_ = unlogged_ || unlogged;
  ++chunks_;
  buffer_.clear();
}

std::string ChunkWriter::Commit() {
  if (finished_) {
    throw Error(ErrorCode::kInternal, "blob writer committed twice");
  }
  finished_ = true;
  const std::string digest = hash_.FinishHex();
  if (chunks_ == 0 && size_ <= store_->inline_max()) {
    store_->CommitRecord(digest, layout::EncodeInline(buffer_), size_, "");
    return digest;
  }
  // On a failure below, the destructor discards the chunks written so far.
  if (store_->Has(digest)) {
    if (chunks_ > 0) store_->DiscardChunks(set_, chunks_);
    published_ = true;
  } else {
    if (!buffer_.empty()) Flush();
    if (unlogged_) store_->MakeDurable();
    const std::string record =
        layout::EncodeChunked(size_, store_->chunk_bytes(), chunks_, set_);
    if (!store_->CommitRecord(digest, record, size_, set_)) {
      store_->DiscardChunks(set_, chunks_);
    }
    published_ = true;
  }
  buffer_.clear();
  buffer_.shrink_to_fit();
  return digest;
}

}  // namespace

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
  db_options.info_log = std::make_shared<InfoLog>(dir);
  db_options.max_background_jobs = 2;
  db_options.enable_blob_files = true;
  db_options.min_blob_size = layout::kMinBlobSize;
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
    const ErrorCode code = CodeFor(s);
    std::string message = "blob store " + dir.string() + ": ";
    if (code == ErrorCode::kUnavailable) {
      message += "in use by another process (a `baton serve` or `baton run` on this store: act through "
                 "that server with `baton --server URL ...`, or wait until it ends) or already open in this one: ";
    } else if (code == ErrorCode::kResourceExhausted) {
      message += std::string(kFreeSpace) + ": cannot open: ";
    } else {
      message += "cannot open: ";
    }
    throw Error(code, message + s.ToString());
  }
  auto store = std::make_unique<RocksBlobStore>(dir, options, raw);
  store->Recover();
  return store;
}

}  // namespace baton::store
