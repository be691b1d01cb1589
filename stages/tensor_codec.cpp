#include "stages/tensor_codec.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "common/digest.h"
#include "common/error.h"

// The checkpoint format stores tensors little-endian; this codec copies
// memory as is, which is only right on a little-endian host.
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "stages/tensor_codec.cpp assumes a little-endian host"
#endif

namespace baton::stages {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ",";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

bool Matches(const store::TensorEntry& entry, const torch::Tensor& tensor) {
  return entry.dtype == DtypeName(tensor.scalar_type()) &&
         entry.shape == tensor.sizes().vec();
}

// Fetches each distinct blob once per call.
class CachingFetcher {
 public:
  explicit CachingFetcher(const BlobFetcher& fetch) : fetch_(fetch) {}
  const std::string& Get(const std::string& digest) {
    auto it = cache_.find(digest);
    if (it == cache_.end()) it = cache_.emplace(digest, fetch_(digest)).first;
    return it->second;
  }

 private:
  const BlobFetcher& fetch_;
  std::map<std::string, std::string> cache_;
};

}  // namespace

std::string DtypeName(torch::Dtype type) {
  switch (type) {
    case torch::kFloat32:
      return "float32";
    case torch::kFloat64:
      return "float64";
    case torch::kInt64:
      return "int64";
    case torch::kInt32:
      return "int32";
    case torch::kUInt8:
      return "uint8";
    case torch::kBool:
      return "bool";
    default:
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("tensor dtype ") + c10::toString(type) +
                      " cannot be stored in a checkpoint");
  }
}

torch::Dtype ParseDtype(const std::string& name) {
  if (name == "float32") return torch::kFloat32;
  if (name == "float64") return torch::kFloat64;
  if (name == "int64") return torch::kInt64;
  if (name == "int32") return torch::kInt32;
  if (name == "uint8") return torch::kUInt8;
  if (name == "bool") return torch::kBool;
  throw Error(ErrorCode::kCorrupt, "unknown tensor dtype '" + name + "'");
}

std::string TensorBytes(const torch::Tensor& tensor) {
  torch::Tensor dense = tensor.detach().to(torch::kCPU).contiguous();
  std::string bytes(dense.nbytes(), '\0');
  if (!bytes.empty()) std::memcpy(bytes.data(), dense.data_ptr(), bytes.size());
  return bytes;
}

torch::Tensor TensorFromBytes(const std::string& bytes, torch::Dtype dtype,
                              const std::vector<int64_t>& shape,
                              const std::string& what) {
  int64_t numel = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      throw Error(ErrorCode::kCorrupt,
                  "tensor " + what + " has a negative dimension");
    }
    numel *= d;
  }
  const size_t expected = static_cast<size_t>(numel) * c10::elementSize(dtype);
  if (bytes.size() != expected) {
    throw Error(ErrorCode::kCorrupt,
                "tensor " + what + ": " + std::to_string(bytes.size()) +
                    " bytes do not fit shape " + ShapeText(shape) + " of " +
                    DtypeName(dtype) + " (" + std::to_string(expected) +
                    " expected)");
  }
  torch::Tensor tensor = torch::empty(shape, torch::TensorOptions(dtype));
  if (expected > 0) std::memcpy(tensor.data_ptr(), bytes.data(), expected);
  return tensor;
}

EncodedTensors EncodeTensors(const NamedTensors& tensors,
                             const std::string& kind, const Json& meta) {
  EncodedTensors encoded;
  encoded.manifest.kind = kind;
  encoded.manifest.meta = meta;
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    if (!names.insert(name).second) {
      throw Error(ErrorCode::kInvalidArgument,
                  "two tensors are both named '" + name + "'");
    }
    store::TensorEntry entry;
    entry.name = name;
    entry.dtype = DtypeName(tensor.scalar_type());
    entry.shape = tensor.sizes().vec();
    std::string bytes = TensorBytes(tensor);
    entry.blob = Sha256Hex(bytes);
    entry.bytes = bytes.size();
    encoded.blobs.emplace(entry.blob, std::move(bytes));
    encoded.manifest.tensors.push_back(std::move(entry));
  }
  std::sort(encoded.manifest.tensors.begin(), encoded.manifest.tensors.end(),
            [](const store::TensorEntry& a, const store::TensorEntry& b) {
              return a.name < b.name;
            });
  return encoded;
}

NamedTensors ModuleState(const torch::nn::Module& module) {
  NamedTensors state;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    state.emplace_back(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(/*recurse=*/true)) {
    state.emplace_back(item.key(), item.value());
  }
  return state;
}

EncodedTensors EncodeModelState(const torch::nn::Module& module) {
  return EncodeTensors(ModuleState(module), "model", Json::object());
}

InitReport TransferInit(torch::nn::Module& module,
                        const store::Manifest& checkpoint,
                        const BlobFetcher& fetch) {
  InitReport report;
  CachingFetcher fetcher(fetch);
  // Everything is fetched and decoded before the first copy, so a failure
  // leaves the module as it was.
  std::vector<std::pair<torch::Tensor, torch::Tensor>> copies;
  for (auto& [name, tensor] : ModuleState(module)) {
    const store::TensorEntry* entry = store::FindTensor(checkpoint, name);
    if (entry != nullptr && Matches(*entry, tensor)) {
      copies.emplace_back(
          tensor, TensorFromBytes(fetcher.Get(entry->blob),
                                  tensor.scalar_type(), entry->shape, name));
      report.transferred.push_back(name);
    } else {
      report.reinitialized.push_back(name);
    }
  }
  torch::NoGradGuard no_grad;
  for (auto& [target, source] : copies) target.copy_(source);
  std::sort(report.transferred.begin(), report.transferred.end());
  std::sort(report.reinitialized.begin(), report.reinitialized.end());
  return report;
}

void LoadState(torch::nn::Module& module, const store::Manifest& checkpoint,
               const BlobFetcher& fetch) {
  NamedTensors state = ModuleState(module);
  std::vector<const store::TensorEntry*> entries;
  for (const auto& [name, tensor] : state) {
    const store::TensorEntry* entry = store::FindTensor(checkpoint, name);
    if (entry == nullptr) {
      throw Error(
          ErrorCode::kInvalidArgument,
          "checkpoint has no tensor '" + name + "' that the model needs");
    }
    if (!Matches(*entry, tensor)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "checkpoint tensor '" + name + "' is " + entry->dtype + " " +
                      ShapeText(entry->shape) + " but the model needs " +
                      DtypeName(tensor.scalar_type()) + " " +
                      ShapeText(tensor.sizes().vec()));
    }
    entries.push_back(entry);
  }
  CachingFetcher fetcher(fetch);
  std::vector<torch::Tensor> sources;
  for (size_t i = 0; i < state.size(); ++i) {
    sources.push_back(TensorFromBytes(fetcher.Get(entries[i]->blob),
                                      state[i].second.scalar_type(),
                                      entries[i]->shape, state[i].first));
  }
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < state.size(); ++i) state[i].second.copy_(sources[i]);
}

}  // namespace baton::stages
