// Retention and gc end to end, with the real `baton` and `baton-worker`:
// a tune stage with checkpoints.keep {best_k: 1, last_k: 1}; `baton store
// gc` reports what it would release and free, --apply frees exactly that
// (the store shrinks), fsck stays clean, the kept checkpoints are still
// served and a released one is a clear 404. Demand: while a killed run's
// train stage has not resolved its init_from, gc keeps every epoch it may
// select; after `baton resume` it keeps the one it selected. And gc --apply
// while a run writes (through `baton serve`, the process that owns the
// store; a separate `baton store gc` is refused while `baton run` holds it)
// breaks nothing.
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/json_util.h"
#include "store/blob_store.h"
#include "store/lineage_db.h"
#include "tests/e2e/serve_process.h"
#include "tests/support/fashion_mnist.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using testing::CmdResult;

// A tiny model (fc1 is 784 x 32) on 300 Fashion-MNIST images: seconds a run.
Json TunePipeline(const std::string& name, std::vector<double> lrs, int epochs) {
  Json doc = Json::parse(R"({
    "schema_version": "1", "seed": 5,
    "stages": {
      "tune": {"type": "tune", "depends_on": ["prep"],
               "model": {"layers": [{"name": "flat", "type": "flatten"},
                                    {"name": "fc1", "type": "linear", "out_features": 32},
                                    {"name": "act", "type": "relu"},
                                    {"name": "fc2", "type": "linear", "out_features": 10}]},
               "sampler": {"type": "grid"},
               "hyperparameters": {"batch_size": 50, "optimizer": "sgd"},
               "objective": {"metric": "val_accuracy", "mode": "max"},
               "checkpoints": {"keep": {"best_k": 1, "last_k": 1}}}}})");
  doc["name"] = name;
  doc["stages"]["prep"] = testing::FashionMnistPrep(300);
  doc["stages"]["tune"]["search_space"] = {{"lr", {{"type", "categorical"}, {"values", lrs}}}};
  doc["stages"]["tune"]["budget"] = {{"max_trials", lrs.size()}, {"max_parallel", 2}, {"max_epochs", epochs}};
  return doc;
}

class RetentionE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("baton-e2e-retention-" + std::string(info->name()) + "-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    store_ = dir_ / "store";
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  CmdResult Baton(const std::string& args) {
    return testing::Capture("BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + store_.string() + " " + args +
                            " 2>>" + (dir_ / "stderr.log").string());
  }

  std::string Write(const std::string& name, const Json& doc) {
    const fs::path file = dir_ / (name + ".json");
    std::ofstream(file) << doc.dump();
    return file.string();
  }

  // Runs a pipeline to the end; its run id.
  std::string Run(const Json& doc) {
    const CmdResult r = Baton("run " + Write(doc["name"], doc) + " --no-progress --json");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return Json::parse(r.out).at("run_id").get<std::string>();
  }

  Json Gc(bool apply) {
    const CmdResult r = Baton(std::string("store gc --json") + (apply ? " --apply" : ""));
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return Json::parse(r.out);
  }

  int Fsck() { return Baton("store fsck --json").exit_code; }

  store::BlobStoreStats Stats() { return store::BlobStore::Open(store_ / "blobs")->Stats(); }

  // Checkpoint digest -> (trial number, epoch) of the tune stage of a run
  // (its own, or the one it was cached from), with the epochs' values.
  struct TuneTrial {
    std::vector<std::string> checkpoints;  // by epoch
    std::vector<double> values;            // val_accuracy by epoch
    std::string initial;
  };
  std::map<int, TuneTrial> Tune(const std::string& run_id) {
    auto db = store::LineageDb::Open(store_ / "lineage.db");
    std::map<int, TuneTrial> out;
    for (const auto& s : db->GetStages(run_id)) {
      if (s.name != "tune") continue;
      for (const auto& t : db->GetTrials(s.cached_from != 0 ? s.cached_from : s.id)) {
        TuneTrial& tt = out[t.number];
        tt.initial = t.initial_checkpoint;
        for (const auto& e : db->GetEpochs(t.id)) {
          tt.checkpoints.push_back(e.checkpoint);
          tt.values.push_back(e.metrics.at("val_accuracy").get<double>());
        }
      }
    }
    return out;
  }

  // What {best_k: 1, last_k: 1} keeps of each trial: the best epoch
  // (earliest of equals) and the last.
  static std::set<std::string> Kept(const std::map<int, TuneTrial>& trials) {
    std::set<std::string> kept;
    for (const auto& [n, t] : trials) {
      size_t best = 0;
      for (size_t e = 1; e < t.values.size(); ++e) best = t.values[e] > t.values[best] ? e : best;
      kept.insert(t.checkpoints[best]);
      kept.insert(t.checkpoints.back());
    }
    return kept;
  }

  static std::set<std::string> All(const std::map<int, TuneTrial>& trials) {
    std::set<std::string> all;
    for (const auto& [n, t] : trials) {
      all.insert(t.initial);
      all.insert(t.checkpoints.begin(), t.checkpoints.end());
    }
    return all;
  }

  double ReleasedAt(const std::string& digest) {
    return store::LineageDb::Open(store_ / "lineage.db")->CheckpointReleasedAt(digest);
  }

  fs::path dir_;
  fs::path store_;
};

