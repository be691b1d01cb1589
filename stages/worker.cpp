#include "stages/worker.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/digest.h"
#include "common/malloc_settings.h"
#include "common/vocabulary.h"
#include "stages/command_task.h"
#include "stages/data_parallel.h"
#include "stages/dataset.h"
#include "stages/epoch_committer.h"
#include "stages/model.h"
#include "stages/tensor_codec.h"
#include "stages/trainer.h"

namespace baton::stages {
namespace {

// CUDA_VISIBLE_DEVICES as this worker was started with it ("unset" without).
std::string VisibleGpusEnv() {
  const char* env = std::getenv("CUDA_VISIBLE_DEVICES");
  return env != nullptr ? env : "unset";
}

Error TaskError(const std::string& key, const std::string& what) {
  return Error(ErrorCode::kInvalidArgument,
               "task field \"" + key + "\" " + what, "/" + key);
}

const Json& Field(const Json& task, const std::string& key) {
  auto it = task.find(key);
  if (it == task.end()) throw TaskError(key, "is missing");
  return *it;
}

int64_t IntField(const Json& task, const std::string& key, int64_t minimum,
                 std::optional<int64_t> fallback = std::nullopt) {
  if (!task.contains(key) && fallback) return *fallback;
  const Json& value = Field(task, key);
  if (!value.is_number_integer() || value.get<int64_t>() < minimum) {
    throw TaskError(key, "must be an integer >= " + std::to_string(minimum) +
                             ", got " + value.dump());
  }
  return value.get<int64_t>();
}

// A digest field, or nullopt when absent or null.
std::optional<std::string> DigestField(const Json& task,
                                       const std::string& key) {
  auto it = task.find(key);
  if (it == task.end() || it->is_null()) return std::nullopt;
  if (!it->is_string() || !IsDigest(it->get<std::string>())) {
    throw TaskError(key, "must be a checkpoint digest, got " + it->dump());
  }
  return it->get<std::string>();
}

// A list of strings; empty when absent or null.
std::vector<std::string> StringListField(const Json& task,
                                         const std::string& key) {
  auto it = task.find(key);
  if (it == task.end() || it->is_null()) return {};
  if (!it->is_array()) {
    throw TaskError(key, "must be a list of names, got " + it->dump());
  }
  std::vector<std::string> names;
  for (const Json& item : *it) {
    if (!item.is_string()) {
      throw TaskError(key, "must be a list of names, got " + it->dump());
    }
    names.push_back(item.get<std::string>());
  }
  return names;
}

// "what (at /pointer)" for a failure reason.
std::string Reason(const Error& e) {
  return e.pointer().empty()
             ? e.what()
             : std::string(e.what()) + " (at " + e.pointer() + ")";
}

std::string FormatMetrics(const EpochMetrics& m) {
  std::ostringstream text;
  text.precision(4);
  text << "train_loss=" << m.train_loss;
  if (m.val_accuracy) text << " val_accuracy=" << *m.val_accuracy;
  if (m.test_accuracy) text << " test_accuracy=" << *m.test_accuracy;
  text << " lr=" << m.lr << " (" << m.seconds << " s, "
       << static_cast<int64_t>(m.samples_per_second) << " samples/s)";
  return text.str();
}

// Sends a task's heartbeats from its own thread while the task runs
// (docs/worker-protocol.md): one every `interval`. The task is lost when the
// coordinator says its attempt is no longer this worker's (TaskSuperseded)
// or that the run is over (RunOver), or has answered no heartbeat for
// `give_up` (CoordinatorUnreachable, e.g. its process was killed): Lost()
// turns true, so that training stops at its next batch, and ThrowIfLost()
// throws why. Other refusals (the task has just ended) are logged and
// ignored. Lost() and ThrowIfLost() may be called from any thread.
class HeartbeatThread {
 public:
  using Clock = std::chrono::steady_clock;

