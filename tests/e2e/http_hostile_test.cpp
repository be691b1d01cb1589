// Hostile HTTP input against a real `baton serve` (issue 7, item 6):
// path-traversal payloads in the style of MLflow's CVEs on every route with
// a path parameter and on the web UI's files, sent byte for byte over a raw
// socket; hostile query values and headers; every mutation of
// api/openapi.json without the token; the addresses the server listens on;
// event-stream clients that never read. serve_test.cpp holds the API's
// ordinary behaviour (and its first traversal, 401 and data-root cases);
// http_concurrency_test.cpp several runs at once.
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/digest.h"
#include "common/json_util.h"
#include "store/blob_store.h"
#include "tests/e2e/http_e2e.h"
#include "tests/e2e/serve_process.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testing::Connect;
using testing::Finished;
using testing::Parse;
using testing::RawAnswer;
using testing::RawGet;
using testing::SendAll;
using testing::Server;
using testing::TinyPipeline;
using testing::Trigger;
using testing::UnsentBytes;
using testing::WaitForFirstEpoch;
using testing::WaitForRun;

constexpr const char* kIndexHtml = "<!doctype html><title>baton test ui</title>";

// One server for the suite, serving its own web folder; a canary file and
// the store's api-token lie outside that folder, next to it. A blob nothing
// refers to is stored before the server starts (gc --apply would free it).
// The tests that need real ids share one finished run, made by the first
// that asks (ctest runs each test in a process of its own).
class HostileHttpTest : public ::testing::Test {
 protected:
  struct FirstRun {
    std::string run_id, pipeline_id;
    std::string checkpoint;  // of its tune stage
    int64_t trial_id = 0;
    double seconds = 0;  // trigger to finish, alone on the server
  };
  static const FirstRun& First() {
    if (first_ != nullptr) return *first_;
    first_ = new FirstRun;
    const auto t0 = Clock::now();
    first_->run_id = Trigger(*server_, TinyPipeline("hostile", 3, 2));
    EXPECT_EQ(WaitForRun(*server_, first_->run_id), "succeeded");
    first_->seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    Json run = Parse(server_->Client().Get(("/api/v1/runs/" + first_->run_id).c_str()));
    first_->pipeline_id = run.value("pipeline_id", "");
    Json trials = Parse(server_->Client().Get(("/api/v1/runs/" + first_->run_id + "/stages/tune/trials").c_str()));
    if (trials.contains("trials") && !trials["trials"].empty() && !trials["trials"][0]["epochs"].empty()) {
      first_->trial_id = trials["trials"][0]["trial_id"];
      first_->checkpoint = trials["trials"][0]["epochs"].back()["checkpoint"];
    }
    EXPECT_FALSE(first_->checkpoint.empty()) << trials.dump();
    return *first_;
  }

  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("baton-e2e-hostile-" + std::to_string(getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_ / "web" / "assets");
    canary_ = new std::string("baton-canary-" + std::to_string(getpid()) + "-must-never-be-served");
    std::ofstream(*dir_ / "canary.txt") << *canary_;
    std::ofstream(*dir_ / "web" / "index.html") << kIndexHtml;
    std::ofstream(*dir_ / "web" / "assets" / "app.js") << "console.log('baton test ui');";
    orphan_ = new std::string(Sha256Hex("an upload nothing refers to"));
    store::BlobStore::Open(*dir_ / "store" / "blobs")->Put("an upload nothing refers to");
    server_ = new Server(*dir_ / "store", "--max-runs 2 --web-dir " + (*dir_ / "web").string());
  }
  static void TearDownTestSuite() {
    delete server_;
    fs::remove_all(*dir_);
    delete dir_;
    delete canary_;
    delete orphan_;
    delete first_;
    first_ = nullptr;
  }

  static fs::path* dir_;
  static Server* server_;
  static std::string* canary_;
  static std::string* orphan_;       // digest of the unreferenced blob
  static FirstRun* first_;
};
fs::path* HostileHttpTest::dir_ = nullptr;
Server* HostileHttpTest::server_ = nullptr;
std::string* HostileHttpTest::canary_ = nullptr;
std::string* HostileHttpTest::orphan_ = nullptr;
HostileHttpTest::FirstRun* HostileHttpTest::first_ = nullptr;

