#pragma once

// The web UI's files, embedded in the baton binary at build time
// (web/build.mjs writes the table from web/src; api/CMakeLists.txt runs it).
#include <string_view>
#include <vector>

namespace baton::api {

struct WebAsset {
  const char* path;          // "/app.js"
  const char* content_type;  // "text/javascript; charset=utf-8"
  std::string_view body;
  std::string_view gzipped;  // body, gzipped (level 9)
  const char* etag;          // quoted, from the SHA-256 of body
};

const std::vector<WebAsset>& WebAssets();

}  // namespace baton::api
