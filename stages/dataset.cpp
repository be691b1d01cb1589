#include "stages/dataset.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string_view>

#include "common/digest.h"
#include "common/error.h"
#include "stages/internal/dataset.h"

namespace baton::stages {
namespace dataset_detail {

bool FileExists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string FileDigest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Sha256 hash;
  std::array<char, 1 << 16> buffer;
  while (in) {
    in.read(buffer.data(), buffer.size());
    hash.Update(std::string_view(buffer.data(), in.gcount()));
  }
  if (in.bad()) {
    throw Error(ErrorCode::kUnavailable, "cannot read dataset file " + path);
  }
  return hash.FinishHex();
}

TrainValidationCounts SplitTrainValidation(int64_t used, double validation_fraction) {
  if (used < 2) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: need at least 2 training examples to split off a "
                "validation set",
                "/train_subset");
  }
  const int64_t validation = std::clamp<int64_t>(
      std::llround(static_cast<double>(used) * validation_fraction), 1,
      used - 1);
  return {used - validation, validation};
}

}  // namespace dataset_detail
namespace {

using namespace dataset_detail;

constexpr int64_t kMaxIdxBytes = int64_t{1} << 34;  // 16 GiB: surely corrupt


struct GzCloser {
  void operator()(gzFile_s* file) const { gzclose(file); }
};

std::string GzErrorText(gzFile file) {
  int code = 0;
  const char* text = gzerror(file, &code);
  return code == Z_OK || text == nullptr ? "unexpected end of file" : text;
}

// Reads exactly `size` bytes or throws Error(kCorrupt).
void ReadExactly(gzFile file, const std::string& path, uint8_t* out,
                 int64_t size, const char* what) {
  while (size > 0) {
    unsigned chunk = static_cast<unsigned>(std::min<int64_t>(size, 1 << 30));
    int got = gzread(file, out, chunk);
    if (got <= 0) {
      throw Error(ErrorCode::kCorrupt, "idx file " + path + ": cannot read " +
                                           what + ": " + GzErrorText(file));
    }
    out += got;
    size -= got;
  }
}

// The path of `name` in `folder`, gzipped or not.
std::string FindIdxFile(const std::string& folder, const std::string& name) {
  std::string base = folder + "/" + name;
  if (FileExists(base + ".gz")) return base + ".gz";
  if (FileExists(base)) return base;
  throw Error(ErrorCode::kNotFound,
              "dataset file " + base + ".gz not found (nor " + base + ")");
}


// Pixel bytes -> float32 [n, ...shape], each value table[byte].
torch::Tensor ImagesToTensor(const uint8_t* bytes, int64_t n,
                             const std::vector<int64_t>& shape,
                             const std::array<float, 256>& table) {
  std::vector<int64_t> sizes = {n};
  sizes.insert(sizes.end(), shape.begin(), shape.end());
  torch::Tensor tensor = torch::empty(sizes, torch::kFloat32);
  float* out = tensor.data_ptr<float>();
  const int64_t count = tensor.numel();
  for (int64_t i = 0; i < count; ++i) out[i] = table[bytes[i]];
  return tensor;
}

torch::Tensor LabelsToTensor(const uint8_t* bytes, int64_t n) {
  torch::Tensor tensor = torch::empty({n}, torch::kInt64);
  int64_t* out = tensor.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) out[i] = bytes[i];
  return tensor;
}

std::optional<int64_t> OptionalCount(const Json& spec, const char* key) {
  auto it = spec.find(key);
  if (it == spec.end()) return std::nullopt;
  if (!it->is_number_integer() || it->get<int64_t>() < 1) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("prepare: \"") + key +
                    "\" must be a positive integer, got " + it->dump(),
                std::string("/") + key);
  }
  return it->get<int64_t>();
}

