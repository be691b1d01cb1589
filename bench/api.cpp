// REST API throughput and latency: wrk against `baton serve` and against a
// bare cpp-httplib server that answers the same paths with the same bytes.
//   1. The bench writes a store through the store's own API, as a finished
//      run would have left it: a pipeline, a run with a prepare stage and a
//      tune stage of T trials x E epochs (flatten -> linear 10 on
//      Fashion-MNIST; each epoch's metrics as the trainer records them, and
//      a checkpoint per epoch, lineage edges and blob accounting included).
//      Trial 0's last checkpoint is real: its manifest and two tensors
//      (fc.weight 10x784, fc.bias 10; seeded random float32) are in the blob
//      store; the other checkpoints are lineage rows only.
//   2. `baton serve --public-read` on that store, on a free loopback port.
//   3. The bare server, in this process: same cpp-httplib, TCP_NODELAY, as
//      many request threads as serve (16), keep-alive as serve's; its answers
//      are the bodies Baton returned, fetched once. It is the floor: what
//      serving these bytes costs here without Baton's lookups and encoding.
//   4. For GET /api/v1/runs/{run_id}, GET /api/v1/checkpoints/{digest} (trial
//      0's last checkpoint) and GET /api/v1/runs/{run_id}/stages/tune/metrics
//      (every trial's per-epoch metrics in one answer): wrk -t2 -cC -dSs
//      --timeout 30s --latency, Baton then bare. All traffic stays on
//      127.0.0.1; each measurement lasts S seconds. A route that `baton serve`
//      answers with 404 is reported as missing.
//
//   build/bench/bench_api [--seconds 5] [--connections 8] [--trials 1000]
//       [--epochs 50] [--baton PATH] [--wrk wrk] [--dir /tmp] [--keep 0]
//   build/bench/bench_api --fill-only DIR [--trials 1000] [--epochs 50]
//       only writes that store into DIR and prints {"run_id", ...}: the web
//       UI's benchmark (bench/web_ui.mjs) serves it to Chromium.
#include <fcntl.h>
#include <httplib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_common.h"
#include "common/digest.h"
#include "common/json_util.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"