  HeartbeatThread(CoordinatorClient& client, int64_t task_id, int attempt,
                  std::chrono::milliseconds interval,
                  std::chrono::milliseconds give_up,
                  std::function<void(const std::string&)> log)
      : client_(client),
        task_id_(task_id),
        attempt_(attempt),
        interval_(interval),
        give_up_(give_up),
        log_(std::move(log)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~HeartbeatThread() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  HeartbeatThread(const HeartbeatThread&) = delete;
  HeartbeatThread& operator=(const HeartbeatThread&) = delete;

  bool Lost() const { return lost_.load(std::memory_order_acquire); }
  void ThrowIfLost() {
    if (!Lost()) return;
    std::exception_ptr failure;
    {
      std::lock_guard<std::mutex> lock(mu_);
      failure = failure_;
    }
    std::rethrow_exception(failure);
  }

 private:
  void Loop() {
    Clock::time_point answered = Clock::now();
    std::chrono::milliseconds wait = interval_;
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, wait, [this] { return stopping_; })) {
      lock.unlock();
      std::exception_ptr failure;
      try {
        client_.Heartbeat(task_id_, attempt_);
        answered = Clock::now();
        wait = interval_;
      } catch (const CoordinatorUnreachable& e) {
        const auto silent = Clock::now() - answered;
        if (silent >= give_up_) {
          failure = std::make_exception_ptr(CoordinatorUnreachable(
              "coordinator answered no heartbeat for task " +
              std::to_string(task_id_) + " for " +
              std::to_string(
                  std::chrono::duration_cast<std::chrono::seconds>(silent)
                      .count()) +
              " s (" + e.what() + ")"));
        } else {
          wait = std::min(interval_, std::chrono::milliseconds(200));
        }
      } catch (const TaskSuperseded&) {
        failure = std::current_exception();
      } catch (const RunOver&) {
        failure = std::current_exception();
      } catch (const Error& e) {
        log_("task " + std::to_string(task_id_) + " heartbeat: " + e.what());
        wait = interval_;
      }
      lock.lock();
      if (failure) {
        failure_ = failure;
        lost_.store(true, std::memory_order_release);
        return;
      }
    }
  }

  CoordinatorClient& client_;
  const int64_t task_id_;
  const int attempt_;
  const std::chrono::milliseconds interval_, give_up_;
  std::function<void(const std::string&)> log_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::exception_ptr failure_;
  std::atomic<bool> lost_{false};
  std::thread thread_;
};

// Milliseconds of a task's positive number field `key`; 0 when absent.
std::chrono::milliseconds MillisecondsField(const Json& task,
                                            const std::string& key) {
  auto it = task.find(key);
  if (it == task.end() || it->is_null()) {
    return std::chrono::milliseconds(0);
  }
  if (!it->is_number() || !(it->get<double>() > 0) ||
      it->get<double>() > 1e6) {
    throw TaskError(key, "must be a number of seconds > 0, got " + it->dump());
  }
  return std::chrono::milliseconds(
      std::max<int64_t>(1, static_cast<int64_t>(it->get<double>() * 1000)));
}

}  // namespace

