#pragma once

// Helpers shared by stages/dataset.cpp (idx files, encoding) and
// stages/tabular.cpp (CSV files, leaving features out).

#include <cstdint>
#include <string>

namespace baton::stages::dataset_detail {

// True if `path` is a regular file.
bool FileExists(const std::string& path);
// The SHA-256 of a file's bytes; throws Error(kUnavailable) if unreadable.
std::string FileDigest(const std::string& path);

// How `used` training examples split into training and validation: at least
// one of each, validation_fraction of them (rounded) for validation. Throws
// Error(kInvalidArgument) at /train_subset when used < 2.
struct TrainValidationCounts {
  int64_t train = 0;
  int64_t validation = 0;
};
TrainValidationCounts SplitTrainValidation(int64_t used, double validation_fraction);

}  // namespace baton::stages::dataset_detail
