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
  std::string format = "idx";           // "idx" | "csv" | "image_folder" |
                                        // "npy" | "npz"
  std::string path;                     // idx: folder with the four idx files;
                                        // csv, npz: the file; image_folder:
                                        // the folder of class folders; npy:
                                        // the folder of the .npy files
  std::string label_column = "label";   // csv: the column holding the class
  // image_folder: every image resized to {height, width}; default: the
  // first image's size, which every image must then have.
  std::optional<std::vector<int64_t>> image_size;
  // image_folder: 1 (grey) or 3 (RGB), images converted; default: the first
  // image's (alpha dropped).
  std::optional<int64_t> channels;
  // npy, npz: array names (npy: files NAME.npy in `path`; npz: members
  // NAME.npy). The test arrays are optional: when both are absent the test
  // split is test_fraction of x, y; named explicitly they must exist.
  std::string x = "x", y = "y";
  std::string x_test = "x_test", y_test = "y_test";
  bool test_arrays_named = false;  // x_test or y_test given in the spec
  // image_folder, npy, npz: the seed of the split; default: the task's
  // seed (derived from the pipeline's seed and the stage name).
  std::optional<uint64_t> split_seed;
  std::optional<int64_t> train_subset;  // first N train+validation examples;
                                        // all if unset
  std::optional<int64_t> test_subset;   // first N test examples; all if unset
  double validation_fraction = 0.1;     // in (0, 1); split off the end
  double test_fraction = 0.2;           // csv: in (0, 1); the file's last rows
  bool normalize = false;               // standardise with train mean/std
};

// Parses a prepare spec; throws Error(kInvalidArgument) with the JSON pointer
// of the bad field.
PrepareSpec ParsePrepareSpec(const Json& spec);

// A prepared classification dataset held in memory. Images are float32
// [N, C, H, W], tabular data float32 [N, F], labels int64 [N] in
// [0, num_classes). Read-only once made;
// safe to share between threads that only read it.
struct Dataset {
  torch::Tensor train_x, train_y;
  torch::Tensor val_x, val_y;
  torch::Tensor test_x, test_y;
  std::vector<int64_t> input_shape;  // one example, e.g. {1, 28, 28} or {F}
  int64_t num_classes = 0;
  Json meta = Json::object();  // the manifest's meta (see EncodeDataset)
};

// Prepares `spec.format`'s dataset (PrepareIdx, PrepareCsv,
// PrepareImageFolder or PrepareArrays).
Dataset PrepareDataset(const PrepareSpec& spec);

// Reads the idx files of `spec.path` (train-images-idx3-ubyte[.gz] and its
// three siblings), takes the first train_subset training examples, splits
// off the last validation_fraction of them (rounded to the nearest count, at
// least one) as validation, scales pixels to [0,1] and, with `normalize`,
// standardises every split with the training split's mean and std.
Dataset PrepareIdx(const PrepareSpec& spec);

// Reads a tabular CSV file: a header row of column names, then one example
// per row; comma-separated, RFC 4180 quotes allowed within a line, CR LF
// accepted, blank lines skipped, spaces around unquoted cells trimmed.
// `label_column` holds the class; every other column is a numeric feature
// (float32 [N, F], input_shape {F}). Labels: when every label cell is a
// non-negative integer it is the class id (num_classes = max + 1);
// otherwise the distinct labels, sorted, become ids 0, 1, ... and their
// names meta "classes". The split follows the file's row order, with no
// shuffling: the last test_fraction of the rows (rounded, at least one) are
// the test split, the first test_subset of them kept; of the rows before
// them the first train_subset are kept and their last validation_fraction
// is validation. With `normalize` every feature column is standardised with
// the training split's mean and population std (a constant column's std
// counts as 1). Throws Error(kNotFound) for a missing file, Error(kCorrupt)
// naming file, line and column for an empty file, a ragged row, an
// unterminated quote, a duplicate column name or a cell that is not a finite
// number, and Error(kInvalidArgument) with the spec's pointer for a missing
// label column, fewer than two classes, no feature column, or too few rows
// for the split.
Dataset PrepareCsv(const PrepareSpec& spec);

// Reads a folder of class folders, path/CLASS/*.png|jpg|jpeg (extensions in
// any case; other files and hidden entries ignored). Classes are the class
// folders' names, sorted (meta "classes", ids in that order). Images are
// decoded, converted to `channels`, resized to `image_size` (bilinear-like
// filtering of stb_image_resize on values in [0,1]), scaled to [0,1] and,
// with `normalize`, standardised with the training split's mean and std
// (one for all pixels). The split is seeded and stratified (see
// SeededSplit in stages/internal/dataset.h): the same files and seed give
// the same split. Throws Error(kNotFound) for a missing folder,
// Error(kCorrupt) naming the file for an image that cannot be decoded, and
// Error(kInvalidArgument) with the spec's pointer for an empty class folder,
// fewer than two classes, images of different sizes without image_size, or
// a class with too few images for the split.
Dataset PrepareImageFolder(const PrepareSpec& spec);

// Reads arrays of features and labels from .npy files in a folder ("npy")
// or from an .npz archive ("npz", stored or deflated members). x is
// float32, float64 or uint8 of rank 2 (tabular [N, F]), 3 ([N, H, W], read
// as [N, 1, H, W]) or 4 ([N, C, H, W]); uint8 images are scaled to [0,1].
// y is a 1-D array of integers >= 0 (uint8, int32, int64 or bool), the class
// ids (num_classes = max + 1). With test arrays they are the test split and
// the rest is split into training and validation; otherwise the seeded
// split takes test_fraction too. `normalize` standardises as PrepareIdx
// (images) or PrepareCsv (tabular) do. Throws Error(kNotFound) for a missing
// file or array (listing the archive's arrays), Error(kCorrupt) for a
// damaged file, and Error(kInvalidArgument) with the spec's pointer for an
// unsupported dtype, rank or fortran order, x and y of different lengths,
// negative labels, fewer than two classes or too few examples.
Dataset PrepareArrays(const PrepareSpec& spec);

// A tabular dataset without the feature columns `names` (meta "features"
// order kept): x tensors, input_shape, meta "features", "mean" and "std"
// shrink, meta "dropped_features" lists `names`. `data` is not changed.
// Throws Error(kInvalidArgument) naming the feature for an unknown or
// repeated name, when nothing would be left, or when `data` is not tabular
// (input_shape of rank 1 and meta "features").
Dataset DropFeatures(const Dataset& data,
                     const std::vector<std::string>& names);

// The dataset as a manifest of kind "dataset" with tensors train_x, train_y,
// val_x, val_y, test_x, test_y and meta {"input_shape", "num_classes",
// "train", "validation", "test", "mean", "std", "normalized", "source"};
// a CSV dataset's meta also has "format": "csv", "label_column", "features"
// (column names in order), "classes" (string labels only), and "mean" and
// "std" are arrays with one number per feature. Image-folder, npy and npz
// datasets' meta also has "format" and "split_seed"; an image folder's has
// "classes" (folder names in id order) and in "source" the images per class
// and the folder's PathDigest; arrays' has "test_split" ("arrays" or
// "fraction") and in "source" each array's name, dtype and shape and the
// files' SHA-256 ("mean" and "std" per feature for tabular arrays).
EncodedTensors EncodeDataset(const Dataset& dataset);

// Rebuilds a dataset from its manifest, fetching the six tensors. Throws
// Error(kCorrupt) when the manifest is not a consistent dataset (including
// "features" that do not match input_shape).
Dataset DecodeDataset(const store::Manifest& manifest,
                      const BlobFetcher& fetch);

}  // namespace baton::stages
