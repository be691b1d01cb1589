// Command stages through the real binaries: a program run in the directory
// `baton` runs in, rerun only when its command, dependencies or params
// change, its outputs stored, restored and read by later stages, a trial's
// checkpoint handed to it as safetensors, its failure and timeout reported
// with its stderr, and its logs shown by `baton logs`.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "common/json_util.h"
#include "tests/e2e/serve_process.h"
#include "tests/support/shell.h"

namespace baton {
namespace {

using testing::Capture;
using testing::CmdResult;
namespace fs = std::filesystem;

class CommandStageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("baton-command-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(dir_);
  }

  void Write(const std::string& rel, const std::string& text) {
    fs::create_directories((dir_ / rel).parent_path());
    std::ofstream(dir_ / rel, std::ios::binary | std::ios::trunc) << text;
  }
  std::string Read(const std::string& rel) const {
    std::ifstream in(dir_ / rel, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // `baton ARGS` run in the test's folder (the run's working directory).
  CmdResult Baton(const std::string& args, const std::string& redirect = "2>>baton-stderr.log") const {
    return Capture("cd " + dir_.string() + " && BATON_WORKER=" BATON_WORKER_BIN " " BATON_BIN
                   " --store store " + args + " " + redirect);
  }
  // Runs `doc` to its end: the run's id.
  std::string Run(const Json& doc, int expect_exit = 0) {
    std::ofstream(dir_ / "pipeline.json", std::ios::trunc) << doc.dump(2);
    CmdResult r = Baton("run pipeline.json --json");
    EXPECT_EQ(r.exit_code, expect_exit) << r.out << Read("baton-stderr.log");
    try {
      return Json::parse(r.out).at("run_id").get<std::string>();
    } catch (const std::exception&) {
      ADD_FAILURE() << "no run id in: " << r.out;
      return "";
    }
  }
  Json Stage(const std::string& run, const std::string& stage) {
    CmdResult r = Baton("show " + run + " --stage " + stage + " --json");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return Json::parse(r.out);
  }
  static int Lines(const std::string& text) { return static_cast<int>(std::count(text.begin(), text.end(), '\n')); }

  fs::path dir_;
};

Json CopyPipeline(const std::string& script, int n) {
  Json doc = {{"schema_version", "1"}, {"name", "command-copy"}};
  doc["stages"]["copy"] = {{"type", "command"},
                           {"cmd", {"/bin/sh", "-c", script, "copy", "${params.n}"}},
                           {"deps", {"data/in.txt", "data/"}},
                           {"outs", {"out/copy.txt", "out/parts"}},
                           {"params", {{"n", n}}}};
  return doc;
}

// Writes the input and a line per parameter, and counts its own runs in
// runs.log (not an out: it survives a restore).
const char* kCopyScript =
    "mkdir -p out/parts && cat data/in.txt > out/copy.txt && echo \"n=$1\" >> out/copy.txt && "
    "echo part > out/parts/a.txt && echo ran >> runs.log";

TEST_F(CommandStageTest, RerunsOnlyWhenItsCommandDependenciesOrParamsChange) {
  Write("data/in.txt", "hello\n");
  std::string run = Run(CopyPipeline(kCopyScript, 1));
  EXPECT_EQ(Stage(run, "copy")["status"], "succeeded");
  EXPECT_EQ(Read("out/copy.txt"), "hello\nn=1\n");
  EXPECT_EQ(Lines(Read("runs.log")), 1);

  run = Run(CopyPipeline(kCopyScript, 1));
  EXPECT_EQ(Stage(run, "copy")["status"], "cached");
  EXPECT_EQ(Lines(Read("runs.log")), 1) << "unchanged: the command must not run again";

  // Like `dvc checkout`: a cached stage puts its outputs back.
  fs::remove(dir_ / "out/copy.txt");
  Write("out/parts/a.txt", "edited\n");
  run = Run(CopyPipeline(kCopyScript, 1));
  EXPECT_EQ(Stage(run, "copy")["status"], "cached");
  EXPECT_EQ(Read("out/copy.txt"), "hello\nn=1\n");
  EXPECT_EQ(Read("out/parts/a.txt"), "part\n");
  EXPECT_EQ(Lines(Read("runs.log")), 1);

  Write("data/in.txt", "changed\n");
  run = Run(CopyPipeline(kCopyScript, 1));
  EXPECT_EQ(Stage(run, "copy")["status"], "succeeded") << "a dependency changed";
  EXPECT_EQ(Read("out/copy.txt"), "changed\nn=1\n");
  EXPECT_EQ(Lines(Read("runs.log")), 2);

  Write("data/extra.txt", "new file in a folder dependency\n");
  run = Run(CopyPipeline(kCopyScript, 1));
  EXPECT_EQ(Stage(run, "copy")["status"], "succeeded") << "a file was added to a folder dependency";
  EXPECT_EQ(Lines(Read("runs.log")), 3);

  run = Run(CopyPipeline(kCopyScript, 2));
  EXPECT_EQ(Stage(run, "copy")["status"], "succeeded") << "a param changed";
  EXPECT_EQ(Read("out/copy.txt"), "changed\nn=2\n");
  EXPECT_EQ(Lines(Read("runs.log")), 4);

  run = Run(CopyPipeline(std::string(kCopyScript) + " && true", 2));
  EXPECT_EQ(Stage(run, "copy")["status"], "succeeded") << "the command changed";
  EXPECT_EQ(Lines(Read("runs.log")), 5);

  // The outputs are one "files" artifact, derived from the stage.
  const Json stage = Stage(run, "copy");
  const std::string output = stage["output"].get<std::string>();
  CmdResult lineage = Baton("lineage " + output + " --json");
  ASSERT_EQ(lineage.exit_code, 0) << lineage.out;
  EXPECT_NE(lineage.out.find("stage:" + std::to_string(stage["stage_id"].get<int64_t>())), std::string::npos)
      << lineage.out;
}

TEST_F(CommandStageTest, ParamsReachTheCommandInItsArgumentsEnvironmentAndParamsFile) {
  Json doc = {{"schema_version", "1"}, {"name", "command-params"}};
  doc["stages"]["show"] = {
      {"type", "command"},
      {"cmd", {"/bin/sh", "-c", "mkdir -p out && echo \"$1 $MODE $BATON_STAGE\" > out/p.txt && cat \"$BATON_PARAMS\" >> out/p.txt",
               "show", "--rows=${params.rows}"}},
      {"env", {{"MODE", "mode-${params.mode}"}}},
      {"outs", {"out/p.txt"}},
      {"params", {{"rows", 40}, {"mode", "fast"}, {"dry", true}}}};
  const std::string run = Run(doc);
  EXPECT_EQ(Stage(run, "show")["status"], "succeeded");
  const std::string text = Read("out/p.txt");
  const size_t line_end = text.find('\n');
  ASSERT_NE(line_end, std::string::npos) << text;
  EXPECT_EQ(text.substr(0, line_end), "--rows=40 mode-fast show");
  EXPECT_EQ(Json::parse(text.substr(line_end + 1)), (Json{{"rows", 40}, {"mode", "fast"}, {"dry", true}}));
}

TEST_F(CommandStageTest, AFailureShowsTheExitStatusAndStderrAndLogsShowsBothStreams) {
  Json doc = {{"schema_version", "1"}, {"name", "command-fails"}};
  doc["stages"]["check"] = {
      {"type", "command"},
      {"cmd", {"/bin/sh", "-c", "echo checking rows; echo 'bad input: row 7 has 3 columns' >&2; exit 3"}}};
  const std::string run = Run(doc, /*expect_exit=*/1);
  const Json stage = Stage(run, "check");
  EXPECT_EQ(stage["status"], "failed");
  const std::string error = stage["error"].get<std::string>();
  EXPECT_NE(error.find("exited with status 3"), std::string::npos) << error;
  EXPECT_NE(error.find("bad input: row 7 has 3 columns"), std::string::npos) << error;

  CmdResult logs = Baton("logs " + run + " check", "2>logs-stderr.txt");
  EXPECT_EQ(logs.exit_code, 0);
  EXPECT_EQ(logs.out, "checking rows\n");
  EXPECT_EQ(Read("logs-stderr.txt"), "bad input: row 7 has 3 columns\n");

  CmdResult json = Baton("logs " + run + " check --json");
  ASSERT_EQ(json.exit_code, 0);
  EXPECT_EQ(Json::parse(json.out)["stderr"], "bad input: row 7 has 3 columns\n");

  CmdResult none = Baton("logs " + run + " nosuchstage", "2>&1");
  EXPECT_NE(none.exit_code, 0);

  // gc keeps what the lineage refers to, the logs included.
  ASSERT_EQ(Baton("store gc --apply", "2>&1").exit_code, 0);
  CmdResult after_gc = Baton("logs " + run + " check", "2>logs-stderr.txt");
  EXPECT_EQ(after_gc.exit_code, 0);
  EXPECT_EQ(after_gc.out, "checking rows\n");
  EXPECT_EQ(Read("logs-stderr.txt"), "bad input: row 7 has 3 columns\n");
}

TEST_F(CommandStageTest, LogsAreServedOverHttpAndThroughBatonServer) {
  Json doc = {{"schema_version", "1"}, {"name", "command-logs"}};
  doc["stages"]["say"] = {{"type", "command"}, {"cmd", {"/bin/sh", "-c", "echo out-line; echo err-line >&2"}}};
  const std::string run = Run(doc);
  testing::Server server(dir_ / "store", "");
  httplib::Client client("127.0.0.1", server.port);
  const httplib::Headers auth = {{"Authorization", "Bearer " + server.token}};
  auto res = client.Get(("/api/v1/runs/" + run + "/stages/say/logs").c_str(), auth);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const Json logs = Json::parse(res->body);
  EXPECT_EQ(logs["stdout"], "out-line\n");
  EXPECT_EQ(logs["stderr"], "err-line\n");
  EXPECT_EQ(logs["attempt"], 1);
  res = client.Get(("/api/v1/runs/" + run + "/stages/nope/logs").c_str(), auth);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);

  CmdResult remote = Capture("cd " + dir_.string() + " && " BATON_BIN " --server http://127.0.0.1:" +
                             std::to_string(server.port) + " --token " + server.token + " logs " + run +
                             " say 2>/dev/null");
  EXPECT_EQ(remote.exit_code, 0);
  EXPECT_EQ(remote.out, "out-line\n");
}

TEST_F(CommandStageTest, AServerRunsCommandsSentOverHttpOnlyWithAllowCommands) {
  // Without the flag a command pipeline is refused (403) before anything
  // runs; with it, the same pipeline runs and its logs are served.
  const fs::path marker = dir_ / "ran.txt";
  Json doc = {{"schema_version", "1"}, {"name", "command-http"}};
  doc["stages"]["say"] = {{"type", "command"},
                          {"cmd", {"/bin/sh", "-c", "echo over-http; echo ran > " + marker.string()}}};
  const std::string body = Json{{"pipeline", doc}}.dump();
  {
    testing::Server closed(dir_ / "store", "");
    auto res = closed.Client().Post("/api/v1/runs", body, "application/json");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 403) << res->body;
    EXPECT_NE(res->body.find("--allow-commands"), std::string::npos) << res->body;
  }
  EXPECT_FALSE(fs::exists(marker));

