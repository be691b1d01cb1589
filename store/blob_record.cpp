#include "store/internal/blob_record.h"

#include <cstdio>

#include "common/error.h"

namespace baton::store::blob_record {
namespace {

constexpr char kVersion = 1;      // inline and chunked records
constexpr char kFileVersion = 2;  // adds Kind::kFile
constexpr uint64_t kChunkedHeaderBytes = 22;

void PutLE(std::string* out, uint64_t v, int width) {
  for (int i = 0; i < width; ++i) {
    out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

uint64_t GetLE(std::string_view in, size_t offset, int width) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[offset + i]))
         << (8 * i);
  }
  return v;
}

}  // namespace

std::string EncodeInline(std::string_view bytes) {
  std::string out;
  out.reserve(kHeaderBytes + bytes.size());
  out.push_back(kVersion);
  out.push_back(static_cast<char>(Kind::kInline));
  PutLE(&out, bytes.size(), 8);
  out.append(bytes.data(), bytes.size());
  return out;
}

std::string EncodeChunked(uint64_t size, uint64_t chunk_size, uint32_t chunks,
                          const std::string& chunk_set) {
  std::string out;
  out.push_back(kVersion);
  out.push_back(static_cast<char>(Kind::kChunked));
  PutLE(&out, size, 8);
  PutLE(&out, chunk_size, 8);
  PutLE(&out, chunks, 4);
  out += chunk_set;
  return out;
}

std::string EncodeFile(uint64_t size) {
  std::string out;
  out.push_back(kFileVersion);
  out.push_back(static_cast<char>(Kind::kFile));
  PutLE(&out, size, 8);
  return out;
}

Record Decode(std::string_view digest, std::string value,
              const std::string& where) {
  auto corrupt = [&](const std::string& what) {
    return Error(ErrorCode::kCorrupt, where + ": record of blob " +
                                          std::string(digest) +
                                          " is malformed: " + what);
  };
  Record r;
  r.value = std::move(value);
  const std::string_view v = r.value;
  if (v.size() < kHeaderBytes || (v[0] != kVersion && v[0] != kFileVersion)) {
    throw corrupt("bad header");
  }
  r.size = GetLE(v, 2, 8);
  if (v[1] == static_cast<char>(Kind::kFile)) {
    if (v[0] != kFileVersion) throw corrupt("file kind in a version 1 record");
    if (v.size() != kHeaderBytes) throw corrupt("file record has extra bytes");
    r.kind = Kind::kFile;
    return r;
  }
  if (v[1] == static_cast<char>(Kind::kInline)) {
    r.kind = Kind::kInline;
    if (v.size() - kHeaderBytes != r.size)
      throw corrupt("inline size mismatch");
    return r;
  }
  if (v[1] != static_cast<char>(Kind::kChunked) ||
      v.size() <= kChunkedHeaderBytes) {
    throw corrupt("unknown kind");
  }
  r.kind = Kind::kChunked;
  r.chunk_size = GetLE(v, 10, 8);
  r.chunks = static_cast<uint32_t>(GetLE(v, 18, 4));
  r.chunk_set = std::string(v.substr(kChunkedHeaderBytes));
  if (r.chunk_size == 0 || r.chunks != ChunkCount(r.size, r.chunk_size)) {
    throw corrupt("inconsistent chunk layout");
  }
  return r;
}

uint64_t ChunkCount(uint64_t size, uint64_t chunk_size) {
  return size / chunk_size + (size % chunk_size != 0 ? 1 : 0);
}

std::string ChunkPrefix(const std::string& chunk_set) {
  return "z/" + chunk_set + "/";
}

std::string ChunkKey(const std::string& chunk_set, uint64_t index) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%08llx",
                static_cast<unsigned long long>(index));
  return ChunkPrefix(chunk_set) + buf;
}

std::string PendingKey(const std::string& chunk_set) {
  return "p/" + chunk_set;
}

}  // namespace baton::store::blob_record
