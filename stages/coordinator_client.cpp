// The only file of stages/ that sees cpp-httplib.
#include "stages/coordinator_client.h"

#include <httplib.h>

#include <functional>
#include <mutex>
#include <thread>

namespace baton::stages {

void CoordinatorClient::PutBlobs(const std::vector<BlobUpload>& blobs) {
  for (const BlobUpload& blob : blobs) {
    PutBlob(blob.digest, std::string(blob.bytes));
  }
}

void CoordinatorClient::Heartbeat(int64_t, int) {}

void CoordinatorClient::CompleteWith(int64_t task_id, const Json& body) {
  Complete(task_id, body.value("output", ""));
}

void CoordinatorClient::FailWith(int64_t task_id, const Json& body) {
  Fail(task_id, body.value("status", "failed"), body.value("reason", ""));
}

namespace {

using Clock = std::chrono::steady_clock;

bool Retryable(int status) {
  return status == 502 || status == 503 || status == 504;
}

// The coordinator's message for a failed call: the error envelope's
// "message" when the body is one, else the body itself (shortened).
std::string ErrorMessage(const std::string& body) {
  try {
    Json json = Json::parse(body);
    if (json.is_object() && json.contains("message") &&
        json["message"].is_string()) {
      return json["message"].get<std::string>();
    }
  } catch (const Json::exception&) {
  }
  return body.size() > 500 ? body.substr(0, 500) + "..." : body;
}

// True for the coordinator's "this attempt is no longer yours" answer: 409
// with the error envelope's code ABORTED.
bool Superseded(const httplib::Response& response) {
  if (response.status != 409) return false;
  try {
    Json json = Json::parse(response.body);
    return json.is_object() && json.value("error_code", "") == "ABORTED";
  } catch (const Json::exception&) {
    return false;
  }
}

// A blobs:batch body: for each blob its digest (64 hex characters), its
// length (u64, little-endian) and its bytes (docs/worker-protocol.md). Held
// as pieces that are sent in order without joining them: framing and small
// blobs are copied into owned pieces, large blobs are sent from the caller's
// memory.
class BatchBody {
 public:
  void Add(const BlobUpload& blob) {
    std::string& own = Owned();
    own.append(blob.digest);
    for (int i = 0; i < 8; ++i) {
      own.push_back(static_cast<char>((blob.bytes.size() >> (8 * i)) & 0xff));
    }
    if (blob.bytes.size() < kCopyMax) {
      own.append(blob.bytes.data(), blob.bytes.size());
    } else {
      pieces_.push_back(Piece{blob.bytes, {}});
    }
    size_ += 72 + blob.bytes.size();
  }
  uint64_t size() const { return size_; }

  // Writes the body from `offset` on (cpp-httplib's ContentProvider).
  bool Provide(size_t offset, httplib::DataSink& sink) const {
    size_t start = 0;
    for (const Piece& piece : pieces_) {
      const std::string_view bytes =
          piece.view.data() != nullptr ? piece.view : piece.owned;
      if (offset < start + bytes.size()) {
        const std::string_view rest = bytes.substr(offset - start);
        return sink.write(rest.data(), rest.size());
      }
      start += bytes.size();
    }
    return false;
  }

 private:
  static constexpr size_t kCopyMax = 64 << 10;
  struct Piece {
    std::string_view view;  // the caller's bytes, or
    std::string owned;      // bytes held here
  };
  std::string& Owned() {
    if (pieces_.empty() || pieces_.back().view.data() != nullptr) {
      pieces_.push_back(Piece{});
    }
    return pieces_.back().owned;
  }

  std::vector<Piece> pieces_;
  uint64_t size_ = 0;
};

ErrorCode CodeForStatus(int status) {
  switch (status) {
    case 400:
      return ErrorCode::kInvalidArgument;
    case 404:
      return ErrorCode::kNotFound;
    case 409:
      return ErrorCode::kConflict;
    case 507:  // the coordinator's store is full; the run stops
      return ErrorCode::kResourceExhausted;
    default:
      return ErrorCode::kInternal;
  }
}

class HttpCoordinatorClient : public CoordinatorClient {
 public:
  HttpCoordinatorClient(const std::string& origin, std::string prefix,
                        const std::string& token,
                        const HttpClientOptions& options)
      : client_(origin), beat_(origin), prefix_(std::move(prefix)), options_(options) {
    client_.set_tcp_nodelay(true);
    client_.set_keep_alive(true);
    client_.set_bearer_token_auth(token);
    client_.set_connection_timeout(2);
    client_.set_read_timeout(options.io_timeout.count());
    client_.set_write_timeout(options.io_timeout.count());
    // Heartbeats use their own connection, closed after each one: a
    // keep-alive connection would hold one of the server's request threads
    // for the whole task.
    beat_.set_tcp_nodelay(true);
    beat_.set_keep_alive(false);
    beat_.set_bearer_token_auth(token);
    beat_.set_connection_timeout(2);
    beat_.set_read_timeout(5);
    beat_.set_write_timeout(5);
  }

