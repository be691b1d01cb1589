// `baton serve` end to end, through one running server (ServeTest in
// tests/e2e/serve_fixture.h): the real binary on a free loopback port, real
// worker processes for the runs it is asked for, a real store, and a real
// HTTP client (cpp-httplib). Reads of runs, trials, checkpoints, blobs and
// lineage; triggers, idempotency, cancelling and the event stream; tokens,
// traversal, data roots and hostile bodies; the CLI through the server.
// Restarts, resume, gc and --public-read: serve_lifecycle_test.cpp.
#include <sys/stat.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/digest.h"
#include "common/json_util.h"
#include "tests/e2e/http_e2e.h"
#include "tests/e2e/serve_fixture.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

using testing::Parse;
using testing::Pipeline;
using testing::ReadEvents;
using testing::ServeTest;
using testing::Sse;

TEST_F(ServeTest, TriggeredRunStreamsItsEventsInOrderAndSucceeds) {
  ASSERT_FALSE(events_->empty());
  EXPECT_EQ(events_->front().type, "run_started");
  EXPECT_EQ(events_->back().type, "run_finished");
  EXPECT_EQ(events_->back().data["data"]["status"], "succeeded") << events_->back().data.dump();
  int epochs = 0;
  for (size_t i = 0; i < events_->size(); ++i) {
    EXPECT_EQ((*events_)[i].id, static_cast<int64_t>(i) + 1);  // every event, once, in order
    if ((*events_)[i].type == "epoch") ++epochs;
  }
  EXPECT_EQ(epochs, 4);  // 2 trials x 2 epochs
  Json run = Get("/api/v1/runs/" + *run_id_);
  EXPECT_EQ(run["status"], "succeeded");
  ASSERT_EQ(run["stages"].size(), 2u);
  for (const auto& s : run["stages"]) EXPECT_EQ(s["status"], "succeeded") << s.dump();
}

TEST_F(ServeTest, LastEventIdResumesTheStreamAfterThatEvent) {
  const int64_t cut = 3;
  std::vector<Sse> rest = ReadEvents(*server_, *run_id_, cut);
  ASSERT_EQ(rest.size(), events_->size() - cut);
  for (size_t i = 0; i < rest.size(); ++i) {
    EXPECT_EQ(rest[i].id, (*events_)[cut + i].id);
    EXPECT_EQ(rest[i].type, (*events_)[cut + i].type);
  }
}

TEST_F(ServeTest, SameIdempotencyKeyGivesTheSameRunAndAnotherPipelineConflicts) {
  httplib::Client c = server_->Client();
  httplib::Headers key = {{"Idempotency-Key", "first-run"}};
  auto again = c.Post("/api/v1/runs", key, Json{{"pipeline", Pipeline("serve-e2e", 2, 600)}}.dump(), "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(Json::parse(again->body)["run_id"], *run_id_);
  auto other = c.Post("/api/v1/runs", key, Json{{"pipeline", Pipeline("other", 1, 600)}}.dump(), "application/json");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 409) << other->body;
  EXPECT_EQ(Json::parse(other->body)["error_code"], "RESOURCE_CONFLICT");
}

