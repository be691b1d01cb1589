#pragma once

// A small real file system for full-disk tests: a tmpfs of a given size
// mounted on a folder, visible only to this process and the processes it
// starts (a private mount namespace), so that nothing leaks to the machine
// and the mount goes away with the process. Needs root with CAP_SYS_ADMIN
// (CI and the dev machines) or, failing that, unprivileged user namespaces.
// A test that cannot get one fails with the reason; it never skips.
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

namespace baton::testing {

class SmallFilesystem {
 public:
  // Mounts a tmpfs of `bytes` on `dir` (created if missing). On failure,
  // error() says why and ok() is false.
  SmallFilesystem(std::filesystem::path dir, uint64_t bytes) : dir_(std::move(dir)) {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) {
      error_ = "cannot create " + dir_.string() + ": " + ec.message();
      return;
    }
    if (!EnterPrivateMountNamespace(&error_)) return;
    const std::string options = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      error_ = "mount -t tmpfs -o " + options + " tmpfs " + dir_.string() + ": " + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~SmallFilesystem() {
    if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  SmallFilesystem(const SmallFilesystem&) = delete;
  SmallFilesystem& operator=(const SmallFilesystem&) = delete;

  bool ok() const { return mounted_; }
  const std::string& error() const { return error_; }
  const std::filesystem::path& dir() const { return dir_; }

  // Grows (or shrinks) the file system to `bytes`; false with error() set
  // if the kernel refuses.
  bool Resize(uint64_t bytes) {
    const std::string options = "size=" + std::to_string(bytes);
    if (::mount("tmpfs", dir_.c_str(), "tmpfs", MS_REMOUNT | MS_NOSUID | MS_NODEV, options.c_str()) != 0) {
      error_ = "mount -o remount," + options + " " + dir_.string() + ": " + std::strerror(errno);
      return false;
    }
    return true;
  }

  // Writes a ballast file `name` in the file system until it is full;
  // returns the bytes it took.
  uint64_t Fill(const std::string& name = "ballast") {
    const std::string path = (dir_ / name).string();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return 0;
    const std::string block(4096, 'b');
    uint64_t written = 0;
    while (true) {
      const ssize_t n = ::write(fd, block.data(), block.size());
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        break;
      }
      written += static_cast<uint64_t>(n);
    }
    ::close(fd);
    return written;
  }
  // Removes a ballast file.
  void Free(const std::string& name = "ballast") { std::filesystem::remove(dir_ / name); }

  // Once per process: a mount namespace of our own whose mounts do not
  // propagate back to the machine's. A namespace belongs to a thread, and
  // threads started before it (RocksDB's background threads) would not see
  // the mounts: hence entered at static initialisation (below).
  static bool EnterPrivateMountNamespace(std::string* error) {
    static bool entered = false;
    static std::string failure;
    static bool tried = false;
    if (!tried) {
      tried = true;
      if (::unshare(CLONE_NEWNS) != 0) {
        const std::string root_error = std::strerror(errno);
        // Without CAP_SYS_ADMIN: a user namespace maps us to root in it.
        const uid_t uid = ::getuid();
        const gid_t gid = ::getgid();
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
          failure = "unshare(CLONE_NEWNS): " + root_error + "; unshare(CLONE_NEWUSER | CLONE_NEWNS): " +
                    std::strerror(errno) +
                    " (full-disk tests need root with CAP_SYS_ADMIN or unprivileged user namespaces)";
          *error = failure;
          return false;
        }
        std::ofstream("/proc/self/setgroups") << "deny";
        std::ofstream("/proc/self/uid_map") << "0 " << uid << " 1";
        std::ofstream("/proc/self/gid_map") << "0 " << gid << " 1";
      }
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        failure = std::string("mount --make-rprivate /: ") + std::strerror(errno);
        *error = failure;
        return false;
      }
      entered = true;
    }
    if (!entered) *error = failure;
    return entered;
  }

 private:
  std::filesystem::path dir_;
  bool mounted_ = false;
  std::string error_;
};

// While the process is still one thread; a failure is reported by the
// first SmallFilesystem.
inline const bool kPrivateMountNamespace = [] {
  std::string ignored;
  return SmallFilesystem::EnterPrivateMountNamespace(&ignored);
}();

}  // namespace baton::testing
