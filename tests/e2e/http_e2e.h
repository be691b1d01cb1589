#pragma once

// What the HTTP end-to-end tests share: a tiny tuning pipeline, raw
// sockets (requests sent byte for byte, a reader that never reads), polling
// a `baton serve` (tests/e2e/serve_process.h) for a run's end, and reading
// a run's event stream.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "tests/e2e/serve_process.h"
#include "tests/e2e/tiny_runs.h"

namespace baton::testing {

// A prepare stage (`train_subset` Fashion-MNIST images) and a grid of two
// trials of a small MLP for `epochs` epochs each: with the defaults, a run of
// a few seconds.
inline Json TinyPipeline(const std::string& name, int seed, int epochs, int train_subset = 600) {
  Json doc = {{"schema_version", "1"}, {"name", name}, {"seed", seed}};
  doc["stages"]["prep"] = FashionMnistPrep(train_subset);
  doc["stages"]["tune"] = {
      {"type", "tune"}, {"depends_on", {"prep"}},
      {"model", {{"layers", Json::parse(R"([{"name": "flat", "type": "flatten"},
                                             {"name": "fc1", "type": "linear", "out_features": 16},
                                             {"name": "act", "type": "relu"},
                                             {"name": "fc2", "type": "linear", "out_features": 10}])")}}},
      {"search_space", {{"lr", {{"type", "categorical"}, {"values", {0.1, 0.05}}}}}},
      {"sampler", {{"type", "grid"}}},
      {"hyperparameters", {{"batch_size", 50}, {"optimizer", "sgd"}}},
      {"objective", {{"metric", "val_accuracy"}, {"mode", "max"}}},
      {"budget", {{"max_trials", 2}, {"max_parallel", 2}, {"max_epochs", epochs}}}};
  return doc;
}

inline Json Parse(const httplib::Result& res) {
  if (!res) return Json{{"transport_error", httplib::to_string(res.error())}};
  try {
    return Json::parse(res->body);
  } catch (const Json::exception&) {
    return Json{{"not_json", res->body.substr(0, 200)}};
  }
}

// A TCP connection to 127.0.0.1:port; -1 if it cannot be made. A positive
// `rcvbuf` shrinks the receive buffer before connecting (a slow reader).
inline int Connect(int port, int rcvbuf = 0) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  timeval timeout{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

inline bool SendAll(int fd, const std::string& bytes) {
  for (size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// An answer read off a raw socket: the status (0 if none came) and
// everything after the head.
struct RawAnswer {
  int status = 0;
  std::string body;
};

// Sends `target` in a GET request line exactly as given (no client library
// normalises, encodes or refuses it), with `headers` ("Name: value\r\n"
// lines) as given too, and reads the answer: to its Content-Length, or to
// the end of the connection.
inline RawAnswer RawGet(int port, const std::string& target, const std::string& token, const std::string& headers = "") {
  RawAnswer answer;
  const int fd = Connect(port);
  if (fd < 0) return answer;
  SendAll(fd, "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
                  "\r\nConnection: close\r\n" + headers + "\r\n");
  std::string all;
  char buf[16384];
  size_t head_end = std::string::npos, length = std::string::npos;
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) {
    all.append(buf, static_cast<size_t>(n));
    if (head_end == std::string::npos && (head_end = all.find("\r\n\r\n")) != std::string::npos) {
      std::string head = all.substr(0, head_end);
      std::transform(head.begin(), head.end(), head.begin(), ::tolower);
      const size_t at = head.find("\r\ncontent-length: ");
      if (at != std::string::npos) length = std::stoull(head.substr(at + 18));
    }
    // The server may keep a connection it could not parse open a while.
    if (length != std::string::npos && all.size() >= head_end + 4 + length) break;
  }
  close(fd);
  if (all.rfind("HTTP/1.1 ", 0) == 0 && all.size() >= 12) answer.status = std::atoi(all.substr(9, 3).c_str());
  answer.body = head_end == std::string::npos ? all : all.substr(head_end + 4);
  return answer;
}

inline bool Finished(const std::string& status) {
  return status == "succeeded" || status == "failed" || status == "cancelled" || status == "interrupted";
}

// Polls the run until it has finished (at most `limit`); its last status.
inline std::string WaitForRun(const Server& server, const std::string& id,
                       std::chrono::seconds limit = std::chrono::seconds(240)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  std::string status;
  while (std::chrono::steady_clock::now() < end) {
    status = Parse(server.Client().Get(("/api/v1/runs/" + id).c_str())).value("status", "");
    if (Finished(status)) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return "still " + status + " after " + std::to_string(limit.count()) + " s";
}

inline std::string Trigger(const Server& server, const Json& pipeline) {
  auto res = server.Client().Post("/api/v1/runs", Json{{"pipeline", pipeline}}.dump(), "application/json");
  if (!res || res->status != 201) {
    ADD_FAILURE() << "trigger failed: " << (res ? res->body : httplib::to_string(res.error()));
    return "";
  }
  return Json::parse(res->body)["run_id"];
}

// A server-sent event as received.
struct Sse {
  int64_t id = 0;
  std::string type;
  Json data;
};

// Reads the run's event stream to its end (the server closes it once the
// run has finished).
inline std::vector<Sse> ReadEvents(const Server& server, const std::string& run_id, int64_t last_id = 0,
                                   const std::function<void(const Sse&)>& on_event = {}) {
  httplib::Client c = server.Client();
  httplib::Headers headers;
  if (last_id > 0) headers.emplace("Last-Event-ID", std::to_string(last_id));
  std::string buffer;
  std::vector<Sse> events;
  auto res = c.Get(("/api/v1/runs/" + run_id + "/events").c_str(), headers, [&](const char* data, size_t n) {
    buffer.append(data, n);
    size_t end;
    while ((end = buffer.find("\n\n")) != std::string::npos) {
      const std::string block = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      Sse e;
      std::istringstream lines(block);
      std::string line;
      while (std::getline(lines, line)) {
        if (line.rfind("id: ", 0) == 0) e.id = std::stoll(line.substr(4));
        if (line.rfind("event: ", 0) == 0) e.type = line.substr(7);
        if (line.rfind("data: ", 0) == 0) e.data = Json::parse(line.substr(6));
      }
      if (e.type.empty()) continue;
      if (on_event) on_event(e);
      events.push_back(e);
    }
    return true;
  });
  EXPECT_TRUE(res) << "event stream failed";
  if (res) {
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  }
  return events;
}

// Waits until the run has recorded an epoch (its workers are busy).
inline void WaitForFirstEpoch(const Server& server, const std::string& id) {
  for (int i = 0; i < 1200; ++i) {
    Json trials = Parse(server.Client().Get(("/api/v1/runs/" + id + "/stages/tune/trials").c_str()));
    if (trials.contains("trials") && !trials["trials"].empty() && !trials["trials"][0]["epochs"].empty()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ADD_FAILURE() << "run " << id << " recorded no epoch within 120 s";
}

// Runs a shell command; its stdout and stderr, and the exit code in *rc.
inline std::string Shell(const std::string& cmd, int* rc) {
  CmdResult r = Capture(cmd + " 2>&1");
  *rc = r.exit_code;
  return r.out;
}

// Bytes the server at `port` has queued but not yet got acknowledged on its
// end of our connection `fd` (/proc/net/tcp's tx_queue).
inline uint64_t UnsentBytes(int port, int fd) {
  sockaddr_in local{};
  socklen_t size = sizeof(local);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &size) != 0) return 0;
  const int client_port = ntohs(local.sin_port);
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, here, there, state, queues;
    fields >> slot >> here >> there >> state >> queues;
    const auto port_of = [](const std::string& address) {
      return std::stoi(address.substr(address.find(':') + 1), nullptr, 16);
    };
    if (port_of(here) == port && port_of(there) == client_port) {
      return std::stoull(queues.substr(0, queues.find(':')), nullptr, 16);
    }
  }
  return 0;
}

}  // namespace baton::testing
