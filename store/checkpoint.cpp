#include "store/checkpoint.h"

#include <algorithm>
#include <limits>
#include <set>

#include "common/digest.h"
#include "common/error.h"
#include "common/json_util.h"

namespace baton::store {
namespace {

const char* const kWhat = "checkpoint manifest";

[[noreturn]] void Fail(const std::string& pointer, const std::string& message) {
  throw Error(ErrorCode::kCorrupt,
              std::string(kWhat) + ": " + (pointer.empty() ? "/" : pointer) +
                  ": " + message,
              pointer);
}

void RejectUnknownKeys(const Json& object, const std::set<std::string>& known,
                       const std::string& pointer) {
  for (const auto& item : object.items()) {
    if (known.count(item.key()) == 0) {
      Fail(PointerAppend(pointer, item.key()), "unknown key");
    }
  }
}

const Json& Require(const Json& object, const std::string& key,
                    const std::string& pointer) {
  auto it = object.find(key);
  if (it == object.end()) Fail(pointer, "missing key \"" + key + "\"");
  return *it;
}

std::string RequireString(const Json& object, const std::string& key,
                          const std::string& pointer) {
  const Json& value = Require(object, key, pointer);
  if (!value.is_string() || value.get_ref<const std::string&>().empty()) {
    Fail(PointerAppend(pointer, key), "must be a non-empty string");
  }
  return value.get<std::string>();
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

TensorEntry TensorFromJson(const Json& json, const std::string& pointer) {
  if (!json.is_object()) Fail(pointer, "must be an object");
  RejectUnknownKeys(json, {"name", "dtype", "shape", "blob", "bytes"}, pointer);

  TensorEntry tensor;
  tensor.name = RequireString(json, "name", pointer);
  tensor.dtype = RequireString(json, "dtype", pointer);
  size_t element_size = 0;
  try {
    element_size = DtypeSize(tensor.dtype);
  } catch (const Error& e) {
    Fail(PointerAppend(pointer, "dtype"), e.what());
  }

  const Json& shape = Require(json, "shape", pointer);
  if (!shape.is_array())
    Fail(PointerAppend(pointer, "shape"), "must be an array");
  // numel is computed with an overflow check: a hostile shape must not wrap
  // around to a small product that happens to match `bytes`.
  uint64_t numel = 1;
  bool overflow = false;
  for (size_t i = 0; i < shape.size(); ++i) {
    const Json& dim = shape[i];
    const std::string dim_pointer =
        PointerAppend(PointerAppend(pointer, "shape"), std::to_string(i));
    if (!dim.is_number_integer() ||
        (dim.is_number_unsigned() &&
         dim.get<uint64_t>() >
             static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) ||
        dim.get<int64_t>() < 0) {
      Fail(dim_pointer, "must be a non-negative integer");
    }
    const int64_t d = dim.get<int64_t>();
    tensor.shape.push_back(d);
    const uint64_t ud = static_cast<uint64_t>(d);
    if (ud != 0 && numel > std::numeric_limits<uint64_t>::max() / ud) {
      overflow = true;
    }
    numel *= ud;
  }

  tensor.blob = RequireString(json, "blob", pointer);
  if (!IsDigest(tensor.blob)) {
    Fail(PointerAppend(pointer, "blob"),
         "\"" + tensor.blob +
             "\" is not a SHA-256 digest (64 lower-case hex characters)");
  }

  const Json& bytes = Require(json, "bytes", pointer);
  if (!bytes.is_number_unsigned()) {
    Fail(PointerAppend(pointer, "bytes"), "must be a non-negative integer");
  }
  tensor.bytes = bytes.get<uint64_t>();
  if (overflow || numel > std::numeric_limits<uint64_t>::max() / element_size ||
      numel * element_size != tensor.bytes) {
    Fail(PointerAppend(pointer, "bytes"),
         std::to_string(tensor.bytes) + " bytes, but shape " +
             ShapeText(tensor.shape) + " of " + tensor.dtype + " needs " +
             (overflow ? std::string("more than 2^64")
                       : std::to_string(numel * element_size)));
  }
  return tensor;
}

bool ByName(const TensorEntry& a, const TensorEntry& b) {
  return a.name < b.name;
}

}  // namespace

size_t DtypeSize(const std::string& dtype) {
  if (dtype == "float32" || dtype == "int32") return 4;
  if (dtype == "float64" || dtype == "int64") return 8;
  if (dtype == "uint8" || dtype == "bool") return 1;
  throw Error(
      ErrorCode::kInvalidArgument,
      "unknown dtype \"" + dtype +
          "\" (expected float32, float64, int64, int32, uint8 or bool)");
}

Json ManifestToJson(const Manifest& manifest) {
  std::vector<TensorEntry> tensors = manifest.tensors;
  std::sort(tensors.begin(), tensors.end(), ByName);
  Json list = Json::array();
  for (const TensorEntry& t : tensors) {
    list.push_back({{"name", t.name},
                    {"dtype", t.dtype},
                    {"shape", t.shape},
                    {"blob", t.blob},
                    {"bytes", t.bytes}});
  }
  return Json{{"format", Manifest::kFormat},
              {"kind", manifest.kind},
              {"tensors", std::move(list)},
              {"meta", manifest.meta}};
}

Manifest ManifestFromJson(const Json& json) {
  if (!json.is_object()) Fail("", "must be a JSON object");
  RejectUnknownKeys(json, {"format", "kind", "tensors", "meta"}, "");

  const Json& format = Require(json, "format", "");
  if (!format.is_string() || format.get<std::string>() != Manifest::kFormat) {
    Fail("/format", "expected \"" + std::string(Manifest::kFormat) +
                        "\", got " + format.dump());
  }

  Manifest manifest;
  manifest.kind = RequireString(json, "kind", "");

  const Json& tensors = Require(json, "tensors", "");
  if (!tensors.is_array()) Fail("/tensors", "must be an array");
  std::set<std::string> names;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string pointer = "/tensors/" + std::to_string(i);
    TensorEntry tensor = TensorFromJson(tensors[i], pointer);
    if (!names.insert(tensor.name).second) {
      Fail(pointer + "/name", "duplicate tensor name \"" + tensor.name + "\"");
    }
    manifest.tensors.push_back(std::move(tensor));
  }
  std::sort(manifest.tensors.begin(), manifest.tensors.end(), ByName);

