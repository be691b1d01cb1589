#include "stages/data_parallel.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "common/digest.h"
#include "common/error.h"

namespace baton::stages {

namespace {

std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == 0) return std::nullopt;
  return std::string(v);
}

int IntEnv(const char* name, const std::string& value) {
  try {
    size_t used = 0;
    const int n = std::stoi(value, &used);
    if (used == value.size()) return n;
  } catch (const std::exception&) {
  }
  throw Error(ErrorCode::kInvalidArgument, std::string(name) + "=" + value + " is not a whole number");
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

// c10d reports failures as c10::Error (or std::runtime_error from Gloo):
// one Error a user can read, naming what was under way.
[[noreturn]] void Unavailable(const std::string& what, const std::exception& e) {
  std::string why = e.what();
  if (auto nl = why.find('\n'); nl != std::string::npos) why = why.substr(0, nl);  // c10's backtrace follows
  throw Error(ErrorCode::kUnavailable, what + ": " + why);
}

}  // namespace

std::vector<std::vector<int64_t>> PartitionByImportance(const std::vector<float>& scores, int world,
                                                        const std::string& heuristic) {
  if (heuristic != "balanced" && heuristic != "sorted") {
    throw Error(ErrorCode::kInvalidArgument,
                "partitioning heuristic must be \"balanced\" or \"sorted\", got \"" + heuristic + "\"");
  }
  const int64_t n = static_cast<int64_t>(scores.size());
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  std::vector<std::vector<int64_t>> parts(static_cast<size_t>(std::max(world, 1)));
  for (int64_t i = 0; i < n; ++i) {
    int r = 0;
    if (heuristic == "sorted") {
      r = static_cast<int>(i * world / n);
    } else {
      const int64_t round = i / world, pos = i % world;
      r = static_cast<int>(round % 2 == 0 ? pos : world - 1 - pos);
    }
    parts[r].push_back(order[i]);
  }
  for (auto& p : parts) std::sort(p.begin(), p.end());
  return parts;
}

std::string PartitionDigest(const std::vector<int64_t>& indices) {
  std::string bytes(indices.size() * sizeof(int64_t), '\0');
  for (size_t i = 0; i < indices.size(); ++i) {
    const uint64_t v = static_cast<uint64_t>(indices[i]);
    for (int b = 0; b < 8; ++b) bytes[i * 8 + b] = static_cast<char>((v >> (8 * b)) & 0xff);
  }
  return Sha256Hex(bytes);
}

std::optional<RankPlace> RankPlaceFromEnvironment() {
  RankPlace p;
  if (auto world = Env("BATON_WORLD_SIZE")) {
    p.world = IntEnv("BATON_WORLD_SIZE", *world);
    p.rank = IntEnv("BATON_RANK", Env("BATON_RANK").value_or("0"));
  } else if (auto ntasks = Env("SLURM_NTASKS")) {
    p.world = IntEnv("SLURM_NTASKS", *ntasks);
    p.rank = IntEnv("SLURM_PROCID", Env("SLURM_PROCID").value_or("0"));
  }
  if (p.world <= 1) return std::nullopt;
  if (p.rank < 0 || p.rank >= p.world) {
    throw Error(ErrorCode::kInvalidArgument,
                "rank " + std::to_string(p.rank) + " is outside a group of " + std::to_string(p.world));
  }
  p.master_addr = Env("BATON_MASTER_ADDR").value_or("127.0.0.1");
  const auto port = Env("BATON_MASTER_PORT");
  if (!port) throw Error(ErrorCode::kInvalidArgument, "a rank group needs BATON_MASTER_PORT (rank 0's TCPStore port)");
  p.master_port = IntEnv("BATON_MASTER_PORT", *port);
  if (auto host = Env("BATON_GLOO_HOST")) {
    p.gloo_host = *host;
  } else if (p.master_addr == "127.0.0.1" || p.master_addr == "localhost") {
    p.gloo_host = "127.0.0.1";
  } else {
    char name[256] = {0};
    p.gloo_host = gethostname(name, sizeof(name) - 1) == 0 && name[0] ? name : "127.0.0.1";
  }
  return p;
}

