// The worker's HTTP client against a real cpp-httplib server on a spare
// loopback port, standing in for the coordinator's /internal/v1 face.
#include "stages/coordinator_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>

#include "common/digest.h"

namespace baton::stages {
namespace {

class FakeServer {
 public:
  explicit FakeServer(const std::string& prefix = "") {
    const std::string base = prefix + "/internal/v1";
    server_.set_tcp_nodelay(true);
    server_.set_pre_routing_handler(
        [](const httplib::Request& req, httplib::Response& res) {
          if (req.get_header_value("Authorization") != "Bearer secret") {
            res.status = 401;
            return httplib::Server::HandlerResponse::Handled;
          }
          return httplib::Server::HandlerResponse::Unhandled;
        });
    server_.Post(base + "/tasks:next",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   if (Unavailable(res)) return;
                   Json body = Json::parse(req.body);
                   EXPECT_EQ(body["worker_id"], 3);
                   int call = next_calls_++;
                   if (call == 0) {
                     res.status = 204;
                   } else if (call == 1) {
                     res.set_content(R"({"task": {"id": 17, "kind": "train"}})",
                                     "application/json");
                   } else {
                     res.status = 410;
                   }
                 });
    server_.Post(base + "/blobs:missing", [this](const httplib::Request& req,
                                                 httplib::Response& res) {
      const Json body = Json::parse(req.body);
      Json missing = Json::array();
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& d : body["digests"]) {
        const std::string digest = d.get<std::string>();
        if (blobs_.count(digest) == 0) missing.push_back(digest);
      }
      res.set_content(Json{{"missing", missing}}.dump(), "application/json");
    });
    server_.Put(base + R"(/blobs/([0-9a-f]+))", [this](
                                                    const httplib::Request& req,
                                                    httplib::Response& res) {
      if (Sha256Hex(req.body) != req.matches[1].str()) {
        res.status = 400;
        res.set_content(
            R"({"error_code": "INVALID_PARAMETER_VALUE", "message": "digest mismatch"})",
            "application/json");
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      blobs_[req.matches[1].str()] = req.body;
      res.status = 201;
    });
    server_.Get(base + R"(/blobs/([0-9a-f]+))",
                [this](const httplib::Request& req, httplib::Response& res) {
                  std::lock_guard<std::mutex> lock(mu_);
                  auto it = blobs_.find(req.matches[1].str());
                  if (it == blobs_.end()) {
                    res.status = 404;
                    return;
                  }
                  res.set_content(it->second, "application/octet-stream");
                });
    server_.Post(base + R"(/tasks/(\d+)/epochs)",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   if (Unavailable(res)) return;
                   int epoch = Json::parse(req.body)["epoch"];
                   res.set_content(
                       Json{{"action", epoch < 1 ? "continue" : "stop"}}.dump(),
                       "application/json");
                 });
    server_.Post(base + R"(/tasks/(\d+)(:fail|:complete|/initial))",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   std::lock_guard<std::mutex> lock(mu_);
                   reports_.push_back(req.matches[1].str() +
                                      req.matches[2].str() + " " + req.body);
                   res.status = 204;
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~FakeServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }
  // The next `count` requests to tasks:next or epochs answer 503. The
  // answer is given by the route, after cpp-httplib has read the body: a
  // pre-routing answer would leave the body unread on a keep-alive
  // connection and garble the next request.
  void FailNext(int count) { unavailable_ = count; }
  bool Unavailable(httplib::Response& res) {
    if (unavailable_.fetch_sub(1) > 0) {
      res.status = 503;
      return true;
    }
    unavailable_ = 0;
    return false;
  }
  std::vector<std::string> reports() {
    std::lock_guard<std::mutex> lock(mu_);
    return reports_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> next_calls_{0};
  std::atomic<int> unavailable_{0};
  std::mutex mu_;
  std::map<std::string, std::string> blobs_;
  std::vector<std::string> reports_;
};

TEST(HttpCoordinatorClient, TakesTasksUntilTheRunIsOver) {
  FakeServer server;
  auto client = MakeHttpCoordinatorClient(server.url(), "secret");
  EXPECT_FALSE(client->NextTask(3).has_value());  // 204
  std::optional<Json> task = client->NextTask(3);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ((*task)["id"], 17);
  EXPECT_THROW(client->NextTask(3), RunOver);  // 410
}

TEST(HttpCoordinatorClient, UploadsOnlyMissingBlobsAndReadsThemBack) {
  FakeServer server;
  auto client = MakeHttpCoordinatorClient(server.url() + "/", "secret");
  const std::string bytes(100000, '\x7f');
  const std::string digest = Sha256Hex(bytes);
  EXPECT_EQ(client->MissingBlobs({digest}), std::vector<std::string>{digest});
  client->PutBlob(digest, bytes);
  EXPECT_TRUE(client->MissingBlobs({digest}).empty());
  EXPECT_EQ(client->GetBlob(digest), bytes);
  try {
    client->PutBlob(std::string(64, '0'), "not matching");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("digest mismatch"), std::string::npos);
  }
  EXPECT_THROW(client->GetBlob(std::string(64, '1')), Error);  // 404
}

TEST(HttpCoordinatorClient, ReportsEpochsAndOutcomes) {
  FakeServer server("/base");
  auto client = MakeHttpCoordinatorClient(server.url() + "/base", "secret");
  EXPECT_TRUE(client->ReportEpoch(17, {{"epoch", 0}}));
  EXPECT_FALSE(client->ReportEpoch(17, {{"epoch", 1}}));
  client->ReportInitial(17, {{"checkpoint", "c"}});
  client->Complete(17, "d");
  client->Fail(18, "diverged", "loss became nan");
  std::vector<std::string> reports = server.reports();
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[0], R"(17/initial {"checkpoint":"c"})");
  EXPECT_EQ(reports[1], R"(17:complete {"output":"d"})");
  EXPECT_EQ(reports[2],
            R"(18:fail {"reason":"loss became nan","status":"diverged"})");
}

