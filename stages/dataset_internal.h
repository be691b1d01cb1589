#pragma once

// Helpers shared by stages/dataset.cpp (idx files, encoding) and
// stages/tabular.cpp (CSV files, leaving features out).

#include <string>

namespace baton::stages::dataset_detail {

// True if `path` is a regular file.
bool FileExists(const std::string& path);
// The SHA-256 of a file's bytes; throws Error(kUnavailable) if unreadable.
std::string FileDigest(const std::string& path);

}  // namespace baton::stages::dataset_detail