TEST_F(HostileHttpTest, WebFilesAreServedFromTheWebFolder) {
  // The control for the traversal test below: the same raw requests do reach files.
  RawAnswer index = RawGet(server_->port, "/index.html", server_->token);
  EXPECT_EQ(index.status, 200);
  EXPECT_NE(index.body.find("baton test ui"), std::string::npos) << index.body;
  RawAnswer nested = RawGet(server_->port, "/assets/app.js", server_->token);
  EXPECT_EQ(nested.status, 200);
  EXPECT_NE(nested.body.find("baton test ui"), std::string::npos) << nested.body;
  RawAnswer blob = RawGet(server_->port, "/api/v1/blobs/" + *orphan_, server_->token);
  EXPECT_EQ(blob.status, 200);
  EXPECT_EQ(blob.body, "an upload nothing refers to");
}

// MLflow's path-traversal CVEs in one list (encoded, double-encoded,
// backslash, absolute, '#' and '?' tricks, NUL, overlong UTF-8, mixed), in
// the place of every path parameter and of a web file. Each one gets a 4xx;
// none a 200 or a 5xx, and no answer holds the canary, the token or
// /etc/passwd.
TEST_F(HostileHttpTest, PathTraversalPayloadsOnEveryRouteGet4xxAndNeverAFile) {
  const std::string canary_abs = (*dir_ / "canary.txt").string();
  std::string canary_abs_encoded;
  for (char c : canary_abs) canary_abs_encoded += c == '/' ? std::string("%2f") : std::string(1, c);
  const std::vector<std::string> payloads = {
      // plain and percent-encoded
      "../canary.txt", "../../canary.txt", "../store/api-token", "..%2fcanary.txt", "..%2F..%2Fcanary.txt",
      "%2e%2e%2fcanary.txt", "%2e%2e/%2e%2e/canary.txt", ".%2e/canary.txt", "%2e./canary.txt",
      "..%2fstore%2fapi-token", "%2e%2e%2fstore%2flineage.db",
      "..%2f..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
      // double-encoded
      "%252e%252e%252fcanary.txt", "..%252fcanary.txt", "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
      // backslashes
      "..\\canary.txt", "..\\..\\canary.txt", "..%5ccanary.txt", "..%5c..%5cstore%5capi-token", "..%255ccanary.txt",
      // absolute
      canary_abs, canary_abs_encoded, "/etc/passwd", "%2fetc%2fpasswd", "%2Fetc%2Fpasswd", "file:" + canary_abs,
      "file:%2f%2f" + canary_abs_encoded,
      // '#' and '?' tricks
      "x#/../../canary.txt", "x%23/../../canary.txt", "..%2fcanary.txt%23", "..%2fcanary.txt#.json",
      "x?/../../canary.txt", "..%3f/../canary.txt", "..%2fcanary.txt%3fx=1", "index.html?/../../canary.txt",
      "index.html#/../../canary.txt",
      // NUL, encoded and raw
      "..%2fcanary.txt%00", "..%2fcanary.txt%00.json", "%00../canary.txt", "index.html%00/../../canary.txt",
      std::string("..\0/canary.txt", 14), std::string("index.html\0/../../canary.txt", 28),
      // overlong UTF-8 and other encodings of '.' and '/'
      "%c0%ae%c0%ae/canary.txt", "%c0%ae%c0%ae%c0%afcanary.txt", "%e0%80%ae%e0%80%ae%e0%80%afcanary.txt",
      "%c0%2e%c0%2e/canary.txt", "..%c0%afcanary.txt", "..%c1%9ccanary.txt", "%u002e%u002e%u2215canary.txt",
      "%ef%bc%8e%ef%bc%8e%ef%bc%8fcanary.txt",  // full-width
      // mixed
      "....//canary.txt", "..././canary.txt", "..;/canary.txt", ".../canary.txt", "..%2f.%2f..%5c%2e%2e/canary.txt",
      "assets/../../canary.txt", "assets%2f..%2f..%2fcanary.txt", "assets/..%252f..%252fcanary.txt",
      "api-token", "lineage.db", "serve.log", "blobs/CURRENT",
  };
  const std::string blob = *orphan_, run = First().run_id, ckpt = First().checkpoint;
  const std::vector<std::string> routes = {
      "/api/v1/blobs/{P}",
      "/api/v1/blobs/" + blob + "/{P}",
      "/api/v1/checkpoints/{P}",
      "/api/v1/checkpoints/{P}/safetensors",
      "/api/v1/checkpoints/" + ckpt + "/{P}",
      "/api/v1/pipelines/{P}",
      "/api/v1/runs/{P}",
      "/api/v1/runs/{P}/events",
      "/api/v1/runs/" + run + "/stages/{P}",
      "/api/v1/runs/" + run + "/stages/{P}/trials",
      "/api/v1/runs/" + run + "/stages/tune/{P}",
      "/api/v1/trials/{P}/metrics",
      "/api/v1/lineage?node={P}",
      "/api/v1/lineage?node=checkpoint:{P}&direction=upstream",
      "/api/v1/{P}",
      "/{P}",
      "/assets/{P}",
      "/index.html/{P}",
  };
  // The token (sent with every request, so that 401 hides nothing) must
  // not come back either.
  const std::vector<std::string> secrets = {*canary_, server_->token, "root:x:0:0", "SQLite format 3"};
  std::vector<std::string> targets;
  for (const std::string& route : routes) {
    for (const std::string& payload : payloads) {
      // An absolute payload in the first position starts the target with "//".
      targets.push_back(route);
      targets.back().replace(targets.back().find("{P}"), 3, payload);
    }
  }
  // Eight clients at once: over a thousand requests, each mostly waiting.
  std::vector<RawAnswer> answers(targets.size());
  std::atomic<size_t> next{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      for (size_t k; (k = next++) < targets.size();) answers[k] = RawGet(server_->port, targets[k], server_->token);
    });
  }
  for (auto& t : clients) t.join();
  for (size_t k = 0; k < targets.size(); ++k) {
    const RawAnswer& answer = answers[k];
    std::string shown;  // the target, NUL made visible
    for (char c : targets[k]) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
    // A '?' or '#' may cut a web file's name short of the payload: that
    // file, and only that, may come back.
    if (answer.status == 200 && answer.body == kIndexHtml) continue;
    EXPECT_GE(answer.status, 400) << shown << " -> " << answer.status << ": " << answer.body.substr(0, 200);
    EXPECT_LT(answer.status, 500) << shown << ": " << answer.body.substr(0, 200);
    for (const std::string& secret : secrets) {
      EXPECT_EQ(answer.body.find(secret), std::string::npos) << shown << " leaked \"" << secret << "\"";
    }
  }
  EXPECT_GT(targets.size(), 1000u);
  // Still serving.
  EXPECT_EQ(Parse(server_->Client().Get(("/api/v1/runs/" + First().run_id).c_str()))["status"], "succeeded");
}

