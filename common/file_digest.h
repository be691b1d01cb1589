#pragma once

// Digests of files and folders as pipelines name them: what makes a cache
// key change when the bytes a stage reads change (datasets, TorchScript
// models, command stages' dependencies and outputs).
#include <cstdint>
#include <string>
#include <vector>

namespace baton {

// One regular file under a folder: its path relative to the folder ('/'
// separated), its size and the SHA-256 of its bytes.
struct FileEntry {
  std::string path;
  uint64_t bytes = 0;
  std::string sha256;
};

// SHA-256 hex of a file's bytes, read in 1 MiB pieces. Throws
// Error(kNotFound) naming the path when it does not exist or is not a
// regular file, Error(kInternal) when it cannot be read.
std::string FileSha256(const std::string& path);

// Every regular file under `dir` (symbolic links followed), sorted by path.
// Throws Error(kNotFound) naming `dir` when it is not a folder.
std::vector<FileEntry> ListFiles(const std::string& dir);

// The digest of a file (its FileSha256) or of a folder: the SHA-256 of
// "<path>\0<bytes>\0<sha256>\n" for each file of ListFiles in order, so a
// renamed, added, removed or changed file changes it and nothing else does
// (modification times, the folder's own name). Throws Error(kNotFound)
// naming the path when it is neither.
std::string PathDigest(const std::string& path);

}  // namespace baton
