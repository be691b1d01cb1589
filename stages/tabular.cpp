// Tabular datasets: CSV files with a header row, a label column and numeric
// features (PrepareCsv), and leaving feature columns out (DropFeatures).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <string_view>

#include "common/error.h"
#include "stages/dataset.h"
#include "stages/internal/dataset.h"

namespace baton::stages {
namespace {

using namespace dataset_detail;

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
  const TrainValidationCounts split =
      SplitTrainValidation(used, spec.validation_fraction);
  const int64_t train_count = split.train, val_count = split.validation;
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

}  // namespace baton::stages