// Request lines no client library would send: a raw NUL, a raw '#', a
// control character, an absolute-form target, a bare "..", a path without
// a leading slash. 4xx, never a file, and the server keeps serving.
TEST_F(HostileHttpTest, MalformedRequestLinesGet4xx) {
  const std::vector<std::string> targets = {
      std::string("/\0../canary.txt", 15), std::string("/api/v1/blobs/\0", 15), "/api/v1/runs/#/../../canary.txt",
      "/api/v1/blobs/\x01..", "..", "../canary.txt", "canary.txt", "http://127.0.0.1/../canary.txt",
      "//" + (*dir_ / "canary.txt").string(), "/%", "/%2", "/%zz", "/api/v1/blobs/%",
  };
  for (const std::string& target : targets) {
    RawAnswer answer = RawGet(server_->port, target, server_->token);
    std::string shown;
    for (char c : target) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
    EXPECT_GE(answer.status, 400) << shown << " -> " << answer.status;
    EXPECT_LT(answer.status, 500) << shown;
    EXPECT_EQ(answer.body.find(*canary_), std::string::npos) << shown;
  }
  EXPECT_TRUE(Parse(server_->Client().Get("/api/v1/store/stats")).contains("blobs"));
}

// Query values and headers that are not what they claim: bytes that are
// not UTF-8 (which an error message quoting them once turned into an
// exception that ended the server), ids that are not numbers, numbers past
// int64. Each is a 4xx with the JSON envelope, and the server lives on.
TEST_F(HostileHttpTest, HostileQueryValuesAndHeadersGet4xxAndTheServerLivesOn) {
  const std::string run = "/api/v1/runs/" + First().run_id;
  const std::vector<std::pair<std::string, std::string>> requests = {
      {"/api/v1/lineage?node=%c0%ae%c0%ae", ""},
      {"/api/v1/lineage?node=%ff%fe%00", ""},
      {"/api/v1/lineage?node=" + First().checkpoint + "&direction=%c0%ae", ""},
      {"/api/v1/lineage?node=trial:abc", ""},
      {"/api/v1/lineage?node=trial:..%2f..%2fetc%2fpasswd", ""},
      {"/api/v1/lineage?node=stage:99999999999999999999999", ""},
      {"/api/v1/lineage?node=checkpoint:..%2fapi-token", ""},
      {"/api/v1/lineage?node=run:..%2f..", ""},
      {"/api/v1/lineage?node=" + First().checkpoint + "&depth=99999999999999999999", ""},
      {"/api/v1/runs?page_token=o99999999999", ""},
      {"/api/v1/runs?page_token=o%c0%ae", ""},
      {"/api/v1/runs?max_results=%ff", ""},
      {"/api/v1/runs?max_results=-1", ""},
      {"/api/v1/pipelines?page_token=o-1", ""},
      {run + "/stages/tune/trials?order_by=%c0%ae", ""},  // no such metric: sorted as is
      {"/api/v1/trials/999999999999999999/metrics", ""},
      {run + "/events", "Last-Event-ID: \xc0\xae\r\n"},
      {run + "/events", "Last-Event-ID: 99999999999999999999\r\n"},
      {run + "/events", "Last-Event-ID: -1\r\n"},
  };
  for (const auto& [target, headers] : requests) {
    RawAnswer answer = RawGet(server_->port, target, server_->token, headers);
    if (target.find("order_by") != std::string::npos) {
      EXPECT_EQ(answer.status, 200) << target << ": " << answer.body.substr(0, 200);
      continue;
    }
    EXPECT_GE(answer.status, 400) << target << " " << headers << " -> " << answer.status << ": "
                                  << answer.body.substr(0, 200);
    EXPECT_LT(answer.status, 500) << target << " " << headers << ": " << answer.body.substr(0, 200);
    const Json body = Json::parse(answer.body, nullptr, /*allow_exceptions=*/false);
    EXPECT_TRUE(body.is_object() && body.contains("error_code")) << target << ": " << answer.body.substr(0, 200);
  }
  // An Idempotency-Key that is not UTF-8, used again for another pipeline:
  // 409, whose message quotes the key.
  httplib::Client c = server_->Client();
  const httplib::Headers key = {{"Idempotency-Key", "\xc0\xae\xff"}};
  auto first = c.Post("/api/v1/runs", key, Json{{"pipeline", TinyPipeline("hostile", 3, 2)}}.dump(), "application/json");
  ASSERT_TRUE(first);
  EXPECT_TRUE(first->status == 201 || first->status == 200) << first->body;  // cached: done at once
  auto other = c.Post("/api/v1/runs", key, Json{{"pipeline", TinyPipeline("hostile", 9, 1)}}.dump(), "application/json");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 409) << other->body;
  EXPECT_EQ(WaitForRun(*server_, Parse(first)["run_id"]), "succeeded");
  EXPECT_EQ(Parse(server_->Client().Get(run.c_str()))["status"], "succeeded");
}