  std::optional<Json> NextTask(int64_t worker_id) override {
    httplib::Response response =
        PostJson("/tasks:next", {{"worker_id", worker_id}}, {200, 204});
    if (response.status == 204) return std::nullopt;
    Json body = ParseBody(response, "tasks:next");
    if (!body.is_object() || !body.contains("task") ||
        !body["task"].is_object()) {
      throw Error(ErrorCode::kInternal,
                  "coordinator: tasks:next answered without a task object");
    }
    const Json& task = body["task"];
    task_id_ = task.contains("id") && task["id"].is_number_integer()
                   ? task["id"].get<int64_t>()
                   : -1;
    attempt_ = task.contains("attempt") && task["attempt"].is_number_integer()
                   ? task["attempt"].get<int>()
                   : 0;
    return task;
  }

  std::string GetBlob(const std::string& digest) override {
    const std::string path = prefix_ + "/blobs/" + digest;
    httplib::Response response =
        Send("GET blobs/" + digest, [&] { return client_.Get(path); }, {200});
    return std::move(response.body);
  }

  std::vector<std::string> MissingBlobs(
      const std::vector<std::string>& digests) override {
    Json body =
        ParseBody(PostJson("/blobs:missing", {{"digests", digests}}, {200}),
                  "blobs:missing");
    try {
      return body.at("missing").get<std::vector<std::string>>();
    } catch (const Json::exception& e) {
      throw Error(ErrorCode::kInternal,
                  std::string("coordinator: malformed blobs:missing answer: ") +
                      e.what());
    }
  }

  void PutBlob(const std::string& digest, const std::string& bytes) override {
    const std::string path = prefix_ + "/blobs/" + digest;
    Send("PUT blobs/" + digest,
         [&] {
           return client_.Put(path, bytes.data(), bytes.size(),
                              "application/octet-stream");
         },
         {200, 201, 204});
  }

  void PutBlobs(const std::vector<BlobUpload>& blobs) override {
    size_t begin = 0;
    while (begin < blobs.size()) {
      BatchBody body;
      size_t end = begin;
      while (end < blobs.size() &&
             (end == begin || body.size() + 72 + blobs[end].bytes.size() <=
                                  options_.max_batch_bytes)) {
        body.Add(blobs[end++]);
      }
      const std::string path = prefix_ + "/blobs:batch";
      Send(
          "POST blobs:batch (" + std::to_string(end - begin) + " blobs)",
          [&] {
            return client_.Post(
                path, body.size(),
                [&body](size_t offset, size_t, httplib::DataSink& sink) {
                  return body.Provide(offset, sink);
                },
                "application/octet-stream");
          },
          {200, 201, 204});
      begin = end;
    }
  }

  void ReportInitial(int64_t task_id, const Json& body) override {
    PostJson(TaskPath(task_id, "/initial"), WithAttempt(task_id, body),
             {200, 201, 204});
  }

  bool ReportEpoch(int64_t task_id, const Json& body) override {
    Json answer = ParseBody(
        PostJson(TaskPath(task_id, "/epochs"), WithAttempt(task_id, body),
                 {200}),
        "epochs");
    if (!answer.is_object() || !answer.contains("action") ||
        !answer["action"].is_string()) {
      throw Error(ErrorCode::kInternal,
                  "coordinator: epoch report answered without an action");
    }
    const std::string action = answer["action"].get<std::string>();
    if (action != "continue" && action != "stop") {
      throw Error(ErrorCode::kInternal,
                  "coordinator: unknown epoch action \"" + action + "\"");
    }
    return action == "continue";
  }

  void Complete(int64_t task_id, const std::string& output) override {
    PostJson(TaskPath(task_id, ":complete"),
             WithAttempt(task_id, {{"output", output}}), {200, 201, 204});
  }

  void Fail(int64_t task_id, const std::string& status,
            const std::string& reason) override {
    PostJson(TaskPath(task_id, ":fail"),
             WithAttempt(task_id, {{"status", status}, {"reason", reason}}),
             {200, 201, 204});
  }

  void CompleteWith(int64_t task_id, const Json& body) override {
    PostJson(TaskPath(task_id, ":complete"), WithAttempt(task_id, body), {200, 201, 204});
  }

  void FailWith(int64_t task_id, const Json& body) override {
    PostJson(TaskPath(task_id, ":fail"), WithAttempt(task_id, body), {200, 201, 204});
  }

