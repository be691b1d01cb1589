// The file side of the blob store: temporary files, folder syncs, and the
// RocksBlobStore members and FileWriter that put, find and sweep the files
// of large blobs.
#include "store/internal/blob_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <mutex>
#include <optional>
#include <system_error>

#include "store/internal/blob_store_errors.h"
#include "store/internal/rocks_blob_store.h"

namespace baton::store::detail {
namespace {

// Bytes of a blob file written between two requests to start writing them
// back (sync_file_range), so that the disk works while later bytes are copied
// in and the final fdatasync has little left to wait for.
constexpr uint64_t kWritebackBytes = 8ull << 20;

}  // namespace

void SyncDir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) ThrowIo("blob store: opening folder " + dir.string(), errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) ThrowIo("blob store: syncing folder " + dir.string(), err);
}

TempFile::TempFile(fs::path path, bool sync)
    : path_(std::move(path)), sync_(sync) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) ThrowIo("blob store: creating " + path_.string(), errno);
}

TempFile::~TempFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!renamed_) ::unlink(path_.c_str());  // best effort; Open sweeps it
}

void TempFile::Write(std::string_view bytes) {
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

void TempFile::StartWriteback() {
  if (!sync_ || written_ == started_) return;
  ::sync_file_range(fd_, static_cast<off_t>(started_),
                    static_cast<off_t>(written_ - started_),
                    SYNC_FILE_RANGE_WRITE);
  started_ = written_;
}

void TempFile::WaitWriteback() {
  if (!sync_ || fd_ < 0) return;
  StartWriteback();
  ::sync_file_range(fd_, 0, 0,
                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                        SYNC_FILE_RANGE_WAIT_AFTER);
}

void TempFile::Finish() {
  if (fd_ < 0) return;
  if (sync_ && ::fdatasync(fd_) != 0) {
    ThrowIo("blob store: syncing " + path_.string(), errno);
  }
  ::close(fd_);
  fd_ = -1;
}

void TempFile::RenameTo(const fs::path& target) {
  if (::rename(path_.c_str(), target.c_str()) != 0) {
    ThrowIo("blob store: renaming " + path_.string() + " to " +
                target.string(),
            errno);
  }
  renamed_ = true;
}

std::unique_ptr<TempFile> RocksBlobStore::NewTempFile() {
  return std::make_unique<TempFile>(files_ / (kTempPrefix + NewChunkSet()),
                                    options_.sync);
}

void RocksBlobStore::StoreHashed(const std::string& digest,
                                 std::string_view bytes) {
  Store({ExpectedBlob{digest, bytes}});
}

bool RocksBlobStore::PublishFile(const std::string& digest, TempFile* file,
                                 uint64_t size) {
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

fs::path RocksBlobStore::FileDir(std::string_view digest) const {
  return files_ / std::string(digest.substr(0, 2));
}

fs::path RocksBlobStore::FilePath(std::string_view digest) const {
  return FileDir(digest) / std::string(digest);
}

Error RocksBlobStore::FileCorrupt(std::string_view digest,
                                  const std::string& what) const {
  return Error(ErrorCode::kCorrupt, "blob " + std::string(digest) +
                                        " in store " + dir_.string() +
                                        " is corrupt: its file " +
                                        FilePath(digest).string() + " " + what);
}

int RocksBlobStore::OpenFile(std::string_view digest, const Record& record) {
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

void RocksBlobStore::SweepFiles() {
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

}  // namespace baton::store::detail
