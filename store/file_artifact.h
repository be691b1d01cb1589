#pragma once

// Files as checkpoint-format manifests (kind "files"), so that a
// TorchScript model file, a command stage's outputs or any other file a
// stage makes or reads lives in the content-addressed store like tensors:
// deduplicated, fetched by digest, kept or released by gc like checkpoints.
//
// Each regular file is one entry of dtype "uint8" and shape {size}, named by
// its path relative to the artifact's root ('/' separated); its blob is the
// SHA-256 of its bytes. A single file is one entry named by its base name
// with meta "layout": "file"; a folder has meta "layout": "folder".
#include <functional>
#include <map>
#include <string>

#include "common/json_util.h"
#include "store/checkpoint.h"

namespace baton::store {

inline constexpr const char* kFilesKind = "files";

struct FileBlobs {
  Manifest manifest;
  std::map<std::string, std::string> blobs;  // digest -> bytes
};

// Reads a file or a folder (every regular file under it, symbolic links
// followed) into a "files" manifest; `meta` is merged into the manifest's
// meta. Throws Error(kNotFound) naming the path when it is neither.
FileBlobs ReadFileArtifact(const std::string& path, const Json& meta = Json::object());

// Writes a "files" manifest back: a "file" layout's one file as `dest`
// itself, a "folder" layout's files under the folder `dest` (made as
// needed; files already there and not in the manifest are left alone).
// Each file is written beside its final name and renamed into place, so a
// crash never leaves a half-written file under the real name. `fetch`
// returns a blob's bytes by digest. Throws Error(kCorrupt) for a manifest
// that is not of kind "files" or names a path that would leave `dest`.
void WriteFileArtifact(const Manifest& manifest,
                       const std::function<std::string(const std::string&)>& fetch,
                       const std::string& dest);

}  // namespace baton::store
