// Checkpoint commit: the time a worker spends committing one epoch's
// checkpoint of the example CNN through the real path, as baton-worker does
// it after every epoch: encode the model state (copy + SHA-256 of every
// tensor), manifest, POST blobs:missing, POST blobs:batch with the missing
// blobs (manifest last), POST the epoch report. A real store (BlobStore + LineageDb in a temp
// dir, default options as `baton run` opens them), a Coordinator for a
// generated one-trial pipeline, the real api::HttpServer on loopback and
// stages' HTTP CoordinatorClient. The prepare task runs for real on a small
// Fashion-MNIST subset; the weights change between commits by one SGD step.
// Also a commit of unchanged weights (every blob already stored), a commit
// that uploads with one PUT per blob (the worker's path before blobs:batch),
// and as the baseline a plain durable checkpoint: torch::save + write + fsync
// of a file.
//
//   build-main/bench/bench_checkpoint_commit [--epochs 50] [--dir /tmp]
//       [--file-min-bytes N]
//
// --file-min-bytes sets BlobStoreOptions::file_min_bytes (default: the
// store's, 1 MiB: fc1.weight is stored as a file); 18446744073709551615
// keeps every blob in RocksDB, the layout before file blobs.
// Prints markdown tables (median and p90 over --epochs commits of each kind,
// interleaved); ratios are against the baseline of the same run.
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_common.h"
#include "api/http_server.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/json_util.h"
#include "common/malloc_settings.h"
#include "orchestrator/coordinator.h"
#include "orchestrator/pipeline_spec.h"
#include "stages/coordinator_client.h"
#include "stages/dataset.h"
#include "stages/epoch_committer.h"
#include "stages/model.h"
#include "stages/tensor_codec.h"
#include "stages/trainer.h"
#include "store/blob_store.h"
#include "store/checkpoint.h"
#include "store/lineage_db.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using baton::Json;

double Ms(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); }