TEST_F(ServeTest, StoredPipelineRunsAgainAsCacheHitsAndRunsPage) {
  httplib::Client c = server_->Client();
  auto stored = c.Post("/api/v1/pipelines", Pipeline("serve-e2e", 2, 600).dump(), "application/json");
  ASSERT_TRUE(stored);
  ASSERT_EQ(stored->status, 201) << stored->body;
  const std::string pipeline_id = Json::parse(stored->body)["pipeline_id"];
  EXPECT_EQ(Get("/api/v1/pipelines/" + pipeline_id)["pipeline"]["name"], "serve-e2e");
  bool listed = false;
  const Json pipelines = Get("/api/v1/pipelines?max_results=1000");
  for (const auto& p : pipelines["pipelines"]) listed = listed || p["pipeline_id"] == pipeline_id;
  EXPECT_TRUE(listed);
  auto res = c.Post("/api/v1/runs", Json{{"pipeline_id", pipeline_id}}.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 201) << res->body;
  const std::string second = Json::parse(res->body)["run_id"];
  EXPECT_NE(second, *run_id_);
  std::vector<Sse> events = ReadEvents(*server_, second);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().data["data"]["status"], "succeeded");
  const Json run = Get("/api/v1/runs/" + second);
  ASSERT_EQ(run["stages"].size(), 2u);
  for (const auto& s : run["stages"]) EXPECT_EQ(s["status"], "cached") << s.dump();

  // Two runs of this pipeline, one per page, newest first.
  const std::string base = "/api/v1/runs?pipeline_id=" + pipeline_id + "&max_results=1";
  Json page1 = Get(base);
  ASSERT_EQ(page1["runs"].size(), 1u) << page1.dump();
  EXPECT_EQ(page1["runs"][0]["run_id"], second);
  ASSERT_TRUE(page1.contains("next_page_token"));
  Json page2 = Get(base + "&page_token=" + page1["next_page_token"].get<std::string>());
  ASSERT_EQ(page2["runs"].size(), 1u);
  EXPECT_EQ(page2["runs"][0]["run_id"], *run_id_);
  EXPECT_FALSE(page2.contains("next_page_token"));
  EXPECT_EQ(Get("/api/v1/runs?status=succeeded&max_results=1000")["runs"].size(), 2u);
  EXPECT_EQ(Parse(c.Get("/api/v1/runs?max_results=0"))["error_code"], "INVALID_PARAMETER_VALUE");
}

TEST_F(ServeTest, InvalidPipelineGets400WithJsonPointers) {
  Json doc = Pipeline("bad", 1, 600);
  doc["stages"]["tune"]["budget"]["max_trials"] = -1;
  doc["stages"]["tune"]["colour"] = "red";  // unknown keys are refused
  auto res = server_->Client().Post("/api/v1/pipelines", doc.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  Json body = Json::parse(res->body);
  EXPECT_EQ(body["error_code"], "INVALID_PARAMETER_VALUE");
  std::set<std::string> pointers;
  for (const auto& d : body["details"]) pointers.insert(d["pointer"].get<std::string>());
  EXPECT_TRUE(pointers.count("/stages/tune/budget/max_trials")) << body.dump();
  EXPECT_EQ(body["details"].size(), 2u) << body.dump();  // every problem, not just the first
}

TEST_F(ServeTest, TrialsSortByAMetricAndTheirHistoryHasEveryEpoch) {
  Json asc = Get("/api/v1/runs/" + *run_id_ + "/stages/tune/trials?order_by=val_loss&direction=asc");
  ASSERT_EQ(asc["trials"].size(), 2u) << asc.dump();
  const double a = asc["trials"][0]["epochs"].back()["metrics"]["val_loss"];
  const double b = asc["trials"][1]["epochs"].back()["metrics"]["val_loss"];
  EXPECT_LE(a, b);
  const int64_t trial = asc["trials"][0]["trial_id"];
  Json history = Get("/api/v1/trials/" + std::to_string(trial) + "/metrics?metric=val_accuracy");
  ASSERT_EQ(history["history"].size(), 2u) << history.dump();
  EXPECT_EQ(history["history"][1]["epoch"], 1);
  EXPECT_EQ(history["history"][1]["value"], asc["trials"][0]["epochs"][1]["metrics"]["val_accuracy"]);
}

TEST_F(ServeTest, CheckpointManifestAndSafetensorsMatchTheBlobs) {
  const std::string digest = SomeCheckpoint();
  Json manifest = Get("/api/v1/checkpoints/" + digest);
  ASSERT_TRUE(manifest.contains("tensors")) << manifest.dump();
  auto res = server_->Client().Get(("/api/v1/checkpoints/" + digest + "/safetensors").c_str());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  const std::string& file = res->body;
  ASSERT_GE(file.size(), 8u);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(file[i])) << (8 * i);
  ASSERT_LE(8 + n, file.size());
  EXPECT_EQ((8 + n) % 8, 0u);
  Json header = Json::parse(file.substr(8, n));
  EXPECT_EQ(header["__metadata__"]["baton_checkpoint"], digest);
  uint64_t expect_offset = 0;
  for (const auto& t : manifest["tensors"]) {
    const Json& h = header[t["name"].get<std::string>()];
    EXPECT_EQ(h["shape"], t["shape"]) << t.dump();
    ASSERT_EQ(h["data_offsets"][0].get<uint64_t>(), expect_offset);
    const uint64_t end = h["data_offsets"][1];
    const std::string bytes = file.substr(8 + n + expect_offset, end - expect_offset);
    EXPECT_EQ(Sha256Hex(bytes), t["blob"]) << t["name"];
    expect_offset = end;
  }
  EXPECT_EQ(8 + n + expect_offset, file.size());
}