// Reads one images/labels pair, at most `limit` examples, checking that both
// files describe the same number of examples.
std::pair<IdxArray, IdxArray> ReadSplit(const std::string& folder,
                                        const std::string& prefix,
                                        std::optional<int64_t> limit,
                                        const char* limit_name, Json& files) {
  std::string images_path = FindIdxFile(folder, prefix + "-images-idx3-ubyte");
  std::string labels_path = FindIdxFile(folder, prefix + "-labels-idx1-ubyte");
  IdxArray images = ReadIdx(images_path, limit.value_or(-1));
  IdxArray labels = ReadIdx(labels_path, limit.value_or(-1));
  if (images.dims.size() != 3 || labels.dims.size() != 1) {
    throw Error(ErrorCode::kCorrupt,
                "dataset " + folder + ": " + prefix +
                    " images must be 3-D and labels 1-D idx files");
  }
  if (limit && images.dims[0] < *limit) {
    throw Error(ErrorCode::kInvalidArgument,
                std::string("prepare: \"") + limit_name + "\" is " +
                    std::to_string(*limit) + " but " + images_path + " has " +
                    std::to_string(images.dims[0]) + " examples",
                std::string("/") + limit_name);
  }
  if (images.dims[0] != labels.dims[0]) {
    throw Error(ErrorCode::kCorrupt,
                "dataset " + folder + ": " + images_path + " has " +
                    std::to_string(images.dims[0]) + " examples but " +
                    labels_path + " has " + std::to_string(labels.dims[0]));
  }
  for (const std::string& path : {images_path, labels_path}) {
    files[path.substr(path.rfind('/') + 1)] = FileDigest(path);
  }
  return {std::move(images), std::move(labels)};
}

// The dataset fields of the image_folder, npy and npz formats; each is
// refused for the other formats.
void ParseNewFormatFields(const Json& dataset, PrepareSpec& parsed) {
  const bool images = parsed.format == "image_folder";
  const bool arrays = parsed.format == "npy" || parsed.format == "npz";
  auto only_for = [&](const char* key, bool allowed, const char* formats) {
    auto it = dataset.find(key);
    if (it == dataset.end()) return false;
    if (!allowed) {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("prepare: \"") + key + "\" is a setting of the " +
                      formats + " only",
                  std::string("/dataset/") + key);
    }
    return true;
  };
  if (only_for("image_size", images, "\"image_folder\" format")) {
    const Json& size = dataset["image_size"];
    bool ok = size.is_array() && size.size() == 2;
    for (size_t i = 0; ok && i < 2; ++i) {
      ok = size[i].is_number_integer() && size[i].get<int64_t>() >= 1 &&
           size[i].get<int64_t>() <= 4096;
    }
    if (!ok) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: \"image_size\" must be [height, width], integers "
                  "in [1, 4096], got " +
                      size.dump(),
                  "/dataset/image_size");
    }
    parsed.image_size = size.get<std::vector<int64_t>>();
  }
  if (only_for("channels", images, "\"image_folder\" format")) {
    const Json& channels = dataset["channels"];
    if (!channels.is_number_integer() ||
        (channels.get<int64_t>() != 1 && channels.get<int64_t>() != 3)) {
      throw Error(
          ErrorCode::kInvalidArgument,
          "prepare: \"channels\" must be 1 or 3, got " + channels.dump(),
          "/dataset/channels");
    }
    parsed.channels = channels.get<int64_t>();
  }
  std::string* names[] = {&parsed.x, &parsed.y, &parsed.x_test, &parsed.y_test};
  const char* keys[] = {"x", "y", "x_test", "y_test"};
  for (int i = 0; i < 4; ++i) {
    if (!only_for(keys[i], arrays, "\"npy\" and \"npz\" formats")) continue;
    const Json& name = dataset[keys[i]];
    std::string text = name.is_string() ? name.get<std::string>() : "";
    if (text.size() > 4 && text.compare(text.size() - 4, 4, ".npy") == 0) {
      text.resize(text.size() - 4);
    }
    if (text.empty() || text.find('/') != std::string::npos ||
        text.front() == '.') {
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("prepare: \"") + keys[i] +
                      "\" must name an array (a file name without folders), "
                      "got " +
                      name.dump(),
                  std::string("/dataset/") + keys[i]);
    }
    *names[i] = text;
    if (i >= 2) parsed.test_arrays_named = true;
  }
}

}  // namespace