TEST(HttpCoordinatorClient, RetriesUnavailableAndRefusesBadTokens) {
  FakeServer server;
  auto client = MakeHttpCoordinatorClient(server.url(), "secret");
  server.FailNext(2);  // two 503s, then the real answer
  EXPECT_TRUE(client->ReportEpoch(1, {{"epoch", 0}}));
  auto intruder = MakeHttpCoordinatorClient(server.url(), "wrong");
  try {
    intruder->NextTask(3);
    FAIL() << "no error";
  } catch (const CoordinatorUnreachable&) {
    FAIL() << "a 401 is not unreachability";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("401"), std::string::npos);
  }
}

// A loopback port that nothing listens on. The socket stays bound (never
// listening) for the life of the test process, so no server of a test that
// runs in parallel can take the port.
int ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), length), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length),
            0);
  return ntohs(address.sin_port);
}

TEST(HttpCoordinatorClient, GivesUpOnAnUnreachableCoordinator) {
  HttpClientOptions options;
  options.patience = std::chrono::milliseconds(400);
  options.retry_pause = std::chrono::milliseconds(50);
  auto client = MakeHttpCoordinatorClient(
      "http://127.0.0.1:" + std::to_string(ClosedPort()), "secret", options);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(client->NextTask(3), CoordinatorUnreachable);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, options.patience);
  EXPECT_LT(waited, std::chrono::seconds(5));
}

