#pragma once

// What the `baton serve` end-to-end tests (serve_test.cpp,
// serve_lifecycle_test.cpp) share: the pipeline they trigger, and ServeTest,
// one server for the suite whose first run is triggered in SetUpTestSuite
// and followed over server-sent events.
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "common/json_util.h"
#include "tests/e2e/http_e2e.h"
#include "tests/e2e/serve_process.h"

namespace baton::testing {

// Two trials of a small MLP, seed 3 (TinyPipeline).
inline Json Pipeline(const std::string& name, int epochs, int train_subset) {
  return TinyPipeline(name, 3, epochs, train_subset);
}

// A `baton serve --max-runs 2` on a store in a temp dir, and its first run
// (Idempotency-Key "first-run"), finished, with every event it streamed.
class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                     ("baton-e2e-serve-" + std::to_string(getpid())));
    std::filesystem::remove_all(*dir_);
    server_ = new Server(*dir_ / "store", "--max-runs 2");
    httplib::Client c = server_->Client();
    httplib::Headers key = {{"Idempotency-Key", "first-run"}};
    auto res = c.Post("/api/v1/runs", key, Json{{"pipeline", Pipeline("serve-e2e", 2, 600)}}.dump(),
                      "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 201) << res->body;
    run_id_ = new std::string(Json::parse(res->body)["run_id"].get<std::string>());
    events_ = new std::vector<Sse>(ReadEvents(*server_, *run_id_));
  }
  static void TearDownTestSuite() {
    delete server_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
    delete run_id_;
    delete events_;
  }
  Json Get(const std::string& path) { return Parse(server_->Client().Get(path.c_str())); }
  // The tune stage's best trial's last checkpoint.
  std::string SomeCheckpoint() {
    Json trials = Get("/api/v1/runs/" + *run_id_ + "/stages/tune/trials");
    return trials["trials"][0]["epochs"].back()["checkpoint"].get<std::string>();
  }

  inline static std::filesystem::path* dir_ = nullptr;
  inline static Server* server_ = nullptr;
  inline static std::string* run_id_ = nullptr;
  inline static std::vector<Sse>* events_ = nullptr;
};

}  // namespace baton::testing