TEST_F(ServeTest, BlobsHaveETagsAndRanges) {
  Json manifest = Get("/api/v1/checkpoints/" + SomeCheckpoint());
  const std::string blob = manifest["tensors"][0]["blob"];
  httplib::Client c = server_->Client();
  auto full = c.Get(("/api/v1/blobs/" + blob).c_str());
  ASSERT_TRUE(full);
  ASSERT_EQ(full->status, 200);
  EXPECT_EQ(Sha256Hex(full->body), blob);
  EXPECT_EQ(full->get_header_value("ETag"), "\"" + blob + "\"");
  auto same = c.Get(("/api/v1/blobs/" + blob).c_str(), {{"If-None-Match", "\"" + blob + "\""}});
  ASSERT_TRUE(same);
  EXPECT_EQ(same->status, 304);
  auto part = c.Get(("/api/v1/blobs/" + blob).c_str(), {{"Range", "bytes=2-9"}});
  ASSERT_TRUE(part);
  EXPECT_EQ(part->status, 206);
  EXPECT_EQ(part->body, full->body.substr(2, 8));
  const std::string absent(64, 'a');
  auto missing = c.Get(("/api/v1/blobs/" + absent).c_str());
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(ServeTest, LineageAndStoreStats) {
  const std::string digest = SomeCheckpoint();
  Json up = Get("/api/v1/lineage?node=" + digest + "&direction=upstream");
  ASSERT_EQ(up["node"], "checkpoint:" + digest) << up.dump();
  bool to_trial = false;
  for (const auto& e : up["edges"]) to_trial = to_trial || (e["kind"] == "derived_from" && e["dst"].get<std::string>().rfind("trial:", 0) == 0);
  EXPECT_TRUE(to_trial) << up.dump();
  Json down = Get("/api/v1/lineage?node=run:" + *run_id_ + "&direction=downstream&depth=1");
  EXPECT_EQ(down["direction"], "downstream");
  EXPECT_EQ(Parse(server_->Client().Get("/api/v1/lineage?node=x&direction=sideways"))["error_code"],
            "INVALID_PARAMETER_VALUE");
  Json stats = Get("/api/v1/store/stats");
  EXPECT_GT(stats["blobs"].get<int64_t>(), 0);
  EXPECT_GT(stats["bytes"].get<int64_t>(), 0);
  EXPECT_FALSE(stats["stages"].empty());
}

TEST_F(ServeTest, WithoutTheTokenRequestsGet401AndTheTokenFileIsPrivate) {
  struct stat st {};
  ASSERT_EQ(stat((*dir_ / "store" / "api-token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(server_->token.size(), 64u);
  httplib::Client anonymous = server_->Client(/*with_token=*/false);
  auto read = anonymous.Get("/api/v1/runs");
  ASSERT_TRUE(read);
  EXPECT_EQ(read->status, 401);
  EXPECT_EQ(Json::parse(read->body)["error_code"], "UNAUTHENTICATED");
  auto write = anonymous.Post("/api/v1/runs", Json{{"pipeline", Pipeline("x", 1, 600)}}.dump(), "application/json");
  ASSERT_TRUE(write);
  EXPECT_EQ(write->status, 401);
  httplib::Client wrong("127.0.0.1", server_->port);
  wrong.set_bearer_token_auth(std::string(64, '0'));
  auto w = wrong.Get("/api/v1/runs");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->status, 401);
}

TEST_F(ServeTest, TraversalAttemptsGet404NotFiles) {
  httplib::Client c = server_->Client();
  for (const char* path : {"/api/v1/blobs/..%2f..%2fetc%2fpasswd", "/api/v1/blobs/%252e%252e%252fetc%252fpasswd",
                           "/api/v1/blobs/..\\..\\etc\\passwd", "/api/v1/blobs//etc/passwd",
                           "/api/v1/blobs/../../etc/passwd", "/api/v1/checkpoints/..%2f..%2fapi-token/safetensors",
                           "/api-token", "/../api-token", "/%2e%2e/%2e%2e/etc/passwd", "/lineage.db"}) {
    auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path << ": " << res->body.substr(0, 200);
    EXPECT_EQ(res->body.find("root:"), std::string::npos) << path;
    EXPECT_EQ(res->body.find(server_->token), std::string::npos) << path;
  }
}

TEST_F(ServeTest, PipelinesMayReadDataOnlyUnderTheDataRoots) {
  // A symlink inside the store that leads out of it does not count as inside.
  fs::create_symlink("/etc", *dir_ / "store" / "escape");
  for (const std::string& path : {std::string("/etc"), std::string("/usr/share/datasets/../../../etc"),
                                 (*dir_ / "store" / "escape").string(), std::string("relative/../../etc")}) {
    Json doc = Pipeline("outside", 1, 600);
    doc["stages"]["prep"]["dataset"]["path"] = path;
    auto res = server_->Client().Post("/api/v1/runs", Json{{"pipeline", doc}}.dump(), "application/json");
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 403) << path << ": " << res->body;
    Json body = Json::parse(res->body);
    EXPECT_EQ(body["error_code"], "PERMISSION_DENIED") << path;
    ASSERT_FALSE(body["details"].empty()) << path;
    EXPECT_EQ(body["details"][0]["pointer"], "/pipeline/stages/prep/dataset/path") << path;
    // Storing it is refused too, before validation could say whether the path exists.
    auto stored = server_->Client().Post("/api/v1/pipelines", doc.dump(), "application/json");
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->status, 403) << path << ": " << stored->body;
    EXPECT_EQ(stored->body.find("no such"), std::string::npos) << stored->body;
  }
  {
    // A TorchScript model file is data the pipeline reads, too.
    Json doc = Pipeline("outside-model", 1, 600);
    doc["stages"]["tune"]["model"] = {{"torchscript", "/etc/hostname"}};
    auto res = server_->Client().Post("/api/v1/runs", Json{{"pipeline", doc}}.dump(), "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 403) << res->body;
    Json body = Json::parse(res->body);
    ASSERT_FALSE(body["details"].empty()) << res->body;
    EXPECT_EQ(body["details"][0]["pointer"], "/pipeline/stages/tune/model/torchscript") << res->body;
  }
  // The npy format's array names are files in its folder: names with a
  // folder in them could lead out of it.
  Json doc = Pipeline("outside", 1, 600);
  doc["stages"]["prep"]["dataset"] = {
      {"format", "npy"}, {"path", "/usr/share/datasets"}, {"x", "../../../etc/passwd"}};
  auto res = server_->Client().Post("/api/v1/runs", Json{{"pipeline", doc}}.dump(), "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 403) << res->body;
  EXPECT_EQ(Json::parse(res->body)["details"][0]["pointer"], "/pipeline/stages/prep/dataset/x") << res->body;
}

TEST_F(ServeTest, PipelinesWithCommandStagesAreRefusedWithoutAllowCommands) {
  // This server was started without --allow-commands: a command stage would
  // run any program as the server's user for anyone with the token.
  Json doc = Pipeline("commands", 1, 600);
  const fs::path marker = *dir_ / "ran";
  doc["stages"]["clean"] = {{"type", "command"}, {"cmd", {"/bin/sh", "-c", "touch " + marker.string()}},
                            {"outs", Json::array()}};
  auto run = server_->Client().Post("/api/v1/runs", Json{{"pipeline", doc}}.dump(), "application/json");
  ASSERT_TRUE(run);
  EXPECT_EQ(run->status, 403) << run->body;
  Json body = Json::parse(run->body);
  EXPECT_EQ(body["error_code"], "PERMISSION_DENIED");
  ASSERT_FALSE(body["details"].empty());
  EXPECT_EQ(body["details"][0]["pointer"], "/pipeline/stages/clean/type");
  EXPECT_NE(body["message"].get<std::string>().find("--allow-commands"), std::string::npos) << run->body;
  auto stored = server_->Client().Post("/api/v1/pipelines", doc.dump(), "application/json");
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->status, 403) << stored->body;
  EXPECT_FALSE(fs::exists(marker));
}

TEST_F(ServeTest, ParallelTriggersWithOneIdempotencyKeyMakeOneRun) {
  const Json doc = Pipeline("serve-e2e", 2, 600);  // cached: finishes at once
  std::vector<std::thread> threads;
  std::vector<std::string> ids(8);
  std::vector<int> statuses(8, 0);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client c = server_->Client();
      auto res = c.Post("/api/v1/runs", {{"Idempotency-Key", "parallel-key"}}, Json{{"pipeline", doc}}.dump(),
                        "application/json");
      if (!res) return;
      statuses[i] = res->status;
      ids[i] = Json::parse(res->body).value("run_id", "");
    });
  }
  for (auto& t : threads) t.join();
  int created = 0;
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(statuses[i] == 201 || statuses[i] == 200) << statuses[i];
    created += statuses[i] == 201;
    EXPECT_EQ(ids[i], ids[0]);
  }
  EXPECT_EQ(created, 1);
  ReadEvents(*server_, ids[0]);  // let it finish before the suite ends
}

