#pragma once

// How the blob store turns RocksDB statuses and errno values into
// baton::Error, and how it keeps working on a full disk. Includes RocksDB,
// so only store/*.cpp may include this.
#include <rocksdb/env.h>
#include <rocksdb/status.h>

#include <cstdarg>
#include <filesystem>
#include <string>

#include "common/error.h"

namespace baton::store::detail {

// What the user should do once a write failed for want of space.
inline constexpr char kFreeSpace[] =
    "out of space; free space on its file system, then retry (a stopped run: "
    "`baton resume RUN`)";

// The error code of a failed RocksDB status: kResourceExhausted for a full
// disk or quota, kUnavailable for a held lock or a busy store.
ErrorCode CodeFor(const rocksdb::Status& s);

// Throws the Error for `action` failing with errno `err`.
[[noreturn]] void ThrowIo(const std::string& action, int err);

// RocksDB's info log (DIR/LOG; the previous session's in DIR/LOG.old),
// written with plain write(2)s whose failures are ignored. RocksDB's own
// file logger aborts the process (an assertion left on in Debian's build)
// when it logs again after a write failed, as it does on a full disk.
class InfoLog : public rocksdb::Logger {
 public:
  explicit InfoLog(const std::filesystem::path& dir);
  ~InfoLog() override;

  using rocksdb::Logger::Logv;
  void Logv(const char* format, va_list ap) override;

 private:
  int fd_ = -1;
};

}  // namespace baton::store::detail