namespace dataset_detail {

SplitIndices SeededSplit(const std::vector<int64_t>& labels,
                         double validation_fraction,
                         std::optional<double> test_fraction, uint64_t seed,
                         const std::vector<std::string>& class_names) {
  std::vector<int64_t> classes;  // in order of first appearance
  std::map<int64_t, std::vector<int64_t>> members;
  for (int64_t i = 0; i < static_cast<int64_t>(labels.size()); ++i) {
    auto& list = members[labels[i]];
    if (list.empty()) classes.push_back(labels[i]);
    list.push_back(i);
  }
  std::mt19937_64 rng(seed);
  auto shuffle = [&](std::vector<int64_t>& v) {
    for (size_t i = v.size(); i > 1; --i) {
      std::swap(v[i - 1], v[rng() % i]);
    }
  };
  auto round_share = [](size_t n, double fraction) {
    return std::llround(static_cast<double>(n) * fraction);
  };
  const int64_t needed = test_fraction ? 3 : 2;
  SplitIndices split;
  for (int64_t label : classes) {
    std::vector<int64_t>& list = members[label];
    const int64_t n = static_cast<int64_t>(list.size());
    if (n < needed) {
      const std::string name =
          label >= 0 && label < static_cast<int64_t>(class_names.size())
              ? "\"" + class_names[label] + "\""
              : std::to_string(label);
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: class " + name + " has " + std::to_string(n) +
                      " example" + (n == 1 ? "" : "s") + "; a seeded " +
                      (test_fraction ? "train, validation and test"
                                     : "train and validation") +
                      " split needs at least " + std::to_string(needed) +
                      " of each class",
                  "/dataset/path");
    }
    shuffle(list);
    int64_t at = 0;
    if (test_fraction) {
      const int64_t test =
          std::clamp<int64_t>(round_share(n, *test_fraction), 1, n - 2);
      split.test.insert(split.test.end(), list.begin(), list.begin() + test);
      at = test;
    }
    const int64_t rest = n - at;
    const int64_t validation = std::clamp<int64_t>(
        round_share(rest, validation_fraction), 1, rest - 1);
    split.validation.insert(split.validation.end(), list.begin() + at,
                            list.begin() + at + validation);
    split.train.insert(split.train.end(), list.begin() + at + validation,
                       list.end());
  }
  shuffle(split.train);
  shuffle(split.validation);
  shuffle(split.test);
  return split;
}

}  // namespace dataset_detail