// Every POST/PUT/PATCH/DELETE of api/openapi.json, with its path
// parameters filled with real ids, without the token or with a wrong one:
// 401, and nothing changes (no run, no pipeline, a running run goes on, an
// unreferenced blob stays). `running` is a run of `server` executing now.
void ExpectEveryMutationRefused(const Server& server, const std::string& running, const std::string& pipeline_id,
                                const std::string& digest, int64_t trial_id) {
  const Json doc = Parse(server.Client().Get("/api/v1/openapi.json"));
  ASSERT_TRUE(doc.contains("paths")) << doc.dump().substr(0, 200);
  auto count = [&](const std::string& what) {
    return Parse(server.Client().Get(("/api/v1/" + what + "?max_results=1000").c_str()))[what].size();
  };
  const size_t runs_before = count("runs"), pipelines_before = count("pipelines");
  const std::map<std::string, std::string> values = {
      {"{run_id}", running}, {"{pipeline_id}", pipeline_id}, {"{digest}", digest}, {"{sha256}", digest},
      {"{stage}", "tune"},   {"{trial_id}", std::to_string(trial_id)}};
  // (header name, header value, query suffix): credentials that are absent,
  // wrong, nearly right or in the wrong place.
  const std::string token = server.token;
  const std::vector<std::tuple<std::string, std::string, std::string>> credentials = {
      {"", "", ""},
      {"Authorization", "Bearer " + std::string(token.size(), '0'), ""},
      {"Authorization", "Bearer " + token.substr(0, token.size() - 1), ""},
      {"Authorization", "Bearer " + token + "0", ""},
      {"Authorization", "Bearer ", ""},
      {"Authorization", token, ""},
      {"Authorization", "Basic " + token, ""},
      {"X-Api-Token", token, ""},
      {"", "", "?token=" + token + "&access_token=" + token},
  };
  std::set<std::string> tried;
  for (const auto& [path, ops] : doc["paths"].items()) {
    for (const auto& [method, op] : ops.items()) {
      if (method != "post" && method != "put" && method != "patch" && method != "delete") continue;
      std::string url = "/api/v1" + path;
      for (const auto& [name, value] : values) {
        for (size_t at; (at = url.find(name)) != std::string::npos;) url.replace(at, name.size(), value);
      }
      std::string body = "{}";
      if (path == "/runs") body = Json{{"pipeline", TinyPipeline("unauthorised", 99, 1)}}.dump();
      if (path == "/pipelines") body = TinyPipeline("unauthorised", 99, 1).dump();
      if (path == "/store:gc") body = R"({"apply": true})";
      tried.insert(method + " " + path);
      for (const auto& [header, value, query] : credentials) {
        httplib::Client c("127.0.0.1", server.port);
        httplib::Headers headers;
        if (!header.empty()) headers.emplace(header, value);
        const std::string target = url + query;
        httplib::Result res = method == "post"    ? c.Post(target.c_str(), headers, body, "application/json")
                              : method == "put"   ? c.Put(target.c_str(), headers, body, "application/json")
                              : method == "patch" ? c.Patch(target.c_str(), headers, body, "application/json")
                                                  : c.Delete(target.c_str(), headers, body, "application/json");
        ASSERT_TRUE(res) << method << " " << target;
        EXPECT_EQ(res->status, 401) << method << " " << target << " with " << header << ": " << res->body;
        EXPECT_EQ(Parse(res).value("error_code", ""), "UNAUTHENTICATED") << method << " " << target;
      }
    }
  }
  // The iteration saw the mutations this test is about.
  for (const char* op : {"post /runs", "post /pipelines", "post /runs/{run_id}:cancel", "post /store:gc"}) {
    EXPECT_TRUE(tried.count(op)) << op << " is not in openapi.json";
  }
  EXPECT_EQ(count("runs"), runs_before);
  EXPECT_EQ(count("pipelines"), pipelines_before);
  EXPECT_EQ(Parse(server.Client().Get(("/api/v1/runs/" + running).c_str()))["status"], "running");
  // With the token the same cancel is taken: the run was still running.
  auto cancel = server.Client().Post(("/api/v1/runs/" + running + ":cancel").c_str(), "", "application/json");
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->status, 200) << cancel->body;
  EXPECT_EQ(WaitForRun(server, running), "cancelled");
  // No run is active now, so a gc --apply with the token would free the
  // unreferenced blob (the dry run names it); without one, it stays.
  for (const auto& [header, value, query] : credentials) {
    httplib::Client c("127.0.0.1", server.port);
    httplib::Headers headers;
    if (!header.empty()) headers.emplace(header, value);
    auto gc = c.Post(("/api/v1/store:gc" + query).c_str(), headers, R"({"apply": true})", "application/json");
    ASSERT_TRUE(gc);
    EXPECT_EQ(gc->status, 401) << header << ": " << gc->body;
  }
  const Json dry = Parse(server.Client().Post("/api/v1/store:gc", "", "application/json"));
  EXPECT_NE(dry.dump().find(digest), std::string::npos) << "the dry run does not name the unreferenced blob: "
                                                        << dry.dump();
  auto blob = server.Client().Get(("/api/v1/blobs/" + digest).c_str());
  ASSERT_TRUE(blob);
  EXPECT_EQ(blob->status, 200) << "the unreferenced blob was freed";
}