double Quantile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  const size_t i = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}
double Median(const std::vector<double>& v) {
  std::vector<double> s = v;
  std::sort(s.begin(), s.end());
  const size_t n = s.size();
  return n == 0 ? 0 : n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

// The phases of one commit, in ms, and what it sent.
struct Commit {
  double encode = 0;    // EncodeModelState: copy + SHA-256 of every tensor
  double manifest = 0;  // canonical manifest bytes + their SHA-256
  double missing = 0;   // POST blobs:missing
  double upload = 0;    // upload of every missing blob, manifest last
  double report = 0;    // POST tasks/{id}/epochs
  double total = 0;
  size_t blobs = 0;  // blobs uploaded
  size_t requests = 0;  // upload requests
  uint64_t put_bytes = 0;
  std::string checkpoint;
  std::map<std::string, std::pair<uint64_t, double>> put_ms;  // tensor name -> (bytes, ms of its PUT)
};

// What baton-worker does after an epoch (stages/worker.cpp: the epoch
// callback and State::Upload), with each phase timed. With `per_blob_puts`,
// one PUT per missing blob instead of one POST blobs:batch (the old path).
Commit CommitEpoch(baton::stages::CoordinatorClient& client, baton::stages::Model& model, int64_t task_id, int epoch,
                   bool per_blob_puts) {
  Commit c;
  const auto t0 = Clock::now();
  baton::stages::EncodedTensors encoded = baton::stages::EncodeModelState(*model);
  const auto t1 = Clock::now();
  const std::string manifest_bytes = baton::store::ManifestBytes(encoded.manifest);
  const std::string manifest_digest = baton::Sha256Hex(manifest_bytes);
  std::vector<std::string> digests;
  for (const auto& [digest, bytes] : encoded.blobs) digests.push_back(digest);
  digests.push_back(manifest_digest);
  const auto t2 = Clock::now();
  const std::vector<std::string> missing = client.MissingBlobs(digests);
  const auto t3 = Clock::now();
  bool manifest_missing = false;
  std::vector<baton::stages::BlobUpload> uploads;
  for (const std::string& digest : missing) {
    auto it = encoded.blobs.find(digest);
    if (it != encoded.blobs.end()) {
      uploads.push_back({digest, it->second});
    } else if (digest == manifest_digest) {
      manifest_missing = true;
    }
  }
  if (manifest_missing) uploads.push_back({manifest_digest, manifest_bytes});
  for (const auto& u : uploads) c.put_bytes += u.bytes.size();
  c.blobs = uploads.size();
  if (per_blob_puts) {
    for (const auto& u : uploads) {
      const auto put_start = Clock::now();
      client.PutBlob(u.digest, std::string(u.bytes));
      const double ms = Ms(put_start, Clock::now());
      std::string name = "(manifest)";
      for (const auto& entry : encoded.manifest.tensors) {
        if (entry.blob == u.digest) name = entry.name;
      }
      c.put_ms[name] = {u.bytes.size(), ms};
      ++c.requests;
    }
  } else if (!uploads.empty()) {
    client.PutBlobs(uploads);  // one request for this model
    ++c.requests;
  }
  const auto t4 = Clock::now();
  baton::stages::EpochMetrics metrics;
  metrics.epoch = epoch;
  metrics.lr = 0.05;
  metrics.train_loss = 0.5;
  metrics.val_loss = 0.4;
  metrics.val_accuracy = 0.85;
  metrics.seconds = 8;
  metrics.samples_per_second = 2000;
  client.ReportEpoch(task_id, {{"epoch", epoch},
                               {"checkpoint", manifest_digest},
                               {"seconds", metrics.seconds},
                               {"metrics", baton::stages::MetricsJson(metrics)}});
  const auto t5 = Clock::now();
  c.encode = Ms(t0, t1);
  c.manifest = Ms(t1, t2);
  c.missing = Ms(t2, t3);
  c.upload = Ms(t3, t4);
  c.report = Ms(t4, t5);
  c.total = Ms(t0, t5);
  c.checkpoint = manifest_digest;
  return c;
}

// Uploads an encoding like the worker (for the dataset and initial weights).
std::string Upload(baton::stages::CoordinatorClient& client, const baton::stages::EncodedTensors& encoded) {
  const std::string manifest_bytes = baton::store::ManifestBytes(encoded.manifest);
  const std::string manifest_digest = baton::Sha256Hex(manifest_bytes);
  std::vector<std::string> digests;
  for (const auto& [digest, bytes] : encoded.blobs) digests.push_back(digest);
  digests.push_back(manifest_digest);
  std::vector<baton::stages::BlobUpload> uploads;
  for (const std::string& digest : client.MissingBlobs(digests)) {
    auto it = encoded.blobs.find(digest);
    if (it != encoded.blobs.end()) uploads.push_back({digest, it->second});
  }
  uploads.push_back({manifest_digest, manifest_bytes});
  client.PutBlobs(uploads);
  return manifest_digest;
}

// The worker's path since commits went to the background (stages/worker.cpp,
// stages::EpochCommitter): the trainer encodes the state and computes the
// manifest's digest, then hands the upload and the report to the committer's
// thread and trains on. `blocked` is what the trainer waits; `durable` runs
// to the coordinator's answer (the blobs and the epoch stored and synced).
// The bench then waits for that answer, as a next epoch longer than the
// commit would.
struct AsyncCommit {
  double blocked = 0, durable = 0;
  std::string checkpoint;
};
AsyncCommit CommitEpochAsync(baton::stages::CoordinatorClient& client, baton::stages::Model& model, int64_t task_id,
                             int epoch, baton::stages::EpochCommitter& committer) {
  const auto t0 = Clock::now();
  auto encoded = std::make_shared<const baton::stages::EncodedTensors>(baton::stages::EncodeModelState(*model));
  AsyncCommit c;
  c.checkpoint = baton::Sha256Hex(baton::store::ManifestBytes(encoded->manifest));
  Clock::time_point answered;
  const Json report = {{"epoch", epoch},
                       {"checkpoint", c.checkpoint},
                       {"seconds", 8.0},
                       {"metrics", {{"train_loss", 0.5}, {"val_loss", 0.4}, {"val_accuracy", 0.85}}}};
  committer.Submit([&client, &answered, encoded, report, task_id] {
    Upload(client, *encoded);
    const bool go_on = client.ReportEpoch(task_id, report);
    answered = Clock::now();
    return go_on;
  });
  const auto t1 = Clock::now();
  committer.Wait();
  c.blocked = Ms(t0, t1);
  c.durable = Ms(t0, answered);
  return c;
}

Json TakeTask(baton::stages::CoordinatorClient& client, const std::string& kind) {
  for (int i = 0; i < 30; ++i) {
    if (std::optional<Json> task = client.NextTask(0)) {
      if (task->value("kind", "") != kind) throw std::runtime_error("expected a " + kind + " task, got " + task->dump());
      return *task;
    }
  }
  throw std::runtime_error("no " + kind + " task after 30 tries");
}

// The baseline: torch::save of the model, written to one file and fsync'd.
double SaveFsync(baton::stages::Model& model, const fs::path& path, size_t* bytes) {
  const auto t0 = Clock::now();
  std::ostringstream buffer;
  torch::save(model, buffer);
  const std::string data = buffer.str();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path.string());
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) throw std::runtime_error("cannot write " + path.string());
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) throw std::runtime_error("cannot fsync " + path.string());
  ::close(fd);
  *bytes = data.size();
  return Ms(t0, Clock::now());
}

