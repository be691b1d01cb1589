// Datasets of NumPy arrays: .npy files in a folder or the members of an
// .npz archive (PrepareArrays). The archive is read with libzip, which
// inflates numpy.savez_compressed's members and checks their CRCs.
#include <zip.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/file_digest.h"
#include "common/npy_header.h"
#include "stages/dataset.h"
#include "stages/internal/dataset.h"

namespace baton::stages {
namespace {

using namespace dataset_detail;

constexpr int64_t kMaxArrayBytes = int64_t{1} << 36;  // 64 GiB: surely wrong

// One array as read: its header, its data bytes and where it came from
// ("FILE" or "ARCHIVE:MEMBER") for messages.
struct NpyArray {
  NpyHeader header;
  std::string bytes;  // the whole file or member; data at header.data_offset
  std::string where;
  std::string key;  // the spec field that named it ("x", "y_test", ...)
};

NpyArray FromBytes(std::string bytes, std::string where, std::string key) {
  NpyArray array;
  array.header = ParseNpyHeader(bytes, where);
  if (static_cast<int64_t>(bytes.size()) - array.header.data_offset !=
      array.header.data_bytes) {
    throw Error(ErrorCode::kCorrupt,
                "npy file " + where + ": has " +
                    std::to_string(static_cast<int64_t>(bytes.size()) -
                                   array.header.data_offset) +
                    " data bytes but its header says " +
                    std::to_string(array.header.data_bytes));
  }
  array.bytes = std::move(bytes);
  array.where = std::move(where);
  array.key = std::move(key);
  return array;
}

struct ZipCloser {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct ZipFileCloser {
  void operator()(zip_file_t* file) const { zip_fclose(file); }
};

// Where the arrays come from: NAME.npy files in a folder ("npy") or the
// NAME.npy members of an .npz archive.
class ArraySource {
 public:
  explicit ArraySource(const PrepareSpec& spec)
      : path_(spec.path), npz_(spec.format == "npz") {
    if (!npz_) {
      if (!std::filesystem::is_directory(path_)) {
        throw Error(ErrorCode::kNotFound,
                    "npy folder " + path_ +
                        " not found (\"path\" of the "
                        "\"npy\" format is the folder holding the .npy files)");
      }
      return;
    }
    if (!FileExists(path_)) {
      throw Error(ErrorCode::kNotFound, "npz file " + path_ + " not found");
    }
    int code = 0;
    archive_.reset(zip_open(path_.c_str(), ZIP_RDONLY, &code));
    if (!archive_) {
      zip_error_t error;
      zip_error_init_with_code(&error, code);
      std::string text = zip_error_strerror(&error);
      zip_error_fini(&error);
      throw Error(
          ErrorCode::kCorrupt,
          "npz file " + path_ + ": not a readable zip archive (" + text + ")");
    }
  }

  bool Has(const std::string& name) const {
    if (!npz_) return FileExists(FilePath(name));
    return zip_name_locate(archive_.get(), (name + ".npy").c_str(), 0) >= 0;
  }

  // The arrays' names, sorted (npz only).
  std::vector<std::string> Names() const {
    std::vector<std::string> names;
    const zip_int64_t count = zip_get_num_entries(archive_.get(), 0);
    for (zip_int64_t i = 0; i < count; ++i) {
      const char* name = zip_get_name(archive_.get(), i, 0);
      if (name == nullptr) continue;
      std::string text = name;
      if (text.size() > 4 && text.compare(text.size() - 4, 4, ".npy") == 0) {
        names.push_back(text.substr(0, text.size() - 4));
      }
    }
    std::sort(names.begin(), names.end());
    return names;
  }

  NpyArray Read(const std::string& name, const std::string& key) const {
    return npz_ ? ReadMember(name, key) : ReadFile(name, key);
  }

 private:
  std::string FilePath(const std::string& name) const {
    return path_ + "/" + name + ".npy";
  }