TEST_F(HostileHttpTest, EveryMutationWithoutTheTokenGets401AndChangesNothing) {
  const FirstRun& first = First();
  const std::string slow = Trigger(*server_, TinyPipeline("hostile-slow", 4, 50));
  WaitForFirstEpoch(*server_, slow);
  ExpectEveryMutationRefused(*server_, slow, first.pipeline_id, *orphan_, first.trial_id);
}

TEST(HostileHttpPublicRead, ReadsAreOpenButEveryMutationStillGets401) {
  const fs::path dir = fs::temp_directory_path() / ("baton-e2e-hostile-public-" + std::to_string(getpid()));
  fs::remove_all(dir);
  const std::string orphan = Sha256Hex("another upload nothing refers to");
  store::BlobStore::Open(dir / "store" / "blobs")->Put("another upload nothing refers to");
  {
    Server server(dir / "store", "--public-read --max-runs 2");
    const std::string slow = Trigger(server, TinyPipeline("public-slow", 5, 50));
    WaitForFirstEpoch(server, slow);
    httplib::Client anonymous("127.0.0.1", server.port);
    auto read = anonymous.Get(("/api/v1/runs/" + slow).c_str());
    ASSERT_TRUE(read);
    EXPECT_EQ(read->status, 200) << read->body;
    const Json run = Parse(read);
    const Json trials = Parse(anonymous.Get(("/api/v1/runs/" + slow + "/stages/tune/trials").c_str()));
    ASSERT_FALSE(trials["trials"].empty()) << trials.dump();
    ExpectEveryMutationRefused(server, slow, run["pipeline_id"], orphan, trials["trials"][0]["trial_id"]);
  }
  fs::remove_all(dir);
}