void ConfigureWorkerProcess(int threads) {
  torch::set_num_threads(threads);
  // LibTorch does not tell OpenBLAS its thread count; without this each
  // worker's BLAS would spawn one thread per core.
  using SetThreadsFn = void (*)(int);
  if (auto set_blas_threads = reinterpret_cast<SetThreadsFn>(
          dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set_blas_threads(threads);
  }
  // The same activations and gradients, again and again: keep them in the
  // heap instead of page-faulting them in on every batch.
  KeepFreedMemoryInHeap();
}

struct Worker::State {
  CoordinatorClient& client;
  WorkerOptions options;
  // The last dataset used or prepared, by manifest digest.
  std::string dataset_digest;
  std::shared_ptr<const Dataset> dataset;
  // The running task's heartbeats, when its task gave a lease.
  HeartbeatThread* heartbeat = nullptr;
  // The rank group this worker belongs to (data-parallel training), and
  // whether a rank of it failed: the worker then exits, and its executor
  // starts the group afresh.
  std::unique_ptr<RankGroup> group;
  bool group_broken = false;

  bool Lost() const { return heartbeat != nullptr && heartbeat->Lost(); }
  void ThrowIfLost() const {
    if (heartbeat != nullptr) heartbeat->ThrowIfLost();
  }

  State(CoordinatorClient& c, WorkerOptions o)
      : client(c), options(std::move(o)) {}

  void Log(const std::string& line) const {
    if (options.log) {
      options.log(line);
    } else {
      std::cerr << "baton-worker[" << options.worker_id << "] " << line
                << std::endl;
    }
  }

  // The blob's bytes, checked against the digest that named them.
  std::string Fetch(const std::string& digest) {
    if (!IsDigest(digest)) {
      throw Error(ErrorCode::kInvalidArgument,
                  "\"" + digest + "\" is not a blob digest");
    }
    std::string bytes = client.GetBlob(digest);
    if (Sha256Hex(bytes) != digest) {
      throw Error(ErrorCode::kCorrupt,
                  "blob " + digest + " arrived with different content");
    }
    return bytes;
  }

  store::Manifest FetchManifest(const std::string& digest) {
    return store::ParseManifest(Fetch(digest));
  }

  BlobFetcher Fetcher() {
    return [this](const std::string& digest) { return Fetch(digest); };
  }

  // Uploads the blobs the store lacks, the manifest last, in one batch (a
  // few for a dataset); returns the manifest's digest.
  std::string Upload(const EncodedTensors& encoded) {
    const std::string manifest_bytes = store::ManifestBytes(encoded.manifest);
    const std::string manifest_digest = Sha256Hex(manifest_bytes);
    std::vector<std::string> digests;
    for (const auto& [digest, bytes] : encoded.blobs) digests.push_back(digest);
    digests.push_back(manifest_digest);
    std::vector<BlobUpload> uploads;
    bool manifest_missing = false;
    for (const std::string& digest : client.MissingBlobs(digests)) {
      auto it = encoded.blobs.find(digest);
      if (it != encoded.blobs.end()) {
        uploads.push_back(BlobUpload{digest, it->second});
      } else if (digest == manifest_digest) {
        manifest_missing = true;
      }
    }
    if (manifest_missing) {
      uploads.push_back(BlobUpload{manifest_digest, manifest_bytes});
    }
    if (!uploads.empty()) client.PutBlobs(uploads);
    return manifest_digest;
  }

  std::shared_ptr<const Dataset> LoadDataset(const std::string& digest) {
    if (digest != dataset_digest || !dataset) {
      dataset.reset();  // free the old one before fetching the new one
      dataset = std::make_shared<const Dataset>(
          DecodeDataset(FetchManifest(digest), Fetcher()));
      dataset_digest = digest;
    }
    return dataset;
  }

  void RunPrepare(int64_t id, const Json& task) {
    PrepareSpec spec = ParsePrepareSpec(Field(task, "prepare"));
    if (!spec.split_seed && task.contains("seed") &&
        task["seed"].is_number_unsigned()) {
      spec.split_seed = task["seed"].get<uint64_t>();
    }
    auto prepared = std::make_shared<const Dataset>(PrepareDataset(spec));
    ThrowIfLost();
    const std::string digest = Upload(EncodeDataset(*prepared));
    dataset = prepared;
    dataset_digest = digest;
    Log("task " + std::to_string(id) + ": dataset " + digest + " (" +
        prepared->meta["train"].dump() + " train, " +
        prepared->meta["validation"].dump() + " validation, " +
        prepared->meta["test"].dump() + " test)");
    client.Complete(id, digest);
  }

  // A task with "ranks" > 1: the group's first `ranks` processes train it
  // together. Rank 0 (this worker, which took the task) tells the others
  // and forms the task attempt's process group with them.
  std::unique_ptr<Collective> JoinRanks(int64_t id, const Json& task) {
    const int64_t ranks = IntField(task, "ranks", 1, 1);
    if (ranks == 1) return nullptr;
    if (!group) {
      throw TaskError("ranks", "is " + std::to_string(ranks) +
                                   ", but this worker runs alone (the local pool and the Slurm executor start "
                                   "groups of ranks for pipelines that ask for them)");
    }
    if (ranks > group->world()) {
      throw TaskError("ranks", "is " + std::to_string(ranks) + ", but this worker's group has " +
                                   std::to_string(group->world()) + " processes");
    }
    if (group->rank() == 0) group->Post({{"task", task}});
    return group->Begin("task-" + std::to_string(id) + "-" + task.value("attempt", Json(1)).dump(),
                        static_cast<int>(ranks));
  }

  // Where a train task trains: its "device" ("cpu", "cuda", or "auto", the
  // default: CUDA when this LibTorch and this node have it). Each worker
  // sees its own GPU (the executor sets CUDA_VISIBLE_DEVICES); a rank of a
  // group on one node takes the GPU of its rank among those it sees.
  torch::Device TaskDevice(const Json& task, int rank) {
    const Json& field = task.contains("device") ? task["device"] : Json("auto");
    const std::string asked = field.is_string() ? field.get<std::string>() : "";
    if (asked != "cpu" && asked != "cuda" && asked != "auto") {
      throw TaskError("device", "must be \"cpu\", \"cuda\" or \"auto\", got " + field.dump());
    }
    const bool cuda = torch::cuda::is_available();
    if (asked == "cpu" || (asked == "auto" && !cuda)) return torch::kCPU;
    if (!cuda) {
      throw TaskError("device", "is \"cuda\", but this worker's LibTorch has no CUDA or this node no GPU it may "
                                "use (CUDA_VISIBLE_DEVICES " + VisibleGpusEnv() + ")");
    }
    const int count = static_cast<int>(torch::cuda::device_count());
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(count > 0 ? rank % count : 0));
  }

  // The model a train task starts from, before any weights are loaded:
  // built from the task's layers on the dataset's shapes with the task's seed,
  // or its TorchScript file (fetched by the manifest digest the coordinator
  // stored it under) with the task's hyperparameters on its attributes.
  Model BuildModel(const Json& task, const Dataset& data, uint64_t seed) {
    torch::manual_seed(seed);
    const Json& spec = Field(task, "model");
    try {
      if (spec.is_object() && spec.contains("torchscript")) {
        return Model(FetchTorchScript(spec), data.input_shape, data.num_classes,
                     task.value("hyperparameters", Json::object()));
      }
      return Model(spec, data.input_shape, data.num_classes);
    } catch (const Error& e) {
      throw Error(e.code(), e.what(), "/model" + e.pointer());
    }
  }

  // A task model's {"torchscript": path, "manifest": digest}: the file's
  // bytes from its "files" manifest.
  TorchScriptFile FetchTorchScript(const Json& spec) {
    TorchScriptFile file;
    file.name = spec["torchscript"].is_string() ? spec["torchscript"].get<std::string>() : spec["torchscript"].dump();
    std::optional<std::string> digest = DigestField(spec, "manifest");
    if (!digest) throw Error(ErrorCode::kInvalidArgument, "a TorchScript model needs its file's manifest digest", "/manifest");
    const store::Manifest manifest = FetchManifest(*digest);
    if (manifest.kind != "files" || manifest.tensors.size() != 1) {
      throw Error(ErrorCode::kInvalidArgument, "manifest " + *digest + " is not a single file's", "/manifest");
    }
    file.bytes = Fetch(manifest.tensors.front().blob);
    return file;
  }

  // The training data of a train task (without its dropped features).
  std::shared_ptr<const Dataset> TrainData(int64_t id, const Json& task) {
    const Json& dataset_field = Field(task, "dataset");
    if (!dataset_field.is_string())
      throw TaskError("dataset", "must be a digest");
    std::shared_ptr<const Dataset> data =
        LoadDataset(dataset_field.get<std::string>());
    if (std::vector<std::string> drop = StringListField(task, "drop_features");
        !drop.empty()) {
      try {
        data = std::make_shared<const Dataset>(DropFeatures(*data, drop));
      } catch (const Error& e) {
        throw Error(e.code(), e.what(), "/drop_features");
      }
      Log("task " + std::to_string(id) + ": leaving out features " +
          Json(drop).dump() + ", " + std::to_string(data->input_shape[0]) +
          " remain");
    }
    return data;
  }

  TrainOptions TrainOptionsOf(const Json& task) {
    const Json& seed_field = Field(task, "seed");
    if (!seed_field.is_number_integer())
      throw TaskError("seed", "must be an integer");
    TrainOptions train_options;
    train_options.seed = seed_field.get<uint64_t>();
    train_options.epochs = IntField(task, "epochs", 1);
    train_options.start_epoch = IntField(task, "start_epoch", 0, 0);
    if (auto it = task.find("evaluate_test"); it != task.end()) {
      if (!it->is_boolean())
        throw TaskError("evaluate_test", "must be true or false");
      train_options.evaluate_test = it->get<bool>();
    }
    if (auto it = task.find("partitioning"); it != task.end() && !it->is_null()) {
      const Json& p = *it;
      auto& out = train_options.partitioning;
      out.type = p.value("type", out.type);
      out.heuristic = p.value("heuristic", out.heuristic);
      out.warmup_epochs = p.value("warmup_epochs", out.warmup_epochs);
      out.every = std::max<int64_t>(1, p.value("every", out.every));
      if (out.type != "random" && out.type != "importance") {
        throw TaskError("partitioning", "type must be \"random\" or \"importance\", got \"" + out.type + "\"");
      }
    }
    return train_options;
  }

  // A rank > 0's part of a task that rank 0 took: the same data, model and
  // hyperparameters; rank 0's weights arrive with the first broadcast; only
  // rank 0 reports. A rank beyond the task's "ranks" sits it out.
  void RunRank(const Json& task) {
    const int64_t id = task.value("id", Json(0)).get<int64_t>();
    if (group->rank() >= task.value("ranks", 1)) return;
    std::unique_ptr<Collective> collective = JoinRanks(id, task);
    std::shared_ptr<const Dataset> data = TrainData(id, task);
    TrainOptions train_options = TrainOptionsOf(task);
    Hyperparameters hp = ParseHyperparameters(Field(task, "hyperparameters"));
    Model model = BuildModel(task, *data, train_options.seed);
    const torch::Device device = TaskDevice(task, group->rank());
    model->to(device);
    train_options.collective = collective.get();
    Log("task " + std::to_string(id) + ": rank " + std::to_string(group->rank()) + " of " +
        std::to_string(collective->size()) + " on " + device.str());
    Train(model, *data, hp, train_options, [](const EpochMetrics&) { return true; });
  }

  void RunTrain(int64_t id, const Json& task) {
    std::unique_ptr<Collective> collective = JoinRanks(id, task);
    try {
      RunTrainOn(id, task, collective.get());
    } catch (...) {
      // A rank that failed (or never came) breaks the group for good.
      if (collective) group_broken = true;
      throw;
    }
  }

  void RunTrainOn(int64_t id, const Json& task, Collective* collective) {
    // A feature ablation trains on a copy without those columns; the cached
    // dataset stays whole for the next task.
    std::shared_ptr<const Dataset> data = TrainData(id, task);
    TrainOptions train_options = TrainOptionsOf(task);
    Hyperparameters hp = ParseHyperparameters(Field(task, "hyperparameters"));
    train_options.collective = collective;
    const torch::Device device = TaskDevice(task, collective != nullptr ? collective->rank() : 0);
    Model model = BuildModel(task, *data, train_options.seed);
    if (!model->attributes_set().empty()) {
      Log("task " + std::to_string(id) + ": TorchScript attributes " + model->attributes_set().dump());
    }

    std::string last_checkpoint;
    if (train_options.start_epoch > 0) {
      std::optional<std::string> resume =
          DigestField(task, "resume_checkpoint");
      if (!resume) {
        throw TaskError("resume_checkpoint", "is needed when start_epoch > 0");
      }
      LoadState(*model, FetchManifest(*resume), Fetcher());
      // Report the loaded state: the coordinator checks it is the checkpoint
      // it gave, bit for bit, and records the resumption as lineage. Every
      // blob is in the store already, so this uploads nothing.
      last_checkpoint = Upload(EncodeModelState(*model));
      client.ReportInitial(id, {{"checkpoint", last_checkpoint},
                                {"resumed", true},
                                {"device", device.str()},
                                {"visible_gpus", VisibleGpusEnv()}});
    } else {
      InitReport report;
      Json source = nullptr;
      if (std::optional<std::string> init =
              DigestField(task, "init_checkpoint")) {
        report = TransferInit(*model, FetchManifest(*init), Fetcher());
        source = *init;
      } else {
        for (const auto& [name, tensor] : ModuleState(*model)) {
          report.reinitialized.push_back(name);
        }
        std::sort(report.reinitialized.begin(), report.reinitialized.end());
      }
      last_checkpoint = Upload(EncodeModelState(*model));
      client.ReportInitial(id, {{"checkpoint", last_checkpoint},
                                {"device", device.str()},
                                {"visible_gpus", VisibleGpusEnv()},
                                {"init",
                                 {{"source", source},
                                  {"transferred", report.transferred},
                                  {"reinitialized", report.reinitialized}}}});
    }
    // Weights are loaded and reported from the CPU; training runs on the
    // device, and every checkpoint is encoded from CPU copies
    // (EncodeModelState), so digests do not depend on the device.
    model->to(device);

    // Each epoch's checkpoint is encoded here (a copy the next steps leave
    // alone) and committed in the background while the next epoch trains;
    // a "stop" in a report's answer ends training at the next batch.
    EpochCommitter committer;
    train_options.stop_requested = [this, &committer] {
      return committer.StopRequested() || Lost();
    };
    TrainResult result = Train(
        model, *data, hp, train_options, [&](const EpochMetrics& metrics) {
          if (Lost()) return false;  // not ours any more: report nothing
          auto encoded =
              std::make_shared<const EncodedTensors>(EncodeModelState(*model));
          const std::string digest = store::ManifestDigest(encoded->manifest);
          Log("task " + std::to_string(id) + " epoch " +
              std::to_string(metrics.epoch + 1) + "/" +
              std::to_string(train_options.epochs) + ": " +
              FormatMetrics(metrics));
          Json report = {{"epoch", metrics.epoch},
                         {"checkpoint", digest},
                         {"seconds", metrics.seconds},
                         {"metrics", MetricsJson(metrics)}};
          if (!metrics.partitioning.is_null()) report["partitioning"] = metrics.partitioning;
          const bool started = committer.Submit(
              [this, id, encoded, report = std::move(report)] {
                Upload(*encoded);
                return client.ReportEpoch(id, report);
              });
          if (started) last_checkpoint = digest;
          return started;
        });
    // The last commit must be answered before the task ends either way.
    const bool stopped = !committer.Wait();
    ThrowIfLost();
    if (stopped) {
      Log("task " + std::to_string(id) + " stopped by the coordinator");
      client.Complete(id, last_checkpoint);
      return;
    }
    if (result.outcome == TrialOutcome::kDiverged) {
      Log("task " + std::to_string(id) + " diverged: " + result.reason);
      client.Fail(id, std::string(Name(TrialStatus::kDiverged)), result.reason);
      return;
    }
    client.Complete(id, last_checkpoint);
  }
};

