#include "api/http_server.h"
#include "api/internal/http_server.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <thread>

#include <httplib.h>
#include <openssl/crypto.h>
#include <zlib.h>

#include "common/digest.h"
#include "common/error.h"
#include "common/json_util.h"

namespace baton::api {
namespace {

using detail::SendError;
using detail::SendException;
using detail::SendJson;

// Splits a blobs:batch body into its blobs, which point into `body`: for
// each blob its digest (64 lower-case hex characters), its length (u64,
// little-endian) and its bytes (docs/worker-protocol.md). Throws
// Error(kInvalidArgument) for a malformed or truncated body.
std::vector<store::ExpectedBlob> ParseBlobBatch(std::string_view body) {
  constexpr size_t kHeader = 64 + 8;
  std::vector<store::ExpectedBlob> blobs;
  size_t offset = 0;
  while (offset < body.size()) {
    const std::string where = "blobs:batch body: blob " + std::to_string(blobs.size() + 1) +
                              " at byte " + std::to_string(offset);
    if (body.size() - offset < kHeader) {
      throw Error(ErrorCode::kInvalidArgument,
                  where + ": needs a 72-byte header (digest + length), only " +
                      std::to_string(body.size() - offset) + " bytes left (truncated body?)");
    }
    const std::string_view digest = body.substr(offset, 64);
    if (!IsDigest(digest)) {
      throw Error(ErrorCode::kInvalidArgument,
                  where + ": does not start with a SHA-256 digest (64 lower-case hex characters)");
    }
    uint64_t length = 0;
    for (int i = 0; i < 8; ++i) {
      length |= static_cast<uint64_t>(static_cast<unsigned char>(body[offset + 64 + i])) << (8 * i);
    }
    offset += kHeader;
    if (length > body.size() - offset) {
      throw Error(ErrorCode::kInvalidArgument,
                  where + " (" + std::string(digest) + "): declares " + std::to_string(length) +
                      " bytes, only " + std::to_string(body.size() - offset) + " left (truncated body?)");
    }
    blobs.push_back(store::ExpectedBlob{digest, body.substr(offset, length)});
    offset += length;
  }
  return blobs;
}

}  // namespace

namespace detail {

int HttpStatus(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kConflict: return 409;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kCorrupt: return 500;
    case ErrorCode::kInternal: return 500;
    case ErrorCode::kUnauthenticated: return 401;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kResourceExhausted: return 507;  // Insufficient Storage
    case ErrorCode::kAborted: return 409;
  }
  return 500;
}

// MLflow-style error codes for the envelope.
const char* EnvelopeCode(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "INVALID_PARAMETER_VALUE";
    case ErrorCode::kNotFound: return "RESOURCE_DOES_NOT_EXIST";
    case ErrorCode::kConflict: return "RESOURCE_CONFLICT";
    case ErrorCode::kUnavailable: return "TEMPORARILY_UNAVAILABLE";
    case ErrorCode::kCorrupt: return "DATA_CORRUPTED";
    case ErrorCode::kInternal: return "INTERNAL_ERROR";
    case ErrorCode::kUnauthenticated: return "UNAUTHENTICATED";
    case ErrorCode::kPermissionDenied: return "PERMISSION_DENIED";
    case ErrorCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case ErrorCode::kAborted: return "ABORTED";
  }
  return "INTERNAL_ERROR";
}

void SendError(httplib::Response& res, ErrorCode code, const std::string& message,
               const std::vector<ErrorDetail>& details) {
  Json body = {{"error_code", EnvelopeCode(code)}, {"message", message}, {"details", Json::array()}};
  for (const auto& d : details) body["details"].push_back({{"pointer", d.pointer}, {"message", d.message}});
  res.status = HttpStatus(code);
  // A message may quote the request (a query value, a header), whose bytes
  // need not be UTF-8: they become U+FFFD instead of an exception out of the
  // exception handler, which would end the server.
  res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json; charset=utf-8");
}