TEST_F(RetentionE2e, GcKeepsTheBestAndLastEpochsAndFreesTheRest) {
  const std::string run = Run(TunePipeline("keep", {0.05, 0.2}, 3));
  const auto trials = Tune(run);
  ASSERT_EQ(trials.size(), 2u);
  const std::set<std::string> kept = Kept(trials), all = All(trials);
  ASSERT_EQ(all.size(), 8u);  // 2 x (initial weights + 3 epochs)
  const size_t released = all.size() - kept.size();

  const store::BlobStoreStats before = Stats();
  const Json dry = Gc(false);
  EXPECT_EQ(dry["applied"], false);
  EXPECT_EQ(dry["released_checkpoints"], released) << dry.dump(2);
  ASSERT_EQ(dry["released"].size(), 1u) << dry.dump(2);
  EXPECT_EQ(dry["released"][0]["run_id"], run);
  EXPECT_EQ(dry["released"][0]["stage"], "tune");
  EXPECT_EQ(dry["released"][0]["checkpoints"], released);
  EXPECT_GT(dry["bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(dry["bytes_freed"], 0);
  EXPECT_EQ(Stats().bytes, before.bytes);  // a dry run deletes nothing
  for (const auto& d : all) EXPECT_EQ(ReleasedAt(d), 0) << "a dry run released " << d;
  EXPECT_EQ(Gc(false)["released_checkpoints"], released);  // and stays repeatable

  const Json applied = Gc(true);
  EXPECT_EQ(applied["applied"], true);
  EXPECT_EQ(applied["released_checkpoints"], released);
  EXPECT_EQ(applied["bytes_freed"], dry["bytes"]) << applied.dump(2);
  EXPECT_EQ(applied["unreferenced_blobs"], dry["unreferenced_blobs"]);
  const store::BlobStoreStats after = Stats();
  EXPECT_EQ(before.bytes - after.bytes, applied["bytes_freed"].get<uint64_t>());
  EXPECT_EQ(before.blobs - after.blobs, applied["unreferenced_blobs"].get<uint64_t>());
  for (const auto& d : all) EXPECT_EQ(ReleasedAt(d) == 0, kept.count(d) == 1) << d;
  EXPECT_EQ(Fsck(), 0);
  // `baton show` still lists every epoch and says which were released.
  const CmdResult show = Baton("show " + run + " --stage tune --json");
  ASSERT_EQ(show.exit_code, 0) << show.out;
  size_t marked = 0;
  const Json shown = Json::parse(show.out);
  for (const auto& t : shown.at("trials")) {
    EXPECT_EQ(t["epochs"].size(), 3u);
    for (const auto& e : t["epochs"]) {
      EXPECT_EQ(e.contains("released"), kept.count(e["checkpoint"]) == 0) << e.dump();
      marked += e.contains("released") ? 1 : 0;
    }
  }
  EXPECT_EQ(marked, released - 2);  // the two initial weights are no epochs
  const Json again = Gc(false);  // nothing more to do
  EXPECT_EQ(again["released_checkpoints"], 0);
  EXPECT_EQ(again["unreferenced_blobs"], 0);

  // Kept checkpoints are served whole; a released one is a clear 404; the
  // lineage still lists every epoch.
  testing::Server server(store_, "");
  httplib::Client c = server.Client();
  for (const auto& d : kept) {
    auto manifest = c.Get(("/api/v1/checkpoints/" + d).c_str());
    ASSERT_TRUE(manifest);
    EXPECT_EQ(manifest->status, 200) << manifest->body;
    auto weights = c.Get(("/api/v1/checkpoints/" + d + "/safetensors").c_str());
    ASSERT_TRUE(weights);
    EXPECT_EQ(weights->status, 200);
  }
  for (const auto& d : all) {
    if (kept.count(d)) continue;
    for (const std::string suffix : {"", "/safetensors"}) {
      auto res = c.Get(("/api/v1/checkpoints/" + d + suffix).c_str());
      ASSERT_TRUE(res);
      EXPECT_EQ(res->status, 404);
      EXPECT_NE(res->body.find("released by baton store gc"), std::string::npos) << res->body;
    }
  }
  EXPECT_EQ(Tune(run).at(0).checkpoints.size(), 3u);

  // Pins: a token is needed; pinning is idempotent; an unknown run is 404.
  auto anonymous = server.Client(/*with_token=*/false).Post(("/api/v1/runs/" + run + ":pin").c_str());
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
  for (int i = 0; i < 2; ++i) {
    auto pinned = c.Post(("/api/v1/runs/" + run + ":pin").c_str());
    ASSERT_TRUE(pinned);
    EXPECT_EQ(pinned->status, 200) << pinned->body;
    EXPECT_EQ(Json::parse(pinned->body)["pinned"], true);
  }
  auto unknown = c.Post("/api/v1/runs/no-such-run:pin");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 404);
  auto unpinned = c.Post(("/api/v1/runs/" + run + ":unpin").c_str());
  ASSERT_TRUE(unpinned);
  EXPECT_EQ(Json::parse(unpinned->body)["pinned"], false);
}

// A pinned run keeps every checkpoint through gc --apply.
// `baton serve` keeps checkpoint answers encoded between requests; gc
// through the server and a later run recording a released checkpoint again
// must show at once, not what was kept.
TEST_F(RetentionE2e, ServedCheckpointsFollowGcAndARecordingAgain) {
  const std::string run = Run(TunePipeline("served", {0.05, 0.2}, 3));
  const auto trials = Tune(run);
  const std::set<std::string> kept = Kept(trials), all = All(trials);
  testing::Server server(store_, "");
  httplib::Client c = server.Client();
  auto get = [&](const std::string& d) {
    auto res = c.Get(("/api/v1/checkpoints/" + d).c_str());
    EXPECT_TRUE(res);
    return res ? *res : httplib::Response{};
  };
  for (int round = 0; round < 2; ++round) {  // the second from what was kept
    for (const auto& d : all) EXPECT_EQ(get(d).status, 200) << d;
  }
  auto gc = c.Post("/api/v1/store:gc", R"({"apply": true})", "application/json");
  ASSERT_TRUE(gc);
  ASSERT_EQ(gc->status, 200) << gc->body;
  EXPECT_EQ(Json::parse(gc->body)["released_checkpoints"], all.size() - kept.size());
  for (const auto& d : all) {
    const httplib::Response res = get(d);
    EXPECT_EQ(res.status, kept.count(d) ? 200 : 404) << d << " " << res.body;
  }
  // Same seed and stage name: trial 0 starts from run 1's trial 0's initial
  // weights, released above, and records them again.
  const std::string initial = trials.at(0).initial;
  ASSERT_EQ(kept.count(initial), 0u);
  auto trigger = c.Post("/api/v1/runs", Json{{"pipeline", TunePipeline("served", {0.03}, 1)}}.dump(), "application/json");
  ASSERT_TRUE(trigger);
  ASSERT_EQ(trigger->status, 201) << trigger->body;
  const std::string run2 = Json::parse(trigger->body)["run_id"];
  std::string status = "pending";
  for (const auto give_up = std::chrono::steady_clock::now() + 120s;
       (status == "pending" || status == "running") && std::chrono::steady_clock::now() < give_up;) {
    std::this_thread::sleep_for(100ms);
    auto r = c.Get(("/api/v1/runs/" + run2).c_str());
    ASSERT_TRUE(r);
    status = Json::parse(r->body)["status"];
  }
  ASSERT_EQ(status, "succeeded");
  const httplib::Response again = get(initial);
  EXPECT_EQ(again.status, 200) << again.body;
}

// What the checkpoint page overlays on its lineage graph: gc's dry run for
// the checkpoints shown, with why each stays and what each would free.
TEST_F(RetentionE2e, TheRetentionRouteSaysWhatGcWouldDoToEachCheckpoint) {
  const std::string run = Run(TunePipeline("explain", {0.05, 0.2}, 3));
  const auto trials = Tune(run);
  const std::set<std::string> kept = Kept(trials), all = All(trials);
  testing::Server server(store_, "");
  httplib::Client c = server.Client();
  std::string list;
  for (const auto& d : all) list += (list.empty() ? "" : ",") + d;
  const std::string route = "/api/v1/store/retention?checkpoints=" + list;
  auto res = c.Get(route.c_str());
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json r = Json::parse(res->body);
  EXPECT_EQ(r["would_release"], all.size() - kept.size());
  uint64_t frees = 0;
  for (const auto& d : all) {
    const Json& one = r["checkpoints"][d];
    EXPECT_GT(one.value("bytes", uint64_t{0}), 0u) << one.dump();
    if (kept.count(d)) {
      EXPECT_EQ(one["state"], "kept") << d;
      // best_k, last_k or both (the best epoch may be the last).
      ASSERT_FALSE(one["reasons"].empty()) << one.dump();
      for (const auto& why : one["reasons"]) EXPECT_TRUE(why == "best_k" || why == "last_k") << one.dump();
    } else {
      EXPECT_EQ(one["state"], "would_release") << d;
      EXPECT_TRUE(one["reasons"].empty()) << one.dump();
      EXPECT_GT(one.value("frees_bytes", uint64_t{0}), 0u) << one.dump();
      EXPECT_LE(one["frees_bytes"].get<uint64_t>(), one["bytes"].get<uint64_t>()) << one.dump();
      frees += one["frees_bytes"].get<uint64_t>();
    }
  }
  // Bytes on the lineage graph's nodes.
  const std::string some = *kept.begin();
  auto lineage = c.Get(("/api/v1/lineage?node=checkpoint:" + some + "&direction=upstream&depth=3").c_str());
  ASSERT_TRUE(lineage);
  const Json nodes = Json::parse(lineage->body)["nodes"];
  EXPECT_EQ(nodes["checkpoint:" + some]["bytes"], r["checkpoints"][some]["bytes"]);
  bool dataset = false;
  for (const auto& [id, n] : nodes.items()) {
    if (id.rfind("artifact:", 0) == 0) dataset = n.value("bytes", uint64_t{0}) > 0;
  }
  EXPECT_TRUE(dataset) << nodes.dump();

  // What it says each would free, gc frees (blobs of these checkpoints
  // only: the rest of the store is referenced).
  auto gc = c.Post("/api/v1/store:gc", R"({"apply": true})", "application/json");
  ASSERT_TRUE(gc);
  ASSERT_EQ(gc->status, 200) << gc->body;
  EXPECT_EQ(Json::parse(gc->body)["bytes_freed"], frees) << gc->body;
  const Json after = Json::parse(c.Get(route.c_str())->body);
  for (const auto& d : all) {
    EXPECT_EQ(after["checkpoints"][d]["state"], kept.count(d) ? "kept" : "released") << d;
  }
  EXPECT_EQ(after["would_release"], 0);

  // Bad lists are refused, naming what is wrong; reads need the token.
  for (const std::string& bad : std::vector<std::string>{"", "abc", some + ",", some + ",xyz"}) {
    auto refused = c.Get(("/api/v1/store/retention?checkpoints=" + bad).c_str());
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 400) << bad << ": " << refused->body;
  }
  auto anonymous = server.Client(/*with_token=*/false).Get(route.c_str());
  ASSERT_TRUE(anonymous);
  EXPECT_EQ(anonymous->status, 401);
}