Worker::Worker(CoordinatorClient& client, WorkerOptions options)
    : state_(std::make_unique<State>(client, std::move(options))) {}

Worker::~Worker() = default;

int Worker::Run() {
  if (std::optional<RankPlace> place = RankPlaceFromEnvironment()) {
    state_->group = std::make_unique<RankGroup>(*place);
    state_->Log("rank " + std::to_string(place->rank) + " of a group of " + std::to_string(place->world) +
                " (store " + place->master_addr + ":" + std::to_string(place->master_port) + ")");
    if (place->rank > 0) return RunRank();
  }
  const int status = TakeTasks();
  if (state_->group && !state_->group_broken) {
    try {
      state_->group->Post({{"exit", true}});  // the other ranks end with this one
    } catch (const Error& e) {
      state_->Log(std::string("cannot tell the other ranks to exit: ") + e.what());
    }
  }
  return status;
}

int Worker::RunRank() {
  while (true) {
    Json command;
    try {
      command = state_->group->Await();
    } catch (const Error& e) {
      state_->Log(std::string("exiting: ") + e.what());
      return kExitFatal;
    }
    if (command.value("exit", false)) {
      state_->Log("rank 0 says the run is over; exiting");
      return kExitRunOver;
    }
    try {
      state_->RunRank(command.at("task"));
    } catch (const Error& e) {
      state_->Log(std::string("exiting: ") + Reason(e));
      return kExitFatal;
    } catch (const c10::Error& e) {
      state_->Log(std::string("exiting: ") + e.what_without_backtrace());
      return kExitFatal;
    } catch (const std::exception& e) {
      state_->Log(std::string("exiting: ") + e.what());
      return kExitFatal;
    }
  }
}