  testing::Server open(dir_ / "store", "--allow-commands");
  httplib::Client client = open.Client();
  auto res = client.Post("/api/v1/runs", body, "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 201) << res->body;
  const std::string run = Json::parse(res->body).at("run_id").get<std::string>();
  std::string status;
  for (int i = 0; i < 600 && status != "succeeded" && status != "failed"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto got = client.Get(("/api/v1/runs/" + run).c_str());
    ASSERT_TRUE(got);
    status = Json::parse(got->body).value("status", "");
  }
  ASSERT_EQ(status, "succeeded");
  EXPECT_EQ(Read("ran.txt"), "ran\n");
  auto logs = client.Get(("/api/v1/runs/" + run + "/stages/say/logs").c_str());
  ASSERT_TRUE(logs);
  EXPECT_EQ(Json::parse(logs->body).value("stdout", ""), "over-http\n");
}

TEST_F(CommandStageTest, ATimeoutKillsTheCommand) {
  Json doc = {{"schema_version", "1"}, {"name", "command-timeout"}};
  // The child sleep is in the command's process group: it dies too.
  doc["stages"]["slow"] = {{"type", "command"},
                           {"cmd", {"/bin/sh", "-c", "sleep 60 & echo $! > sleeper.pid; wait"}},
                           {"timeout_seconds", 1}};
  const auto t0 = std::chrono::steady_clock::now();
  const std::string run = Run(doc, /*expect_exit=*/1);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 40) << "the command sleeps 60 s; the timeout is 1 s";
  const Json stage = Stage(run, "slow");
  EXPECT_EQ(stage["status"], "failed");
  EXPECT_NE(stage["error"].get<std::string>().find("timed out after 1 s"), std::string::npos) << stage["error"];
  const std::string pid = Read("sleeper.pid");
  ASSERT_FALSE(pid.empty());
  const pid_t sleeper = std::stoi(pid);
  // Running: it exists and is not a zombie waiting for a reaper.
  auto running = [&] {
    if (kill(sleeper, 0) != 0) return false;
    std::ifstream stat("/proc/" + std::to_string(sleeper) + "/stat");
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
  };
  for (int i = 0; i < 50 && running(); ++i) usleep(100 * 1000);
  EXPECT_FALSE(running()) << "the command's child " << sleeper << " outlived the timeout";
}

// gen writes a CSV; prep reads it; tune trains on it; export gets the best
// trial's last epoch as safetensors and lists its tensors; train trains.
Json CsvPipeline() {
  Json doc = {{"schema_version", "1"}, {"name", "command-csv"}, {"seed", 5}};
  const std::string awk =
      "BEGIN { srand(3); print \"x0,x1,x2,label\"; for (i = 0; i < rows; i++) { "
      "a = rand(); b = rand(); c = rand(); printf \"%.4f,%.4f,%.4f,%d\\n\", a, b, c, (a + b > 1) } }";
  // The shell sends awk's stdout to the out.
  doc["stages"]["gen"] = {
      {"type", "command"},
      {"cmd", {"/bin/sh", "-c", "mkdir -p data && \"$@\" > data/gen.csv", "gen", "/usr/bin/awk", "-v",
               "rows=${params.rows}", awk}},
      {"outs", {"data/gen.csv"}},
      {"params", {{"rows", 400}}}};
  doc["stages"]["prep"] = {{"type", "prepare"},
                           {"depends_on", {"gen"}},
                           {"dataset", {{"format", "csv"}, {"path", "data/gen.csv"}}},
                           {"validation_fraction", 0.2},
                           {"test_fraction", 0.2},
                           {"normalize", true}};
  const Json model = Json::parse(R"({"layers": [{"name": "fc", "type": "linear", "out_features": 2}]})");
  doc["stages"]["tune"] = {{"type", "tune"},
                           {"depends_on", {"prep"}},
                           {"model", model},
                           {"hyperparameters", {{"batch_size", 32}, {"optimizer", "sgd"}}},
                           {"search_space", {{"lr", {{"type", "categorical"}, {"values", Json::array({0.1})}}}}},
                           {"sampler", {{"type", "grid"}}},
                           {"objective", {{"metric", "val_accuracy"}, {"mode", "max"}}},
                           {"budget", {{"max_trials", 1}, {"max_epochs", 1}}}};
  const std::string python =
      "import json, struct\n"
      "raw = open('ckpt/best.safetensors', 'rb').read()\n"
      "n = struct.unpack('<Q', raw[:8])[0]\n"
      "header = json.loads(raw[8:8 + n])\n"
      "names = sorted(k for k in header if k != '__metadata__')\n"
      "end = max(header[k]['data_offsets'][1] for k in names)\n"
      "assert len(raw) == 8 + n + end, (len(raw), n, end)\n"
      "open('out/names.txt', 'w').write('\\n'.join(names))\n";
  doc["stages"]["export"] = {
      {"type", "command"},
      {"depends_on", {"tune"}},
      {"cmd", {"/bin/sh", "-c", "mkdir -p out && exec \"$@\"", "export", "/usr/bin/python3", "-c", python}},
      {"deps", Json::array({Json{{"checkpoint", {{"stage", "tune"}, {"trial", "best"}, {"epoch", "last"}}},
                                 {"path", "ckpt/best.safetensors"}}})},
      {"outs", {"out/names.txt"}}};
  doc["stages"]["train"] = {{"type", "train"},
                            {"depends_on", {"prep"}},
                            {"model", model},
                            {"hyperparameters", {{"batch_size", 32}, {"optimizer", "sgd"}, {"lr", 0.1}}},
                            {"epochs", 1}};
  return doc;
}

TEST_F(CommandStageTest, OutputsFeedPrepareTrainingAndACheckpointReachesACommandAsSafetensors) {
  const std::string run = Run(CsvPipeline());
  ASSERT_FALSE(run.empty());
  EXPECT_EQ(Lines(Read("data/gen.csv")), 401);
  EXPECT_EQ(Stage(run, "prep")["status"], "succeeded");
  const Json train = Stage(run, "train");
  EXPECT_EQ(train["status"], "succeeded");
  EXPECT_EQ(train["model"]["epochs"], 1);
  EXPECT_EQ(Read("out/names.txt"), "fc.bias\nfc.weight");
  const Json exported = Stage(run, "export");
  EXPECT_EQ(exported["status"], "succeeded");
  const Json tune = Stage(run, "tune");
  EXPECT_EQ(exported["resolved"]["deps"][0]["checkpoint"]["checkpoint"],
            tune["trials"][0]["epochs"].back()["checkpoint"]);

  // The checkpoint the command read is upstream of its stage.
  const std::string node = "stage:" + std::to_string(exported["stage_id"].get<int64_t>());
  CmdResult lineage = Baton("lineage " + node + " --json");
  ASSERT_EQ(lineage.exit_code, 0) << lineage.out;
  EXPECT_NE(lineage.out.find(exported["resolved"]["deps"][0]["checkpoint"]["checkpoint"].get<std::string>()),
            std::string::npos);

  // Everything cached; the deleted CSV comes back before prep's cache key
  // hashes it, so prep and all after it stay cached.
  fs::remove(dir_ / "data/gen.csv");
  fs::remove(dir_ / "out/names.txt");
  const std::string again = Run(CsvPipeline());
  for (const char* s : {"gen", "prep", "tune", "export", "train"}) {
    EXPECT_EQ(Stage(again, s)["status"], "cached") << s;
  }
  EXPECT_EQ(Lines(Read("data/gen.csv")), 401);
  EXPECT_EQ(Read("out/names.txt"), "fc.bias\nfc.weight");
}

}  // namespace
}  // namespace baton
