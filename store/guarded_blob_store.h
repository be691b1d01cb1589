#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "store/blob_store.h"

namespace baton::store {

// A BlobStore that lets gc run while runs write. A worker asks which blobs
// the store lacks, uploads only those, and moments later reports an epoch
// whose checkpoint names them all; the lineage refers to a blob only from
// that report on. So this store remembers, for `window`, every blob it was
// asked about (Has, Missing, Size, Get) or stored, and DeleteUnlessRecent spares
// those: a blob the store answered "present" is not deleted before the
// report that relies on it can have been recorded. While a Writer is open,
// nothing is deleted (its digest is not known before Commit).
//
// Only deletions through DeleteUnlessRecent are guarded; Delete deletes.
// All methods are safe to call from many threads.
class GuardedBlobStore : public BlobStore {
 public:
  // Default window: 2 minutes (a worker reports an epoch within
  // milliseconds of its upload; a report later than this fails with
  // "was not uploaded" and the task is retried, never recorded broken).
  static constexpr std::chrono::seconds kDefaultWindow{120};

  explicit GuardedBlobStore(std::unique_ptr<BlobStore> inner,
                            std::chrono::seconds window = kDefaultWindow);

  // Deletes `digest` unless it was asked about or stored within the window,
  // or a Writer is open. Returns whether it was deleted (or already absent).
  bool DeleteUnlessRecent(std::string_view digest);

  std::string Put(std::string_view bytes) override;
  bool PutExpected(std::string_view digest, std::string_view bytes) override;
  size_t PutExpectedAll(const std::vector<ExpectedBlob>& blobs) override;
  bool Has(std::string_view digest) override;
  uint64_t Size(std::string_view digest) override;
  std::vector<std::string> Missing(const std::vector<std::string>& digests) override;
  std::string Get(std::string_view digest) override;
  void Read(std::string_view digest, const std::function<void(std::string_view)>& sink) override;
  std::unique_ptr<Writer> NewWriter() override;
  void ForEach(const std::function<void(const std::string&, uint64_t)>& fn) override;
  void Delete(std::string_view digest) override;
  BlobStoreStats Stats() override;

 private:
  class GuardedWriter;
  using Clock = std::chrono::steady_clock;

  // Marks digests as just used, before the inner store is asked or written,
  // so that a concurrent DeleteUnlessRecent either sees the mark or has
  // finished deleting before the inner call looks.
  void Touch(std::string_view digest);

  std::unique_ptr<BlobStore> inner_;
  const Clock::duration window_;
  std::mutex mu_;  // guards touched_ and open_writers_; held while deleting
  std::unordered_map<std::string, Clock::time_point> touched_;
  int open_writers_ = 0;
  Clock::time_point last_prune_ = Clock::now();
};

}  // namespace baton::store
