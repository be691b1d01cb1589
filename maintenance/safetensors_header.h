#pragma once

// The header of a safetensors file (https://huggingface.co/docs/safetensors)
// for a checkpoint manifest: what the REST API's download and a command
// stage's checkpoint dependency write before the tensors' bytes. Needs only
// the checkpoint format, no store, so that baton-worker can link it.
#include <string>

#include "store/checkpoint.h"

namespace baton::maintenance {

// The safetensors name of a Baton dtype ("float32" -> "F32", ...); throws
// Error(kInvalidArgument) for one safetensors cannot express.
std::string SafetensorsDtype(const std::string& dtype);

// The start of the safetensors file: N as 8 little-endian bytes, then N
// bytes of JSON header {"__metadata__": {"format": "pt", "baton_checkpoint":
// digest}, "<tensor>": {"dtype", "shape", "data_offsets": [begin, end]}, ...}
// padded with spaces so that 8 + N is a multiple of 8. Offsets are relative
// to the end of the header and follow the manifest's order (by name), back
// to back from 0; the tensors' bytes follow in that order. Throws
// Error(kInvalidArgument) for a manifest that does not validate, a dtype
// safetensors lacks, or a tensor named "__metadata__".
std::string SafetensorsHeader(const store::Manifest& manifest,
                              const std::string& digest);

}  // namespace baton::maintenance