TEST_F(RetentionE2e, APinnedRunKeepsEveryCheckpoint) {
  const std::string run = Run(TunePipeline("pinned", {0.05}, 3));
  EXPECT_EQ(Baton("pin " + run).exit_code, 0);
  EXPECT_EQ(Baton("pin no-such-run").exit_code, 3);
  const store::BlobStoreStats before = Stats();
  const Json applied = Gc(true);
  EXPECT_EQ(applied["released_checkpoints"], 0) << applied.dump(2);
  EXPECT_EQ(Stats().blobs, before.blobs);
  EXPECT_EQ(Baton("unpin " + run).exit_code, 0);
  const auto trials = Tune(run);
  EXPECT_EQ(Gc(true)["released_checkpoints"], All(trials).size() - Kept(trials).size());
  EXPECT_EQ(Fsck(), 0);
}

// Demand: run B reuses run A's tune stage (a cache hit) and its train stage
// starts from epoch 0 of the best trial, an epoch {best_k: 1, last_k: 1}
// would release. B is killed before train resolves; gc keeps all of A's
// tune epochs; `baton resume` trains from epoch 0; gc then keeps that one.
TEST_F(RetentionE2e, AnInitFromThatHasNotResolvedKeepsWhatItMaySelect) {
  const Json a = TunePipeline("demand", {0.05, 0.2}, 3);
  const std::string run_a = Run(a);
  Json b = a;
  // A slow second tune stage of its own keeps B busy before train.
  b["stages"]["slow"] = a["stages"]["tune"];
  b["stages"]["slow"]["search_space"]["lr"]["values"] = {0.01, 0.02};
  b["stages"]["slow"]["budget"]["max_parallel"] = 1;
  b["stages"]["slow"]["budget"]["max_epochs"] = 4;
  b["stages"]["slow"].erase("checkpoints");
  b["stages"]["train"] = Json::parse(R"({"type": "train", "depends_on": ["tune", "slow"],
      "hyperparameters": {"from": "tune", "trial": "best"},
      "init_from": {"stage": "tune", "trial": "best", "epoch": 0}, "epochs": 1})");
  const std::string file = Write("demand-b", b);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    setenv("BATON_WORKER", BATON_WORKER_BIN, 1);
    FILE* f = freopen((dir_ / "killed-run.log").c_str(), "a", stdout);
    if (f != nullptr) dup2(fileno(stdout), 2);
    execl(BATON_BIN, "baton", "--store", store_.c_str(), "run", file.c_str(), "--no-progress",
          static_cast<char*>(nullptr));
    _exit(127);
  }
  ASSERT_GT(pid, 0);
  // Kill it once the slow stage has recorded an epoch: train is pending.
  std::string run_b;
  const auto give_up = std::chrono::steady_clock::now() + 120s;
  bool reached = false;
  while (!reached && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(20ms);
    try {
      auto db = store::LineageDb::Open(store_ / "lineage.db");
      for (const auto& r : db->ListRuns(10)) {
        if (r.id == run_a) continue;
        run_b = r.id;
        for (const auto& s : db->GetStages(r.id)) {
          if (s.name != "slow") continue;
          for (const auto& t : db->GetTrials(s.id)) reached = reached || !db->GetEpochs(t.id).empty();
        }
      }
    } catch (const std::exception&) {
    }
  }
  ASSERT_TRUE(reached) << "run B never recorded an epoch of its slow stage";
  ::kill(-pid, SIGKILL);  // baton and its workers
  int status = 0;
  waitpid(pid, &status, 0);
  {
    auto db = store::LineageDb::Open(store_ / "lineage.db");
    for (const auto& s : db->GetStages(run_b)) {
      if (s.name == "train") {
        ASSERT_EQ(s.status, "pending");
      }
      if (s.name == "tune") {
        ASSERT_EQ(s.status, "cached");
      }
    }
  }
  const auto trials = Tune(run_a);
  const std::set<std::string> all = All(trials);
  const Json kept_all = Gc(true);
  EXPECT_EQ(kept_all["released_checkpoints"], 0) << kept_all.dump(2);
  for (const auto& d : all) EXPECT_EQ(ReleasedAt(d), 0) << d;

  const CmdResult resumed = Baton("resume " + run_b + " --no-progress --json");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out;
  // Epoch 0 of the best trial.
  std::string selected;
  {
    auto db = store::LineageDb::Open(store_ / "lineage.db");
    for (const auto& s : db->GetStages(run_b)) {
      if (s.name != "train") continue;
      EXPECT_EQ(s.status, "succeeded");
      selected = s.resolved["init_from"].value("checkpoint", "");
    }
  }
  std::set<std::string> epoch0;
  for (const auto& [n, t] : trials) epoch0.insert(t.checkpoints.at(0));
  ASSERT_TRUE(epoch0.count(selected)) << "train started from " << selected;
  const Json applied = Gc(true);
  std::set<std::string> kept = Kept(trials);
  kept.insert(selected);
  EXPECT_EQ(applied["released_checkpoints"], all.size() - kept.size()) << applied.dump(2);
  EXPECT_EQ(ReleasedAt(selected), 0);
  EXPECT_EQ(Fsck(), 0);
}

