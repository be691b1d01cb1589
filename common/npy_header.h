#pragma once

// The header of a NumPy .npy array (format versions 1 to 3): what dataset
// readers need to know before touching the data, and what pipeline checks
// read to learn one example's shape without LibTorch.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace baton {

// The element types Baton reads from .npy files.
enum class NpyDtype { kFloat32, kFloat64, kUint8, kInt32, kInt64, kBool };

// "float32", "float64", "uint8", "int32", "int64" or "bool".
const char* NpyDtypeName(NpyDtype dtype);

struct NpyHeader {
  NpyDtype dtype = NpyDtype::kFloat32;
  int64_t item_bytes = 4;      // bytes per element
  std::vector<int64_t> shape;  // () for a scalar
  int64_t data_offset = 0;     // bytes from the file's start to its data
  int64_t data_bytes = 0;      // product(shape) * item_bytes
};

// Parses the header at the start of `bytes` (at least the magic, version,
// length and the header dictionary; more may follow). `where` names the file
// (or archive member) in messages. Throws Error(kCorrupt) when it is not an
// .npy header, and Error(kInvalidArgument) for what Baton does not read: a
// big-endian or other dtype than those of NpyDtype, or fortran_order True.
NpyHeader ParseNpyHeader(std::string_view bytes, const std::string& where);

// Reads and parses the header of the .npy file at `path`. Throws
// Error(kNotFound) when the file is missing, and as ParseNpyHeader.
NpyHeader ReadNpyHeader(const std::string& path);

}  // namespace baton