namespace {

namespace fs = std::filesystem;
using baton::Json;

// `serve`'s request threads (api::ServeOptions::threads in api/internal/cli.h): the
// bare server gets as many, so neither queues connections the other serves.
constexpr int kServerThreads = 16;

struct Options {
  int seconds = 5;      // wrk -d, per measurement
  int connections = 8;  // wrk -c
  int trials = 1000;    // tune trials in the store
  int epochs = 50;      // epochs per trial
  std::string baton;    // default: ../api/baton beside this binary
  std::string wrk = "wrk";
  std::string base = "/tmp";  // the bench's folder is created under it
  bool keep = false;          // keep the store and logs
  std::string fill_only;      // write the store here, print {"run_id"} and stop (bench/web_ui.mjs)
};

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Starts argv with stdout to `out` and stderr appended to `err`. SIGPIPE goes
// back to its default in the child, so Baton runs as it would from a shell.
pid_t Spawn(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    std::signal(SIGPIPE, SIG_DFL);
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out_fd < 0 || err_fd < 0) _exit(127);
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    execv(args[0], args.data());
    std::fprintf(stderr, "cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  return pid;
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// A child process that gets SIGTERM when this goes out of scope, also on the
// way out of an error; SIGKILL if it has not ended 10 s later.
class Child {
 public:
  Child(pid_t pid, std::string name) : pid_(pid), name_(std::move(name)) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { Terminate(); }

  // The wait status if the child has ended (it is then reaped), else nullopt.
  std::optional<int> Ended() {
    int status = 0;
    if (pid_ < 0 || waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
    pid_ = -1;
    return status;
  }

  void Terminate() {
    if (pid_ < 0) return;
    kill(pid_, SIGTERM);
    for (int i = 0; i < 1000; ++i) {
      if (auto status = Ended()) {
        const bool clean = *status == 0 || (WIFSIGNALED(*status) && WTERMSIG(*status) == SIGTERM);
        if (!clean) std::fprintf(stderr, "%s: %s after SIGTERM\n", name_.c_str(), DescribeStatus(*status).c_str());
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::fprintf(stderr, "%s ignored SIGTERM for 10 s; killing it\n", name_.c_str());
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_;
  std::string name_;
};

Json PipelineJson(int trials, int epochs) {
  Json pipeline = Json::parse(R"({
  "schema_version": "1",
  "name": "bench-api",
  "seed": 7,
  "stages": {
    "prep": {"type": "prepare",
             "dataset": {"format": "idx", "path": "/usr/share/datasets/fashion-mnist"},
             "train_subset": 100, "test_subset": 10, "validation_fraction": 0.1, "normalize": true},
    "tune": {"type": "tune", "depends_on": ["prep"],
             "model": {"layers": [{"name": "flat", "type": "flatten"},
                                  {"name": "fc", "type": "linear", "out_features": 10}]},
             "search_space": {"lr": {"type": "float", "low": 0.001, "high": 0.3, "log": true}},
             "objective": {"metric": "val_accuracy", "mode": "max"},
             "budget": {"max_trials": 2, "max_parallel": 1, "max_epochs": 1}}
  }
})");
  pipeline["stages"]["tune"]["budget"] = {{"max_trials", trials}, {"max_parallel", 1}, {"max_epochs", epochs}};
  return pipeline;
}

// What the URLs name: the run, its tune stage, and one trial's last
// checkpoint (the only one whose weights are in the blob store).
struct Target {
  std::string run_id;
  std::string stage = "tune";
  std::string checkpoint;
};

// The real checkpoint of flatten -> linear 10 on 28x28 images: its tensors
// and manifest go into `blobs`. Returns the manifest's digest; `blob_list`
// gets the (digest, size) of its three blobs, as RecordEpoch takes them.
std::string PutCheckpoint(baton::store::BlobStore& blobs,
                          std::vector<std::pair<std::string, uint64_t>>* blob_list) {
  std::mt19937 random(7);
  std::uniform_real_distribution<float> weight(-0.05f, 0.05f);
  baton::store::Manifest manifest;
  for (const auto& [name, shape] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"fc.bias", {10}}, {"fc.weight", {10, 784}}}) {
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    std::vector<float> values(numel);
    for (float& v : values) v = weight(random);
    const std::string bytes(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
    baton::store::TensorEntry t{name, "float32", shape, blobs.Put(bytes), bytes.size()};
    blob_list->emplace_back(t.blob, t.bytes);
    manifest.tensors.push_back(std::move(t));
  }
  const std::string bytes = baton::store::ManifestBytes(manifest);
  const std::string digest = blobs.Put(bytes);
  blob_list->emplace_back(digest, bytes.size());
  return digest;
}

// A finished run of PipelineJson written through the store's API (see the
// comment at the top), in one transaction.
Target FillStore(const fs::path& store, int trials, int epochs) {
  auto blobs = baton::store::BlobStore::Open(store / "blobs");
  auto db = baton::store::LineageDb::Open(store / "lineage.db");
  const Json pipeline = PipelineJson(trials, epochs);
  const std::string pipeline_id = baton::Sha256Hex(baton::CanonicalJson(pipeline));
  Target target;
  target.run_id = "20261205-120000-be01";
  std::vector<std::pair<std::string, uint64_t>> real_blobs;
  target.checkpoint = PutCheckpoint(*blobs, &real_blobs);
  const double start = static_cast<double>(std::time(nullptr)) - 3600;
  std::mt19937 random(11);
  std::uniform_real_distribution<double> unit(0, 1);
  db->InTransaction([&] {
    db->PutPipeline(pipeline_id, "bench-api", pipeline);
    db->CreateRun({target.run_id, pipeline_id, "bench-api", "succeeded", start, start + 3000, ""});
    baton::store::StageRecord prep;
    prep.run_id = target.run_id;
    prep.name = "prep";
    prep.type = "prepare";
    prep.status = "succeeded";
    prep.spec = pipeline["stages"]["prep"];
    prep.started_at = start;
    prep.finished_at = start + 2;
    db->AddStage(prep);
    baton::store::StageRecord tune = prep;
    tune.name = target.stage;
    tune.type = "tune";
    tune.spec = pipeline["stages"]["tune"];
    tune.started_at = start + 2;
    tune.finished_at = start + 3000;
    const int64_t stage_id = db->AddStage(tune);
    for (int n = 0; n < trials; ++n) {
      baton::store::TrialRecord trial;
      trial.stage_id = stage_id;
      trial.number = n;
      trial.kind = "train";
      const double lr = 0.001 * std::pow(300.0, unit(random));
      trial.hyperparameters = {{"lr", lr}};
      trial.seed = 7 + n;
      trial.status = "succeeded";
      trial.attempts = 1;
      trial.started_at = start + 2 + n;
      trial.finished_at = start + 3 + n;
      trial.id = db->AddTrial(trial);
      double loss = 2.3;
      for (int e = 0; e < epochs; ++e) {
        loss *= 0.9 + 0.08 * unit(random);
        const Json metrics = {{"train_loss", loss},
                              {"lr", lr},
                              {"samples_per_second", 40000 + 5000 * unit(random)},
                              {"val_loss", loss * 1.1},
                              {"val_accuracy", 1 - loss / 2.5}};
        const bool real = n == 0 && e == epochs - 1;
        const std::string checkpoint =
            real ? target.checkpoint
                 : baton::Sha256Hex("bench-api trial " + std::to_string(n) + " epoch " + std::to_string(e));
        db->RecordEpoch({trial.id, e, metrics, checkpoint, 0.02, trial.started_at + 0.02 * (e + 1)},
                        real ? real_blobs : std::vector<std::pair<std::string, uint64_t>>{{checkpoint, 300}});
        trial.output = checkpoint;
      }
      db->UpdateTrial(trial);
    }
  });
  return target;
}

// `baton serve` on `store`, from its first stdout line
// "listening on http://127.0.0.1:PORT"; stopped with SIGTERM on destruction.
class ServeProcess {
 public:
  ServeProcess(const std::string& baton, const fs::path& store, const fs::path& dir)
      : child_(Spawn({baton, "--store", store.string(), "serve", "--host", "127.0.0.1", "--port", "0",
                      "--public-read"},
                     dir / "serve.out", dir / "serve.log"),
               "baton serve") {
    const std::string prefix = "listening on ";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string out = ReadFile(dir / "serve.out");
      const size_t eol = out.find('\n');
      if (eol != std::string::npos) {
        if (out.compare(0, prefix.size(), prefix) != 0) {
          throw std::runtime_error("baton serve's first line is not \"" + prefix + "URL\": " + out.substr(0, eol));
        }
        url_ = out.substr(prefix.size(), eol - prefix.size());
        if (!url_.empty() && url_.back() == '\r') url_.pop_back();
        // The bench sends traffic to loopback only.
        if (url_.rfind("http://127.0.0.1:", 0) != 0) throw std::runtime_error("baton serve is not on 127.0.0.1: " + url_);
        return;
      }
      if (auto status = child_.Ended()) {
        throw std::runtime_error("baton serve ended (" + DescribeStatus(*status) + ") before printing its address; see " +
                                 (dir / "serve.log").string());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("baton serve printed no complete \"" + prefix + "URL\" line on stdout within 60 s");
  }

  const std::string& url() const { return url_; }

 private:
  Child child_;
  std::string url_;
};

// The body of a 200 answer; nullopt for a 404 (a route this server lacks:
// everything the bench asks for is in the store).
std::optional<std::string> Fetch(const std::string& base_url, const std::string& path) {
  httplib::Client client(base_url);
  auto res = client.Get(path.c_str());
  if (!res) throw std::runtime_error("GET " + base_url + path + ": " + httplib::to_string(res.error()));
  if (res->status == 404) {
    std::fprintf(stderr, "GET %s answered 404 (route missing?): %s\n", path.c_str(), res->body.c_str());
    return std::nullopt;
  }
  if (res->status != 200) {
    throw std::runtime_error("GET " + base_url + path + " answered " + std::to_string(res->status) + ": " + res->body);
  }
  return res->body;
}

// A cpp-httplib server that answers GET <path> with bodies[path], nothing
// else. Configured as api::HttpServer configures its server, so that the
// difference to Baton is Baton's own work per request.
class BareServer {
 public:
  explicit BareServer(std::map<std::string, std::string> bodies) : bodies_(std::move(bodies)) {
    server_.set_tcp_nodelay(true);
    server_.new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
    // cpp-httplib's default closes a connection after 5 requests; serve keeps it.
    server_.set_keep_alive_max_count(100000);
    server_.Get(R"(/api/v1/.*)", [this](const httplib::Request& req, httplib::Response& res) {
      const auto it = bodies_.find(req.path);
      if (it == bodies_.end()) {
        res.status = 404;
        return;
      }
      res.set_content(it->second, "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("the bare server cannot listen on 127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~BareServer() {
    server_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  std::map<std::string, std::string> bodies_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

std::string RunCommand(const std::string& command, int* status) {
  FILE* pipe = popen(command.c_str(), "r");
  if (!pipe) throw std::runtime_error("cannot run " + command);
  std::string out;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof(buf), pipe)) > 0) out.append(buf, got);
  *status = pclose(pipe);
  return out;
}

// "123.45us" / "1.20ms" / "2.00s" -> milliseconds.
double LatencyMs(const std::string& text) {
  size_t end = 0;
  const double value = std::stod(text, &end);
  const std::string unit = text.substr(end);
  if (unit == "us") return value / 1e3;
  if (unit == "ms") return value;
  if (unit == "s") return value * 1e3;
  throw std::runtime_error("wrk latency in an unknown unit: " + text);
}

struct WrkResult {
  double requests_per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  std::string socket_errors;  // wrk's "Socket errors:" line, when it has one
};

// Reads wrk's --latency report. Error answers would make a fast but
// meaningless rate, so any non-2xx/3xx answer fails the bench.
WrkResult ParseWrk(const std::string& out) {
  WrkResult r;
  int found = 0;
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string first, second;
    words >> first >> second;
    if (first == "Requests/sec:") {
      r.requests_per_second = std::stod(second);
      ++found;
    } else if (first == "50%") {
      r.p50_ms = LatencyMs(second);
      ++found;
    } else if (first == "99%") {
      r.p99_ms = LatencyMs(second);
      ++found;
    } else if (first == "Non-2xx") {
      throw std::runtime_error("wrk got error answers: " + line);
    } else if (first == "Socket") {
      r.socket_errors = line.substr(line.find_first_not_of(' '));
    }
  }
  if (found != 3) throw std::runtime_error("cannot read wrk's report:\n" + out);
  return r;
}

WrkResult RunWrk(const Options& options, const std::string& url) {
  const int threads = std::min(2, options.connections);  // wrk needs connections >= threads
  const std::string command = Quote(options.wrk) + " -t" + std::to_string(threads) + " -c" +
                              std::to_string(options.connections) + " -d" + std::to_string(options.seconds) +
                              "s --timeout 30s --latency " + Quote(url) + " 2>&1";
  int status = 0;
  const std::string out = RunCommand(command, &status);
  if (status != 0) throw std::runtime_error(command + " failed:\n" + out);
  return ParseWrk(out);
}

std::string WrkVersion(const std::string& wrk) {
  int status = 0;  // wrk --version exits 1 after printing its version
  std::string out = RunCommand(Quote(wrk) + " --version 2>&1", &status);
  out = out.substr(0, out.find('\n'));
  const size_t copyright = out.find(" Copyright");
  if (copyright != std::string::npos) out.resize(copyright);
  if (out.compare(0, 4, "wrk ") != 0) throw std::runtime_error("cannot run " + wrk + ": " + out);
  return out;
}

struct Row {
  std::string route;   // e.g. GET /api/v1/runs/{run_id}
  std::string server;  // baton | bare
  WrkResult wrk;
  size_t body_bytes = 0;
  bool missing = false;  // baton serve answered 404: not measured
};

std::vector<Row> Measure(const Options& options, const fs::path& dir, const fs::path& store, const Target& target) {
  ServeProcess serve(options.baton, store, dir);
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET /api/v1/runs/{run_id}", "/api/v1/runs/" + target.run_id},
      {"GET /api/v1/checkpoints/{digest}", "/api/v1/checkpoints/" + target.checkpoint},
      {"GET /api/v1/runs/{run_id}/stages/{stage}/metrics",
       "/api/v1/runs/" + target.run_id + "/stages/" + target.stage + "/metrics"}};
  std::map<std::string, std::string> bodies;
  std::vector<Row> rows;
  for (const auto& [route, path] : routes) {
    if (auto body = Fetch(serve.url(), path)) bodies[path] = std::move(*body);
  }
  BareServer bare(bodies);
  const std::pair<std::string, std::string> servers[] = {{"baton", serve.url()}, {"bare", bare.url()}};
  for (const auto& [route, path] : routes) {
    if (!bodies.count(path)) {
      rows.push_back({route, "baton", {}, 0, /*missing=*/true});
      continue;
    }
    for (const auto& [name, base_url] : servers) {
      rows.push_back({route, name, RunWrk(options, base_url + path), bodies[path].size()});
      std::fprintf(stderr, "%-32s %-5s %9.0f req/s\n", route.c_str(), name.c_str(), rows.back().wrk.requests_per_second);
    }
  }
  return rows;
}

void PrintTable(const Options& options, const std::string& wrk_version, const Target& target,
                const std::vector<Row>& rows) {
  std::time_t now = std::time(nullptr);
  char when[32];
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  std::printf("REST API under wrk: %s, -t%d -c%d -d%ds --timeout 30s --latency per row; `baton serve` and the bare server %d request "
              "threads each; %u CPU cores shared by wrk and the servers; %s\n\n",
              wrk_version.c_str(), std::min(2, options.connections), options.connections, options.seconds,
              kServerThreads, std::thread::hardware_concurrency(), when);
  std::printf("| url | server | req/s | p50 ms | p99 ms | req/s / bare's |\n|---|---|---|---|---|---|\n");
  std::map<std::string, double> bare_rate;
  for (const auto& row : rows) {
    if (row.server == "bare") bare_rate[row.route] = row.wrk.requests_per_second;
  }
  for (const auto& row : rows) {
    if (row.missing) {
      std::printf("| `%s` | %s | route missing (404) | | | |\n", row.route.c_str(), row.server.c_str());
      continue;
    }
    std::printf("| `%s` | %s | %.0f | %.3f | %.3f | %.2f |\n", row.route.c_str(), row.server.c_str(),
                row.wrk.requests_per_second, row.wrk.p50_ms, row.wrk.p99_ms,
                row.wrk.requests_per_second / bare_rate.at(row.route));
  }
  std::printf("\n- store: %d tune trials x %d epochs; run_id %s, checkpoint %s (trial 0's last); bodies: ",
              options.trials, options.epochs, target.run_id.c_str(), target.checkpoint.c_str());
  bool first = true;
  for (const auto& row : rows) {
    if (row.server != "baton" || row.missing) continue;
    std::printf("%s`%s` %zu bytes", first ? "" : ", ", row.route.c_str(), row.body_bytes);
    first = false;
  }
  std::printf(
      ".\n- bare: cpp-httplib in the bench process answering the same paths with the bytes Baton returned "
      "(fetched once before), Content-Type application/json; TCP_NODELAY, %d threads, keep-alive as serve's. "
      "Per url, Baton is measured first, then bare; one wrk run each.\n",
      kServerThreads);
  for (const auto& row : rows) {
    if (row.wrk.socket_errors.empty()) continue;
    std::printf("- wrk against %s, `%s`: %s\n", row.server.c_str(), row.route.c_str(), row.wrk.socket_errors.c_str());
  }
}

bool ParseOptions(int argc, char** argv, Options* options) {
  options->baton = ::baton::bench::BatonBinary();
  if (argc % 2 == 0) {
    std::fprintf(stderr, "option %s needs a value\n", argv[argc - 1]);
    return false;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--seconds") options->seconds = std::stoi(v);
    else if (a == "--connections") options->connections = std::stoi(v);
    else if (a == "--trials") options->trials = std::stoi(v);
    else if (a == "--epochs") options->epochs = std::stoi(v);
    else if (a == "--baton") options->baton = v;
    else if (a == "--wrk") options->wrk = v;
    else if (a == "--dir") options->base = v;
    else if (a == "--keep") options->keep = v == "1";
    else if (a == "--fill-only") options->fill_only = v;
    else {
      std::fprintf(stderr, "unknown option %s (see the comment at the top of bench/api.cpp)\n", a.c_str());
      return false;
    }
  }
  if (options->seconds < 1 || options->connections < 1 || options->trials < 1 || options->epochs < 1) {
    std::fprintf(stderr, "--seconds, --connections, --trials and --epochs must be at least 1\n");
    return false;
  }
  return true;
}

int Run(int argc, char** argv) {
  Options options;
  if (!ParseOptions(argc, argv, &options)) return 2;
  if (!options.fill_only.empty()) {
    const Target target = FillStore(options.fill_only, options.trials, options.epochs);
    std::printf("%s\n", Json{{"run_id", target.run_id}, {"stage", target.stage}, {"checkpoint", target.checkpoint}}
                             .dump()
                             .c_str());
    return 0;
  }
  const std::string wrk_version = WrkVersion(options.wrk);
  const fs::path dir = fs::path(options.base) / ("baton-bench-api-" + std::to_string(getpid()));
  const fs::path store = dir / "store";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::fprintf(stderr, "filling a store in %s: %d trials x %d epochs\n", dir.c_str(), options.trials,
               options.epochs);
  const auto fill_start = std::chrono::steady_clock::now();
  const Target target = FillStore(store, options.trials, options.epochs);
  std::fprintf(stderr, "filled in %.1f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - fill_start).count());
  // The bare server writes to sockets that wrk closes when its time is up.
  std::signal(SIGPIPE, SIG_IGN);
  const std::vector<Row> rows = Measure(options, dir, store, target);
  PrintTable(options, wrk_version, target, rows);
  if (!options.keep) fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return ::baton::bench::GuardedMain("bench_api", Run, argc, argv); }
