// Serves the web UI: the files embedded in the binary (or, for development,
// a folder given with --web-dir), and index.html for the UI's own paths so
// that deep links load. Also the signed, short-lived download URLs that let
// a browser download a checkpoint without a token in the URL.
#include <fstream>
#include <regex>
#include <sstream>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "api/internal/http_server.h"
#include "api/internal/web_assets.h"
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

// An embedded file and its two bodies, shared by every request that sends it.
struct Served {
  const WebAsset* asset;
  std::shared_ptr<const std::string> body, gzipped;
};

void SendAsset(const httplib::Request& req, httplib::Response& res, const Served& served) {
  res.set_header("ETag", served.asset->etag);
  // Revalidate every time (the ETag makes that a 304): a new binary's UI
  // is never mixed with a cached old one.
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Content-Type-Options", "nosniff");
  if (req.get_header_value("If-None-Match") == served.asset->etag) {
    res.status = 304;
    return;
  }
  SendBody(req, res, served.body, served.gzipped, served.asset->content_type);
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
  auto served = std::make_shared<std::vector<Served>>();
  for (const WebAsset& a : WebAssets()) {
    served->push_back({&a, std::make_shared<const std::string>(a.body), std::make_shared<const std::string>(a.gzipped)});
  }
  for (const Served& one : *served) {
    server.Get(std::regex_replace(std::string(one.asset->path), std::regex(R"(\.)"), "\\."),
               [served, &one](const httplib::Request& req, httplib::Response& res) { SendAsset(req, res, one); });
  }
  server.Get(".*", [served](const httplib::Request& req, httplib::Response& res) {
    const Served* index = nullptr;
    for (const Served& one : *served) {
      if (std::string_view(one.asset->path) == "/index.html") index = &one;
    }
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
  return ConstantTimeEquals(given, expected);
}

}  // namespace baton::api::detail