Collective::Collective(std::shared_ptr<c10d::ProcessGroupGloo> group, int rank, int size)
    : group_(std::move(group)), rank_(rank), size_(size) {}

// Runs `op` on each tensor alone (Gloo takes a list as one tensor per
// device); a failure names the operation and this rank.
void Collective::EachTensor(const char* what, std::vector<torch::Tensor>& tensors,
                            const std::function<void(std::vector<torch::Tensor>&)>& op) {
  try {
    for (auto& t : tensors) {
      std::vector<torch::Tensor> one = {t};
      op(one);
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    Unavailable(std::string("a data-parallel rank failed during ") + what + " (rank " + std::to_string(rank_) +
                    " of " + std::to_string(size_) + ")",
                e);
  }
}

void Collective::AllReduceSum(std::vector<torch::Tensor>& tensors) {
  EachTensor("an allreduce", tensors, [this](std::vector<torch::Tensor>& one) { group_->allreduce(one)->wait(); });
}

void Collective::Broadcast(std::vector<torch::Tensor>& tensors) {
  c10d::BroadcastOptions options;
  options.rootRank = 0;
  EachTensor("a broadcast", tensors,
             [&](std::vector<torch::Tensor>& one) { group_->broadcast(one, options)->wait(); });
}

RankGroup::RankGroup(RankPlace place, std::chrono::milliseconds timeout, std::chrono::milliseconds collective_timeout)
    : place_(std::move(place)), collective_timeout_(collective_timeout) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(place_.master_port);
  options.isServer = place_.rank == 0;
  options.numWorkers = place_.world;
  options.waitWorkers = true;
  options.timeout = timeout;
  try {
    store_ = c10::make_intrusive<c10d::TCPStore>(place_.master_addr, options);
    // Waiting for the next command may take as long as a task does.
    store_->setTimeout(std::chrono::hours(24 * 365));
  } catch (const std::exception& e) {
    Unavailable("rank " + std::to_string(place_.rank) + " of " + std::to_string(place_.world) +
                    " cannot join its group's store at " + place_.master_addr + ":" +
                    std::to_string(place_.master_port),
                e);
  }
}

RankGroup::~RankGroup() = default;

void RankGroup::Post(const Json& command) {
  try {
    store_->set("cmd/" + std::to_string(++posted_), Bytes(command.dump()));
  } catch (const std::exception& e) {
    Unavailable("rank 0 cannot post to its group", e);
  }
}

Json RankGroup::Await() {
  std::vector<uint8_t> bytes;
  try {
    bytes = store_->get("cmd/" + std::to_string(++read_));
  } catch (const std::exception& e) {
    Unavailable("rank " + std::to_string(place_.rank) + " lost rank 0", e);
  }
  return ParseJson(std::string(bytes.begin(), bytes.end()), "command from rank 0");
}

std::unique_ptr<Collective> RankGroup::Begin(const std::string& key, int size) {
  if (size > place_.world) {
    throw Error(ErrorCode::kInvalidArgument, "a task with " + std::to_string(size) + " ranks needs a group that large; this worker's group has " +
                                                 std::to_string(place_.world));
  }
  // Forming the group waits on the store: for a rank that never comes, as
  // long as a collective waits for a silent one, not as long as Await.
  store_->setTimeout(collective_timeout_);
  try {
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(key, store_);
    auto options = c10d::ProcessGroupGloo::Options::create(collective_timeout_);
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(place_.gloo_host));
    auto group = std::make_shared<c10d::ProcessGroupGloo>(prefixed, place_.rank, size, options);
    store_->setTimeout(std::chrono::hours(24 * 365));
    return std::make_unique<Collective>(std::move(group), place_.rank, size);
  } catch (const std::exception& e) {
    store_->setTimeout(std::chrono::hours(24 * 365));
    Unavailable("rank " + std::to_string(place_.rank) + " cannot form the process group of " + key, e);
  }
}

}  // namespace baton::stages