IdxArray ReadIdx(const std::string& path, int64_t max_items) {
  if (!FileExists(path)) {
    throw Error(ErrorCode::kNotFound, "idx file " + path + " not found");
  }
  std::unique_ptr<gzFile_s, GzCloser> file(gzopen(path.c_str(), "rb"));
  if (!file) {
    throw Error(ErrorCode::kUnavailable, "cannot open idx file " + path);
  }
  gzbuffer(file.get(), 1 << 17);
  std::array<uint8_t, 4> magic;
  ReadExactly(file.get(), path, magic.data(), 4, "the header");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] == 0 ||
      magic[3] > 4) {
    throw Error(ErrorCode::kCorrupt,
                "idx file " + path +
                    ": not an idx file of unsigned bytes (bad magic number)");
  }
  IdxArray array;
  int64_t item_bytes = 1;
  for (int i = 0; i < magic[3]; ++i) {
    std::array<uint8_t, 4> be;
    ReadExactly(file.get(), path, be.data(), 4, "the header");
    int64_t d = (int64_t{be[0]} << 24) | (be[1] << 16) | (be[2] << 8) | be[3];
    array.dims.push_back(d);
    if (i > 0) {
      if (d == 0 || item_bytes > kMaxIdxBytes / d) {
        throw Error(ErrorCode::kCorrupt,
                    "idx file " + path + ": implausible dimensions");
      }
      item_bytes *= d;
    }
  }
  if (array.dims[0] > kMaxIdxBytes / item_bytes) {
    throw Error(ErrorCode::kCorrupt,
                "idx file " + path + ": implausible dimensions");
  }
  const int64_t in_file = array.dims[0];
  const bool read_all = max_items < 0 || max_items >= in_file;
  array.dims[0] = read_all ? in_file : max_items;
  array.data.resize(static_cast<size_t>(array.dims[0] * item_bytes));
  ReadExactly(file.get(), path, array.data.data(),
              static_cast<int64_t>(array.data.size()), "the data");
  if (read_all) {
    // Reading past the end makes zlib check the gzip trailer (CRC, length).
    uint8_t extra;
    int got = gzread(file.get(), &extra, 1);
    if (got != 0) {
      throw Error(ErrorCode::kCorrupt,
                  "idx file " + path + ": " +
                      (got > 0 ? std::string("has bytes after its data")
                               : GzErrorText(file.get())));
    }
  }
  return array;
}

PrepareSpec ParsePrepareSpec(const Json& spec) {
  if (!spec.is_object()) {
    throw Error(ErrorCode::kInvalidArgument, "prepare: spec must be an object");
  }
  PrepareSpec parsed;
  auto dataset = spec.find("dataset");
  if (dataset == spec.end() || !dataset->is_object() ||
      !dataset->contains("path") || !(*dataset)["path"].is_string()) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: needs \"dataset\": {\"format\": \"idx\", \"path\": "
                "\"...\"}",
                "/dataset");
  }
  parsed.path = (*dataset)["path"].get<std::string>();
  if (dataset->contains("format")) {
    const Json& format = (*dataset)["format"];
    static const std::set<std::string> kFormats = {"idx", "csv", "image_folder",
                                                   "npy", "npz"};
    if (!format.is_string() || !kFormats.count(format.get<std::string>())) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: unsupported dataset format " + format.dump() +
                      " (\"idx\", \"csv\", \"image_folder\", \"npy\" or "
                      "\"npz\")",
                  "/dataset/format");
    }
    parsed.format = format.get<std::string>();
  }
  if (auto it = dataset->find("label_column"); it != dataset->end()) {
    if (!it->is_string() || it->get<std::string>().empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: \"label_column\" must be a non-empty string, got " +
                      it->dump(),
                  "/dataset/label_column");
    }
    parsed.label_column = it->get<std::string>();
  }
  ParseNewFormatFields(*dataset, parsed);
  parsed.train_subset = OptionalCount(spec, "train_subset");
  parsed.test_subset = OptionalCount(spec, "test_subset");
  if (auto it = spec.find("validation_fraction"); it != spec.end()) {
    if (!it->is_number() || it->get<double>() <= 0 || it->get<double>() >= 1) {
      throw Error(
          ErrorCode::kInvalidArgument,
          "prepare: \"validation_fraction\" must be a number in (0, 1), "
          "got " +
              it->dump(),
          "/validation_fraction");
    }
    parsed.validation_fraction = it->get<double>();
  }
  if (auto it = spec.find("test_fraction"); it != spec.end()) {
    if (!it->is_number() || it->get<double>() <= 0 || it->get<double>() >= 1) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: \"test_fraction\" must be a number in (0, 1), "
                  "got " +
                      it->dump(),
                  "/test_fraction");
    }
    parsed.test_fraction = it->get<double>();
  }
  if (auto it = spec.find("normalize"); it != spec.end()) {
    if (!it->is_boolean()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: \"normalize\" must be true or false", "/normalize");
    }
    parsed.normalize = it->get<bool>();
  }
  if (auto it = spec.find("split_seed"); it != spec.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) {
      throw Error(
          ErrorCode::kInvalidArgument,
          "prepare: \"split_seed\" must be an integer >= 0, got " + it->dump(),
          "/split_seed");
    }
    parsed.split_seed = it->get<uint64_t>();
  }
  if (parsed.format != "idx" && parsed.format != "csv") {
    for (const char* key : {"train_subset", "test_subset"}) {
      if (spec.contains(key)) {
        throw Error(ErrorCode::kInvalidArgument,
                    std::string("prepare: \"") + key +
                        "\" is a setting of the \"idx\" and \"csv\" formats "
                        "only",
                    std::string("/") + key);
      }
    }
  }
  return parsed;
}