int Worker::TakeTasks() {
  while (true) {
    try {
      std::optional<Json> task =
          state_->client.NextTask(state_->options.worker_id);
      if (task) RunTask(*task);
      if (state_->group_broken) {
        state_->Log("exiting: a rank of this worker's group failed; its executor starts the group afresh");
        return kExitFatal;
      }
    } catch (const RunOver&) {
      state_->Log("the run is over; exiting");
      return kExitRunOver;
    } catch (const CoordinatorUnreachable& e) {
      state_->Log(std::string("exiting: ") + e.what());
      return kExitUnreachable;
    } catch (const Error& e) {
      state_->Log(std::string("exiting: ") + e.what());
      return kExitFatal;
    }
  }
}

void Worker::RunTask(const Json& task) {
  if (!task.is_object() || !task.contains("id") ||
      !task["id"].is_number_integer()) {
    // Without an id there is nobody to report to.
    throw Error(ErrorCode::kInternal,
                "coordinator sent a task without an integer id: " +
                    task.dump().substr(0, 200));
  }
  const int64_t id = task["id"].get<int64_t>();
  std::string reason;
  std::unique_ptr<HeartbeatThread> heartbeat;
  struct Detach {
    State& state;
    ~Detach() { state.heartbeat = nullptr; }
  } detach{*state_};
  try {
    const std::chrono::milliseconds lease = MillisecondsField(task, "lease_seconds");
    const std::chrono::milliseconds interval =
        MillisecondsField(task, "heartbeat_seconds");
    if (lease.count() > 0 && interval.count() > 0) {
      const int attempt = task.value("attempt", Json(1)).is_number_integer()
                              ? task["attempt"].get<int>()
                              : 1;
      heartbeat = std::make_unique<HeartbeatThread>(
          state_->client, id, attempt, interval,
          std::min(lease, state_->options.patience),
          [this](const std::string& line) { state_->Log(line); });
      state_->heartbeat = heartbeat.get();
    }
    const Json& kind_field = Field(task, "kind");
    const std::string kind =
        kind_field.is_string() ? kind_field.get<std::string>() : "";
    state_->Log("task " + std::to_string(id) + ": " + kind_field.dump() +
                " (stage " + task.value("stage", Json("?")).dump() +
                ", attempt " + task.value("attempt", Json(1)).dump() + ")");
    if (Is(kind, TaskKind::kPrepare)) {
      state_->RunPrepare(id, task);
    } else if (Is(kind, TaskKind::kTrain)) {
      state_->RunTrain(id, task);
    } else if (Is(kind, TaskKind::kCommand)) {
      CommandTaskOptions options;
      options.log = [this](const std::string& line) { state_->Log(line); };
      options.check_lost = [this] { state_->ThrowIfLost(); };
      RunCommandTask(state_->client, id, task, options);
    } else {
      throw TaskError("kind", "must be \"prepare\", \"train\" or \"command\", got " + kind_field.dump());
    }
    return;
  } catch (const RunOver&) {
    throw;
  } catch (const CoordinatorUnreachable&) {
    throw;
  } catch (const TaskSuperseded& e) {
    state_->Log("task " + std::to_string(id) + " dropped: " + e.what());
    return;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kResourceExhausted) {
      // The coordinator's store is full and the run stops there: nothing
      // to report (a resume continues the task from its last stored epoch);
      // the next tasks:next says the run is over.
      state_->Log("task " + std::to_string(id) + " stopped: " + e.what());
      return;
    }
    reason = Reason(e);
  } catch (const c10::Error& e) {
    reason = e.what_without_backtrace();
  } catch (const std::exception& e) {
    reason = e.what();
  }
  state_->Log("task " + std::to_string(id) + " failed: " + reason);
  state_->client.Fail(id, std::string(Name(TrialStatus::kFailed)), reason);
}

}  // namespace baton::stages
