#pragma once

// The files of large blobs (files/<2 hex>/<digest> under the store's folder)
// as the blob store writes them: temporary files renamed into place, and
// folders synced. Internal to store/.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include <unistd.h>

namespace baton::store::detail {

namespace fs = std::filesystem;

// Most blob files of one put kept open until they are renamed into place;
// beyond that, older ones are fdatasync'd and closed before the rename.
constexpr size_t kMaxOpenFiles = 64;
// Name prefix of temporary blob files; Open removes every file that has it.
constexpr char kTempPrefix[] = ".tmp-";

// Makes the entries of folder `dir` (a new or renamed file) durable.
void SyncDir(const fs::path& dir);

// A temporary blob file being written. Removed when destroyed unless it was
// renamed into place. Used by one thread at a time.
class TempFile {
 public:
  // Creates `path`, which must not exist.
  TempFile(fs::path path, bool sync);
  ~TempFile();
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  // Appends `bytes` (no copy) and, with sync, starts writing them back every
  // kWritebackBytes.
  void Write(std::string_view bytes);
  // With sync, starts writing back what has not been yet (a hint: errors show
  // up in Finish's fdatasync).
  void StartWriteback();
  // With sync, waits until every byte written has reached the disk (no
  // journal commit, no cache flush: that is left to Finish, which then has
  // only metadata to commit).
  void WaitWriteback();
  // With sync, makes the bytes durable (fdatasync: a new file's size is
  // part of its data); then closes the file. Once closed, does nothing.
  void Finish();
  // Renames the file to `target` (replacing a leftover there, which holds
  // the same bytes or is one that no record names). The file may still be
  // open: a crash before Finish leaves a file that no record names, which
  // Open removes.
  void RenameTo(const fs::path& target);

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

}  // namespace baton::store::detail