// The socket inodes a process holds open.
std::set<std::string> SocketInodes(pid_t pid) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    const std::string target = fs::read_symlink(fd.path(), ec).string();
    if (target.rfind("socket:[", 0) == 0) out.insert(target.substr(8, target.size() - 9));
  }
  return out;
}

// Listening TCP sockets in /proc/net/tcp{,6} among `inodes`: (hex local
// address, port).
std::vector<std::pair<std::string, int>> Listening(const std::set<std::string>& inodes) {
  std::vector<std::pair<std::string, int>> out;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
      if (state != "0A" || !inodes.count(inode)) continue;  // 0A: LISTEN
      const size_t colon = local.find(':');
      out.emplace_back(local.substr(0, colon), std::stoi(local.substr(colon + 1), nullptr, 16));
    }
  }
  return out;
}

// `baton serve` without --host listens on 127.0.0.1 only: its API and the
// coordinator endpoints of the runs it executes. Another address of this
// machine, if it has one, is refused.
TEST_F(HostileHttpTest, ServerListensOnLoopbackOnly) {
  const std::string slow = Trigger(*server_, TinyPipeline("hostile-listen", 6, 50));
  WaitForFirstEpoch(*server_, slow);  // the run's own endpoint is listening too
  const auto sockets = Listening(SocketInodes(server_->pid()));
  ASSERT_GE(sockets.size(), 2u) << "the API and the run's coordinator endpoint";
  bool api_seen = false;
  for (const auto& [address, port] : sockets) {
    EXPECT_EQ(address, "0100007F") << "port " << port << " listens on a non-loopback address (hex " << address << ")";
    api_seen = api_seen || port == server_->port;
  }
  EXPECT_TRUE(api_seen);
  ifaddrs* addrs = nullptr;
  ASSERT_EQ(getifaddrs(&addrs), 0);
  int other = 0;
  for (ifaddrs* a = addrs; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || (a->ifa_flags & IFF_LOOPBACK)) continue;
    sockaddr_in addr = *reinterpret_cast<sockaddr_in*>(a->ifa_addr);
    addr.sin_port = htons(static_cast<uint16_t>(server_->port));
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    char text[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &addr.sin_addr, text, sizeof(text));
    EXPECT_NE(rc, 0) << "the API answers on " << text;
    close(fd);
    ++other;
  }
  freeifaddrs(addrs);
  RecordProperty("non_loopback_addresses_tried", other);
  auto cancel = server_->Client().Post(("/api/v1/runs/" + slow + ":cancel").c_str(), "", "application/json");
  ASSERT_TRUE(cancel);
  EXPECT_EQ(WaitForRun(*server_, slow), "cancelled");
}

