#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include "store/blob_store.h"
#include "tests/store/temp_dir.h"

// What the BlobStore tests (blob_store_test.cpp, blob_store_crash_test.cpp,
// blob_files_test.cpp) share: the fixture, seeded bytes, a raw view of the
// store's RocksDB, and a way to run a test in a process of its own.
namespace baton::store::testing {

// `n` bytes that depend only on `seed`.
inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    const uint64_t v = rng();
    for (size_t j = 0; j < 8 && i + j < n; ++j)
      out[i + j] = static_cast<char>(v >> (8 * j));
  }
  return out;
}

// Opens the store's RocksDB directly, bypassing BlobStore: the only way to
// damage a stored value the way a bad disk would.
inline std::unique_ptr<rocksdb::DB> OpenRaw(const std::filesystem::path& dir) {
  rocksdb::Options options;
  options.enable_blob_files = true;
  options.min_blob_size = 4096;
  rocksdb::DB* db = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir.string(), &db);
  if (!s.ok()) throw std::runtime_error("raw open failed: " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(db);
}

// The keys of `db` that start with `prefix`, in key order.
inline std::vector<std::string> KeysWithPrefix(rocksdb::DB* db,
                                               const std::string& prefix) {
  std::vector<std::string> keys;
  std::unique_ptr<rocksdb::Iterator> it(
      db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    keys.push_back(it->key().ToString());
  }
  return keys;
}

// Every blob in RocksDB (the layout before file blobs, still used below
// file_min_bytes).
inline BlobStoreOptions RocksOnly() {
  BlobStoreOptions options;
  options.file_min_bytes = UINT64_MAX;
  return options;
}

// Runs this binary's test `name` in a child process with
// BATON_TEST_CRASH_DIR set to `dir`, and returns its exit status (-1 when it
// could not start or did not exit).
inline int RunCrashChild(const std::filesystem::path& dir,
                         const std::string& name) {
  const pid_t child = ::fork();
  if (child < 0) return -1;
  if (child == 0) {
    ::setenv("BATON_TEST_CRASH_DIR", dir.c_str(), 1);
    const std::string filter = "--gtest_filter=" + name;
    ::execl("/proc/self/exe", "blob_store_crash_child", filter.c_str(),
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

// A BlobStore in a fresh temp folder, removed after the test. Each test owns
// its folder; Open() may be called again once the previous store is closed.
class BlobStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<BlobStore> Open(const BlobStoreOptions& options = {}) {
    return BlobStore::Open(dir_.path() / "blobs", options);
  }
  std::filesystem::path Dir() const { return dir_.path() / "blobs"; }

  TempDir dir_;
};

}  // namespace baton::store::testing