  NpyArray ReadFile(const std::string& name, const std::string& key) const {
    const std::string file = FilePath(name);
    if (!FileExists(file)) {
      throw Error(
          ErrorCode::kNotFound,
          "prepare: npy file " + file + " not found (array \"" + name + "\")",
          "/dataset/" + key);
    }
    std::ifstream in(file, std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (in.bad()) {
      throw Error(ErrorCode::kUnavailable, "cannot read npy file " + file);
    }
    return FromBytes(std::move(bytes).str(), file, key);
  }

  NpyArray ReadMember(const std::string& name, const std::string& key) const {
    const std::string member = name + ".npy";
    const std::string where = path_ + ":" + member;
    zip_stat_t stat;
    zip_stat_init(&stat);
    if (zip_stat(archive_.get(), member.c_str(), 0, &stat) != 0) {
      std::string listed;
      for (const std::string& n : Names()) {
        listed += (listed.empty() ? "\"" : ", \"") + n + "\"";
      }
      throw Error(ErrorCode::kNotFound,
                  "prepare: npz file " + path_ + " has no array \"" + name +
                      "\" (it has " + (listed.empty() ? "none" : listed) + ")",
                  "/dataset/" + key);
    }
    if (!(stat.valid & ZIP_STAT_SIZE) ||
        stat.size > static_cast<zip_uint64_t>(kMaxArrayBytes)) {
      throw Error(ErrorCode::kCorrupt,
                  "npz file " + where + ": implausible member size");
    }
    std::unique_ptr<zip_file_t, ZipFileCloser> file(
        zip_fopen(archive_.get(), member.c_str(), 0));
    if (!file) {
      throw Error(ErrorCode::kCorrupt, "npz file " + where +
                                           ": cannot open it (" +
                                           zip_strerror(archive_.get()) + ")");
    }
    std::string bytes(static_cast<size_t>(stat.size), '\0');
    size_t done = 0;
    while (done < bytes.size()) {
      const zip_int64_t got =
          zip_fread(file.get(), bytes.data() + done, bytes.size() - done);
      if (got <= 0) {
        throw Error(ErrorCode::kCorrupt,
                    "npz file " + where + ": cannot read it (" +
                        zip_file_strerror(file.get()) + ")");
      }
      done += static_cast<size_t>(got);
    }
    // Reading past the end makes libzip check the member's CRC.
    char extra;
    if (zip_fread(file.get(), &extra, 1) != 0) {
      throw Error(ErrorCode::kCorrupt, "npz file " + where +
                                           ": fails its check (" +
                                           zip_file_strerror(file.get()) + ")");
    }
    return FromBytes(std::move(bytes), where, key);
  }

  std::string path_;
  bool npz_;
  std::unique_ptr<zip_t, ZipCloser> archive_;
};

template <typename T>
const T* DataOf(const NpyArray& array) {
  return reinterpret_cast<const T*>(array.bytes.data() +
                                    array.header.data_offset);
}

// x as float32 [N, F] or [N, C, H, W]; uint8 images scaled to [0, 1].
torch::Tensor Features(const NpyArray& array) {
  std::vector<int64_t> shape = array.header.shape;
  if (shape.size() < 2 || shape.size() > 4) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: array " + array.where + " has shape " +
                    Json(shape).dump() +
                    "; features must be [N, F], [N, H, W] or [N, C, H, W]",
                "/dataset/" + array.key);
  }
  if (shape.size() == 3) shape.insert(shape.begin() + 1, 1);
  torch::Tensor x = torch::empty(shape, torch::kFloat32);
  float* out = x.data_ptr<float>();
  const int64_t n = x.numel();
  switch (array.header.dtype) {
    case NpyDtype::kFloat32:
      std::memcpy(out, DataOf<char>(array), n * sizeof(float));
      break;
    case NpyDtype::kFloat64: {
      const double* in = DataOf<double>(array);
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(in[i]);
      break;
    }
    case NpyDtype::kUint8: {
      const uint8_t* in = DataOf<uint8_t>(array);
      const float scale = shape.size() == 4 ? 1.0f / 255.0f : 1.0f;
      for (int64_t i = 0; i < n; ++i) out[i] = in[i] * scale;
      break;
    }
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: array " + array.where + " has dtype " +
                      NpyDtypeName(array.header.dtype) +
                      "; features must be float32, float64 or uint8",
                  "/dataset/" + array.key);
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(out[i])) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: array " + array.where +
                      " has a value that is not a finite number (element " +
                      std::to_string(i) + ")",
                  "/dataset/" + array.key);
    }
  }
  return x;
}

