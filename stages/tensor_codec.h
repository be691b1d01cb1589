#pragma once

#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/json_util.h"
#include "store/checkpoint.h"

namespace baton::stages {

// The checkpoint format's name of a tensor dtype ("float32", "float64",
// "int64", "int32", "uint8", "bool"); throws Error(kInvalidArgument) for any
// other scalar type.
std::string DtypeName(torch::Dtype type);
// The inverse of DtypeName; throws Error(kCorrupt) for an unknown name.
torch::Dtype ParseDtype(const std::string& name);

// The raw contiguous little-endian bytes of a CPU tensor (row-major, exactly
// numel * element size bytes). Works for non-contiguous views too.
std::string TensorBytes(const torch::Tensor& tensor);

// A new CPU tensor of `dtype` and `shape` holding `bytes`; throws
// Error(kCorrupt) naming `what` when the size does not match.
torch::Tensor TensorFromBytes(const std::string& bytes, torch::Dtype dtype,
                              const std::vector<int64_t>& shape,
                              const std::string& what);

// A manifest together with the bytes of every blob it references, keyed by
// digest: what an upload needs. Tensors with equal bytes share one blob.
struct EncodedTensors {
  store::Manifest manifest;
  std::map<std::string, std::string> blobs;  // digest -> raw bytes
};

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Encodes named tensors into a manifest of `kind` with `meta`. Names must be
// unique (Error(kInvalidArgument) otherwise).
EncodedTensors EncodeTensors(const NamedTensors& tensors,
                             const std::string& kind, const Json& meta);

// Every parameter and buffer of `module` (named_parameters + named_buffers,
// recursive, names like "conv1.weight", "bn2.running_mean").
NamedTensors ModuleState(const torch::nn::Module& module);

// The state of `module` as a model checkpoint (kind "model", empty meta), so
// equal weights always give the same checkpoint id.
EncodedTensors EncodeModelState(const torch::nn::Module& module);

// Returns the raw bytes of a blob by digest; throws baton::Error when it
// cannot. Callers of the functions below may rely on it verifying the digest.
using BlobFetcher = std::function<std::string(const std::string& digest)>;

// What an init transfer did: names of the module's tensors copied from the
// checkpoint, and of those that kept their fresh initialisation.
struct InitReport {
  std::vector<std::string> transferred;
  std::vector<std::string> reinitialized;
};

// Copies, bit for bit, every parameter and buffer of `module` whose name,
// dtype and shape match a tensor of `checkpoint`; the others keep their
// current values. Only matching tensors are fetched. Names are sorted.
InitReport TransferInit(torch::nn::Module& module,
                        const store::Manifest& checkpoint,
                        const BlobFetcher& fetch);

// Loads every parameter and buffer of `module` from `checkpoint` (resuming a
// trial); throws Error(kInvalidArgument) naming the first tensor that is
// missing or differs in dtype or shape, before changing anything.
void LoadState(torch::nn::Module& module, const store::Manifest& checkpoint,
               const BlobFetcher& fetch);

}  // namespace baton::stages
