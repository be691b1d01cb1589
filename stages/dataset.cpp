#include "stages/dataset.h"

#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <memory>
#include <set>
#include <string_view>

#include "common/digest.h"
#include "common/error.h"

namespace baton::stages {
namespace {

constexpr int64_t kMaxIdxBytes = int64_t{1} << 34;  // 16 GiB: surely corrupt

bool FileExists(const std::string& path) {
  struct stat info;
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

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

// ---- CSV ----

constexpr int64_t kMaxClassId = 999999;  // integer labels above: surely ids
                                         // of something else

// "csv file P, line L, column C ("name")" for error messages; `column` is
// 0-based, negative for the whole line.
std::string CsvWhere(const std::string& path, int64_t line, int64_t column,
                     const std::vector<std::string>& header) {
  std::string where = "csv file " + path + ", line " + std::to_string(line);
  if (column >= 0) {
    where += ", column " + std::to_string(column + 1);
    if (column < static_cast<int64_t>(header.size())) {
      where += " (\"" + header[column] + "\")";
    }
  }
  return where;
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

// Splits one line (without its line break) into cells: commas separate
// cells; a cell may be quoted ("a, b" and "say ""hi""" are one cell each);
// spaces and tabs around cells are dropped.
std::vector<std::string> SplitCsvLine(std::string_view line,
                                      const std::string& path, int64_t line_no,
                                      const std::vector<std::string>& header) {
  std::vector<std::string> cells;
  size_t i = 0;
  while (true) {
    while (i < line.size() && IsBlank(line[i])) ++i;
    std::string cell;
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) {
          throw Error(ErrorCode::kCorrupt,
                      CsvWhere(path, line_no, cells.size(), header) +
                          ": unterminated quote (a quoted cell must end on "
                          "its own line)");
        }
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            cell += '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        cell += line[i++];
      }
      while (i < line.size() && IsBlank(line[i])) ++i;
      if (i < line.size() && line[i] != ',') {
        throw Error(ErrorCode::kCorrupt,
                    CsvWhere(path, line_no, cells.size(), header) +
                        ": text after a closing quote");
      }
    } else {
      size_t end = line.find(',', i);
      if (end == std::string_view::npos) end = line.size();
      size_t last = end;
      while (last > i && IsBlank(line[last - 1])) --last;
      cell.assign(line.substr(i, last - i));
      i = end;
    }
    cells.push_back(std::move(cell));
    if (i >= line.size()) return cells;
    ++i;  // the comma
  }
}

// A feature cell as a float; throws Error(kCorrupt) naming where it is.
float ParseFeatureCell(const std::string& cell, const std::string& path,
                       int64_t line_no, int64_t column,
                       const std::vector<std::string>& header) {
  if (cell.empty()) {
    throw Error(ErrorCode::kCorrupt,
                CsvWhere(path, line_no, column, header) +
                    ": empty cell; every feature needs a number");
  }
  char* end = nullptr;
  const double value = std::strtod(cell.c_str(), &end);
  const bool fits = std::isfinite(value) &&
                    std::abs(value) <= std::numeric_limits<float>::max();
  if (end != cell.c_str() + cell.size() || !fits) {
    throw Error(
        ErrorCode::kCorrupt,
        CsvWhere(path, line_no, column, header) + ": \"" + cell +
            "\" is not a " +
            (end == cell.c_str() + cell.size() ? "finite float32 " : "") +
            "number");
  }
  return static_cast<float>(value);
}

// A class id when `cell` is a non-negative integer.
std::optional<int64_t> IntegerLabel(const std::string& cell) {
  if (cell.empty() || cell.size() > 18) return std::nullopt;
  for (char c : cell) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  return std::stoll(cell);
}

std::string ReadWholeFile(const std::string& path) {
  if (!FileExists(path)) {
    throw Error(ErrorCode::kNotFound, "csv file " + path + " not found");
  }
  std::ifstream in(path, std::ios::binary);
  std::string bytes;
  std::array<char, 1 << 16> buffer;
  while (in.read(buffer.data(), buffer.size()) || in.gcount() > 0) {
    bytes.append(buffer.data(), in.gcount());
  }
  if (in.bad() || !in.eof()) {
    throw Error(ErrorCode::kUnavailable, "cannot read csv file " + path);
  }
  return bytes;
}

// The rows of a CSV file: feature values row-major, labels as written.
struct CsvTable {
  std::vector<std::string> features;  // column names in order
  std::vector<float> values;          // rows x features.size()
  std::vector<std::string> labels;    // one per row
  std::vector<int64_t> label_lines;   // file line of each row
  int64_t label_index = 0;            // 0-based column of the label
};

CsvTable ReadCsv(const std::string& path, const std::string& label_column) {
  const std::string bytes = ReadWholeFile(path);
  std::string_view text(bytes);
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // BOM
  CsvTable table;
  std::vector<std::string> header;
  int64_t line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (std::all_of(line.begin(), line.end(), IsBlank)) continue;
    std::vector<std::string> cells = SplitCsvLine(line, path, line_no, header);
    if (header.empty()) {
      header = std::move(cells);
      std::set<std::string> names;
      for (size_t c = 0; c < header.size(); ++c) {
        if (header[c].empty()) {
          throw Error(ErrorCode::kCorrupt,
                      CsvWhere(path, line_no, c, {}) +
                          ": the header row has an empty column name");
        }
        if (!names.insert(header[c]).second) {
          throw Error(ErrorCode::kCorrupt,
                      CsvWhere(path, line_no, c, {}) + ": column name \"" +
                          header[c] + "\" appears twice in the header row");
        }
      }
      auto label = std::find(header.begin(), header.end(), label_column);
      if (label == header.end()) {
        std::string columns;
        for (const std::string& name : header) {
          columns += (columns.empty() ? "" : ", ") + name;
        }
        throw Error(ErrorCode::kInvalidArgument,
                    "prepare: csv file " + path + " has no label column \"" +
                        label_column + "\" (its header, line " +
                        std::to_string(line_no) + ", has: " + columns +
                        "); set \"label_column\"",
                    "/dataset/label_column");
      }
      table.label_index = label - header.begin();
      for (size_t c = 0; c < header.size(); ++c) {
        if (static_cast<int64_t>(c) != table.label_index) {
          table.features.push_back(header[c]);
        }
      }
      if (table.features.empty()) {
        throw Error(ErrorCode::kInvalidArgument,
                    "prepare: csv file " + path +
                        " has no feature columns besides the label \"" +
                        label_column + "\"",
                    "/dataset/label_column");
      }
      continue;
    }
    if (cells.size() != header.size()) {
      throw Error(ErrorCode::kCorrupt,
                  CsvWhere(path, line_no, -1, header) + ": has " +
                      std::to_string(cells.size()) +
                      " cells but the header has " +
                      std::to_string(header.size()) + " columns");
    }
    for (size_t c = 0; c < cells.size(); ++c) {
      if (static_cast<int64_t>(c) == table.label_index) {
        if (cells[c].empty()) {
          throw Error(ErrorCode::kCorrupt,
                      CsvWhere(path, line_no, c, header) + ": empty label");
        }
        table.labels.push_back(std::move(cells[c]));
        table.label_lines.push_back(line_no);
      } else {
        table.values.push_back(
            ParseFeatureCell(cells[c], path, line_no, c, header));
      }
    }
  }
  if (header.empty()) {
    throw Error(
        ErrorCode::kCorrupt,
        "csv file " + path + " is empty (it needs a header row and data rows)");
  }
  if (table.labels.empty()) {
    throw Error(ErrorCode::kCorrupt,
                "csv file " + path + " has a header row but no data rows");
  }
  return table;
}