// y as class ids: a 1-D array of integers >= 0.
std::vector<int64_t> Labels(const NpyArray& array) {
  const std::vector<int64_t>& shape = array.header.shape;
  if (shape.size() != 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: array " + array.where + " has shape " +
                    Json(shape).dump() + "; labels must be 1-D [N]",
                "/dataset/" + array.key);
  }
  std::vector<int64_t> labels(static_cast<size_t>(shape[0]));
  for (size_t i = 0; i < labels.size(); ++i) {
    switch (array.header.dtype) {
      case NpyDtype::kUint8:
      case NpyDtype::kBool:
        labels[i] = DataOf<uint8_t>(array)[i];
        break;
      case NpyDtype::kInt32:
        labels[i] = DataOf<int32_t>(array)[i];
        break;
      case NpyDtype::kInt64:
        labels[i] = DataOf<int64_t>(array)[i];
        break;
      default:
        throw Error(ErrorCode::kInvalidArgument,
                    "prepare: array " + array.where + " has dtype " +
                        NpyDtypeName(array.header.dtype) +
                        "; labels must be integers (uint8, int32, int64 or "
                        "bool)",
                    "/dataset/" + array.key);
    }
    if (labels[i] < 0) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: array " + array.where + " has label " +
                      std::to_string(labels[i]) + " at index " +
                      std::to_string(i) + "; labels must be >= 0",
                  "/dataset/" + array.key);
    }
  }
  return labels;
}

Json Described(const NpyArray& array, const std::string& name) {
  return {{"name", name},
          {"dtype", NpyDtypeName(array.header.dtype)},
          {"shape", array.header.shape}};
}

torch::Tensor Rows(const torch::Tensor& x, const std::vector<int64_t>& rows) {
  return x.index_select(0, torch::tensor(rows, torch::kInt64)).contiguous();
}

torch::Tensor LabelTensor(const std::vector<int64_t>& labels,
                          const std::vector<int64_t>& rows) {
  torch::Tensor y =
      torch::empty({static_cast<int64_t>(rows.size())}, torch::kInt64);
  for (size_t i = 0; i < rows.size(); ++i) {
    y.data_ptr<int64_t>()[i] = labels[rows[i]];
  }
  return y;
}

}  // namespace

