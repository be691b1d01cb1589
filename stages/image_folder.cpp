// Image datasets as folders of class folders (PrepareImageFolder), decoded
// with stb_image and resized with stb_image_resize.
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>
#include <tuple>

#include "common/error.h"
#include "common/file_digest.h"
#include "stages/dataset.h"
#include "stages/internal/dataset.h"

namespace baton::stages {
namespace {

namespace fs = std::filesystem;
using namespace dataset_detail;

struct StbFree {
  void operator()(unsigned char* pixels) const { stbi_image_free(pixels); }
};

bool IsImageFile(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

bool IsHidden(const fs::path& path) {
  return path.filename().string().rfind('.', 0) == 0;
}

// The entries of `dir` that `keep` accepts, sorted by name.
template <typename Keep>
std::vector<fs::path> SortedEntries(const fs::path& dir, Keep keep) {
  std::vector<fs::path> entries;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (!IsHidden(it->path()) && keep(*it)) entries.push_back(it->path());
  }
  if (ec) {
    throw Error(ErrorCode::kUnavailable,
                "cannot list folder " + dir.string() + ": " + ec.message());
  }
  std::sort(entries.begin(), entries.end());
  return entries;
}

// One decoded image: `channels` x height x width floats in [0, 1], CHW.
struct Image {
  int64_t height = 0, width = 0;
  std::vector<float> pixels;
};

// Decodes `path` to `channels` channels (stb converts grey and RGB, and
// drops alpha) and, when `size` is set, resizes it to {height, width}.
Image DecodeImage(const std::string& path, int channels,
                  const std::optional<std::vector<int64_t>>& size) {
  int width = 0, height = 0, in_file = 0;
  std::unique_ptr<unsigned char, StbFree> data(
      stbi_load(path.c_str(), &width, &height, &in_file, channels));
  if (!data) {
    const char* reason = stbi_failure_reason();
    throw Error(ErrorCode::kCorrupt,
                "image file " + path + ": cannot decode it (" +
                    (reason != nullptr ? reason : "unknown reason") + ")");
  }
  std::vector<float> hwc(static_cast<size_t>(width) * height * channels);
  for (size_t i = 0; i < hwc.size(); ++i) hwc[i] = data.get()[i] / 255.0f;
  Image image;
  image.height = height;
  image.width = width;
  if (size && ((*size)[0] != height || (*size)[1] != width)) {
    image.height = (*size)[0];
    image.width = (*size)[1];
    std::vector<float> resized(
        static_cast<size_t>(image.height * image.width * channels));
    if (!stbir_resize_float(hwc.data(), width, height, 0, resized.data(),
                            static_cast<int>(image.width),
                            static_cast<int>(image.height), 0, channels)) {
      throw Error(ErrorCode::kInternal, "image file " + path +
                                            ": cannot resize it to " +
                                            std::to_string(image.height) + "x" +
                                            std::to_string(image.width));
    }
    for (float& v : resized) v = std::clamp(v, 0.0f, 1.0f);
    hwc = std::move(resized);
  }
  const int64_t plane = image.height * image.width;
  image.pixels.resize(hwc.size());
  for (int64_t p = 0; p < plane; ++p) {
    for (int c = 0; c < channels; ++c) {
      image.pixels[c * plane + p] = hwc[p * channels + c];
    }
  }
  return image;
}

// The channels of the first image when the spec gives none: 1 for grey
// (with or without alpha), 3 for colour.
int DefaultChannels(const std::string& path) {
  int width = 0, height = 0, channels = 0;
  if (!stbi_info(path.c_str(), &width, &height, &channels)) {
    const char* reason = stbi_failure_reason();
    throw Error(ErrorCode::kCorrupt,
                "image file " + path + ": cannot decode it (" +
                    (reason != nullptr ? reason : "unknown reason") + ")");
  }
  return channels <= 2 ? 1 : 3;
}

}  // namespace

Dataset PrepareImageFolder(const PrepareSpec& spec) {
  std::error_code ec;
  if (!fs::is_directory(spec.path, ec)) {
    throw Error(ErrorCode::kNotFound,
                "image folder " + spec.path + " not found");
  }
  const std::vector<fs::path> class_dirs = SortedEntries(
      spec.path, [](const fs::directory_entry& e) { return e.is_directory(); });
  if (class_dirs.size() < 2) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: image folder " + spec.path + " has " +
                    std::to_string(class_dirs.size()) +
                    " class folder(s); a classifier needs at least 2 (one "
                    "folder of images per class)",
                "/dataset/path");
  }
  std::vector<std::string> classes;
  std::vector<std::vector<fs::path>> files;
  for (const fs::path& dir : class_dirs) {
    files.push_back(SortedEntries(dir, [](const fs::directory_entry& e) {
      return e.is_regular_file() && IsImageFile(e.path());
    }));
    classes.push_back(dir.filename().string());
    if (files.back().empty()) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: class folder " + dir.string() +
                      " has no images (.png, .jpg or .jpeg)",
                  "/dataset/path");
    }
  }

  const int channels = static_cast<int>(
      spec.channels.value_or(DefaultChannels(files[0][0].string())));
  // The size every image has after DecodeImage; set by the first image
  // when the spec gives none.
  int64_t height = spec.image_size ? (*spec.image_size)[0] : 0;
  int64_t width = spec.image_size ? (*spec.image_size)[1] : 0;
  std::string size_source;  // the first image, whose size all must have
  std::vector<Image> images;
  std::vector<int64_t> labels;
  for (size_t c = 0; c < files.size(); ++c) {
    for (const fs::path& file : files[c]) {
      Image image = DecodeImage(file.string(), channels, spec.image_size);
      if (height == 0) {
        height = image.height;
        width = image.width;
        size_source = file.string();
      } else if (image.height != height || image.width != width) {
        throw Error(ErrorCode::kInvalidArgument,
                    "prepare: image " + file.string() + " is " +
                        std::to_string(image.height) + "x" +
                        std::to_string(image.width) + " but " + size_source +
                        " is " + std::to_string(height) + "x" +
                        std::to_string(width) +
                        "; set \"image_size\": [height, width] to resize them",
                    "/dataset/image_size");
      }
      images.push_back(std::move(image));
      labels.push_back(static_cast<int64_t>(c));
    }
  }

  const uint64_t seed = spec.split_seed.value_or(0);
  const SplitIndices split = SeededSplit(labels, spec.validation_fraction,
                                         spec.test_fraction, seed, classes);
  const std::vector<int64_t> shape = {channels, height, width};
  const int64_t per_image = channels * height * width;

  double sum = 0, sum_squares = 0;
  for (int64_t i : split.train) {
    for (float v : images[i].pixels) {
      sum += v;
      sum_squares += static_cast<double>(v) * v;
    }
  }
  const double n = static_cast<double>(split.train.size() * per_image);
  const double mean = sum / n;
  const double stddev = std::sqrt(std::max(sum_squares / n - mean * mean, 0.0));
  if (spec.normalize && !(stddev > 0)) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: cannot normalise: every training pixel is equal",
                "/normalize");
  }
  auto to_tensors = [&](const std::vector<int64_t>& indices) {
    const int64_t count = static_cast<int64_t>(indices.size());
    std::vector<int64_t> sizes = {count};
    sizes.insert(sizes.end(), shape.begin(), shape.end());
    torch::Tensor x = torch::empty(sizes, torch::kFloat32);
    torch::Tensor y = torch::empty({count}, torch::kInt64);
    float* out = x.data_ptr<float>();
    for (int64_t k = 0; k < count; ++k) {
      const std::vector<float>& pixels = images[indices[k]].pixels;
      for (int64_t p = 0; p < per_image; ++p) {
        out[k * per_image + p] =
            spec.normalize ? static_cast<float>((pixels[p] - mean) / stddev)
                           : pixels[p];
      }
      y.data_ptr<int64_t>()[k] = labels[indices[k]];
    }
    return std::pair{x, y};
  };

  Dataset dataset;
  dataset.input_shape = shape;
  dataset.num_classes = static_cast<int64_t>(classes.size());
  std::tie(dataset.train_x, dataset.train_y) = to_tensors(split.train);
  std::tie(dataset.val_x, dataset.val_y) = to_tensors(split.validation);
  std::tie(dataset.test_x, dataset.test_y) = to_tensors(split.test);
  Json per_class = Json::object();
  for (size_t c = 0; c < classes.size(); ++c) {
    per_class[classes[c]] = files[c].size();
  }
  dataset.meta = {
      {"format", "image_folder"},
      {"input_shape", shape},
      {"num_classes", dataset.num_classes},
      {"classes", classes},
      {"train", split.train.size()},
      {"validation", split.validation.size()},
      {"test", split.test.size()},
      {"split_seed", seed},
      {"mean", mean},
      {"std", stddev},
      {"normalized", spec.normalize},
      {"source",
       {{"format", "image_folder"},
        {"path", spec.path},
        {"images", per_class},
        {"digest", PathDigest(spec.path)}}},
  };
  return dataset;
}

}  // namespace baton::stages
