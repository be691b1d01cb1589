// `baton serve` end to end, each test with servers of its own on a store
// of its own: a server that resumes a run a killed `baton run` left, an
// Idempotency-Key that outlives a restart, `store gc` from the CLI and over
// HTTP, and --public-read with the API token's file. The tests that share
// one running server are in serve_test.cpp.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "common/digest.h"
#include "common/json_util.h"
#include "store/blob_store.h"
#include "store/lineage_db.h"
#include "tests/e2e/http_e2e.h"
#include "tests/e2e/serve_fixture.h"
#include "tests/e2e/serve_process.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

namespace fs = std::filesystem;

using testing::Parse;
using testing::Pipeline;
using testing::ReadEvents;
using testing::Server;
using testing::Sse;

// `baton --server URL runs/show/lineage` print what the same commands print
// on the store itself: the same tables and the same --json.
TEST(ServeCli, ServerOutputEqualsLocalOutput) {
  const fs::path dir = fs::temp_directory_path() / ("baton-e2e-serve-cli-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const fs::path store = dir / "store";
  Json doc = Pipeline("cli-views", 2, 300);
  doc["stages"]["train"] = Json::parse(R"({"type": "train", "depends_on": ["tune"],
      "hyperparameters": {"from": "tune", "trial": "best"},
      "init_from": {"stage": "tune", "trial": "best", "epoch": "last"}, "epochs": 1})");
  std::ofstream(dir / "p.json") << doc.dump();
  const testing::CmdResult run = testing::Capture("BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " +
                                                  store.string() + " run " + (dir / "p.json").string() +
                                                  " --json --no-progress 2>/dev/null");
  ASSERT_EQ(run.exit_code, 0) << run.out;
  const std::string id = Json::parse(run.out)["run_id"];
  const std::string model = Json::parse(testing::Capture(BATON_BIN " --store " + store.string() + " show " + id +
                                                         " --stage train --json")
                                            .out)["trials"][0]["output"];
  const std::vector<std::string> commands = {
      "runs", "runs --json", "runs -q", "show " + id, "show " + id + " --json", "show " + id + " --stage tune",
      "show " + id + " --stage tune --json", "show " + id + " --stage train", "show " + id + " --stage train --json",
      "lineage " + model, "lineage " + model + " --json", "lineage run:" + id + " --downstream --depth 2"};
  std::vector<std::string> local;
  for (const auto& c : commands) {
    const testing::CmdResult r = testing::Capture(BATON_BIN " --store " + store.string() + " " + c + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << c << "\n" << r.out;
    local.push_back(r.out);
  }
  EXPECT_NE(local[3].find("STAGE        TYPE     STATUS"), std::string::npos) << local[3];  // a table
  Server server(store, "");
  for (size_t i = 0; i < commands.size(); ++i) {
    const testing::CmdResult r =
        testing::Capture("BATON_TOKEN=" + server.token + " " BATON_BIN " --server http://127.0.0.1:" +
                         std::to_string(server.port) + " " + commands[i] + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << commands[i] << "\n" << r.out;
    EXPECT_EQ(r.out, local[i]) << "baton --server ... " << commands[i];
  }
  EXPECT_EQ(server.Stop(), 0);
  fs::remove_all(dir);
}

// gc frees what nothing refers to, and only with --apply / {"apply": true}.
// A fixed worker port serves one run's endpoint; serve executes up to
// --max-runs at once, so it refuses the pair before it listens anywhere.
TEST(ServeCli, AFixedWorkerPortNeedsOneRunAtATime) {
  const std::string store = (std::filesystem::temp_directory_path() /
                             ("baton-e2e-worker-port-" + std::to_string(getpid()))).string();
  const testing::CmdResult r =
      testing::Capture(BATON_BIN " --store " + store + " serve --port 0 --worker-port 7000 2>&1");
  EXPECT_EQ(r.exit_code, 2) << r.out;
  EXPECT_NE(r.out.find("--worker-port 7000 is one port, but up to 2 runs execute at once"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("listening on"), std::string::npos) << r.out;
  std::filesystem::remove_all(store);
}

TEST(StoreGc, FreesOnlyUnreferencedBlobsAndOnlyWhenAsked) {
  const fs::path dir = fs::temp_directory_path() / ("baton-e2e-gc-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string baton = "BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + (dir / "store").string();
  std::ofstream(dir / "p.json") << Pipeline("gc", 2, 600).dump();
  ASSERT_EQ(std::system((baton + " run " + (dir / "p.json").string() + " --no-progress >/dev/null 2>&1").c_str()), 0);
  auto gc = [&](const std::string& flags) {
    int rc = -1;
    return Json::parse(testing::Shell("(" + baton + " store gc --json " + flags + " 2>/dev/null)", &rc));
  };
  EXPECT_EQ(gc("")["unreferenced_blobs"], 0);  // a finished run refers to every blob it stored
  // An upload whose report never came: bytes nothing refers to.
  const std::string orphan(300000, 'x');
  std::vector<std::string> kept;
  {
    auto blobs = store::BlobStore::Open(dir / "store" / "blobs");
    blobs->Put(orphan);
    blobs->ForEach([&](const std::string& d, uint64_t) { kept.push_back(d); });
  }
  Json dry = gc("");
  EXPECT_EQ(dry["unreferenced_blobs"], 1);
  EXPECT_EQ(dry["bytes"], orphan.size());
  EXPECT_EQ(dry["blobs"][0], Sha256Hex(orphan));
  EXPECT_EQ(dry["applied"], false);
  Json applied = gc("--apply");
  EXPECT_EQ(applied["unreferenced_blobs"], 1);
  EXPECT_EQ(applied["applied"], true);
  EXPECT_EQ(gc("")["unreferenced_blobs"], 0);
  auto blobs = store::BlobStore::Open(dir / "store" / "blobs");
  EXPECT_FALSE(blobs->Has(Sha256Hex(orphan)));
  for (const auto& d : kept) {
    if (d == Sha256Hex(orphan)) continue;
    EXPECT_NO_THROW(blobs->Get(d)) << d;  // everything else is still there and verifies
  }
  blobs.reset();
  // Over HTTP: a dry run by default; apply needs the token and no active run.
  {
    Server server(dir / "store", "");
    httplib::Client c = server.Client();
    Json report = Parse(c.Post("/api/v1/store:gc", "", "application/json"));
    EXPECT_EQ(report["applied"], false) << report.dump();
    EXPECT_EQ(report["unreferenced_blobs"], 0);
    Json applied_http = Parse(c.Post("/api/v1/store:gc", R"({"apply": true})", "application/json"));
    EXPECT_EQ(applied_http["applied"], true) << applied_http.dump();
    auto anonymous = server.Client(/*with_token=*/false).Post("/api/v1/store:gc", "", "application/json");
    ASSERT_TRUE(anonymous);
    EXPECT_EQ(anonymous->status, 401);
  }
  fs::remove_all(dir);
}

// A `baton run` killed after its first epoch leaves a run "running" in the
// store; `baton serve` on that store continues it by itself, and :resume
// refuses a run that is not interrupted.
TEST(ServeResume, RestartedServerFinishesAnInterruptedRun) {
  const fs::path dir = fs::temp_directory_path() / ("baton-e2e-serve-resume-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "p.json") << Pipeline("resume", 6, 2000).dump();
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);  // its workers too, for the kill below
    execl("/bin/sh", "sh", "-c",
          ("exec env BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + (dir / "store").string() + " run " +
           (dir / "p.json").string() + " --no-progress >/dev/null 2>&1")
              .c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  // Kill the orchestrator once an epoch is recorded.
  std::string run_id;
  for (int i = 0; i < 600 && run_id.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!fs::exists(dir / "store" / "lineage.db")) continue;
    try {
      auto db = store::LineageDb::Open(dir / "store" / "lineage.db");
      for (const auto& r : db->ListRuns(1)) {
        for (const auto& st : db->GetStages(r.id)) {
          for (const auto& t : db->GetTrials(st.id)) {
            if (st.name == "tune" && !db->GetEpochs(t.id).empty()) run_id = r.id;
          }
        }
      }
    } catch (const std::exception&) {
    }
  }
  ASSERT_FALSE(run_id.empty()) << "no epoch recorded within 60 s";
  kill(-pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  {
    auto db = store::LineageDb::Open(dir / "store" / "lineage.db");
    ASSERT_EQ(db->GetRun(run_id)->status, "running");  // cut short
  }
  Server server(dir / "store", "");
  std::vector<Sse> events = ReadEvents(server, run_id);  // the resumed part
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().data["data"]["status"], "succeeded") << events.back().data.dump();
  Json run = Parse(server.Client().Get(("/api/v1/runs/" + run_id).c_str()));
  EXPECT_EQ(run["status"], "succeeded");
  Json trials = Parse(server.Client().Get(("/api/v1/runs/" + run_id + "/stages/tune/trials").c_str()));
  for (const auto& t : trials["trials"]) EXPECT_EQ(t["epochs"].size(), 6u) << t.dump();  // no epoch lost or doubled
  auto again = server.Client().Post(("/api/v1/runs/" + run_id + ":resume").c_str(), "", "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 409) << again->body;
  auto unknown = server.Client().Post("/api/v1/runs/20000101-000000-0000:resume", "", "application/json");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(server.Stop(), 0);
  fs::remove_all(dir);
}

// An Idempotency-Key is written with its run, in one transaction: a client
// that retries after the server died (SIGKILL right after its 201) or was
// restarted gets the run the key created, never a second one.
TEST(ServeRestart, IdempotencyKeysOutliveTheServer) {
  const fs::path dir = fs::temp_directory_path() / ("baton-e2e-serve-keys-" + std::to_string(getpid()));
  fs::remove_all(dir);
  const Json pipeline = Pipeline("keyed", 2, 600);
  const httplib::Headers key = {{"Idempotency-Key", "retry-after-restart"}};
  std::string run_id;
  {
    Server server(dir / "store", "");
    auto res = server.Client().Post("/api/v1/runs", key, Json{{"pipeline", pipeline}}.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 201) << res->body;
    run_id = Json::parse(res->body)["run_id"].get<std::string>();
    kill(server.pid(), SIGKILL);  // no clean shutdown
  }
  Server server(dir / "store", "");
  auto again = server.Client().Post("/api/v1/runs", key, Json{{"pipeline", pipeline}}.dump(), "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(Json::parse(again->body)["run_id"], run_id);
  EXPECT_EQ(testing::WaitForRun(server, run_id), "succeeded");  // resumed by the new server
  EXPECT_EQ(server.Stop(), 0);

  Server restarted(dir / "store", "");
  again = restarted.Client().Post("/api/v1/runs", key, Json{{"pipeline", pipeline}}.dump(), "application/json");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200) << again->body;
  EXPECT_EQ(Json::parse(again->body)["run_id"], run_id);
  auto other = restarted.Client().Post("/api/v1/runs", key, Json{{"pipeline", Pipeline("other", 1, 600)}}.dump(),
                                       "application/json");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 409) << other->body;
  EXPECT_NE(other->body.find(run_id), std::string::npos) << other->body;
  EXPECT_EQ(Parse(restarted.Client().Get("/api/v1/runs?max_results=1000"))["runs"].size(), 1u);
  EXPECT_EQ(restarted.Stop(), 0);
  fs::remove_all(dir);
}

TEST(ServePublicRead, ReadsNeedNoTokenButMutationsDo) {
  const fs::path dir = fs::temp_directory_path() / ("baton-e2e-serve-public-" + std::to_string(getpid()));
  fs::remove_all(dir);
  {
    Server server(dir / "store", "--public-read");
    httplib::Client anonymous = server.Client(/*with_token=*/false);
    auto read = anonymous.Get("/api/v1/runs");
    ASSERT_TRUE(read);
    EXPECT_EQ(read->status, 200) << read->body;
    auto write = anonymous.Post("/api/v1/pipelines", Pipeline("x", 1, 600).dump(), "application/json");
    ASSERT_TRUE(write);
    EXPECT_EQ(write->status, 401);
    EXPECT_EQ(server.Stop(), 0);
  }
  // The token survives a restart; a token file others can read is refused.
  const std::string first = [&] {
    std::string t;
    std::ifstream(dir / "store" / "api-token") >> t;
    return t;
  }();
  {
    Server again(dir / "store", "");
    EXPECT_EQ(again.token, first);
  }
  chmod((dir / "store" / "api-token").c_str(), 0644);
  // Bounded: a serve that wrongly starts would otherwise hold the test until
  // ctest's timeout; `timeout` ends it (exit 124) and the log check fails.
  const std::string cmd = "timeout 60 " + std::string(BATON_BIN) + " --store " + (dir / "store").string() +
                          " serve --port 0 >/dev/null 2>" + (dir / "refused.log").string();
  const int status = std::system(cmd.c_str());
  EXPECT_NE(WEXITSTATUS(status), 0);
  std::ifstream log(dir / "refused.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("chmod 600"), std::string::npos) << text;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace baton
