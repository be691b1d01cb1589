#pragma once

// Helpers shared by stages/dataset.cpp (idx files, encoding),
// stages/tabular.cpp (CSV files, leaving features out),
// stages/image_folder.cpp and stages/arrays.cpp (.npy and .npz).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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

// A seeded, stratified split of examples by their labels. Per class, in
// order of first appearance, the examples (in the order given) are shuffled
// with a Mersenne Twister seeded with `seed` (std::mt19937_64, so the same
// inputs give the same split on every platform); test_fraction of them
// (rounded, at least one) go to test when it is set, then
// validation_fraction of the rest (rounded, at least one) to validation, the
// rest (at least one) to training. Each split's indices are shuffled again,
// so no split is ordered by class. Throws Error(kInvalidArgument) at
// /dataset/path naming the class (class_names[label] when given) that has
// too few examples (3 per class, 2 with test arrays).
struct SplitIndices {
  std::vector<int64_t> train, validation, test;
};
SplitIndices SeededSplit(const std::vector<int64_t>& labels,
                         double validation_fraction,
                         std::optional<double> test_fraction, uint64_t seed,
                         const std::vector<std::string>& class_names);

}  // namespace baton::stages::dataset_detail
