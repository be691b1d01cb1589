#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "common/json_util.h"

namespace baton::stages {

// The coordinator could not be reached (or kept answering 5xx) for longer
// than the client's patience; the worker must exit.
class CoordinatorUnreachable : public Error {
 public:
  explicit CoordinatorUnreachable(const std::string& message)
      : Error(ErrorCode::kUnavailable, message) {}
};

// The coordinator answered 410 Gone: the run is over; the worker exits 0.
class RunOver : public Error {
 public:
  RunOver() : Error(ErrorCode::kConflict, "the run is over (410 Gone)") {}
};

// The coordinator answered that the task's attempt is no longer this
// worker's (409 ABORTED): its lease expired, a newer attempt runs, or the run
// was cancelled. The worker drops the task without reporting it again and
// takes the next one.
class TaskSuperseded : public Error {
 public:
  explicit TaskSuperseded(const std::string& message)
      : Error(ErrorCode::kAborted, message) {}
};

// One blob to upload: its digest and its bytes, which must outlive the call
// that uploads them.
struct BlobUpload {
  std::string digest;
  std::string_view bytes;
};

// The calls a worker makes to the coordinator (docs/worker-protocol.md),
// free of any transport. The HTTP implementation talks to `/internal/v1`;
// tests substitute an in-memory one. Every call may throw
// CoordinatorUnreachable or RunOver, and a task's calls TaskSuperseded;
// other failures (4xx, 5xx, malformed answers) throw baton::Error. Not
// thread-safe: one worker loop owns it, except Heartbeat, which another
// thread may call while the loop's calls run.
class CoordinatorClient {
 public:
  virtual ~CoordinatorClient() = default;

  // POST tasks:next. The task object when there is one; nullopt when there
  // is nothing to do now (204). The reports about that task carry its
  // "attempt", so that the coordinator can refuse them once the attempt is
  // no longer this worker's (TaskSuperseded).
  virtual std::optional<Json> NextTask(int64_t worker_id) = 0;

  // GET blobs/{digest}: the blob's raw bytes (not yet verified).
  virtual std::string GetBlob(const std::string& digest) = 0;
  // POST blobs:missing: which of `digests` the store lacks.
  virtual std::vector<std::string> MissingBlobs(
      const std::vector<std::string>& digests) = 0;
  // PUT blobs/{digest}.
  virtual void PutBlob(const std::string& digest, const std::string& bytes) = 0;
  // POST blobs:batch: uploads `blobs` in order, as few requests as the
  // client's max_batch_bytes allows (one for a model checkpoint). Each
  // request is stored all or nothing and is durable once answered, so a blob
  // sent last (a manifest) is stored only after every blob before it. The
  // default sends one PutBlob per blob, for in-memory clients.
  virtual void PutBlobs(const std::vector<BlobUpload>& blobs);

  // POST tasks/{id}/initial with `body`.
  virtual void ReportInitial(int64_t task_id, const Json& body) = 0;
  // POST tasks/{id}/epochs with `body`; true for "continue", false for "stop".
  virtual bool ReportEpoch(int64_t task_id, const Json& body) = 0;
  // POST tasks/{id}:complete {"output": output}.
  virtual void Complete(int64_t task_id, const std::string& output) = 0;
  // POST tasks/{id}:fail {"status": status, "reason": reason}.
  virtual void Fail(int64_t task_id, const std::string& status,
                    const std::string& reason) = 0;
  // POST tasks/{id}:complete or :fail with the whole `body` ("output", or
  // "status" and "reason"; a command task adds "logs"). The defaults drop
  // what Complete and Fail do not carry, for in-memory clients.
  virtual void CompleteWith(int64_t task_id, const Json& body);
  virtual void FailWith(int64_t task_id, const Json& body);
  // POST tasks/{id}:heartbeat {"attempt": attempt}: renews the task's lease.
  // One try, no repeats: a transport error or 502/503/504 throws
  // CoordinatorUnreachable at once (the caller decides how long to keep
  // trying); TaskSuperseded when the attempt is no longer this worker's.
  // Safe to call from another thread while the other calls run. The default
  // does nothing, for in-memory clients, which hold no lease.
  virtual void Heartbeat(int64_t task_id, int attempt);
};

struct HttpClientOptions {
  // How long the coordinator may stay unreachable (connection errors, 502,
  // 503, 504) before a call throws CoordinatorUnreachable. Default: 10 s.
  std::chrono::milliseconds patience{10000};
  // Pause between retries. Default: 200 ms.
  std::chrono::milliseconds retry_pause{200};
  // How long one read or write on the socket may wait for progress; a
  // coordinator silent for longer counts as unreachable. Default: 30 s.
  std::chrono::seconds io_timeout{30};
  // Most bytes of blobs that PutBlobs sends in one request; a larger blob
  // goes alone. Default: 64 MiB.
  uint64_t max_batch_bytes = 64ull << 20;
};

// A client for `base_url` ("http://127.0.0.1:8080", optionally with a path
// prefix) that sends `Authorization: Bearer <token>` and sets TCP_NODELAY and
// keep-alive. Throws Error(kInvalidArgument) for a malformed URL.
std::unique_ptr<CoordinatorClient> MakeHttpCoordinatorClient(
    const std::string& base_url, const std::string& token,
    const HttpClientOptions& options = {});

}  // namespace baton::stages
