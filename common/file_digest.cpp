#include "common/file_digest.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "common/digest.h"
#include "common/error.h"

namespace baton {

namespace fs = std::filesystem;

std::string FileSha256(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw Error(ErrorCode::kNotFound, path + ": no such file");
  }
  std::FILE* fp = std::fopen(path.c_str(), "rb");
  if (fp == nullptr) throw Error(ErrorCode::kInternal, path + ": cannot be opened for reading");
  Sha256 h;
  std::string buf(1 << 20, '\0');
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), fp)) > 0) h.Update(std::string_view(buf.data(), n));
  const bool failed = std::ferror(fp) != 0;
  std::fclose(fp);
  if (failed) throw Error(ErrorCode::kInternal, path + ": read error");
  return h.FinishHex();
}

std::vector<FileEntry> ListFiles(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(ErrorCode::kNotFound, dir + ": no such folder");
  std::vector<FileEntry> files;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    FileEntry f;
    f.path = it->path().lexically_relative(dir).generic_string();
    f.bytes = it->file_size(ec);
    f.sha256 = FileSha256(it->path().string());
    files.push_back(std::move(f));
  }
  if (ec) throw Error(ErrorCode::kInternal, dir + ": cannot be listed: " + ec.message());
  std::sort(files.begin(), files.end(), [](const FileEntry& a, const FileEntry& b) { return a.path < b.path; });
  return files;
}

std::string PathDigest(const std::string& path) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return FileSha256(path);
  if (!fs::is_directory(path, ec)) throw Error(ErrorCode::kNotFound, path + ": no such file or folder");
  Sha256 h;
  for (const FileEntry& f : ListFiles(path)) {
    h.Update(f.path);
    h.Update(std::string_view("\0", 1));
    h.Update(std::to_string(f.bytes));
    h.Update(std::string_view("\0", 1));
    h.Update(f.sha256);
    h.Update("\n");
  }
  return h.FinishHex();
}

}  // namespace baton
