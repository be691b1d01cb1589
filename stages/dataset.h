#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "stages/tensor_codec.h"
#include "store/checkpoint.h"

namespace baton::stages {

// The contents of one idx file of unsigned bytes (magic 0x0000080N).
struct IdxArray {
  std::vector<int64_t> dims;  // dims[0] = number of items read
  std::vector<uint8_t> data;  // row-major, product(dims) bytes
};

// Reads an idx file, gzipped or plain (zlib reads both). Reads at most
// `max_items` items (all when negative). Throws Error(kNotFound) when the
// file is missing and Error(kCorrupt) when it is truncated, not an idx file
// of unsigned bytes, or fails its gzip check; messages name the path.
IdxArray ReadIdx(const std::string& path, int64_t max_items = -1);

// What a prepare task asks for (the stage spec as written in the pipeline;
// keys other than these are ignored).
struct PrepareSpec {
  std::string format = "idx";  // only "idx"
  std::string path;            // folder with the four idx files
  std::optional<int64_t>
      train_subset;  // first N training examples; all if unset
  std::optional<int64_t> test_subset;  // first N test examples; all if unset
  double validation_fraction = 0.1;    // in (0, 1); split off the end
  bool normalize = false;              // standardise with train mean/std
};

// Parses a prepare spec; throws Error(kInvalidArgument) with the JSON pointer
// of the bad field.
PrepareSpec ParsePrepareSpec(const Json& spec);

// A prepared classification dataset held in memory. Images are float32
// [N, C, H, W], labels int64 [N] in [0, num_classes). Read-only once made;
// safe to share between threads that only read it.
struct Dataset {
  torch::Tensor train_x, train_y;
  torch::Tensor val_x, val_y;
  torch::Tensor test_x, test_y;
  std::vector<int64_t> input_shape;  // one example, e.g. {1, 28, 28}
  int64_t num_classes = 0;
  Json meta = Json::object();  // the manifest's meta (see EncodeDataset)
};

// Reads the idx files of `spec.path` (train-images-idx3-ubyte[.gz] and its
// three siblings), takes the first train_subset training examples, splits
// off the last validation_fraction of them (rounded to the nearest count, at
// least one) as validation, scales pixels to [0,1] and, with `normalize`,
// standardises every split with the training split's mean and std.
Dataset PrepareDataset(const PrepareSpec& spec);

// The dataset as a manifest of kind "dataset" with tensors train_x, train_y,
// val_x, val_y, test_x, test_y and meta {"input_shape", "num_classes",
// "train", "validation", "test", "mean", "std", "normalized", "source"}.
EncodedTensors EncodeDataset(const Dataset& dataset);

// Rebuilds a dataset from its manifest, fetching the six tensors. Throws
// Error(kCorrupt) when the manifest is not a consistent dataset.
Dataset DecodeDataset(const store::Manifest& manifest,
                      const BlobFetcher& fetch);

}  // namespace baton::stages