// Class ids of the table's labels; fills `classes` for string labels.
std::vector<int64_t> ClassIds(const CsvTable& table, const std::string& path,
                              const std::string& label_column,
                              std::vector<std::string>& classes,
                              int64_t& num_classes) {
  std::vector<int64_t> ids;
  ids.reserve(table.labels.size());
  bool integers = true;
  for (const std::string& label : table.labels) {
    std::optional<int64_t> id = IntegerLabel(label);
    if (!id) {
      integers = false;
      break;
    }
    ids.push_back(*id);
  }
  size_t distinct = 0;
  if (integers) {
    int64_t max_id = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] > kMaxClassId) {
        throw Error(
            ErrorCode::kInvalidArgument,
            CsvWhere(path, table.label_lines[i], table.label_index, {}) +
                ": integer label " + table.labels[i] +
                " is too large for a class id (at most " +
                std::to_string(kMaxClassId) + ")",
            "/dataset/label_column");
      }
      max_id = std::max(max_id, ids[i]);
    }
    num_classes = max_id + 1;
    distinct = std::set<int64_t>(ids.begin(), ids.end()).size();
  } else {
    std::set<std::string> names(table.labels.begin(), table.labels.end());
    classes.assign(names.begin(), names.end());
    ids.clear();
    for (const std::string& label : table.labels) {
      ids.push_back(std::lower_bound(classes.begin(), classes.end(), label) -
                    classes.begin());
    }
    num_classes = static_cast<int64_t>(classes.size());
    distinct = classes.size();
  }
  if (distinct < 2) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: csv file " + path + ": label column \"" +
                    label_column + "\" has " + std::to_string(distinct) +
                    " distinct value" + (distinct == 1 ? "" : "s") + " (\"" +
                    table.labels[0] +
                    "\"); classification needs at least 2 classes",
                "/dataset/label_column");
  }
  return ids;
}
}  // namespace

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
    if (!format.is_string() || (format.get<std::string>() != "idx" &&
                                format.get<std::string>() != "csv")) {
      throw Error(ErrorCode::kInvalidArgument,
                  "prepare: unsupported dataset format " + format.dump() +
                      " (\"idx\" or \"csv\")",
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
  return parsed;
}

Dataset PrepareDataset(const PrepareSpec& spec) {
  if (spec.format == "idx") return PrepareIdx(spec);
  if (spec.format == "csv") return PrepareCsv(spec);
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
  if (total < 2) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: need at least 2 training examples to split off a "
                "validation set",
                "/train_subset");
  }
  const int64_t val_count = std::clamp<int64_t>(
      std::llround(static_cast<double>(total) * spec.validation_fraction), 1,
      total - 1);
  const int64_t train_count = total - val_count;
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