TEST_F(ServeTest, OversizedBodyGets413AndDeepJsonGets400) {
  httplib::Client c = server_->Client();
  const std::string big(17u << 20, ' ');  // over serve's 16 MiB
  auto res = c.Post("/api/v1/pipelines", big, "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 413);
  std::string deep(10000, '[');
  deep += std::string(10000, ']');
  auto nested = c.Post("/api/v1/pipelines", deep, "application/json");
  ASSERT_TRUE(nested);
  EXPECT_EQ(nested->status, 400);
  EXPECT_NE(Json::parse(nested->body)["message"].get<std::string>().find("nested deeper than"), std::string::npos)
      << nested->body;
  // The server is still serving.
  EXPECT_EQ(Get("/api/v1/runs/" + *run_id_)["status"], "succeeded");
}

TEST_F(ServeTest, CancelledRunStopsAndCannotBeCancelledTwice) {
  httplib::Client c = server_->Client();
  auto res = c.Post("/api/v1/runs", Json{{"pipeline", Pipeline("slow", 50, 8000)}}.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 201) << res->body;
  const std::string id = Json::parse(res->body)["run_id"];
  testing::WaitForFirstEpoch(*server_, id);  // workers are busy; then cancel
  auto cancel = c.Post(("/api/v1/runs/" + id + ":cancel").c_str(), "", "application/json");
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->status, 200) << cancel->body;
  std::vector<Sse> events = ReadEvents(*server_, id);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().data["data"]["status"], "cancelled");
  Json run = Get("/api/v1/runs/" + id);
  EXPECT_EQ(run["status"], "cancelled");
  auto twice = c.Post(("/api/v1/runs/" + id + ":cancel").c_str(), "", "application/json");
  ASSERT_TRUE(twice);
  EXPECT_EQ(twice->status, 409);
}