// Disk sync latency: a 4 KiB write + fdatasync, for reading the other rows
// (on a shared VM it varies several-fold from minute to minute).
double SyncLatency(const fs::path& path) {
  const std::string page(4096, 'x');
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot open " + path.string());
  const auto t0 = Clock::now();
  if (::write(fd, page.data(), page.size()) != static_cast<ssize_t>(page.size()) || ::fdatasync(fd) != 0) {
    throw std::runtime_error("cannot write " + path.string());
  }
  const double ms = Ms(t0, Clock::now());
  ::close(fd);
  return ms;
}

Json PipelineJson(int epochs, int64_t train_subset, int64_t test_subset) {
  Json doc = Json::parse(R"({
    "schema_version": "1", "name": "bench-checkpoint-commit", "seed": 7,
    "stages": {
      "prep": {"type": "prepare", "dataset": {"format": "idx", "path": "/usr/share/datasets/fashion-mnist"},
               "train_subset": 1000, "test_subset": 100, "validation_fraction": 0.2, "normalize": true},
      "tune": {"type": "tune", "depends_on": ["prep"],
               "model": {"layers": [
                 {"name": "conv1", "type": "conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
                 {"name": "act1", "type": "relu"}, {"name": "pool1", "type": "max_pool2d", "kernel_size": 2},
                 {"name": "conv2", "type": "conv2d", "out_channels": 64, "kernel_size": 3, "padding": 1},
                 {"name": "bn2", "type": "batch_norm2d"}, {"name": "act2", "type": "relu"},
                 {"name": "pool2", "type": "max_pool2d", "kernel_size": 2},
                 {"name": "drop", "type": "dropout", "p": "$dropout"},
                 {"name": "flat", "type": "flatten"},
                 {"name": "fc1", "type": "linear", "out_features": 128}, {"name": "act3", "type": "relu"},
                 {"name": "fc2", "type": "linear", "out_features": 10}]},
               "search_space": {"dropout": {"type": "categorical", "values": [0.25]}},
               "hyperparameters": {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0001,
                                   "batch_size": 64, "lr_schedule": "constant"},
               "objective": {"metric": "val_accuracy", "mode": "max"},
               "budget": {"max_trials": 1, "max_parallel": 1, "max_epochs": 1}}
    }})");
  doc["stages"]["tune"]["budget"]["max_epochs"] = epochs;
  doc["stages"]["prep"]["train_subset"] = train_subset;
  doc["stages"]["prep"]["test_subset"] = test_subset;
  return doc;
}

