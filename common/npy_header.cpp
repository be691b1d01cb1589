#include "common/npy_header.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <limits>

#include "common/error.h"

namespace baton {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr int64_t kMaxHeaderBytes = 1 << 20;

[[noreturn]] void Corrupt(const std::string& where, const std::string& what) {
  throw Error(ErrorCode::kCorrupt, "npy file " + where + ": " + what);
}

// The text after `'key':` in the header dictionary, spaces skipped.
std::string_view ValueOf(std::string_view dict, std::string_view key,
                         const std::string& where) {
  for (const char quote : {'\'', '"'}) {
    const std::string quoted = quote + std::string(key) + quote;
    size_t at = dict.find(quoted);
    if (at == std::string_view::npos) continue;
    at = dict.find(':', at + quoted.size());
    if (at == std::string_view::npos) break;
    ++at;
    while (at < dict.size() && dict[at] == ' ') ++at;
    return dict.substr(at);
  }
  Corrupt(where, "header has no '" + std::string(key) + "'");
}

NpyDtype ParseDtype(std::string_view descr, int64_t& item_bytes,
                    const std::string& where) {
  struct Known {
    const char* descr;
    NpyDtype dtype;
    int64_t bytes;
  };
  static constexpr Known kKnown[] = {
      {"<f4", NpyDtype::kFloat32, 4}, {"<f8", NpyDtype::kFloat64, 8},
      {"|u1", NpyDtype::kUint8, 1},   {"<u1", NpyDtype::kUint8, 1},
      {"<i4", NpyDtype::kInt32, 4},   {"<i8", NpyDtype::kInt64, 8},
      {"|b1", NpyDtype::kBool, 1},
  };
  for (const Known& k : kKnown) {
    if (descr == k.descr) {
      item_bytes = k.bytes;
      return k.dtype;
    }
  }
  throw Error(ErrorCode::kInvalidArgument,
              "npy file " + where + ": unsupported dtype '" +
                  std::string(descr) +
                  "' (Baton reads little-endian float32, float64, uint8, "
                  "int32, int64 and bool)");
}

}  // namespace

const char* NpyDtypeName(NpyDtype dtype) {
  switch (dtype) {
    case NpyDtype::kFloat32:
      return "float32";
    case NpyDtype::kFloat64:
      return "float64";
    case NpyDtype::kUint8:
      return "uint8";
    case NpyDtype::kInt32:
      return "int32";
    case NpyDtype::kInt64:
      return "int64";
    case NpyDtype::kBool:
      return "bool";
  }
  return "?";
}

NpyHeader ParseNpyHeader(std::string_view bytes, const std::string& where) {
  if (bytes.size() < 10 || bytes.substr(0, kMagic.size()) != kMagic) {
    Corrupt(where, "not an .npy file (bad magic)");
  }
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(bytes[i]); };
  const int major = byte(6);
  int64_t length = 0, start = 0;
  if (major == 1) {
    length = byte(8) | (int64_t{byte(9)} << 8);
    start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) Corrupt(where, "truncated header");
    length = byte(8) | (int64_t{byte(9)} << 8) | (int64_t{byte(10)} << 16) |
             (int64_t{byte(11)} << 24);
    start = 12;
  } else {
    Corrupt(where, "unknown format version " + std::to_string(major));
  }
  if (length > kMaxHeaderBytes ||
      start + length > static_cast<int64_t>(bytes.size())) {
    Corrupt(where, "truncated header");
  }
  const std::string_view dict = bytes.substr(start, length);
  NpyHeader header;
  header.data_offset = start + length;

  std::string_view descr = ValueOf(dict, "descr", where);
  if (descr.empty() || (descr[0] != '\'' && descr[0] != '"')) {
    throw Error(ErrorCode::kInvalidArgument,
                "npy file " + where +
                    ": structured dtypes are not supported (one plain dtype "
                    "per array)");
  }
  const size_t descr_end = descr.find(descr[0], 1);
  if (descr_end == std::string_view::npos) Corrupt(where, "bad 'descr'");
  header.dtype =
      ParseDtype(descr.substr(1, descr_end - 1), header.item_bytes, where);

  std::string_view order = ValueOf(dict, "fortran_order", where);
  if (order.substr(0, 4) == "True") {
    throw Error(ErrorCode::kInvalidArgument,
                "npy file " + where +
                    ": fortran_order arrays are not supported; save a C-order "
                    "array (numpy.ascontiguousarray)");
  }
  if (order.substr(0, 5) != "False") Corrupt(where, "bad 'fortran_order'");

  std::string_view shape = ValueOf(dict, "shape", where);
  if (shape.empty() || shape[0] != '(') Corrupt(where, "bad 'shape'");
  const size_t close = shape.find(')');
  if (close == std::string_view::npos) Corrupt(where, "bad 'shape'");
  std::string_view dims = shape.substr(1, close - 1);
  int64_t elements = 1;
  size_t i = 0;
  while (i < dims.size()) {
    while (i < dims.size() && (dims[i] == ' ' || dims[i] == ',')) ++i;
    if (i >= dims.size()) break;
    int64_t d = 0;
    bool digits = false;
    while (i < dims.size() && dims[i] >= '0' && dims[i] <= '9') {
      d = d * 10 + (dims[i] - '0');
      if (d > (int64_t{1} << 40)) Corrupt(where, "implausible shape");
      digits = true;
      ++i;
    }
    if (!digits) Corrupt(where, "bad 'shape'");
    header.shape.push_back(d);
    if (d != 0 && elements > (int64_t{1} << 40) / d) {
      Corrupt(where, "implausible shape");
    }
    elements *= d;
  }
  header.data_bytes = elements * header.item_bytes;
  return header;
}

NpyHeader ReadNpyHeader(const std::string& path) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
    throw Error(ErrorCode::kNotFound, "npy file " + path + " not found");
  }
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    throw Error(ErrorCode::kUnavailable, "cannot open npy file " + path);
  }
  std::string head(12, '\0');
  head.resize(std::fread(head.data(), 1, head.size(), file));
  if (head.size() >= 10 && head.substr(0, kMagic.size()) == kMagic) {
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(head[i]); };
    const int64_t length =
        byte(6) == 1 ? (byte(8) | (int64_t{byte(9)} << 8))
                     : (head.size() < 12 ? 0
                                         : byte(8) | (int64_t{byte(9)} << 8) |
                                               (int64_t{byte(10)} << 16) |
                                               (int64_t{byte(11)} << 24));
    if (length > 0 && length <= kMaxHeaderBytes) {
      const size_t had = head.size();
      head.resize(had + static_cast<size_t>(length));
      head.resize(had + std::fread(head.data() + had, 1, length, file));
    }
  }
  std::fclose(file);
  return ParseNpyHeader(head, path);
}

}  // namespace baton