// `baton --server URL ...` acts through the server, not on a local store.
TEST_F(ServeTest, CliActsThroughTheServer) {
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->port);
  const fs::path pipeline = *dir_ / "cli.json";
  std::ofstream(pipeline) << Pipeline("serve-e2e", 2, 600).dump();  // cached: quick
  auto cli = [&](const std::string& args, int* rc) {
    // No --store: the local default store must not be touched.
    return testing::Shell(
        "cd " + dir_->string() + " && BATON_TOKEN=" + server_->token + " " BATON_BIN " --server " + url + " " + args,
        rc);
  };
  int rc = -1;
  const std::string run = cli("run " + pipeline.string() + " --json --no-progress", &rc);
  EXPECT_EQ(rc, 0) << run;
  const Json result = Json::parse(run.substr(run.find("\n{") + 1));
  EXPECT_EQ(result["status"], "succeeded") << run;
  const std::string id = result["run_id"];
  EXPECT_NE(cli("runs -q", &rc).find(id), std::string::npos);
  EXPECT_EQ(rc, 0);
  const Json shown = Json::parse(cli("show " + id + " --stage tune --json", &rc));
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(shown["status"], "cached");
  const Json lineage = Json::parse(cli("lineage run:" + id + " --downstream --depth 1 --json", &rc));
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(lineage["direction"], "downstream");
  EXPECT_FALSE(fs::exists(*dir_ / "baton-store"));  // nothing local
  const std::string refused = cli("show 20000101-000000-0000", &rc);
  EXPECT_EQ(rc, 3) << refused;  // not found, from the server's 404
  EXPECT_NE(refused.find("no run"), std::string::npos) << refused;
}

