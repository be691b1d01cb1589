// `baton store fsck`: the CLI's face of maintenance/fsck.h, with progress on
// a terminal.
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "api/internal/cli.h"
#include "common/error.h"
#include "maintenance/fsck.h"

namespace baton::api {
namespace {

// blobs checked / total on stderr, at most every 2 s, only on a terminal.
class Progress {
 public:
  Progress() : on_(isatty(STDERR_FILENO) == 1), last_(std::chrono::steady_clock::now()) {}
  ~Progress() {
    if (shown_) std::fprintf(stderr, "\r\033[K");
  }
  void Update(uint64_t blobs, uint64_t bytes, uint64_t all_blobs, uint64_t all_bytes) {
    if (!on_) return;
    const auto now = std::chrono::steady_clock::now();
    if (now - last_ < std::chrono::seconds(2)) return;
    last_ = now;
    shown_ = true;
    std::fprintf(stderr, "\r\033[Kfsck: %llu / %llu blobs checked (%s of %s)",
                 static_cast<unsigned long long>(blobs), static_cast<unsigned long long>(all_blobs),
                 HumanBytes(bytes).c_str(), HumanBytes(all_bytes).c_str());
    std::fflush(stderr);
  }

 private:
  const bool on_;
  std::chrono::steady_clock::time_point last_;
  bool shown_ = false;
};

}  // namespace

int CmdStoreFsck(StoreHandle& store, bool json) {
  maintenance::FsckReport r;
  {
    Progress progress;
    r = maintenance::CheckStore(*store.blobs, *store.db,
                                [&](uint64_t blobs, uint64_t bytes, uint64_t all_blobs, uint64_t all_bytes) {
                                  progress.Update(blobs, bytes, all_blobs, all_bytes);
                                });
  }
  const bool damaged = r.corrupt + r.missing > 0;
  if (json) {
    std::printf("%s\n", maintenance::FsckJson(r).dump(2).c_str());
    return damaged ? kExitCorrupt : kExitOk;
  }
  std::printf("checked %llu blobs (%s), %llu checkpoint and %llu artifact manifests, %llu references\n",
              static_cast<unsigned long long>(r.blobs), HumanBytes(r.bytes).c_str(),
              static_cast<unsigned long long>(r.checkpoints), static_cast<unsigned long long>(r.artifacts),
              static_cast<unsigned long long>(r.referenced));
  std::printf("corrupt: %llu, missing: %llu, orphaned: %llu (%s)\n", static_cast<unsigned long long>(r.corrupt),
              static_cast<unsigned long long>(r.missing), static_cast<unsigned long long>(r.orphaned),
              HumanBytes(r.orphaned_bytes).c_str());
  for (const maintenance::Problem& p : r.problems) {
    std::printf("%-8s %s", maintenance::DamageName(p.damage), p.digest.c_str());
    if (p.size > 0) std::printf("  %s", HumanBytes(p.size).c_str());
    std::printf(p.damage == maintenance::Damage::kOrphaned ? "\n" : ": %s\n", p.message.c_str());
    const Json& by = p.referenced_by;
    for (const Json& d : by) std::printf("    used by %s\n", maintenance::DescribeReferrer(d).c_str());
    if (p.damage != maintenance::Damage::kOrphaned && by.empty()) std::printf("    referenced by nothing in the lineage\n");
  }
  if (damaged) {
    std::printf("the store is damaged: %llu corrupt and %llu missing blobs; what uses them cannot be served or "
                "trained from\n",
                static_cast<unsigned long long>(r.corrupt), static_cast<unsigned long long>(r.missing));
    return kExitCorrupt;
  }
  if (r.orphaned > 0) {
    std::printf("no damage; the orphaned blobs are referenced by nothing (baton store gc --apply frees them)\n");
  } else {
    std::printf("no damage\n");
  }
  return kExitOk;
}


}  // namespace baton::api