  auto meta = json.find("meta");
  if (meta != json.end()) {
    if (!meta->is_object()) Fail("/meta", "must be an object");
    manifest.meta = *meta;
  }
  return manifest;
}

std::string ManifestBytes(const Manifest& manifest) {
  Json json = ManifestToJson(manifest);
  // A manifest that would not parse back must never be stored: reject it
  // here, as the caller's mistake.
  try {
    ManifestFromJson(json);
  } catch (const Error& e) {
    throw Error(ErrorCode::kInvalidArgument, e.what(), e.pointer());
  }
  return CanonicalJson(json);
}

std::string ManifestDigest(const Manifest& manifest) {
  return Sha256Hex(ManifestBytes(manifest));
}

Manifest ParseManifest(const std::string& bytes) {
  Json json;
  try {
    // ParseJson: depth limit, duplicate keys and number overflow become
    // Errors, never a library exception.
    json = ParseJson(bytes, kWhat);
  } catch (const Error& e) {
    throw Error(ErrorCode::kCorrupt, e.what());
  }
  return ManifestFromJson(json);
}

const TensorEntry* FindTensor(const Manifest& manifest,
                              const std::string& name) {
  auto it = std::lower_bound(
      manifest.tensors.begin(), manifest.tensors.end(), name,
      [](const TensorEntry& t, const std::string& n) { return t.name < n; });
  if (it != manifest.tensors.end() && it->name == name) return &*it;
  // Callers may build a Manifest by hand without sorting it.
  for (const TensorEntry& t : manifest.tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

}  // namespace baton::store
