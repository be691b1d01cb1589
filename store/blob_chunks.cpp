// The chunk side of the blob store: chunk sets written ahead of their
// records, read back and discarded, and ChunkWriter, which streams a blob
// into them.
#include <algorithm>
#include <cstdio>
#include <mutex>

#include "store/internal/rocks_blob_store.h"

namespace baton::store::detail {

std::string RocksBlobStore::NewChunkSet() {
  std::lock_guard<std::mutex> lock(rng_mu_);
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx",
                static_cast<unsigned long long>(rng_()),
                static_cast<unsigned long long>(rng_()));
  return buf;
}

void RocksBlobStore::WriteChunk(const std::string& set, uint32_t index,
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

void RocksBlobStore::StartFlush() {
  rocksdb::FlushOptions flush;
  flush.wait = false;
  flush.allow_write_stall = true;
  Check(db_->Flush(flush), "flushing blob chunks to disk");
}

void RocksBlobStore::MakeDurable() {
  rocksdb::FlushOptions flush;
  flush.wait = true;
  flush.allow_write_stall = true;
  Check(db_->Flush(flush), "flushing blob chunks to disk");
}

void RocksBlobStore::DiscardChunks(const std::string& set, uint32_t chunks) {
  rocksdb::WriteBatch batch;
  AddDiscard(&batch, set, chunks);
  Check(db_->Write(ahead_, &batch), "discarding blob chunks");
}

bool RocksBlobStore::CommitRecord(const std::string& digest,
                                  const std::string& record, uint64_t size,
                                  const std::string& set) {
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

void RocksBlobStore::AddDiscard(rocksdb::WriteBatch* batch,
                                const std::string& set, uint32_t chunks) {
  for (uint32_t i = 0; i < chunks; ++i) {
    Check(batch->Delete(layout::ChunkKey(set, i)), "discarding blob chunks");
  }
  Check(batch->Delete(layout::PendingKey(set)), "discarding blob chunks");
}

void RocksBlobStore::ReadChunk(const rocksdb::ReadOptions& options,
                               std::string_view digest, const Record& record,
                               uint32_t index, rocksdb::PinnableSlice* out) {
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

}  // namespace baton::store::detail
