#include "store/guarded_blob_store.h"

#include "common/digest.h"

namespace baton::store {

class GuardedBlobStore::GuardedWriter : public BlobStore::Writer {
 public:
  GuardedWriter(GuardedBlobStore& store, std::unique_ptr<Writer> inner) : store_(store), inner_(std::move(inner)) {
    std::lock_guard<std::mutex> lock(store_.mu_);
    ++store_.open_writers_;
  }
  ~GuardedWriter() override { Close(""); }

  void Append(std::string_view bytes) override { inner_->Append(bytes); }

  std::string Commit() override {
    const std::string digest = inner_->Commit();
    Close(digest);
    return digest;
  }

 private:
  // Once: the committed digest (if any) is marked before the writer stops
  // holding deletions off.
  void Close(const std::string& digest) {
    std::lock_guard<std::mutex> lock(store_.mu_);
    if (closed_) return;
    closed_ = true;
    if (!digest.empty()) store_.touched_[digest] = Clock::now();
    --store_.open_writers_;
  }

  GuardedBlobStore& store_;
  std::unique_ptr<Writer> inner_;
  bool closed_ = false;
};

GuardedBlobStore::GuardedBlobStore(std::unique_ptr<BlobStore> inner, std::chrono::seconds window)
    : inner_(std::move(inner)), window_(window) {}

void GuardedBlobStore::Touch(std::string_view digest) {
  std::lock_guard<std::mutex> lock(mu_);
  const Clock::time_point now = Clock::now();
  touched_[std::string(digest)] = now;
  if (now - last_prune_ > window_) {
    last_prune_ = now;
    for (auto it = touched_.begin(); it != touched_.end();) {
      it = now - it->second > window_ ? touched_.erase(it) : std::next(it);
    }
  }
}

bool GuardedBlobStore::DeleteUnlessRecent(std::string_view digest) {
  std::lock_guard<std::mutex> lock(mu_);
  if (open_writers_ > 0) return false;
  auto it = touched_.find(std::string(digest));
  if (it != touched_.end() && Clock::now() - it->second <= window_) return false;
  inner_->Delete(digest);
  return true;
}

std::string GuardedBlobStore::Put(std::string_view bytes) {
  Touch(Sha256Hex(bytes));
  return inner_->Put(bytes);
}

bool GuardedBlobStore::PutExpected(std::string_view digest, std::string_view bytes) {
  Touch(digest);
  return inner_->PutExpected(digest, bytes);
}

size_t GuardedBlobStore::PutExpectedAll(const std::vector<ExpectedBlob>& blobs) {
  for (const auto& b : blobs) Touch(b.digest);
  return inner_->PutExpectedAll(blobs);
}

bool GuardedBlobStore::Has(std::string_view digest) {
  Touch(digest);
  return inner_->Has(digest);
}

uint64_t GuardedBlobStore::Size(std::string_view digest) {
  Touch(digest);
  return inner_->Size(digest);
}

std::vector<std::string> GuardedBlobStore::Missing(const std::vector<std::string>& digests) {
  for (const auto& d : digests) Touch(d);
  return inner_->Missing(digests);
}

std::string GuardedBlobStore::Get(std::string_view digest) {
  Touch(digest);  // the coordinator reads a reported manifest before recording it
  return inner_->Get(digest);
}

void GuardedBlobStore::Read(std::string_view digest, const std::function<void(std::string_view)>& sink) {
  inner_->Read(digest, sink);
}

std::unique_ptr<BlobStore::Writer> GuardedBlobStore::NewWriter() {
  return std::make_unique<GuardedWriter>(*this, inner_->NewWriter());
}

void GuardedBlobStore::ForEach(const std::function<void(const std::string&, uint64_t)>& fn) { inner_->ForEach(fn); }

void GuardedBlobStore::Delete(std::string_view digest) { inner_->Delete(digest); }

BlobStoreStats GuardedBlobStore::Stats() { return inner_->Stats(); }

}  // namespace baton::store
