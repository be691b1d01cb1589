#pragma once

#include "common/json_util.h"

namespace baton::testing {

// Debian's dataset-fashion-mnist package.
inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// A prepare stage: the first `train_subset` Fashion-MNIST training images,
// 20% of them for validation, `test_subset` test images, normalised.
inline Json FashionMnistPrep(int train_subset, int test_subset = 100) {
  return {{"type", "prepare"},
          {"dataset", {{"format", "idx"}, {"path", kFashionMnistDir}}},
          {"train_subset", train_subset},
          {"test_subset", test_subset},
          {"validation_fraction", 0.2},
          {"normalize", true}};
}

}  // namespace baton::testing
