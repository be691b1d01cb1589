#pragma once

#include <memory>
#include <string>

#include "orchestrator/coordinator.h"
#include "store/blob_store.h"

namespace baton::api {

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 0;                     // 0 = any free port
  int threads = 8;                  // request threads; >= keep-alive connections
  size_t max_body_bytes = 1ull << 30;  // largest upload (a tensor blob). Default: 1 GiB
};

// The HTTP face of Baton (cpp-httplib lives only in http_server.cpp). For now
// it serves the coordinator's worker endpoints under /internal/v1 (see
// docs/worker-protocol.md) with a bearer token. Start/Stop from one thread;
// requests are served concurrently.
class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();

  // Routes /internal/v1 to `coordinator`, blobs to `blobs`; requests must
  // carry "Authorization: Bearer <token>".
  void MountInternal(orchestrator::Coordinator* coordinator, store::BlobStore* blobs,
                     const std::string& token);
  // Binds and starts serving in a background thread; returns the port.
  int Start();
  void Stop();
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A random 256-bit token, hex.
std::string NewToken();

}  // namespace baton::api
