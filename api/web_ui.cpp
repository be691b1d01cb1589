// Serves the web UI: the files embedded in the binary (or, for development,
// a folder given with --web-dir), and index.html for the UI's own paths so
// that deep links load. Also the signed, short-lived download URLs that let
// a browser download a checkpoint without a token in the URL.
#include <fstream>
#include <regex>
#include <sstream>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "api/http_server_internal.h"
#include "api/web_assets.h"
#include "common/digest.h"

namespace baton::api::detail {
namespace {

// The UI's routes (web/src/main.js): "/", "/new", "/store", "/runs/...",
// "/trials/...", "/checkpoints/...". Only names, digits and dashes: no dot,
// so no path that could name a file falls back to index.html.
bool IsUiPath(const std::string& path) {
  static const std::regex ui(R"(/|/(new|store)|/(runs|trials|checkpoints)(/[A-Za-z0-9_-]{1,100}){1,4})");
  return path.size() <= 512 && std::regex_match(path, ui);
}

const WebAsset* FindAsset(const std::string& path) {
  for (const WebAsset& a : WebAssets()) {
    if (path == a.path) return &a;
  }
  return nullptr;
}

void SendAsset(const httplib::Request& req, httplib::Response& res, const WebAsset& asset) {
  res.set_header("ETag", asset.etag);
  // Revalidate every time (the ETag makes that a 304): a new binary's UI
  // is never mixed with a cached old one.
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  if (req.get_header_value("If-None-Match") == asset.etag) {
    res.status = 304;
    return;
  }
  res.set_content(asset.body.data(), asset.body.size(), asset.content_type);
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

void MountWebUi(httplib::Server& server, const std::string& web_dir) {
  if (!web_dir.empty()) {
    // Files of the folder first (cpp-httplib answers mount points before
    // routes); the UI's paths fall back to its index.html.
    server.set_mount_point("/", web_dir);
    server.Get(".*", [web_dir](const httplib::Request& req, httplib::Response& res) {
      if (!IsUiPath(req.path)) return SendError(res, ErrorCode::kNotFound, "no such resource");
      res.set_header("Cache-Control", "no-cache");
      res.set_content(ReadFileOrEmpty(web_dir + "/index.html"), "text/html; charset=utf-8");
    });
    return;
  }
  for (const WebAsset& a : WebAssets()) {
    const std::string path = a.path;
    server.Get(std::regex_replace(path, std::regex(R"(\.)"), "\\."),
               [&a](const httplib::Request& req, httplib::Response& res) { SendAsset(req, res, a); });
  }
  server.Get(".*", [](const httplib::Request& req, httplib::Response& res) {
    const WebAsset* index = FindAsset("/index.html");
    if (!IsUiPath(req.path) || index == nullptr) return SendError(res, ErrorCode::kNotFound, "no such resource");
    SendAsset(req, res, *index);
  });
}

std::string SignPath(const std::string& key, const std::string& path, int64_t expires) {
  const std::string message = path + "\n" + std::to_string(expires);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), mac, &length);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[mac[i] >> 4];
    out += hex[mac[i] & 15];
  }
  return out;
}

bool SignatureValid(const std::string& key, const httplib::Request& req, int64_t now) {
  if (!req.has_param("expires") || !req.has_param("signature")) return false;
  const std::string expires = req.get_param_value("expires"), given = req.get_param_value("signature");
  if (expires.empty() || expires.size() > 12 || expires.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  const int64_t at = std::stoll(expires);
  if (at < now) return false;
  const std::string expected = SignPath(key, req.path, at);
  return given.size() == expected.size() && CRYPTO_memcmp(given.data(), expected.data(), given.size()) == 0;
}

}  // namespace baton::api::detail
