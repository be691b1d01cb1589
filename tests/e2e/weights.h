#pragma once

// A stored checkpoint's float32 tensors, read through the store, and how far
// two checkpoints' weights lie apart: for the data-parallel tests, whose
// ranks must train the weights one process trains.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "store/blob_store.h"
#include "store/checkpoint.h"

namespace baton::testing {

// Tensor name -> its float32 values (other dtypes are left out).
inline std::map<std::string, std::vector<float>> CheckpointFloats(const std::filesystem::path& store,
                                                                   const std::string& digest) {
  auto blobs = store::BlobStore::Open(store / "blobs");
  std::map<std::string, std::vector<float>> out;
  for (const auto& t : store::ParseManifest(blobs->Get(digest)).tensors) {
    if (t.dtype != "float32") continue;
    const std::string bytes = blobs->Get(t.blob);
    std::vector<float> values(bytes.size() / sizeof(float));
    std::memcpy(values.data(), bytes.data(), values.size() * sizeof(float));
    out[t.name] = std::move(values);
  }
  return out;
}

// The largest |a - b| over every value of the tensors both have; infinity
// when their names or sizes differ.
inline double MaxAbsDifference(const std::map<std::string, std::vector<float>>& a,
                               const std::map<std::string, std::vector<float>>& b) {
  if (a.size() != b.size() || a.empty()) return INFINITY;
  double worst = 0;
  for (const auto& [name, values] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.size() != values.size()) return INFINITY;
    for (size_t i = 0; i < values.size(); ++i) {
      worst = std::max(worst, std::fabs(static_cast<double>(values[i]) - it->second[i]));
    }
  }
  return worst;
}

}  // namespace baton::testing