void SendException(httplib::Response& res, std::exception_ptr ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const Error& e) {
    SendError(res, e.code(), e.what(), e.details());
  } catch (const Json::exception& e) {
    SendError(res, ErrorCode::kInvalidArgument, std::string("malformed request body: ") + e.what());
  } catch (const std::exception& e) {
    SendError(res, ErrorCode::kInternal, e.what());
  } catch (...) {
    SendError(res, ErrorCode::kInternal, "unknown error");
  }
}

constexpr const char* kJson = "application/json; charset=utf-8";

void SendJson(httplib::Response& res, const Json& body) {
  res.status = 200;
  res.set_content(body.dump(-1, ' ', false, Json::error_handler_t::replace), kJson);
}

void SendJson(const httplib::Request& req, httplib::Response& res, const Json& body) {
  auto raw = std::make_shared<const std::string>(body.dump(-1, ' ', false, Json::error_handler_t::replace));
  if (raw->size() < kGzipAbove || !AcceptsGzip(req)) {
    res.status = 200;
    res.set_content(*raw, kJson);
    return;
  }
  res.status = 200;
  SendBody(req, res, raw, std::make_shared<const std::string>(Gzip(*raw, 1)), kJson);
}

bool AcceptsGzip(const httplib::Request& req) {
  return req.get_header_value("Accept-Encoding").find("gzip") != std::string::npos;
}

void SendBody(const httplib::Request& req, httplib::Response& res, std::shared_ptr<const std::string> raw,
              std::shared_ptr<const std::string> gzipped, const std::string& content_type) {
  std::shared_ptr<const std::string> body = raw;
  if (gzipped && AcceptsGzip(req)) {
    body = gzipped;
    res.set_header("Content-Encoding", "gzip");
  }
  if (gzipped) res.set_header("Vary", "Accept-Encoding");
  if (body->empty()) {
    res.set_content("", content_type);
    return;
  }
  res.set_content_provider(body->size(), content_type,
                           [body](size_t offset, size_t length, httplib::DataSink& sink) {
                             return sink.write(body->data() + offset, std::min(length, body->size() - offset));
                           });
}

