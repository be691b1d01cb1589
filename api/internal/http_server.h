#pragma once

// What the translation units of api/ that register routes share: the
// server's state and the one way errors and JSON leave it. Includes
// cpp-httplib, so only api/*.cpp may include this.
#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>

#include "api/http_server.h"
#include "common/error.h"
#include "common/json_util.h"

namespace baton::api {

struct HttpServer::Impl {
  HttpServerOptions options;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};  // the listener thread's listen_after_bind has returned
  int port = 0;
  std::vector<std::pair<std::string, std::string>> routes;  // MountApi's (method, OpenAPI path)
  std::vector<std::shared_ptr<void>> keep;                  // state the routes' handlers use

  // Who may call: a request whose path starts with `prefix` goes to a route
  // only if `refuse` returns "" for it; otherwise it is answered 401 with
  // that message, before any route sees it (a pre-routing handler: the one
  // check of each server). Its connection is then closed, since its body,
  // if any, was never read. Call before Start().
  using Refusal = std::function<std::string(const httplib::Request&)>;
  void Guard(std::string prefix, Refusal refuse);
  std::vector<std::pair<std::string, Refusal>> guards;
};

namespace detail {

// a == b, in time that depends only on their lengths: every token and
// signature comparison goes through it.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

// The HTTP status of an error code, and MLflow's name for it.
int HttpStatus(ErrorCode code);
const char* EnvelopeCode(ErrorCode code);
// {"error_code", "message", "details": [{"pointer", "message"}]} with the status.
void SendError(httplib::Response& res, ErrorCode code, const std::string& message,
               const std::vector<ErrorDetail>& details = {});
//
// Compression: cpp-httplib compresses a body set with set_content whose type
// is exactly "application/json" or text/* with brotli at quality 11 (about
// 1 MB/s here: milliseconds for a small answer, seconds for a large one)
// whenever the client accepts br, as browsers and cpp-httplib's own client
// do. So JSON leaves as "application/json; charset=utf-8", which it leaves
// alone; the two-argument form sends it as it is (small answers), the
// request-aware form gzips answers of kGzipAbove bytes and more itself
// (zlib level 1, ~100 MB/s) when the client accepts gzip.
void SendJson(httplib::Response& res, const Json& body);
void SendJson(const httplib::Request& req, httplib::Response& res, const Json& body);
// A body sent as it is (`raw`) or, if the client accepts gzip and `gzipped`
// is not null, gzipped: through a content provider of known length, which
// cpp-httplib never compresses again.
void SendBody(const httplib::Request& req, httplib::Response& res, std::shared_ptr<const std::string> raw,
              std::shared_ptr<const std::string> gzipped, const std::string& content_type);
// gzip (RFC 1952) of `bytes` at zlib `level` (1 fastest .. 9 smallest).
std::string Gzip(std::string_view bytes, int level);
bool AcceptsGzip(const httplib::Request& req);
constexpr size_t kGzipAbove = 16 * 1024;  // bytes; smaller answers are sent as they are
// The envelope of an exception a handler threw (baton::Error by its code).
void SendException(httplib::Response& res, std::exception_ptr ep);

// The web UI (web_ui.cpp): its embedded files, or those of `web_dir` when
// not empty, and index.html for the UI's own paths (deep links). Mount
// after every other route: it answers what they did not.
void MountWebUi(httplib::Server& server, const std::string& web_dir);
// HMAC-SHA256 of "path\nexpires" under `key`, hex: a download URL that
// carries no token and works until `expires` (Unix seconds).
std::string SignPath(const std::string& key, const std::string& path, int64_t expires);
// Whether the request's ?expires=&signature= sign its path and have not
// expired at `now`.
bool SignatureValid(const std::string& key, const httplib::Request& req, int64_t now);

}  // namespace detail
}  // namespace baton::api
