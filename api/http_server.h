#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "executor/execute_run.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"
#include "store/blob_store.h"

namespace baton::api {

struct StoreHandle;
class RunManager;

struct ApiOptions {
  std::string token;        // mutations (and reads, unless public_read) need "Bearer <token>"
  bool public_read = false;
  std::string web_dir;      // served under / when not empty
  // Folders a pipeline triggered over HTTP may read data from (prepare
  // stages' dataset.path, symlinks resolved); others get 403.
  std::vector<std::string> data_roots;
  // Whether pipelines sent over HTTP may have command stages (else 403):
  // `baton serve --allow-commands`.
  bool allow_commands = false;
  orchestrator::PipelineLimits limits;  // of the pipelines sent over HTTP
};

// How a server listens. Its two uses differ, and only here:
//   ForWorkers: a run's worker endpoint (/internal/v1): loopback, a thread
//     for each worker's keep-alive connection and spare ones, bodies up to
//     1 GiB (one tensor blob, or a batch of them, per request);
//   ForApi: `baton serve` (/api/v1): the host, port, threads and body limit
//     it is given (ServeOptions: 16 threads, since each open event stream
//     holds one; 16 MiB, a pipeline document: nothing big is uploaded
//     through the public API).
struct HttpServerOptions {
  std::string host = "127.0.0.1";  // loopback unless asked otherwise
  int port = 0;                     // 0 = any free port
  int threads = 8;                  // request threads; >= keep-alive connections
  size_t max_body_bytes = 1ull << 30;  // largest request body (413 above). Default: 1 GiB

  static HttpServerOptions ForWorkers(int workers);
  static HttpServerOptions ForApi(const std::string& host, int port, int threads, size_t max_body_bytes);
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
  // Routes /api/v1 (api/openapi.json) over `store`, runs through `runs`;
  // both must outlive the server.
  void MountApi(const ApiOptions& options, StoreHandle* store, RunManager* runs);
  // The (method, OpenAPI path) of every /api/v1 route MountApi registered.
  std::vector<std::pair<std::string, std::string>> ApiRoutes() const;
  // Binds and starts serving in a background thread; returns the port.
  int Start();
  void Stop();
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The OpenAPI 3 document of MountApi's routes (api/openapi.json, compiled in).
const char* OpenApiRaw();

// Where a run's worker endpoint listens and how workers reach it.
struct WorkerAccess {
  std::string bind = "127.0.0.1";  // the address to listen on: loopback unless asked otherwise
  int port = 0;                     // 0 = any free port
  // The URL workers are given. "" = http://BIND:PORT, with this machine's
  // host name for a wildcard BIND (0.0.0.0, ::).
  std::string url;
};

// Serves `coordinator`'s worker endpoints (/internal/v1) and `blobs` where
// `access` says (loopback by default), with a fresh token, to `workers`
// workers, until the endpoint is destroyed: how runs executed here are
// served (ExecuteOptions::serve).
std::unique_ptr<executor::WorkerEndpoint> ServeWorkers(orchestrator::Coordinator& coordinator,
                                                       store::BlobStore& blobs, int workers,
                                                       const WorkerAccess& access = {});

// A random 256-bit token, hex.
std::string NewToken();

}  // namespace baton::api
