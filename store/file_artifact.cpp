#include "store/file_artifact.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "common/digest.h"
#include "common/error.h"
#include "common/file_digest.h"

namespace baton::store {
namespace {

namespace fs = std::filesystem;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, path.string() + ": cannot be opened for reading");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(ErrorCode::kInternal, path.string() + ": read error");
  return bytes;
}

void AddFile(FileBlobs& out, const std::string& name, std::string bytes) {
  TensorEntry e;
  e.name = name;
  e.dtype = "uint8";
  e.shape = {static_cast<int64_t>(bytes.size())};
  e.bytes = bytes.size();
  e.blob = Sha256Hex(bytes);
  out.blobs.emplace(e.blob, std::move(bytes));
  out.manifest.tensors.push_back(std::move(e));
}

void WriteAtomically(const fs::path& target, const std::string& bytes) {
  std::error_code ec;
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  const fs::path tmp = target.string() + ".baton-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      fs::remove(tmp, ec);
      throw Error(ErrorCode::kInternal, target.string() + ": cannot be written");
    }
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error(ErrorCode::kInternal, target.string() + ": cannot be written: " + ec.message());
  }
}

}  // namespace

FileBlobs ReadFileArtifact(const std::string& path, const Json& meta) {
  FileBlobs out;
  out.manifest.kind = kFilesKind;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    AddFile(out, fs::path(path).filename().string(), ReadAll(path));
    out.manifest.meta["layout"] = "file";
  } else if (fs::is_directory(path, ec)) {
    for (const FileEntry& f : ListFiles(path)) AddFile(out, f.path, ReadAll(fs::path(path) / f.path));
    out.manifest.meta["layout"] = "folder";
  } else {
    throw Error(ErrorCode::kNotFound, path + ": no such file or folder");
  }
  if (meta.is_object()) {
    for (const auto& [k, v] : meta.items()) out.manifest.meta[k] = v;
  }
  std::sort(out.manifest.tensors.begin(), out.manifest.tensors.end(),
            [](const TensorEntry& a, const TensorEntry& b) { return a.name < b.name; });
  return out;
}

void WriteFileArtifact(const Manifest& manifest,
                       const std::function<std::string(const std::string&)>& fetch,
                       const std::string& dest) {
  if (manifest.kind != kFilesKind) {
    throw Error(ErrorCode::kCorrupt, "manifest of kind \"" + manifest.kind + "\" is not a files artifact");
  }
  const bool single = manifest.meta.value("layout", "folder") == "file";
  if (single && manifest.tensors.size() != 1) {
    throw Error(ErrorCode::kCorrupt, "a file artifact must hold exactly one file, it holds " +
                                         std::to_string(manifest.tensors.size()));
  }
  for (const TensorEntry& e : manifest.tensors) {
    const fs::path rel = fs::path(e.name).lexically_normal();
    if (e.dtype != "uint8" || rel.empty() || rel.is_absolute() || *rel.begin() == "..") {
      throw Error(ErrorCode::kCorrupt, "files artifact entry \"" + e.name + "\" is not a relative file path of bytes");
    }
  }
  for (const TensorEntry& e : manifest.tensors) {
    std::string bytes = fetch(e.blob);
    if (bytes.size() != e.bytes || Sha256Hex(bytes) != e.blob) {
      throw Error(ErrorCode::kCorrupt, "blob " + e.blob + " of \"" + e.name + "\" does not match its digest");
    }
    WriteAtomically(single ? fs::path(dest) : fs::path(dest) / fs::path(e.name).lexically_normal(), bytes);
  }
}

}  // namespace baton::store
