#include "store/internal/blob_store_errors.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>

#include "store/internal/rocks_blob_store.h"

namespace baton::store::detail {
namespace {

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

// How long a write waits for RocksDB to recover from a full disk once the
// disk has kRoomToRecover bytes free again: RocksDB checks every 5 s, and
// resumes once a memtable's worth (write_buffer_size, 64 MiB by default)
// is free.
constexpr std::chrono::seconds kRecoveryWait{7};
constexpr uint64_t kRoomToRecover = 64ull << 20;

// How much space `dir`'s file system has, and how much a blob store that
// hit a full disk needs before RocksDB writes again: without the second
// figure a user who freed a little sees "No space left on device" next to a
// disk with room.
std::string RoomNote(const std::filesystem::path& dir) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) return "";
  const double free_mib = static_cast<double>(st.f_bavail) * st.f_frsize / 1048576.0;
  char note[200];
  std::snprintf(note, sizeof(note),
                " (%.1f MiB free there now; free at least %llu MiB: a blob store that ran out of space writes again "
                "only once that much is free)",
                free_mib, static_cast<unsigned long long>(kRoomToRecover >> 20));
  return note;
}

}  // namespace

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

[[noreturn]] void ThrowIo(const std::string& action, int err) {
  if (err == ENOSPC || err == EDQUOT || err == EFBIG) {
    throw Error(ErrorCode::kResourceExhausted,
                action + ": " + std::strerror(err) + ": " + kFreeSpace);
  }
  const bool busy = err == EMFILE || err == ENFILE || err == ENOMEM;
  throw Error(busy ? ErrorCode::kUnavailable : ErrorCode::kInternal,
              action + ": " + std::strerror(err));
}

InfoLog::InfoLog(const std::filesystem::path& dir)
    : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL) {
  const fs::path file = dir / "LOG";
  ::rename(file.c_str(), (dir / "LOG.old").c_str());  // absent at first
  fd_ = ::open(file.c_str(),
               O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
}

InfoLog::~InfoLog() {
  if (fd_ >= 0) ::close(fd_);
}

void InfoLog::Logv(const char* format, va_list ap) {
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

void RocksBlobStore::RecoverFromFullDisk() {
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

void RocksBlobStore::Check(const rocksdb::Status& s,
                           const std::string& action) const {
  if (s.ok()) return;
  const ErrorCode code = CodeFor(s);
  std::string message =
      "blob store " + dir_.string() + ": " + action + ": " + s.ToString();
  if (code == ErrorCode::kResourceExhausted) {
    message += std::string(": ") + kFreeSpace + RoomNote(dir_);
    out_of_space_.store(true);
  }
  throw Error(code, message);
}

}  // namespace baton::store::detail