Dataset PrepareDataset(const PrepareSpec& spec) {
  if (spec.format == "idx") return PrepareIdx(spec);
  if (spec.format == "csv") return PrepareCsv(spec);
  if (spec.format == "image_folder") return PrepareImageFolder(spec);
  if (spec.format == "npy" || spec.format == "npz") return PrepareArrays(spec);
  throw Error(ErrorCode::kInvalidArgument,
              "prepare: unsupported dataset format \"" + spec.format + "\"",
              "/dataset/format");
}

Dataset PrepareIdx(const PrepareSpec& spec) {
  Json files = Json::object();
  auto [train_images, train_labels] =
      ReadSplit(spec.path, "train", spec.train_subset, "train_subset", files);
  auto [test_images, test_labels] =
      ReadSplit(spec.path, "t10k", spec.test_subset, "test_subset", files);
  if (train_images.dims[1] != test_images.dims[1] ||
      train_images.dims[2] != test_images.dims[2]) {
    throw Error(
        ErrorCode::kCorrupt,
        "dataset " + spec.path + ": train and test images differ in size");
  }
  const int64_t total = train_images.dims[0];
  const TrainValidationCounts split =
      SplitTrainValidation(total, spec.validation_fraction);
  const int64_t train_count = split.train, val_count = split.validation;
  const std::vector<int64_t> shape = {1, train_images.dims[1],
                                      train_images.dims[2]};
  const int64_t pixels = shape[1] * shape[2];

  // Exact integer sums make the statistics independent of thread counts.
  uint64_t sum = 0, sum_squares = 0;
  for (int64_t i = 0; i < train_count * pixels; ++i) {
    uint64_t v = train_images.data[i];
    sum += v;
    sum_squares += v * v;
  }
  const double n = static_cast<double>(train_count * pixels);
  const double mean = static_cast<double>(sum) / n / 255.0;
  const double variance =
      static_cast<double>(sum_squares) / n / (255.0 * 255.0) - mean * mean;
  const double stddev = std::sqrt(std::max(variance, 0.0));
  if (spec.normalize && !(stddev > 0)) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: cannot normalise: every training pixel is equal",
                "/normalize");
  }
  std::array<float, 256> table;
  for (int v = 0; v < 256; ++v) {
    double x = v / 255.0;
    table[v] = static_cast<float>(spec.normalize ? (x - mean) / stddev : x);
  }

  Dataset dataset;
  dataset.input_shape = shape;
  const uint8_t* images = train_images.data.data();
  const uint8_t* labels = train_labels.data.data();
  dataset.train_x = ImagesToTensor(images, train_count, shape, table);
  dataset.train_y = LabelsToTensor(labels, train_count);
  dataset.val_x =
      ImagesToTensor(images + train_count * pixels, val_count, shape, table);
  dataset.val_y = LabelsToTensor(labels + train_count, val_count);
  dataset.test_x = ImagesToTensor(test_images.data.data(), test_images.dims[0],
                                  shape, table);
  dataset.test_y = LabelsToTensor(test_labels.data.data(), test_images.dims[0]);
  uint8_t max_label = 0;
  for (uint8_t v : train_labels.data) max_label = std::max(max_label, v);
  for (uint8_t v : test_labels.data) max_label = std::max(max_label, v);
  dataset.num_classes = int64_t{max_label} + 1;
  dataset.meta = {
      {"input_shape", shape},
      {"num_classes", dataset.num_classes},
      {"train", train_count},
      {"validation", val_count},
      {"test", test_images.dims[0]},
      {"mean", mean},
      {"std", stddev},
      {"normalized", spec.normalize},
      {"source", {{"format", "idx"}, {"path", spec.path}, {"files", files}}},
  };
  return dataset;
}