Dataset PrepareArrays(const PrepareSpec& spec) {
  const ArraySource source(spec);
  const NpyArray x_array = source.Read(spec.x, "x");
  const NpyArray y_array = source.Read(spec.y, "y");
  const bool has_x_test = source.Has(spec.x_test);
  const bool has_y_test = source.Has(spec.y_test);
  const bool with_test = spec.test_arrays_named || has_x_test || has_y_test;
  std::optional<NpyArray> x_test_array, y_test_array;
  if (with_test) {
    x_test_array = source.Read(spec.x_test, "x_test");
    y_test_array = source.Read(spec.y_test, "y_test");
  }

  torch::Tensor x = Features(x_array);
  std::vector<int64_t> y = Labels(y_array);
  if (x.size(0) != static_cast<int64_t>(y.size())) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: " + x_array.where + " has " +
                    std::to_string(x.size(0)) + " examples but " +
                    y_array.where + " has " + std::to_string(y.size()) +
                    " labels",
                "/dataset/y");
  }
  std::vector<int64_t> example(x.sizes().begin() + 1, x.sizes().end());
  torch::Tensor x_test;
  std::vector<int64_t> y_test;
  if (with_test) {
    x_test = Features(*x_test_array);
    y_test = Labels(*y_test_array);
    if (x_test.size(0) != static_cast<int64_t>(y_test.size())) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: " + x_test_array->where + " has " +
                      std::to_string(x_test.size(0)) + " examples but " +
                      y_test_array->where + " has " +
                      std::to_string(y_test.size()) + " labels",
                  "/dataset/y_test");
    }
    const std::vector<int64_t> test_example(x_test.sizes().begin() + 1,
                                            x_test.sizes().end());
    if (test_example != example || x_test.size(0) < 1) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: " + x_test_array->where +
                      " has examples of shape " + Json(test_example).dump() +
                      " but " + x_array.where + " has " + Json(example).dump() +
                      (x_test.size(0) < 1 ? " (and no test examples)" : ""),
                  "/dataset/x_test");
    }
  }
  std::set<int64_t> distinct(y.begin(), y.end());
  if (distinct.size() < 2) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: " + y_array.where + " has " +
                    std::to_string(distinct.size()) +
                    " distinct label(s); a classifier needs at least 2",
                "/dataset/y");
  }
  int64_t max_label = *distinct.rbegin();
  for (int64_t v : y_test) max_label = std::max(max_label, v);

  const uint64_t seed = spec.split_seed.value_or(0);
  const SplitIndices split = SeededSplit(
      y, spec.validation_fraction,
      with_test ? std::nullopt : std::optional(spec.test_fraction), seed, {});

  Dataset dataset;
  dataset.input_shape = example;
  dataset.num_classes = max_label + 1;
  dataset.train_x = Rows(x, split.train);
  dataset.train_y = LabelTensor(y, split.train);
  dataset.val_x = Rows(x, split.validation);
  dataset.val_y = LabelTensor(y, split.validation);
  if (with_test) {
    dataset.test_x = x_test;
    dataset.test_y = torch::tensor(y_test, torch::kInt64);
  } else {
    dataset.test_x = Rows(x, split.test);
    dataset.test_y = LabelTensor(y, split.test);
  }

  // Training statistics in double, in row order: one mean and std for
  // images, one per feature for tabular data (a constant one's std is 1).
  const bool tabular = example.size() == 1;
  const int64_t width = tabular ? example[0] : 1;
  std::vector<double> mean(width, 0.0), stddev(width, 0.0);
  const float* train = dataset.train_x.data_ptr<float>();
  const int64_t values = dataset.train_x.numel();
  for (int64_t i = 0; i < values; ++i)
    mean[tabular ? i % width : 0] += train[i];
  const double per_column = static_cast<double>(values) / width;
  for (double& m : mean) m /= per_column;
  for (int64_t i = 0; i < values; ++i) {
    const int64_t column = tabular ? i % width : 0;
    const double d = train[i] - mean[column];
    stddev[column] += d * d;
  }
  for (double& s : stddev) {
    s = std::sqrt(s / per_column);
    if (tabular && !(s > 0)) s = 1.0;
  }
  if (spec.normalize) {
    if (!(stddev[0] > 0)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: cannot normalise: every training value is equal",
                  "/normalize");
    }
    for (torch::Tensor* t :
         {&dataset.train_x, &dataset.val_x, &dataset.test_x}) {
      float* v = t->data_ptr<float>();
      const int64_t count = t->numel();
      for (int64_t i = 0; i < count; ++i) {
        const int64_t column = tabular ? i % width : 0;
        v[i] = static_cast<float>((v[i] - mean[column]) / stddev[column]);
      }
    }
  }

  Json arrays = {{"x", Described(x_array, spec.x)},
                 {"y", Described(y_array, spec.y)}};
  Json files = Json::object();
  if (with_test) {
    arrays["x_test"] = Described(*x_test_array, spec.x_test);
    arrays["y_test"] = Described(*y_test_array, spec.y_test);
  }
  if (spec.format == "npz") {
    files[spec.path.substr(spec.path.rfind('/') + 1)] = FileSha256(spec.path);
  } else {
    for (const auto& [key, described] : arrays.items()) {
      const std::string name = described["name"].get<std::string>() + ".npy";
      files[name] = FileSha256(spec.path + "/" + name);
    }
  }
  dataset.meta = {
      {"format", spec.format},
      {"input_shape", example},
      {"num_classes", dataset.num_classes},
      {"train", split.train.size()},
      {"validation", split.validation.size()},
      {"test", dataset.test_y.size(0)},
      {"split_seed", seed},
      {"test_split", with_test ? "arrays" : "fraction"},
      {"normalized", spec.normalize},
      {"source",
       {{"format", spec.format},
        {"path", spec.path},
        {"arrays", arrays},
        {"files", files}}},
  };
  if (tabular) {
    dataset.meta["mean"] = mean;
    dataset.meta["std"] = stddev;
  } else {
    dataset.meta["mean"] = mean[0];
    dataset.meta["std"] = stddev[0];
  }
  return dataset;
}

}  // namespace baton::stages