Dataset PrepareCsv(const PrepareSpec& spec) {
  CsvTable table = ReadCsv(spec.path, spec.label_column);
  std::vector<std::string> classes;
  int64_t num_classes = 0;
  std::vector<int64_t> ids =
      ClassIds(table, spec.path, spec.label_column, classes, num_classes);
  const int64_t rows = static_cast<int64_t>(table.labels.size());
  const int64_t features = static_cast<int64_t>(table.features.size());
  if (rows < 3) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: csv file " + spec.path + " has " +
                    std::to_string(rows) +
                    " data rows; a train, validation and test split need at "
                    "least 3",
                "/dataset/path");
  }
  // Splits in file order: [0, used) train+validation, [pool, rows) test.
  const int64_t test_rows = std::clamp<int64_t>(
      std::llround(static_cast<double>(rows) * spec.test_fraction), 1,
      rows - 2);
  const int64_t pool = rows - test_rows;
  if (spec.train_subset && *spec.train_subset > pool) {
    throw Error(
        ErrorCode::kInvalidArgument,
        "prepare: \"train_subset\" is " + std::to_string(*spec.train_subset) +
            " but csv file " + spec.path + " has " + std::to_string(pool) +
            " rows before its test split (the last " +
            std::to_string(test_rows) + " of " + std::to_string(rows) + ")",
        "/train_subset");
  }
  if (spec.test_subset && *spec.test_subset > test_rows) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: \"test_subset\" is " +
                    std::to_string(*spec.test_subset) +
                    " but the test split of " + spec.path + " has " +
                    std::to_string(test_rows) + " rows",
                "/test_subset");
  }
  const int64_t used = spec.train_subset.value_or(pool);
  if (used < 2) {
    throw Error(ErrorCode::kInvalidArgument,
                "prepare: need at least 2 training examples to split off a "
                "validation set",
                "/train_subset");
  }
  const int64_t val_count = std::clamp<int64_t>(
      std::llround(static_cast<double>(used) * spec.validation_fraction), 1,
      used - 1);
  const int64_t train_count = used - val_count;
  const int64_t test_count = spec.test_subset.value_or(test_rows);

  // Training statistics per column, in double, in row order.
  std::vector<double> mean(features, 0.0), stddev(features, 0.0);
  for (int64_t r = 0; r < train_count; ++r) {
    for (int64_t f = 0; f < features; ++f) {
      mean[f] += table.values[r * features + f];
    }
  }
  for (double& m : mean) m /= static_cast<double>(train_count);
  for (int64_t r = 0; r < train_count; ++r) {
    for (int64_t f = 0; f < features; ++f) {
      const double d = table.values[r * features + f] - mean[f];
      stddev[f] += d * d;
    }
  }
  for (double& s : stddev) {
    s = std::sqrt(s / static_cast<double>(train_count));
    if (!(s > 0)) s = 1.0;
  }

  auto rows_tensor = [&](int64_t first, int64_t count) {
    torch::Tensor x = torch::empty({count, features}, torch::kFloat32);
    float* out = x.data_ptr<float>();
    const float* in = table.values.data() + first * features;
    for (int64_t r = 0; r < count; ++r) {
      for (int64_t f = 0; f < features; ++f) {
        const float v = in[r * features + f];
        out[r * features + f] =
            spec.normalize ? static_cast<float>((v - mean[f]) / stddev[f]) : v;
      }
    }
    return x;
  };
  auto labels_tensor = [&](int64_t first, int64_t count) {
    torch::Tensor y = torch::empty({count}, torch::kInt64);
    std::copy(ids.begin() + first, ids.begin() + first + count,
              y.data_ptr<int64_t>());
    return y;
  };

  Dataset dataset;
  dataset.input_shape = {features};
  dataset.num_classes = num_classes;
  dataset.train_x = rows_tensor(0, train_count);
  dataset.train_y = labels_tensor(0, train_count);
  dataset.val_x = rows_tensor(train_count, val_count);
  dataset.val_y = labels_tensor(train_count, val_count);
  dataset.test_x = rows_tensor(pool, test_count);
  dataset.test_y = labels_tensor(pool, test_count);
  const std::string file_name = spec.path.substr(spec.path.rfind('/') + 1);
  dataset.meta = {
      {"format", "csv"},
      {"input_shape", dataset.input_shape},
      {"num_classes", num_classes},
      {"features", table.features},
      {"label_column", spec.label_column},
      {"train", train_count},
      {"validation", val_count},
      {"test", test_count},
      {"mean", mean},
      {"std", stddev},
      {"normalized", spec.normalize},
      {"source",
       {{"format", "csv"},
        {"path", spec.path},
        {"files", {{file_name, FileDigest(spec.path)}}}}},
  };
  if (!classes.empty()) dataset.meta["classes"] = classes;
  return dataset;
}