EncodedTensors EncodeDataset(const Dataset& dataset) {
  return EncodeTensors({{"train_x", dataset.train_x},
                        {"train_y", dataset.train_y},
                        {"val_x", dataset.val_x},
                        {"val_y", dataset.val_y},
                        {"test_x", dataset.test_x},
                        {"test_y", dataset.test_y}},
                       "dataset", dataset.meta);
}

Dataset DecodeDataset(const store::Manifest& manifest,
                      const BlobFetcher& fetch) {
  if (manifest.kind != "dataset") {
    throw Error(
        ErrorCode::kInvalidArgument,
        "expected a dataset manifest, got kind \"" + manifest.kind + "\"");
  }
  Dataset dataset;
  dataset.meta = manifest.meta;
  try {
    dataset.input_shape =
        manifest.meta.at("input_shape").get<std::vector<int64_t>>();
    dataset.num_classes = manifest.meta.at("num_classes").get<int64_t>();
    if (auto it = manifest.meta.find("features"); it != manifest.meta.end()) {
      const auto features = it->get<std::vector<std::string>>();
      if (dataset.input_shape.size() != 1 ||
          static_cast<int64_t>(features.size()) != dataset.input_shape[0]) {
        throw Error(ErrorCode::kCorrupt,
                    "dataset manifest: meta \"features\" names " +
                        std::to_string(features.size()) +
                        " columns but input_shape is " +
                        manifest.meta.at("input_shape").dump());
      }
    }
  } catch (const Json::exception& e) {
    throw Error(ErrorCode::kCorrupt,
                std::string("dataset manifest meta: ") + e.what());
  }
  std::map<std::string, torch::Tensor> named;
  for (const char* name :
       {"train_x", "train_y", "val_x", "val_y", "test_x", "test_y"}) {
    const store::TensorEntry* entry = store::FindTensor(manifest, name);
    if (entry == nullptr) {
      throw Error(ErrorCode::kCorrupt,
                  std::string("dataset manifest has no tensor ") + name);
    }
    named[name] = TensorFromBytes(fetch(entry->blob), ParseDtype(entry->dtype),
                                  entry->shape, name);
  }
  dataset.train_x = named.at("train_x");
  dataset.train_y = named.at("train_y");
  dataset.val_x = named.at("val_x");
  dataset.val_y = named.at("val_y");
  dataset.test_x = named.at("test_x");
  dataset.test_y = named.at("test_y");
  for (const auto& [x, y] : {std::pair{dataset.train_x, dataset.train_y},
                             std::pair{dataset.val_x, dataset.val_y},
                             std::pair{dataset.test_x, dataset.test_y}}) {
    std::vector<int64_t> example(x.sizes().begin() + (x.dim() > 0 ? 1 : 0),
                                 x.sizes().end());
    if (x.scalar_type() != torch::kFloat32 ||
        y.scalar_type() != torch::kInt64 || y.dim() != 1 || x.dim() < 1 ||
        x.size(0) != y.size(0) || example != dataset.input_shape) {
      throw Error(ErrorCode::kCorrupt,
                  "dataset manifest: tensors do not match input_shape or "
                  "each other");
    }
  }
  return dataset;
}

}  // namespace baton::stages