  void Heartbeat(int64_t task_id, int attempt) override {
    const std::string path = prefix_ + TaskPath(task_id, ":heartbeat");
    const std::string text = Json{{"attempt", attempt}}.dump();
    const std::string what = "POST tasks/" + std::to_string(task_id) + ":heartbeat";
    std::lock_guard<std::mutex> lock(beat_mu_);
    httplib::Result result = beat_.Post(path, text, "application/json");
    if (!result) {
      throw CoordinatorUnreachable(what + ": no answer (" +
                                   httplib::to_string(result.error()) + ")");
    }
    if (Retryable(result->status)) {
      throw CoordinatorUnreachable(what + ": HTTP " +
                                   std::to_string(result->status));
    }
    Check(*result, what, {200, 201, 204});
  }

 private:
  // `body` with the attempt of the task NextTask gave, when it is that task.
  Json WithAttempt(int64_t task_id, Json body) const {
    if (task_id == task_id_ && attempt_ > 0 && body.is_object()) {
      body["attempt"] = attempt_;
    }
    return body;
  }

  // Throws for a status that is not one of `accepted` (after the retryable
  // ones were handled).
  static void Check(const httplib::Response& response, const std::string& what,
                    std::initializer_list<int> accepted) {
    const int status = response.status;
    for (int ok : accepted) {
      if (status == ok) return;
    }
    if (status == 410) throw RunOver();
    if (Superseded(response)) {
      throw TaskSuperseded("coordinator refused " + what + ": " +
                           ErrorMessage(response.body));
    }
    if (status == 401) {
      throw Error(ErrorCode::kInvalidArgument,
                  "coordinator rejected the worker token (401) on " + what +
                      "; check BATON_WORKER_TOKEN");
    }
    throw Error(CodeForStatus(status),
                "coordinator answered " + std::to_string(status) + " to " +
                    what + ": " + ErrorMessage(response.body));
  }

  std::string TaskPath(int64_t task_id, const std::string& suffix) const {
    return "/tasks/" + std::to_string(task_id) + suffix;
  }

  httplib::Response PostJson(const std::string& endpoint, const Json& body,
                             std::initializer_list<int> accepted) {
    const std::string path = prefix_ + endpoint;
    const std::string text = body.dump();
    return Send(
        "POST " + endpoint.substr(1),
        [&] { return client_.Post(path, text, "application/json"); }, accepted);
  }

  static Json ParseBody(const httplib::Response& response,
                        const std::string& what) {
    try {
      return Json::parse(response.body);
    } catch (const Json::exception& e) {
      throw Error(
          ErrorCode::kInternal,
          "coordinator: " + what + " answered invalid JSON: " + e.what());
    }
  }

  // Sends a request, repeating it while the coordinator is unreachable or
  // answers 502/503/504, for up to options_.patience. Returns the response
  // when its status is one of `accepted`; otherwise throws.
  httplib::Response Send(const std::string& what,
                         const std::function<httplib::Result()>& request,
                         std::initializer_list<int> accepted) {
    const Clock::time_point start = Clock::now();
    while (true) {
      httplib::Result result = request();
      std::string problem;
      if (!result) {
        problem = "no answer (" + httplib::to_string(result.error()) + ")";
      } else if (Retryable(result->status)) {
        problem = "HTTP " + std::to_string(result->status);
      } else {
        Check(*result, what, accepted);
        return std::move(result.value());
      }
      if (Clock::now() - start >= options_.patience) {
        throw CoordinatorUnreachable(
            "coordinator unreachable for " +
            std::to_string(options_.patience.count() / 1000) + " s (" + what +
            ": " + problem + ")");
      }
      std::this_thread::sleep_for(options_.retry_pause);
    }
  }

  httplib::Client client_;
  httplib::Client beat_;  // heartbeats only, from the worker's heartbeat thread
  std::mutex beat_mu_;
  std::string prefix_;  // URL path prefix + "/internal/v1"
  HttpClientOptions options_;
  int64_t task_id_ = -1;  // the task NextTask last gave, and its attempt
  int attempt_ = 0;
};

}  // namespace

std::unique_ptr<CoordinatorClient> MakeHttpCoordinatorClient(
    const std::string& base_url, const std::string& token,
    const HttpClientOptions& options) {
  const size_t scheme_end = base_url.find("://");
  const std::string scheme =
      scheme_end == std::string::npos ? "" : base_url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw Error(ErrorCode::kInvalidArgument,
                "coordinator URL must start with http:// or https://, got \"" +
                    base_url + "\"");
  }
  const size_t path_start = base_url.find('/', scheme_end + 3);
  const std::string origin = base_url.substr(0, path_start);
  std::string prefix =
      path_start == std::string::npos ? "" : base_url.substr(path_start);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  if (origin.size() <= scheme_end + 3) {
    throw Error(ErrorCode::kInvalidArgument,
                "coordinator URL has no host: \"" + base_url + "\"");
  }
  return std::make_unique<HttpCoordinatorClient>(
      origin, prefix + "/internal/v1", token, options);
}

}  // namespace baton::stages