Dataset DropFeatures(const Dataset& data,
                     const std::vector<std::string>& names) {
  if (names.empty()) return data;
  auto listed = data.meta.find("features");
  if (data.input_shape.size() != 1 || listed == data.meta.end() ||
      !listed->is_array() ||
      static_cast<int64_t>(listed->size()) != data.input_shape[0]) {
    std::string shape = "[N";
    for (int64_t d : data.input_shape) shape += "," + std::to_string(d);
    throw Error(ErrorCode::kInvalidArgument,
                "cannot leave out feature \"" + names[0] +
                    "\": the dataset is not tabular (examples are " + shape +
                    "], without named feature columns; prepare a csv "
                    "dataset)");
  }
  const std::vector<std::string> features =
      listed->get<std::vector<std::string>>();
  std::set<std::string> dropped;
  for (const std::string& name : names) {
    if (std::find(features.begin(), features.end(), name) == features.end()) {
      std::string known;
      for (const std::string& f : features) {
        known += (known.empty() ? "" : ", ") + f;
      }
      throw Error(ErrorCode::kInvalidArgument,
                  "cannot leave out feature \"" + name +
                      "\": the dataset has no such feature (it has: " + known +
                      ")");
    }
    if (!dropped.insert(name).second) {
      throw Error(ErrorCode::kInvalidArgument,
                  "feature \"" + name + "\" is listed twice");
    }
  }
  if (dropped.size() == features.size()) {
    throw Error(ErrorCode::kInvalidArgument,
                "leaving out all " + std::to_string(features.size()) +
                    " features leaves nothing to learn from");
  }
  std::vector<int64_t> keep;
  std::vector<std::string> kept;
  for (size_t f = 0; f < features.size(); ++f) {
    if (dropped.count(features[f]) == 0) {
      keep.push_back(static_cast<int64_t>(f));
      kept.push_back(features[f]);
    }
  }
  const torch::Tensor index = torch::tensor(keep, torch::kInt64);
  Dataset out = data;
  out.train_x = data.train_x.index_select(1, index);
  out.val_x = data.val_x.index_select(1, index);
  out.test_x = data.test_x.index_select(1, index);
  out.input_shape = {static_cast<int64_t>(keep.size())};
  out.meta["input_shape"] = out.input_shape;
  out.meta["features"] = kept;
  for (const char* key : {"mean", "std"}) {
    auto it = data.meta.find(key);
    if (it != data.meta.end() && it->is_array() &&
        it->size() == features.size()) {
      Json values = Json::array();
      for (int64_t f : keep) values.push_back((*it)[f]);
      out.meta[key] = values;
    }
  }
  out.meta["dropped_features"] = names;
  return out;
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
