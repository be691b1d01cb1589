// Several runs at once on one store through a real `baton serve` (issue 7,
// item 7): parallel triggers with Idempotency-Keys, `baton --server URL
// run` beside them, and a hammer of reads while the runs write.
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "tests/e2e/http_e2e.h"
#include "tests/e2e/serve_process.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using testing::Parse;
using testing::Server;
using testing::Shell;
using testing::TinyPipeline;
using testing::WaitForRun;

// Several runs at once on one store: two triggered by eight parallel
// requests each (two Idempotency-Keys), one by `baton --server URL run`,
// under eight threads of reads. Each key made one run, every run
// succeeds, no read got a 5xx or a word of SQLite's locking. A `baton run`
// on the store itself is refused while the server holds it, saying so.
TEST(HttpConcurrency, SeveralRunsAtOnceUnderAHammerOfReads) {
  const fs::path dir = fs::temp_directory_path() / ("baton-e2e-http-conc-" + std::to_string(getpid()));
  fs::remove_all(dir);
  Server server(dir / "store", "--max-runs 2");
  // Runs A and B long enough (6 epochs) that the reads below see both
  // running at once; with 2 an idle machine could finish A before they looked.
  const Json a = TinyPipeline("conc-a", 11, 6), b = TinyPipeline("conc-b", 12, 6);
  std::ofstream(dir / "c.json") << TinyPipeline("conc-c", 13, 2).dump();

  std::vector<std::thread> triggers;
  std::vector<int> statuses(8, 0);
  std::vector<std::string> ids(8);
  std::atomic<bool> go{false};
  for (int i = 0; i < 8; ++i) {
    triggers.emplace_back([&, i] {
      while (!go) std::this_thread::yield();
      const bool first = i % 2 == 0;
      auto res = server.Client().Post("/api/v1/runs", {{"Idempotency-Key", first ? "key-a" : "key-b"}},
                                      Json{{"pipeline", first ? a : b}}.dump(), "application/json");
      if (!res) return;
      statuses[i] = res->status;
      ids[i] = Parse(res).value("run_id", "");
    });
  }
  go = true;
  for (auto& t : triggers) t.join();
  std::set<std::string> made;
  int created = 0;
  for (int i = 0; i < 8; ++i) {
    EXPECT_TRUE(statuses[i] == 201 || statuses[i] == 200) << i << ": " << statuses[i];
    EXPECT_EQ(ids[i], ids[i % 2]);
    created += statuses[i] == 201;
    made.insert(ids[i]);
  }
  EXPECT_EQ(created, 2);
  ASSERT_EQ(made.size(), 2u);
  // What exists: two runs, one per key.
  const Json listed = Parse(server.Client().Get("/api/v1/runs?max_results=1000"));
  ASSERT_EQ(listed["runs"].size(), 2u) << listed.dump();

  const std::string url = "http://127.0.0.1:" + std::to_string(server.port);
  std::string cli_out;
  int cli_rc = -1;
  std::thread cli([&] {
    cli_out = Shell("BATON_TOKEN=" + server.token + " " BATON_BIN " --server " + url + " run " +
                        (dir / "c.json").string() + " --json --no-progress",
                    &cli_rc);
  });

  // Reads while the runs write: bounded by count and by the runs' end.
  std::atomic<bool> runs_over{false};
  std::atomic<int> requests{0}, max_running{0};
  std::mutex bad_mu;
  std::vector<std::string> bad;
  const std::string run_a = ids[0];
  std::vector<std::thread> hammer;
  for (int h = 0; h < 8; ++h) {
    hammer.emplace_back([&, h] {
      httplib::Client c = server.Client();
      c.set_read_timeout(30, 0);
      std::string checkpoint;
      int64_t trial = 0;
      for (int i = 0; i < 300 && !runs_over; ++i) {
        std::string path;
        switch ((h + i) % 7) {
          case 0: path = "/api/v1/runs?max_results=1000"; break;
          case 1: path = "/api/v1/runs/" + ids[i % 2]; break;
          case 2: path = "/api/v1/runs/" + ids[i % 2] + "/stages/tune/trials"; break;
          case 3: path = "/api/v1/store/stats"; break;
          case 4: path = trial > 0 ? "/api/v1/trials/" + std::to_string(trial) + "/metrics" : "/api/v1/pipelines"; break;
          case 5: path = checkpoint.empty() ? "/api/v1/runs/" + run_a + "/stages/prep" : "/api/v1/checkpoints/" + checkpoint; break;
          case 6: path = "/api/v1/lineage?node=run:" + ids[i % 2] + "&direction=downstream"; break;
        }
        auto res = c.Get(path.c_str());
        ++requests;
        std::lock_guard<std::mutex> lock(bad_mu);
        if (!res) {
          bad.push_back(path + ": " + httplib::to_string(res.error()));
          continue;
        }
        const std::string& body = res->body;
        if (res->status >= 500 || body.find("SQLITE_BUSY") != std::string::npos ||
            body.find("is locked") != std::string::npos) {
          bad.push_back(path + " -> " + std::to_string(res->status) + ": " + body.substr(0, 300));
          continue;
        }
        if (res->status != 200) continue;
        const Json j = Parse(res);
        if (path.find("?max_results") != std::string::npos) {
          int running = 0;
          for (const auto& r : j["runs"]) running += r["status"] == "running";
          max_running = std::max(max_running.load(), running);
        }
        // The stage's trial list (not a trial's own /trials/{id}/metrics).
        if (path.find("/stages/tune/trials") != std::string::npos && j.contains("trials") &&
            j["trials"].is_array() && !j["trials"].empty()) {
          trial = j["trials"][0]["trial_id"];
          if (!j["trials"][0]["epochs"].empty()) checkpoint = j["trials"][0]["epochs"][0]["checkpoint"];
        }
      }
    });
  }
  EXPECT_EQ(WaitForRun(server, ids[0]), "succeeded");
  EXPECT_EQ(WaitForRun(server, ids[1]), "succeeded");
  cli.join();
  runs_over = true;
  for (auto& t : hammer) t.join();
  EXPECT_EQ(cli_rc, 0) << cli_out;
  EXPECT_NE(cli_out.find("\"succeeded\""), std::string::npos) << cli_out;
  for (const std::string& b : bad) ADD_FAILURE() << b;
  EXPECT_GE(requests.load(), 100);
  EXPECT_EQ(max_running.load(), 2) << "two runs at once (--max-runs 2)";
  const Json all = Parse(server.Client().Get("/api/v1/runs?max_results=1000"));
  ASSERT_EQ(all["runs"].size(), 3u) << all.dump();
  for (const auto& r : all["runs"]) EXPECT_EQ(r["status"], "succeeded") << r.dump();

  // The server holds the store: a second process writing it is refused,
  // with a message that says why and what to do instead, and changes nothing.
  int rc = -1;
  const std::string direct = Shell("BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + (dir / "store").string() +
                                       " run " + (dir / "c.json").string() + " --no-progress",
                                   &rc);
  EXPECT_NE(rc, 0) << direct;
  EXPECT_NE(direct.find("in use"), std::string::npos) << direct;
  EXPECT_NE(direct.find("--server"), std::string::npos) << direct;
  EXPECT_EQ(Parse(server.Client().Get("/api/v1/runs?max_results=1000"))["runs"].size(), 3u);
  EXPECT_EQ(server.Stop(), 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace baton