// The task's attempt rides along with every report about it; heartbeats go
// to :heartbeat; 409 ABORTED (the attempt is no longer this worker's) is
// TaskSuperseded, not a plain conflict; a heartbeat is tried once.
TEST(HttpCoordinatorClient, SendsTheAttemptHeartbeatsAndTakesAbortedAsSuperseded) {
  httplib::Server server;
  std::mutex mu;
  std::vector<std::string> seen;
  std::atomic<int> beats{0};
  const char* aborted =
      R"({"error_code": "ABORTED", "message": "task 17 attempt 2 was superseded by attempt 3", "details": []})";
  server.Post("/internal/v1/tasks:next", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"task": {"id": 17, "kind": "train", "attempt": 2}})", "application/json");
  });
  server.Post(R"(/internal/v1/tasks/(\d+)(/epochs|:complete|:heartbeat))",
              [&](const httplib::Request& req, httplib::Response& res) {
                {
                  std::lock_guard<std::mutex> lock(mu);
                  seen.push_back(req.matches[1].str() + req.matches[2].str() + " " + req.body);
                }
                const Json body = Json::parse(req.body);
                const bool refuse = (req.matches[2] == "/epochs" && body["epoch"] == 1) ||
                                    (req.matches[2] == ":heartbeat" && beats++ > 0);
                if (refuse) {
                  res.status = 409;
                  res.set_content(aborted, "application/json");
                } else if (req.matches[2] == ":heartbeat") {
                  res.set_content(R"({"lease_seconds": 1})", "application/json");
                } else if (req.matches[2] == "/epochs") {
                  res.set_content(R"({"action": "continue"})", "application/json");
                } else {
                  res.status = 409;  // a plain conflict
                  res.set_content(R"({"error_code": "RESOURCE_CONFLICT", "message": "not running"})",
                                  "application/json");
                }
              });
  const int port = server.bind_to_any_port("127.0.0.1");
  std::thread thread([&] { server.listen_after_bind(); });
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));

  auto client = MakeHttpCoordinatorClient("http://127.0.0.1:" + std::to_string(port), "secret");
  ASSERT_TRUE(client->NextTask(3).has_value());
  EXPECT_TRUE(client->ReportEpoch(17, {{"epoch", 0}}));
  EXPECT_THROW(client->ReportEpoch(17, {{"epoch", 1}}), TaskSuperseded);
  client->Heartbeat(17, 2);
  try {
    client->Heartbeat(17, 2);
    FAIL() << "no error";
  } catch (const TaskSuperseded& e) {
    EXPECT_EQ(e.code(), ErrorCode::kAborted);
    EXPECT_NE(std::string(e.what()).find("superseded by attempt 3"), std::string::npos) << e.what();
  }
  try {
    client->Complete(17, "d");
    FAIL() << "no error";
  } catch (const TaskSuperseded&) {
    FAIL() << "a plain 409 is not TaskSuperseded";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConflict);
  }
  server.stop();
  thread.join();
  {
    std::lock_guard<std::mutex> lock(mu);
    ASSERT_EQ(seen.size(), 5u);
    EXPECT_EQ(seen[0], R"(17/epochs {"attempt":2,"epoch":0})");
    EXPECT_EQ(seen[2], R"(17:heartbeat {"attempt":2})");
    EXPECT_EQ(seen[4], R"(17:complete {"attempt":2,"output":"d"})");
  }

  // With nothing listening, a heartbeat fails at once: the worker decides
  // how long to keep trying.
  HttpClientOptions options;
  options.patience = std::chrono::seconds(30);
  auto lost = MakeHttpCoordinatorClient("http://127.0.0.1:" + std::to_string(ClosedPort()), "secret", options);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(lost->Heartbeat(17, 2), CoordinatorUnreachable);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));  // not the 30 s patience
}

TEST(HttpCoordinatorClient, RejectsMalformedUrls) {
  EXPECT_THROW(MakeHttpCoordinatorClient("127.0.0.1:80", "t"), Error);
  EXPECT_THROW(MakeHttpCoordinatorClient("ftp://host", "t"), Error);
  EXPECT_THROW(MakeHttpCoordinatorClient("http://", "t"), Error);
}

}  // namespace
}  // namespace baton::stages