// Idle event streams hold at most half the request threads (serve: 8 of
// 16): one more is refused with 503 and the rest of the API still answers.
TEST_F(ServeTest, IdleEventStreamsCannotStarveTheApi) {
  httplib::Client c = server_->Client();
  auto res = c.Post("/api/v1/runs", Json{{"pipeline", Pipeline("idle-streams", 50, 8000)}}.dump(), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 201) << res->body;
  const std::string id = Json::parse(res->body)["run_id"];
  std::vector<std::thread> streams;
  std::atomic<int> ended{0};
  std::mutex mu;
  std::condition_variable cv;
  int served = 0;  // streams that got their first event
  for (int i = 0; i < 8; ++i) {
    streams.emplace_back([&] {
      bool first = true;
      ReadEvents(*server_, id, 0, [&](const Sse&) {
        if (!first) return;
        first = false;
        std::lock_guard<std::mutex> lock(mu);
        ++served;
        cv.notify_all();
      });
      ++ended;
    });
  }
  // Wait until all eight are being served (the run's first event reaches them).
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return served == 8; })) << served << " of 8 served";
  }
  auto ninth = c.Get(("/api/v1/runs/" + id + "/events").c_str());
  ASSERT_TRUE(ninth);
  EXPECT_EQ(ninth->status, 503) << ninth->body.substr(0, 200);
  EXPECT_EQ(Json::parse(ninth->body)["error_code"], "TEMPORARILY_UNAVAILABLE");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Get("/api/v1/runs/" + id)["run_id"], id);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  auto cancel = c.Post(("/api/v1/runs/" + id + ":cancel").c_str(), "", "application/json");
  ASSERT_TRUE(cancel);
  EXPECT_EQ(cancel->status, 200) << cancel->body;
  for (auto& t : streams) t.join();  // the streams end with the run
  EXPECT_EQ(ended.load(), 8);
}

TEST_F(ServeTest, EveryDocumentedRouteIsServed) {
  Json doc = Get("/api/v1/openapi.json");
  ASSERT_TRUE(doc.contains("paths")) << doc.dump().substr(0, 300);
  const std::string checkpoint = SomeCheckpoint();
  Json trials = Get("/api/v1/runs/" + *run_id_ + "/stages/tune/trials");
  const std::string values[][2] = {{"{run_id}", *run_id_}, {"{stage}", "tune"}, {"{digest}", checkpoint},
                                   {"{sha256}", checkpoint}, {"{pipeline_id}", Get("/api/v1/runs/" + *run_id_)["pipeline_id"]},
                                   {"{trial_id}", std::to_string(trials["trials"][0]["trial_id"].get<int64_t>())}};
  for (const auto& [path, ops] : doc["paths"].items()) {
    if (!ops.contains("get")) continue;
    std::string url = "/api/v1" + path;
    for (const auto& [name, value] : values) {
      for (size_t at; (at = url.find(name)) != std::string::npos;) url.replace(at, name.size(), value);
    }
    if (path == "/lineage") url += "?node=" + checkpoint;
    if (path.find("/events") != std::string::npos) continue;  // streamed, tested above
    auto res = server_->Client().Get(url.c_str());
    ASSERT_TRUE(res) << url;
    // A route that exists answers; at most its resource is missing (an
    // ablation of a tune stage), never with the catch-all of unknown paths.
    const bool unknown_path = res->status == 404 && res->body.find("no such resource") != std::string::npos;
    EXPECT_FALSE(unknown_path) << url;
    EXPECT_NE(res->status, 401) << url;
  }
}

}  // namespace
}  // namespace baton
