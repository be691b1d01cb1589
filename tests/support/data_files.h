#pragma once

// Writers of the dataset files that prepare stages read: PNG images, .npy
// arrays and zip (.npz) archives, stored or deflated. Written here with
// zlib only, apart from the readers' libraries, so tests check the readers
// against an independent writer.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace baton::testing {

namespace data_files_detail {

inline void PutBigEndian32(std::string& out, uint32_t v) {
  for (int shift : {24, 16, 8, 0}) out.push_back(static_cast<char>((v >> shift) & 0xff));
}
inline void PutLittleEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline uint32_t Crc32(const std::string& bytes) {
  return static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()),
                                     static_cast<uInt>(bytes.size())));
}

}  // namespace data_files_detail

// An 8-bit PNG of `channels` 1 (grey), 3 (RGB) or 4 (RGBA); `pixels` is
// row-major, height * width * channels bytes.
inline std::string PngBytes(int width, int height, int channels, const std::vector<uint8_t>& pixels) {
  using namespace data_files_detail;
  const uint8_t color_type = channels == 1 ? 0 : channels == 3 ? 2 : 6;
  std::string raw;
  for (int y = 0; y < height; ++y) {
    raw.push_back('\0');  // filter: none
    raw.append(reinterpret_cast<const char*>(pixels.data()) + static_cast<size_t>(y) * width * channels,
               static_cast<size_t>(width) * channels);
  }
  uLongf packed_size = compressBound(raw.size());
  std::string packed(packed_size, '\0');
  compress(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
           raw.size());
  packed.resize(packed_size);
  std::string png = "\x89PNG\r\n\x1a\n";
  auto chunk = [&](const std::string& type, const std::string& data) {
    PutBigEndian32(png, static_cast<uint32_t>(data.size()));
    png += type + data;
    PutBigEndian32(png, Crc32(type + data));
  };
  std::string header;
  PutBigEndian32(header, width);
  PutBigEndian32(header, height);
  header += std::string{8, static_cast<char>(color_type), 0, 0, 0};
  chunk("IHDR", header);
  chunk("IDAT", packed);
  chunk("IEND", "");
  return png;
}

// A grey PNG of one value.
inline std::string GreyPng(int width, int height, uint8_t value) {
  return PngBytes(width, height, 1, std::vector<uint8_t>(static_cast<size_t>(width) * height, value));
}

// An .npy file (format 1.0) of dtype `descr` ("<f4", "|u1", "<i8", ...) and
// `shape` holding `data` as given.
inline std::string NpyBytes(const std::string& descr, const std::vector<int64_t>& shape, const void* data,
                            size_t bytes, bool fortran_order = false) {
  std::string dims;  // "3," or "3, 4" as numpy writes them
  for (size_t i = 0; i < shape.size(); ++i) dims += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  if (shape.size() == 1) dims += ",";
  std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortran_order ? "True" : "False") +
                     ", 'shape': (" + dims + "), }";
  while ((10 + dict.size() + 1) % 64 != 0) dict.push_back(' ');
  dict.push_back('\n');
  std::string out = "\x93NUMPY";
  out += std::string{1, 0};
  data_files_detail::PutLittleEndian(out, dict.size(), 2);
  out += dict;
  out.append(static_cast<const char*>(data), bytes);
  return out;
}

template <typename T>
std::string NpyOf(const std::string& descr, const std::vector<int64_t>& shape, const std::vector<T>& values) {
  return NpyBytes(descr, shape, values.data(), values.size() * sizeof(T));
}

// A zip archive of `members` (name, bytes), each stored or deflated, as
// numpy's savez and savez_compressed write them.
inline std::string ZipBytes(const std::vector<std::pair<std::string, std::string>>& members, bool deflated) {
  using data_files_detail::PutLittleEndian;
  std::string out, central;
  for (const auto& [name, bytes] : members) {
    std::string data = bytes;
    if (deflated) {
      z_stream zs{};
      deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
      data.assign(deflateBound(&zs, bytes.size()), '\0');
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
      zs.avail_in = static_cast<uInt>(bytes.size());
      zs.next_out = reinterpret_cast<Bytef*>(data.data());
      zs.avail_out = static_cast<uInt>(data.size());
      if (deflate(&zs, Z_FINISH) != Z_STREAM_END) throw std::runtime_error("deflate failed");
      data.resize(zs.total_out);
      deflateEnd(&zs);
    }
    const uint32_t crc = data_files_detail::Crc32(bytes);
    const uint64_t offset = out.size();
    auto common = [&](std::string& to) {
      PutLittleEndian(to, 20, 2);                // version needed
      PutLittleEndian(to, 0, 2);                 // flags
      PutLittleEndian(to, deflated ? 8 : 0, 2);  // method
      PutLittleEndian(to, 0, 2);                 // time
      PutLittleEndian(to, 0x21, 2);              // date: 1980-01-01
      PutLittleEndian(to, crc, 4);
      PutLittleEndian(to, data.size(), 4);
      PutLittleEndian(to, bytes.size(), 4);
      PutLittleEndian(to, name.size(), 2);
      PutLittleEndian(to, 0, 2);                 // extra
    };
    PutLittleEndian(out, 0x04034b50, 4);
    common(out);
    out += name + data;
    PutLittleEndian(central, 0x02014b50, 4);
    PutLittleEndian(central, 20, 2);             // version made by
    common(central);
    PutLittleEndian(central, 0, 2);              // comment
    PutLittleEndian(central, 0, 2);              // disk
    PutLittleEndian(central, 0, 2);              // internal attributes
    PutLittleEndian(central, 0, 4);              // external attributes
    PutLittleEndian(central, offset, 4);
    central += name;
  }
  const uint64_t central_offset = out.size();
  out += central;
  PutLittleEndian(out, 0x06054b50, 4);
  PutLittleEndian(out, 0, 4);                    // disks
  PutLittleEndian(out, members.size(), 2);
  PutLittleEndian(out, members.size(), 2);
  PutLittleEndian(out, central.size(), 4);
  PutLittleEndian(out, central_offset, 4);
  PutLittleEndian(out, 0, 2);                    // comment
  return out;
}

}  // namespace baton::testing