// gc --apply while a run writes. `baton run` holds the store, so a separate
// `baton store gc --apply` is refused (exit 4) and the run is untouched;
// through `baton serve`, gc runs alongside its runs: it releases and frees
// an earlier run's epochs while a new run (whose trials start from the same
// initial weights as the released ones) writes, and that run finishes whole.
TEST_F(RetentionE2e, GcWhileARunWritesBreaksNothing) {
  const std::string run_a = Run(TunePipeline("writes", {0.05, 0.2}, 3));
  {
    const std::string file = Write("writes-cli", TunePipeline("writes-cli", {0.07}, 3));
    std::fflush(nullptr);
    FILE* run = popen(("BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN " --store " + store_.string() + " run " + file +
                       " --no-progress --json 2>>" + (dir_ / "cli-run.log").string())
                          .c_str(),
                      "r");
    ASSERT_NE(run, nullptr);
    // Once the run writes epochs, gc must be refused, not wait or interfere.
    bool writing = false;
    const auto give_up = std::chrono::steady_clock::now() + 60s;
    while (!writing && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(20ms);
      try {
        auto db = store::LineageDb::Open(store_ / "lineage.db");
        for (const auto& r : db->ListRuns(10)) {
          if (r.id == run_a) continue;
          for (const auto& s : db->GetStages(r.id)) {
            for (const auto& t : db->GetTrials(s.id)) writing = writing || (s.name == "tune" && !db->GetEpochs(t.id).empty());
          }
        }
      } catch (const std::exception&) {
      }
    }
    ASSERT_TRUE(writing);
    const CmdResult gc = Baton("store gc --apply --json");
    EXPECT_EQ(gc.exit_code, 4) << gc.out;
    std::string out;
    char buf[4096];
    for (size_t n; (n = fread(buf, 1, sizeof(buf), run)) > 0;) out.append(buf, n);
    const int status = pclose(run);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
    EXPECT_EQ(Json::parse(out)["status"], "succeeded") << out;
  }
  testing::Server server(store_, "");
  httplib::Client c = server.Client();
  // Not cached (other learning rates), same stage name and seed: trial 0's
  // initial weights are those of run A's trial 0.
  Json pipeline_c = TunePipeline("writes", {0.03, 0.3, 0.1}, 4);
  auto trigger = c.Post("/api/v1/runs", Json{{"pipeline", pipeline_c}}.dump(), "application/json");
  ASSERT_TRUE(trigger);
  ASSERT_EQ(trigger->status, 201) << trigger->body;
  const std::string run_c = Json::parse(trigger->body)["run_id"];
  uint64_t freed = 0, released = 0;
  int rounds = 0;
  std::string status = "pending";
  const auto give_up = std::chrono::steady_clock::now() + 180s;
  while (std::chrono::steady_clock::now() < give_up) {
    auto gc = c.Post("/api/v1/store:gc", R"({"apply": true})", "application/json");
    ASSERT_TRUE(gc);
    ASSERT_EQ(gc->status, 200) << gc->body;
    const Json report = Json::parse(gc->body);
    freed += report["bytes_freed"].get<uint64_t>();
    released += report["released_checkpoints"].get<uint64_t>();
    ++rounds;
    auto r = c.Get(("/api/v1/runs/" + run_c).c_str());
    ASSERT_TRUE(r);
    status = Json::parse(r->body)["status"];
    if (status != "pending" && status != "running") break;
    std::this_thread::sleep_for(30ms);
  }
  std::printf("[ gc while a run writes ] %d gc --apply rounds: %llu checkpoints released, %llu bytes freed\n", rounds,
              static_cast<unsigned long long>(released), static_cast<unsigned long long>(freed));
  EXPECT_EQ(status, "succeeded");
  EXPECT_GE(rounds, 2);
  EXPECT_GT(released, 0u);
  EXPECT_GT(freed, 0u);
  EXPECT_EQ(server.Stop(), 0);
  // Every epoch of the run that was written during gc is there and verifies.
  const auto trials = Tune(run_c);
  ASSERT_EQ(trials.size(), 3u);
  for (const auto& [n, t] : trials) EXPECT_EQ(t.checkpoints.size(), 4u) << "trial " << n;
  EXPECT_EQ(Fsck(), 0);
  // And once it is finished (perhaps by the last round above), its own
  // unkept epochs go too.
  Gc(true);
  const std::set<std::string> kept = Kept(trials);
  for (const auto& d : All(trials)) EXPECT_EQ(ReleasedAt(d) == 0, kept.count(d) == 1) << d;
  EXPECT_EQ(Fsck(), 0);
}

}  // namespace
}  // namespace baton
