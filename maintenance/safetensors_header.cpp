#include "maintenance/safetensors_header.h"

#include <cstdint>
#include <limits>
#include <map>

#include "common/error.h"

namespace baton::maintenance {
namespace {

// The manifest validated and sorted by name, as ManifestFromJson leaves it;
// a hand-built one that would not round-trip is the caller's mistake.
store::Manifest Checked(const store::Manifest& manifest) {
  try {
    return store::ManifestFromJson(store::ManifestToJson(manifest));
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument, e.what(), e.pointer());
  }
}

std::string LittleEndian64(uint64_t value) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) {
    out[i] = static_cast<char>((value >> (8 * i)) & 0xff);
  }
  return out;
}

}  // namespace

std::string SafetensorsDtype(const std::string& dtype) {
  static const std::map<std::string, std::string> kNames = {
      {"float32", "F32"}, {"float64", "F64"}, {"int64", "I64"},
      {"int32", "I32"},   {"uint8", "U8"},    {"bool", "BOOL"}};
  auto it = kNames.find(dtype);
  if (it == kNames.end()) {
    throw Error(ErrorCode::kInvalidArgument,
                "dtype \"" + dtype + "\" has no safetensors equivalent here");
  }
  return it->second;
}

std::string SafetensorsHeader(const store::Manifest& unchecked,
                              const std::string& digest) {
  const store::Manifest manifest = Checked(unchecked);
  Json header = {{"__metadata__",
                  {{"format", "pt"}, {"baton_checkpoint", digest}}}};
  uint64_t offset = 0;
  for (const store::TensorEntry& t : manifest.tensors) {
    if (t.name == "__metadata__") {
      throw Error(ErrorCode::kInvalidArgument,
                  "a tensor named \"__metadata__\" cannot be written to a "
                  "safetensors file (the name is reserved)");
    }
    if (t.bytes > std::numeric_limits<uint64_t>::max() - offset) {
      throw Error(ErrorCode::kInvalidArgument,
                  "checkpoint " + digest + " has more than 2^64 bytes");
    }
    header[t.name] = {{"dtype", SafetensorsDtype(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes}}};
    offset += t.bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::type_error& e) {  // a name that is not UTF-8
    throw Error(ErrorCode::kInvalidArgument,
                std::string("safetensors header: ") + e.what());
  }
  // Pad so the tensor data starts 8-byte aligned in the file, as the
  // reference writer does, letting readers map tensors in place.
  text.append((8 - text.size() % 8) % 8, ' ');
  return LittleEndian64(text.size()) + text;
}

}  // namespace baton::maintenance