std::string Gzip(std::string_view bytes, int level) {
  z_stream z{};
  // 15 window bits + 16: a gzip header and trailer rather than zlib's.
  if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw Error(ErrorCode::kInternal, "zlib: deflateInit2 failed");
  }
  std::string out(deflateBound(&z, bytes.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
  z.avail_in = static_cast<uInt>(bytes.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw Error(ErrorCode::kInternal, "zlib: deflate did not finish");
  return out;
}

}  // namespace detail

std::string NewToken() {
  std::random_device rd;
  std::string raw;
  for (int i = 0; i < 8; ++i) {
    uint32_t v = rd();
    raw.append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  return Sha256Hex(raw);
}

namespace {

class InternalEndpoint : public executor::WorkerEndpoint {
 public:
  InternalEndpoint(orchestrator::Coordinator& coordinator, store::BlobStore& blobs, int workers,
                   const WorkerAccess& access)
      : server_(Options(workers, access)), token_(NewToken()) {
    server_.MountInternal(&coordinator, &blobs, token_);
    const int port = server_.Start();
    url_ = access.url;
    if (url_.empty()) {
      std::string host = access.bind;
      if (host == "0.0.0.0" || host == "::" || host.empty()) {
        char name[256] = {0};
        host = gethostname(name, sizeof(name) - 1) == 0 && name[0] != 0 ? name : "127.0.0.1";
      }
      if (host.find(':') != std::string::npos) host = "[" + host + "]";
      url_ = "http://" + host + ":" + std::to_string(port);
    }
  }
  ~InternalEndpoint() override { server_.Stop(); }
  std::string url() const override { return url_; }
  std::string token() const override { return token_; }

 private:
  static HttpServerOptions Options(int workers, const WorkerAccess& access) {
    HttpServerOptions options = HttpServerOptions::ForWorkers(workers);
    options.host = access.bind;
    options.port = access.port;
    return options;
  }
  HttpServer server_;
  const std::string token_;
  std::string url_;
};

}  // namespace

std::unique_ptr<executor::WorkerEndpoint> ServeWorkers(orchestrator::Coordinator& coordinator,
                                                       store::BlobStore& blobs, int workers,
                                                       const WorkerAccess& access) {
  return std::make_unique<InternalEndpoint>(coordinator, blobs, workers, access);
}

bool detail::ConstantTimeEquals(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void HttpServer::Impl::Guard(std::string prefix, Refusal refuse) {
  if (guards.empty()) {
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      for (const auto& [prefix, refuse] : guards) {
        if (req.path.compare(0, prefix.size(), prefix) != 0) continue;
        const std::string why = refuse(req);
        if (why.empty()) break;
        SendError(res, ErrorCode::kUnauthenticated, why);
        res.set_header("Connection", "close");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
  }
  guards.emplace_back(std::move(prefix), std::move(refuse));
}

HttpServerOptions HttpServerOptions::ForWorkers(int workers) {
  HttpServerOptions options;
  options.threads = workers + 4;
  return options;
}

HttpServerOptions HttpServerOptions::ForApi(const std::string& host, int port, int threads, size_t max_body_bytes) {
  HttpServerOptions options;
  options.host = host;
  options.port = port;
  options.threads = threads;
  options.max_body_bytes = max_body_bytes;
  return options;
}

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
  auto& s = impl_->server;
  s.set_tcp_nodelay(true);  // without it every response stalls ~40 ms
  const int threads = options.threads;
  s.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  s.set_payload_max_length(options.max_body_bytes);
  s.set_keep_alive_max_count(100000);
  s.set_read_timeout(60, 0);
  s.set_write_timeout(60, 0);
  // Every error becomes one JSON envelope, from this one place.
  s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    SendException(res, ep);
  });
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::MountInternal(orchestrator::Coordinator* coordinator, store::BlobStore* blobs,
                               const std::string& token) {
  auto& s = impl_->server;
  const std::string expected = "Bearer " + token;
  impl_->Guard("/internal/v1/", [expected](const httplib::Request& req) -> std::string {
    return detail::ConstantTimeEquals(req.get_header_value("Authorization"), expected) ? "" : "missing or wrong worker token";
  });
  auto body_json = [](const httplib::Request& req) { return ParseJson(req.body, "request body"); };
  auto task_id = [](const httplib::Request& req) { return std::stoll(req.matches[1]); };
  if (coordinator != nullptr) {
    // A store write that found the disk full (a blob upload, an epoch's
    // record) stops the run rather than failing the trial, whose retries
    // would find the same full disk (Coordinator::Interrupt); the worker is
    // answered 507.
    s.set_exception_handler([coordinator](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      try {
        std::rethrow_exception(ep);
      } catch (const Error& e) {
        if (e.code() == ErrorCode::kResourceExhausted) coordinator->Interrupt(e);
      } catch (...) {
      }
      SendException(res, ep);
    });
  }

  s.Post("/internal/v1/tasks:next", [=](const httplib::Request& req, httplib::Response& res) {
    Json body = body_json(req);
    Json task;
    switch (coordinator->NextTask(body.value("worker_id", -1), std::chrono::milliseconds(1000), &task)) {
      case orchestrator::Coordinator::Next::kTask: SendJson(res, {{"task", task}}); return;
      case orchestrator::Coordinator::Next::kWait: res.status = 204; return;
      case orchestrator::Coordinator::Next::kDone: res.status = 410; return;
    }
  });
  s.Post(R"(/internal/v1/tasks/(\d+)/initial)", [=](const httplib::Request& req, httplib::Response& res) {
    coordinator->ReportInitial(task_id(req), body_json(req));
    SendJson(res, Json::object());
  });
  s.Post(R"(/internal/v1/tasks/(\d+)/epochs)", [=](const httplib::Request& req, httplib::Response& res) {
    SendJson(res, {{"action", coordinator->ReportEpoch(task_id(req), body_json(req))}});
  });
  s.Post(R"(/internal/v1/tasks/(\d+):complete)", [=](const httplib::Request& req, httplib::Response& res) {
    coordinator->Complete(task_id(req), body_json(req));
    SendJson(res, Json::object());
  });
  s.Post(R"(/internal/v1/tasks/(\d+):fail)", [=](const httplib::Request& req, httplib::Response& res) {
    coordinator->Fail(task_id(req), body_json(req));
    SendJson(res, Json::object());
  });
  s.Post(R"(/internal/v1/tasks/(\d+):heartbeat)", [=](const httplib::Request& req, httplib::Response& res) {
    SendJson(res, coordinator->Heartbeat(task_id(req), body_json(req)));
  });
  s.Post("/internal/v1/blobs:missing", [=](const httplib::Request& req, httplib::Response& res) {
    Json body = body_json(req);
    std::vector<std::string> digests;
    for (const auto& d : body.at("digests")) {
      std::string digest = d.get<std::string>();
      if (!IsDigest(digest)) throw Error(ErrorCode::kInvalidArgument, "not a digest: " + digest);
      digests.push_back(digest);
    }
    SendJson(res, {{"missing", blobs->Missing(digests)}});
  });
  // The body is read into one buffer sized from Content-Length (not grown
  // piece by piece), and the blobs are stored from it without copies.
  const uint64_t max_body = impl_->options.max_body_bytes;
  s.Post("/internal/v1/blobs:batch",
         [=](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
           std::string body;
           const std::string length = req.get_header_value("Content-Length");
           if (!length.empty() && length.size() < 20) {
             body.reserve(std::min<uint64_t>(std::stoull(length), max_body));
           }
           read([&body](const char* data, size_t size) {
             body.append(data, size);
             return true;
           });
           const std::vector<store::ExpectedBlob> batch = ParseBlobBatch(body);
           const size_t added = blobs->PutExpectedAll(batch);
           SendJson(res, {{"stored", batch.size()}, {"new", added}});
         });
  s.Put(R"(/internal/v1/blobs/([0-9a-f]{64}))", [=](const httplib::Request& req, httplib::Response& res) {
    blobs->PutExpected(req.matches[1].str(), req.body);
    res.status = 204;
  });
  s.Get(R"(/internal/v1/blobs/([0-9a-f]{64}))", [=](const httplib::Request& req, httplib::Response& res) {
    res.set_content(blobs->Get(req.matches[1].str()), "application/octet-stream");
  });
}

int HttpServer::Start() {
  auto& impl = *impl_;
  if (impl.options.port == 0) {
    impl.port = impl.server.bind_to_any_port(impl.options.host);
  } else {
    impl.port = impl.server.bind_to_port(impl.options.host, impl.options.port) ? impl.options.port : -1;
  }
  if (impl.port <= 0) {
    throw Error(ErrorCode::kUnavailable, "cannot listen on " + impl.options.host + ":" +
                                             std::to_string(impl.options.port));
  }
  impl.thread = std::thread([&impl] {
    impl.server.listen_after_bind();
    impl.listen_returned = true;
  });
  // cpp-httplib's stop() does nothing until the listener has started
  // (is_running): a Stop right after Start (a resumed run with nothing left
  // to do) would leave the listener, and Stop's join, running forever.
  while (!impl.server.is_running() && !impl.listen_returned) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return impl.port;
}

void HttpServer::Stop() {
  if (impl_->thread.joinable()) {
    impl_->server.stop();
    impl_->thread.join();
  }
}

std::string HttpServer::url() const {
  return "http://" + impl_->options.host + ":" + std::to_string(impl_->port);
}

}  // namespace baton::api