// Event-stream clients that never read (receive buffers of a few bytes)
// hold a request thread each, but the run they watch finishes in about the
// time it took alone, and the rest of the API keeps answering meanwhile.
TEST_F(HostileHttpTest, EventStreamClientsThatNeverReadDoNotStallTheRun) {
  const FirstRun& first = First();
  const std::string id = Trigger(*server_, TinyPipeline("hostile", 8, 2));  // the first run's shape, another seed
  ASSERT_FALSE(id.empty());
  const auto t0 = Clock::now();
  std::vector<int> stuck;
  // Most of the stream slots (8 of the 16 request threads): on this run, and
  // on the finished first run, whose every event is sent at once.
  for (int i = 0; i < 6; ++i) {
    const int fd = Connect(server_->port, /*rcvbuf=*/1);
    ASSERT_GE(fd, 0);
    const std::string& target = i % 2 == 0 ? id : first.run_id;
    ASSERT_TRUE(SendAll(fd, "GET /api/v1/runs/" + target + "/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                                server_->token + "\r\n\r\n"));
    stuck.push_back(fd);  // never read
  }
  double slowest_answer = 0;
  std::string status;
  while (Clock::now() - t0 < std::chrono::seconds(240)) {
    const auto asked = Clock::now();
    Json run = Parse(server_->Client().Get(("/api/v1/runs/" + id).c_str()));
    Json stats = Parse(server_->Client().Get("/api/v1/store/stats"));
    slowest_answer = std::max(slowest_answer, std::chrono::duration<double>(Clock::now() - asked).count());
    EXPECT_TRUE(stats.contains("blobs")) << stats.dump();
    status = run.value("status", "");
    if (Finished(status)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_EQ(status, "succeeded");
  // Generous against a shared machine's noise, and far below the 60 s a
  // write to a stuck client may block for.
  EXPECT_LT(seconds, 2 * first.seconds + 20) << "alone it took " << first.seconds << " s";
  EXPECT_LT(slowest_answer, 5.0);
  Json trials = Parse(server_->Client().Get(("/api/v1/runs/" + id + "/stages/tune/trials").c_str()));
  ASSERT_EQ(trials["trials"].size(), 2u) << trials.dump();
  for (const auto& t : trials["trials"]) EXPECT_EQ(t["epochs"].size(), 2u) << t.dump();
  // The clients really are stuck: the server holds bytes it could not send them.
  uint64_t unsent = 0;
  for (int fd : stuck) unsent += UnsentBytes(server_->port, fd);
  EXPECT_GT(unsent, 0u);
  RecordProperty("unsent_event_bytes", static_cast<int>(unsent));
  for (int fd : stuck) close(fd);
  // Their threads come back: a fresh stream (of all of this run's events) is served.
  const auto t1 = Clock::now();
  for (;;) {
    auto res = server_->Client().Get(("/api/v1/runs/" + id + "/events").c_str());
    ASSERT_TRUE(res);
    if (res->status == 200) {
      EXPECT_NE(res->body.find("event: run_finished"), std::string::npos) << res->body.substr(0, 300);
      break;
    }
    ASSERT_EQ(res->status, 503) << res->body;
    ASSERT_LT(Clock::now() - t1, std::chrono::seconds(30)) << "closed streams still hold their slots";
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace
}  // namespace baton
