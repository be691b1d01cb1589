// What `baton serve` gives the web UI, through the ServeTest server
// (tests/e2e/serve_fixture.h; same binary as serve_test.cpp, so one run
// serves both): the embedded UI's files and deep links, the one-request
// metric history of a stage, a trial by id, the runs list's summaries and
// the signed download links that let a browser download without a token
// header. The pages themselves: tests/web (headless Chromium).
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "tests/e2e/http_e2e.h"
#include "tests/e2e/serve_fixture.h"

namespace baton {
namespace {

using testing::Parse;
using testing::ServeTest;

httplib::Result Anonymous(const testing::Server& server, const std::string& path, httplib::Headers headers = {}) {
  httplib::Client c("127.0.0.1", server.port);
  return c.Get(path.c_str(), headers);
}

TEST_F(ServeTest, TheUiIsServedFromTheBinaryAndItsPathsLoadDeepLinks) {
  auto index = Anonymous(*server_, "/");
  ASSERT_TRUE(index);
  ASSERT_EQ(index->status, 200);
  EXPECT_EQ(index->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(index->body.find("<div id=\"app\">"), std::string::npos) << index->body;
  // Deep links of every page kind answer the same index.html, without a
  // token (the page asks for it; the data stays behind the API's check).
  for (const std::string& path : std::vector<std::string>{"/runs/" + *run_id_, "/runs/" + *run_id_ + "/stages/tune", "/trials/3",
                                 "/checkpoints/" + SomeCheckpoint(), "/store", "/new"}) {
    auto page = Anonymous(*server_, path);
    ASSERT_TRUE(page) << path;
    EXPECT_EQ(page->status, 200) << path;
    EXPECT_EQ(page->body, index->body) << path;
  }
  auto js = Anonymous(*server_, "/app.js");
  ASSERT_TRUE(js);
  ASSERT_EQ(js->status, 200);
  EXPECT_EQ(js->get_header_value("Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_NE(js->body.find("import"), std::string::npos) << "an ES module that loads its chunks";
  // The chunks index.html preloads are served too.
  const std::string marker = "<link rel=\"modulepreload\" href=\"";
  const size_t at = index->body.find(marker);
  ASSERT_NE(at, std::string::npos) << index->body;
  const std::string chunk = index->body.substr(at + marker.size(), index->body.find('"', at + marker.size()) -
                                                                        at - marker.size());
  auto chunk_res = Anonymous(*server_, chunk);
  ASSERT_TRUE(chunk_res) << chunk;
  EXPECT_EQ(chunk_res->status, 200) << chunk;
  EXPECT_GT(chunk_res->body.size(), 10000u) << chunk;
  const std::string etag = js->get_header_value("ETag");
  ASSERT_FALSE(etag.empty());
  auto again = Anonymous(*server_, "/app.js", {{"If-None-Match", etag}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 304);
  auto css = Anonymous(*server_, "/app.css");
  ASSERT_TRUE(css);
  EXPECT_EQ(css->status, 200);
  // Anything else is not the UI: a file name, an unknown root, a dot.
  for (const std::string& path : std::vector<std::string>{"/nope.txt", "/runs/../api-token", "/api-token", "/lineage.db", "/runs/a.b",
                                 "/api/v1/nope", "/internal/v1/tasks:next"}) {
    auto res = Anonymous(*server_, path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path << ": " << res->body.substr(0, 200);
    EXPECT_EQ(Parse(res)["error_code"], "RESOURCE_DOES_NOT_EXIST") << path;
  }
}

TEST_F(ServeTest, ARunSaysWhetherItIsPinned) {
  const std::string run = "/api/v1/runs/" + *run_id_;
  EXPECT_EQ(Get(run)["pinned"], false);
  ASSERT_EQ(server_->Client().Post((run + ":pin").c_str(), "", "application/json")->status, 200);
  EXPECT_EQ(Get(run)["pinned"], true);
  ASSERT_EQ(server_->Client().Post((run + ":unpin").c_str(), "", "application/json")->status, 200);
  EXPECT_EQ(Get(run)["pinned"], false);
}

TEST_F(ServeTest, StageMetricsGiveEveryTrialsHistoryInOneAnswer) {
  const Json trials = Get("/api/v1/runs/" + *run_id_ + "/stages/tune/trials")["trials"];
  const Json metrics = Get("/api/v1/runs/" + *run_id_ + "/stages/tune/metrics");
  EXPECT_EQ(metrics["objective"]["metric"], "val_accuracy");
  ASSERT_EQ(metrics["trials"].size(), trials.size()) << metrics.dump().substr(0, 500);
  std::map<int64_t, Json> by_id;
  for (const auto& t : metrics["trials"]) by_id[t["trial_id"].get<int64_t>()] = t;
  for (const auto& t : trials) {
    const Json& m = by_id.at(t["trial_id"].get<int64_t>());
    EXPECT_EQ(m["status"], t["status"]);
    EXPECT_EQ(m["hyperparameters"], t["hyperparameters"]);
    ASSERT_EQ(m["epochs"].size(), t["epochs"].size());
    for (size_t e = 0; e < t["epochs"].size(); ++e) {
      const Json& epoch = t["epochs"][e];
      EXPECT_EQ(m["epochs"][e], epoch["epoch"]);
      for (const auto& [name, value] : epoch["metrics"].items()) {
        EXPECT_EQ(m["values"][name][e], value) << name << " epoch " << e;
      }
    }
  }
  for (const char* name : {"val_accuracy", "train_loss"}) {
    EXPECT_NE(std::find(metrics["metrics"].begin(), metrics["metrics"].end(), name), metrics["metrics"].end()) << name;
  }
  EXPECT_EQ(server_->Client().Get(("/api/v1/runs/" + *run_id_ + "/stages/nope/metrics").c_str())->status, 404);
  // An ended stage's answer is kept encoded: the same bytes again, gzipped
  // for a client that accepts gzip (cpp-httplib's client decompresses).
  httplib::Client c = server_->Client();
  c.set_decompress(false);
  const std::string path = "/api/v1/runs/" + *run_id_ + "/stages/tune/metrics";
  auto plain = c.Get(path.c_str(), {{"Accept-Encoding", "identity"}});
  auto gzipped = c.Get(path.c_str(), {{"Accept-Encoding", "gzip, deflate, br"}});
  ASSERT_TRUE(plain && gzipped);
  EXPECT_EQ(plain->get_header_value("Content-Encoding"), "");
  EXPECT_EQ(Json::parse(plain->body), metrics);
  EXPECT_EQ(gzipped->get_header_value("Content-Encoding"), "gzip");
  EXPECT_LT(gzipped->body.size(), plain->body.size());
  auto decompressed = server_->Client().Get(path.c_str(), {{"Accept-Encoding", "gzip"}});
  ASSERT_TRUE(decompressed);
  EXPECT_EQ(Json::parse(decompressed->body), metrics);
}

TEST_F(ServeTest, ATrialByIdNamesItsRunAndStage) {
  const Json trials = Get("/api/v1/runs/" + *run_id_ + "/stages/tune/trials")["trials"];
  ASSERT_FALSE(trials.empty());
  for (const auto& t : trials) {
    const Json trial = Get("/api/v1/trials/" + std::to_string(t["trial_id"].get<int64_t>()));
    EXPECT_EQ(trial["run_id"], *run_id_);
    EXPECT_EQ(trial["stage"], "tune");
    EXPECT_EQ(trial["stage_type"], "tune");
    EXPECT_EQ(trial["number"], t["number"]);
    EXPECT_EQ(trial["epochs"], t["epochs"]);
  }
  EXPECT_EQ(server_->Client().Get("/api/v1/trials/999999")->status, 404);
  EXPECT_EQ(Anonymous(*server_, "/api/v1/trials/" + std::to_string(trials[0]["trial_id"].get<int64_t>()))->status,
            401);
}

TEST_F(ServeTest, TheRunsListSummarisesEachRun) {
  const Json list = Get("/api/v1/runs?max_results=1000");
  const Json* row = nullptr;
  for (const auto& r : list["runs"]) {
    if (r["run_id"] == *run_id_) row = &r;
  }
  ASSERT_NE(row, nullptr);
  const Json& s = (*row)["summary"];
  EXPECT_EQ(s["stages_total"], 2);
  EXPECT_EQ(s["stages_finished"], 2);
  ASSERT_EQ(s["stages"].size(), 2u);
  EXPECT_EQ(s["stages"][1]["name"], "tune");
  EXPECT_EQ(s["stages"][1]["status"], "succeeded");
  // The best objective is the best final val_accuracy among the trials.
  double best = -1;
  const Json trials = Get("/api/v1/runs/" + *run_id_ + "/stages/tune/trials")["trials"];
  for (const auto& t : trials) {
    if (t["status"] == "succeeded") best = std::max(best, t["final_objective"].get<double>());
  }
  EXPECT_EQ(s["best"]["metric"], "val_accuracy");
  EXPECT_DOUBLE_EQ(s["best"]["value"].get<double>(), best);
  EXPECT_TRUE(s["init_from"].is_null()) << "no train stage";
}

TEST_F(ServeTest, ASignedDownloadLinkNeedsNoTokenAndOpensOnlyItsCheckpoint) {
  const std::string digest = SomeCheckpoint();
  const std::string link_route = "/api/v1/checkpoints/" + digest + "/download-link";
  EXPECT_EQ(Anonymous(*server_, link_route)->status, 401) << "a link needs the token to be made";
  const Json link = Get(link_route);
  const std::string url = link["url"].get<std::string>();
  EXPECT_EQ(url.find(server_->token), std::string::npos) << "no token in a URL";
  EXPECT_EQ(url.rfind("/api/v1/checkpoints/" + digest + "/safetensors?expires=", 0), 0u) << url;
  EXPECT_GT(link["expires_at"].get<int64_t>(), static_cast<int64_t>(std::time(nullptr)));

  auto with_token = server_->Client().Get(("/api/v1/checkpoints/" + digest + "/safetensors").c_str());
  ASSERT_TRUE(with_token);
  ASSERT_EQ(with_token->status, 200);
  auto signed_get = Anonymous(*server_, url);
  ASSERT_TRUE(signed_get);
  ASSERT_EQ(signed_get->status, 200) << signed_get->body.substr(0, 200);
  EXPECT_EQ(signed_get->body, with_token->body);
  EXPECT_NE(signed_get->get_header_value("Content-Disposition").find(".safetensors"), std::string::npos);

  // A changed signature, a later expiry, another checkpoint or another
  // route under the same signature: refused.
  const size_t sig = url.find("&signature=") + 11;
  std::string tampered = url;
  tampered[sig] = tampered[sig] == '0' ? '1' : '0';
  EXPECT_EQ(Anonymous(*server_, tampered)->status, 401);
  const size_t exp = url.find("expires=") + 8;
  std::string later = url;
  later[exp] = later[exp] == '9' ? '8' : static_cast<char>(later[exp] + 1);
  EXPECT_EQ(Anonymous(*server_, later)->status, 401);
  std::string expired = url.substr(0, exp) + "1" + url.substr(url.find("&signature="));
  EXPECT_EQ(Anonymous(*server_, expired)->status, 401);
  const std::string query = url.substr(url.find('?'));
  EXPECT_EQ(Anonymous(*server_, "/api/v1/checkpoints/" + digest + query)->status, 401) << "the manifest route";
  EXPECT_EQ(Anonymous(*server_, "/api/v1/runs" + query)->status, 401);
}

}  // namespace
}  // namespace baton
