// Checkpoint ingest: how fast the store takes in a large checkpoint (hundreds
// of MB of tensors) compared with the plainest durable alternative, SHA-256
// plus an fsync'd file per tensor, on the same bytes, in the same run.
//
//   build/bench/bench_checkpoint_ingest [--mb 400] [--tensor-mb 16] [--repeats 5] [--dir /tmp]
//
// Rows: the baseline; BlobStore::Put per tensor (tensors of file_min_bytes
// and more are stored as files), and again with every blob in RocksDB
// (file_min_bytes = UINT64_MAX, the store's layout before file blobs);
// BlobStore::Writer per tensor
// (1 MiB appends); a whole checkpoint commit as the server takes it in
// (PutExpectedAll per blobs:batch request of at most 64 MiB, the worker's
// digests re-hashed, the manifest last, then the lineage record; the
// worker's own hashing is not timed). Each store path writes durably (sync on: every call
// returns once its blob survives a crash).
//
// Prints a markdown table; ratios are against the baseline of the same run.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "common/digest.h"
#include "common/error.h"
#include "common/malloc_settings.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a) { return std::chrono::duration<double>(Clock::now() - a).count(); }

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void WriteFileFsync(const std::string& path, const std::string& bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) throw std::runtime_error("write " + path + ": " + std::strerror(errno));
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) throw std::runtime_error("fsync " + path);
  ::close(fd);
}

void FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The store runs inside `baton`, which sets this in main.
  baton::KeepFreedMemoryInHeap();
  size_t total_mb = 400, tensor_mb = 16;
  int repeats = 5;  // each path runs first once
  std::string base = std::filesystem::temp_directory_path().string();
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--mb") total_mb = std::stoul(argv[i + 1]);
    if (a == "--tensor-mb") tensor_mb = std::stoul(argv[i + 1]);
    if (a == "--repeats") repeats = std::stoi(argv[i + 1]);
    if (a == "--dir") base = argv[i + 1];
  }
  const size_t n = std::max<size_t>(1, total_mb / tensor_mb);
  std::printf("checkpoint ingest: %zu tensors x %zu MiB = %zu MiB, %d repeats (median), dir %s; malloc settings of "
              "`baton` (mallopt M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB)\n",
              n, tensor_mb, n * tensor_mb, repeats, base.c_str());

  std::vector<double> plain, store_put, store_rocks, store_writer, store_full;
  for (int r = 0; r < repeats; ++r) {
    // Fresh random bytes each repeat, so no run is a dedup hit.
    std::mt19937_64 rng(1234 + r);
    std::vector<std::string> tensors(n, std::string(tensor_mb << 20, '\0'));
    for (auto& t : tensors) {
      auto* p = reinterpret_cast<uint64_t*>(t.data());
      for (size_t i = 0; i < t.size() / 8; ++i) p[i] = rng();
    }
    const std::string dir = base + "/baton-bench-ingest-" + std::to_string(getpid()) + "-" + std::to_string(r);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir + "/plain");

    // The paths run in a different order each repeat (repeat r starts with
    // path r), so that none always runs after the others have filled the
    // disk's write-back: on this shared VM later writers are slower.
    std::vector<std::function<void()>> paths;

    // Baseline: hash, then one fsync'd file per tensor named by its digest.
    paths.push_back([&] {
      const auto t0 = Clock::now();
      for (const auto& t : tensors) {
        const std::string d = baton::Sha256Hex(t);
        WriteFileFsync(dir + "/plain/" + d, t);
      }
      FsyncDir(dir + "/plain");
      plain.push_back(Seconds(t0));
    });

    // Baton, blobs only: BlobStore::Put with sync on (hash, dedup check, write).
    paths.push_back([&] {
      auto blobs = baton::store::BlobStore::Open(dir + "/store-a/blobs");
      const auto t0 = Clock::now();
      for (const auto& t : tensors) blobs->Put(t);
      store_put.push_back(Seconds(t0));
    });

    // The same with every blob in RocksDB (BlobDB), as before file blobs.
    paths.push_back([&] {
      baton::store::BlobStoreOptions options;
      options.file_min_bytes = UINT64_MAX;
      auto blobs = baton::store::BlobStore::Open(dir + "/store-r/blobs", options);
      const auto t0 = Clock::now();
      for (const auto& t : tensors) blobs->Put(t);
      store_rocks.push_back(Seconds(t0));
    });

    // Baton, blobs streamed: BlobStore::Writer, 1 MiB appends, as a server
    // streams an upload it does not hold whole.
    paths.push_back([&] {
      auto blobs = baton::store::BlobStore::Open(dir + "/store-w/blobs");
      const auto t0 = Clock::now();
      for (const auto& t : tensors) {
        auto writer = blobs->NewWriter();
        for (size_t off = 0; off < t.size(); off += 1 << 20) {
          writer->Append(std::string_view(t).substr(off, 1 << 20));
        }
        writer->Commit();
      }
      store_writer.push_back(Seconds(t0));
    });

    // Baton, a whole checkpoint commit: tensor blobs, manifest blob, and the
    // lineage record with byte accounting.
    paths.push_back([&] {
      auto blobs = baton::store::BlobStore::Open(dir + "/store-b/blobs");
      auto db = baton::store::LineageDb::Open(dir + "/store-b/lineage.db");
      baton::store::RunRecord run{"bench", "p", "bench", "running", 0, 0, ""};
      db->CreateRun(run);
      baton::store::StageRecord stage;
      stage.run_id = "bench";
      stage.name = "s";
      stage.type = "tune";
      stage.status = "running";
      int64_t stage_id = db->AddStage(stage);
      baton::store::TrialRecord trial;
      trial.stage_id = stage_id;
      trial.kind = "train";
      trial.status = "running";
      int64_t trial_id = db->AddTrial(trial);
      // The worker's part, not timed: it hashes each tensor in its own
      // process and builds the manifest.
      baton::store::Manifest m;
      std::vector<std::pair<std::string, uint64_t>> refs;
      std::vector<std::string> digests;
      for (size_t i = 0; i < tensors.size(); ++i) {
        digests.push_back(baton::Sha256Hex(tensors[i]));
        m.tensors.push_back({"layer" + std::to_string(i) + ".weight", "float32",
                             {static_cast<int64_t>(tensors[i].size() / 4)}, digests[i], tensors[i].size()});
        refs.push_back({digests[i], tensors[i].size()});
      }
      const std::string manifest = baton::store::ManifestBytes(m);
      const std::string id = baton::Sha256Hex(manifest);
      // The server's part: POST blobs:batch requests of at most 64 MiB (the
      // client's max_batch_bytes), the manifest last, each re-hashed and
      // stored durably; then the lineage record.
      const auto t0 = Clock::now();
      std::vector<baton::store::ExpectedBlob> batch;
      uint64_t batch_bytes = 0;
      for (size_t i = 0; i <= tensors.size(); ++i) {
        const std::string_view bytes = i < tensors.size() ? std::string_view(tensors[i]) : manifest;
        if (!batch.empty() && batch_bytes + bytes.size() > (64ull << 20)) {
          blobs->PutExpectedAll(batch);
          batch.clear();
          batch_bytes = 0;
        }
        batch.push_back({i < tensors.size() ? digests[i] : id, bytes});
        batch_bytes += bytes.size();
      }
      blobs->PutExpectedAll(batch);
      refs.push_back({id, manifest.size()});
      baton::store::EpochRecord e;
      e.trial_id = trial_id;
      e.epoch = 0;
      e.checkpoint = id;
      db->RecordEpoch(e, refs);
      store_full.push_back(Seconds(t0));
    });
    for (size_t i = 0; i < paths.size(); ++i) paths[(r + i) % paths.size()]();
    std::filesystem::remove_all(dir);
  }
  const double mb = static_cast<double>(n * tensor_mb);
  const double base_rate = mb / Median(plain);
  std::printf("\n| path | MiB/s | ratio to baseline |\n|---|---|---|\n");
  std::printf("| baseline: SHA-256 + fsync'd file per tensor | %.0f | 1.00 |\n", base_rate);
  std::printf("| BlobStore::Put (files, sync) | %.0f | %.2f |\n", mb / Median(store_put),
              (mb / Median(store_put)) / base_rate);
  std::printf("| BlobStore::Put, every blob in RocksDB BlobDB (before file blobs; sync) | %.0f | %.2f |\n",
              mb / Median(store_rocks), (mb / Median(store_rocks)) / base_rate);
  std::printf("| BlobStore::Writer, 1 MiB appends (sync) | %.0f | %.2f |\n", mb / Median(store_writer),
              (mb / Median(store_writer)) / base_rate);
  std::printf("| checkpoint commit: PutExpectedAll per 64 MiB (as blobs:batch) + manifest + lineage | %.0f | %.2f |\n", mb / Median(store_full),
              (mb / Median(store_full)) / base_rate);
  return 0;
}