struct Summary {
  std::vector<double> total, encode, manifest, missing, upload, report;
  size_t blobs = 0, requests = 0;
  uint64_t put_bytes = 0;
  std::map<std::string, std::pair<uint64_t, std::vector<double>>> put_ms;
  void Add(const Commit& c) {
    for (const auto& [name, sample] : c.put_ms) {
      put_ms[name].first = sample.first;
      put_ms[name].second.push_back(sample.second);
    }
    total.push_back(c.total);
    encode.push_back(c.encode);
    manifest.push_back(c.manifest);
    missing.push_back(c.missing);
    upload.push_back(c.upload);
    report.push_back(c.report);
    blobs = c.blobs;
    requests = c.requests;
    put_bytes = c.put_bytes;
  }
};

int Run(int argc, char** argv) {
  int epochs = 50;
  int64_t train_subset = 1000, test_subset = 100;
  std::string base = fs::temp_directory_path().string();
  baton::store::BlobStoreOptions store_options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--epochs") epochs = std::stoi(v);
    else if (a == "--file-min-bytes") store_options.file_min_bytes = std::stoull(v);
    else if (a == "--dir") base = v;
    else if (a == "--train-subset") train_subset = std::stoll(v);
    else if (a == "--test-subset") test_subset = std::stoll(v);
    else {
      std::fprintf(stderr, "unknown option %s (see the comment at the top of bench/checkpoint_commit.cpp)\n", a.c_str());
      return 2;
    }
  }
  const fs::path dir = fs::path(base) / ("baton-bench-commit-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  // The worker's thread settings, and the malloc settings that both the
  // worker (stages::ConfigureWorkerProcess) and `baton` (main) apply.
  baton::KeepFreedMemoryInHeap();
  torch::set_num_threads(1);
  using SetThreadsFn = void (*)(int);
  if (auto set_blas_threads = reinterpret_cast<SetThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set_blas_threads(1);
  }

  auto blobs = baton::store::BlobStore::Open(dir / "store" / "blobs", store_options);
  auto db = baton::store::LineageDb::Open(dir / "store" / "lineage.db");
  // Changed (batch), unchanged, changed (per-blob PUTs) and changed
  // (asynchronous, the worker's path) commits take turns: epochs 4i to 4i + 3.
  baton::orchestrator::Pipeline pipeline = baton::orchestrator::LoadPipeline(PipelineJson(4 * epochs, train_subset, test_subset));
  const std::string run_id = baton::orchestrator::CreateRun(*db, pipeline);
  baton::orchestrator::Coordinator coordinator(*blobs, *db, pipeline, run_id);
  baton::api::HttpServerOptions server_options;
  server_options.threads = 1 + 4;  // what `baton run` gives one worker
  baton::api::HttpServer server(server_options);
  const std::string token = baton::api::NewToken();
  server.MountInternal(&coordinator, blobs.get(), token);
  server.Start();
  coordinator.Start();
  auto client = baton::stages::MakeHttpCoordinatorClient(server.url(), token);

  // The prepare task, for real (small subset).
  const Json prepare = TakeTask(*client, "prepare");
  const baton::stages::Dataset data =
      baton::stages::PrepareDataset(baton::stages::ParsePrepareSpec(prepare.at("prepare")));
  client->Complete(prepare.at("id").get<int64_t>(), Upload(*client, baton::stages::EncodeDataset(data)));

  // The trial: build the model as the worker does, report its initial weights.
  const Json task = TakeTask(*client, "train");
  const int64_t task_id = task.at("id").get<int64_t>();
  const baton::stages::Hyperparameters hp = baton::stages::ParseHyperparameters(task.at("hyperparameters"));
  torch::manual_seed(task.at("seed").get<uint64_t>());
  baton::stages::Model model(task.at("model"), data.input_shape, data.num_classes);
  std::string checkpoint = Upload(*client, baton::stages::EncodeModelState(*model));
  client->ReportInitial(task_id, {{"checkpoint", checkpoint},
                                  {"init", {{"source", nullptr}, {"transferred", Json::array()},
                                            {"reinitialized", Json::array()}}}});
  torch::optim::SGD optimizer(model->parameters(), torch::optim::SGDOptions(hp.lr)
                                                       .momentum(hp.momentum)
                                                       .weight_decay(hp.weight_decay));
  uint64_t state_bytes = 0;
  size_t tensors = 0;
  for (const auto& [name, tensor] : baton::stages::ModuleState(*model)) {
    state_bytes += tensor.nbytes();
    ++tensors;
  }

  Summary changed, unchanged, changed_puts;
  std::vector<double> async_blocked, async_durable;
  baton::stages::EpochCommitter committer;
  std::vector<double> save_fsync, save_memory, sync_latency;
  size_t save_bytes = 0;
  const int64_t n = data.train_x.size(0);
  model->train();
  int64_t step = 0;
  // New weights: one SGD step on a batch (changes every parameter and the
  // batch-norm buffers). Not timed.
  auto sgd_step = [&] {
    const int64_t begin = (step++ * hp.batch_size) % (n - hp.batch_size);
    optimizer.zero_grad();
    torch::Tensor loss = torch::nn::functional::cross_entropy(
        model->forward(data.train_x.narrow(0, begin, hp.batch_size)), data.train_y.narrow(0, begin, hp.batch_size));
    loss.backward();
    optimizer.step();
  };
  for (int i = 0; i < epochs; ++i) {
    sgd_step();
    Commit c = CommitEpoch(*client, model, task_id, 4 * i, /*per_blob_puts=*/false);
    if (c.checkpoint == checkpoint) throw std::runtime_error("the SGD step did not change the weights");
    changed.Add(c);
    checkpoint = c.checkpoint;
    Commit same = CommitEpoch(*client, model, task_id, 4 * i + 1, /*per_blob_puts=*/false);
    if (same.checkpoint != checkpoint || same.blobs != 0) throw std::runtime_error("unchanged weights uploaded blobs");
    unchanged.Add(same);
    sgd_step();
    Commit old = CommitEpoch(*client, model, task_id, 4 * i + 2, /*per_blob_puts=*/true);
    if (old.checkpoint == checkpoint) throw std::runtime_error("the SGD step did not change the weights");
    changed_puts.Add(old);
    checkpoint = old.checkpoint;
    sgd_step();
    AsyncCommit async = CommitEpochAsync(*client, model, task_id, 4 * i + 3, committer);
    if (async.checkpoint == checkpoint) throw std::runtime_error("the SGD step did not change the weights");
    async_blocked.push_back(async.blocked);
    async_durable.push_back(async.durable);
    checkpoint = async.checkpoint;

    save_fsync.push_back(SaveFsync(model, dir / "model.pt", &save_bytes));
    sync_latency.push_back(SyncLatency(dir / "sync.probe"));
    const auto t0 = Clock::now();
    std::ostringstream buffer;
    torch::save(model, buffer);
    save_memory.push_back(Ms(t0, Clock::now()));
  }
  client->Complete(task_id, checkpoint);
  const bool finished = coordinator.WaitFinished(std::chrono::milliseconds(10000));
  server.Stop();

  const double base_ms = Median(save_fsync);
  std::printf("checkpoint commit: example CNN (%lld parameters, %zu tensors, %.2f MB of state = the checkpoint's tensor "
              "blobs), %d commits of each kind, interleaved; run %s%s; dir %s\n",
              static_cast<long long>(baton::stages::CountParameters(*model)), tensors, state_bytes / 1e6, epochs,
              coordinator.Status().c_str(), finished ? "" : " (did not finish)", dir.c_str());
  std::printf("Target (from the issue; not asserted): a few ms per commit for the example CNN.\n\n");
  std::printf("| commit | median ms | p90 ms | ratio to baseline (median) | blobs uploaded | upload requests | MB "
              "uploaded |\n|---|---|---|---|---|---|---|\n");
  std::printf("| baseline: torch::save + write + fsync of one file (%.2f MB) | %.2f | %.2f | 1.00 | - | - | - |\n",
              save_bytes / 1e6, base_ms, Quantile(save_fsync, 0.9));
  const std::vector<std::pair<const Summary*, const char*>> kinds = {
      {&changed, "Baton, weights changed (POST blobs:batch)"},
      {&unchanged, "Baton, weights unchanged"},
      {&changed_puts, "Baton, weights changed, one PUT per blob (the worker's old path)"}};
  for (const auto& [s, name] : kinds) {
    std::printf("| %s | %.2f | %.2f | %.2f | %zu | %zu | %.2f |\n", name, Median(s->total), Quantile(s->total, 0.9),
                Median(s->total) / base_ms, s->blobs, s->requests, s->put_bytes / 1e6);
  }
  std::printf("| Baton, weights changed, in the background (the worker's path): the trainer waits | %.2f | %.2f | %.2f | "
              "%zu | %zu | %.2f |\n",
              Median(async_blocked), Quantile(async_blocked, 0.9), Median(async_blocked) / base_ms, changed.blobs,
              changed.requests, changed.put_bytes / 1e6);
  std::printf("| ... the same commits, until durable (the coordinator's answer) | %.2f | %.2f | %.2f | - | - | - |\n",
              Median(async_durable), Quantile(async_durable, 0.9), Median(async_durable) / base_ms);
  std::printf("| (torch::save to memory only, for scale) | %.2f | %.2f | %.2f | - | - | - |\n", Median(save_memory),
              Quantile(save_memory, 0.9), Median(save_memory) / base_ms);
  std::printf("| (disk sync latency: 4 KiB write + fdatasync, for scale) | %.2f | %.2f | %.2f | - | - | - |\n",
              Median(sync_latency), Quantile(sync_latency, 0.9), Median(sync_latency) / base_ms);

  std::printf("\nWhere a Baton commit's time goes (median ms of each phase):\n\n");
  std::printf("| commit | encode (copy + SHA-256 of each tensor) | manifest | POST blobs:missing | upload | POST epochs "
              "report |\n|---|---|---|---|---|---|\n");
  for (const auto& [s, name] : kinds) {
    std::printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", name, Median(s->encode), Median(s->manifest),
                Median(s->missing), Median(s->upload), Median(s->report));
  }
  std::printf("\nEach PUT of a changed commit on the old path (median ms; the server re-hashes the bytes and stores "
              "them durably):\n\n| blob | bytes | median ms |\n|---|---|---|\n");
  for (const auto& [name, sample] : changed_puts.put_ms) {
    std::printf("| %s | %llu | %.2f |\n", name.c_str(), static_cast<unsigned long long>(sample.first),
                Median(sample.second));
  }
  std::printf("\nOne process, as a worker's: 1 torch thread, 1 OpenBLAS thread, mallopt(M_MMAP_THRESHOLD 32 MiB, "
              "M_TRIM_THRESHOLD 1 GiB) as both the worker and the `baton` process that hosts the server set it. ");
  std::printf("Store as `baton run` opens it: BlobStore sync=true, file_min_bytes %llu (blobs of that size and more "
              "are files: write, fdatasync, rename, folder fsync; then each upload request is one synced RocksDB write "
              "of the records and small blobs), "
              "LineageDb WAL synchronous=FULL (each epoch report is one transaction). Server: api::HttpServer, %d threads, "
              "loopback; client: stages' HTTP CoordinatorClient (keep-alive, TCP_NODELAY).\n",
              static_cast<unsigned long long>(store_options.file_min_bytes), server_options.threads);

  client.reset();
  db.reset();
  blobs.reset();
  fs::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return ::baton::bench::GuardedMain("bench_checkpoint_commit", Run, argc, argv); }
