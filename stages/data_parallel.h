#pragma once

// Data-parallel training across processes with LibTorch's c10d Gloo: a
// worker started as one rank of a group (the local pool starts the group's
// processes; on Slurm `srun -n N` does) trains a task's global batch split
// across the group's first `ranks` processes, averaging gradients with an
// allreduce. Rank 0 talks to the coordinator, hosts the TCPStore and tells
// the other ranks what to train through it.
#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/torch.h>

#include "common/json_util.h"

namespace c10d {
class ProcessGroupGloo;
}  // namespace c10d

namespace baton::stages {

// Where a worker sits in its rank group.
struct RankPlace {
  int rank = 0;
  int world = 1;
  std::string master_addr = "127.0.0.1";  // rank 0's host: its TCPStore
  int master_port = 0;
  std::string gloo_host = "127.0.0.1";  // the address this rank's Gloo pairs bind
};

// The place from the environment: BATON_RANK, BATON_WORLD_SIZE,
// BATON_MASTER_ADDR, BATON_MASTER_PORT (the local pool sets them), else
// SLURM_PROCID and SLURM_NTASKS with BATON_MASTER_ADDR/PORT (set by the
// Slurm job's script). BATON_GLOO_HOST overrides the Gloo address (default
// 127.0.0.1 when the master is on loopback, else this host's name).
// nullopt for a worker on its own (world 1). Error(kInvalidArgument) for
// values that do not fit together.
std::optional<RankPlace> RankPlaceFromEnvironment();

// Importance-aware partitioning (DAIS 2023): examples 0..n-1, scored by
// `scores` (higher: more important, e.g. the example's loss), split among
// `world` ranks. "balanced": in order of score, dealt out in snake order
// (0, 1, ..., w-1, w-1, ..., 0, ...), so every rank gets about the same
// total importance and as many easy as hard examples; "sorted": contiguous
// blocks of that order (rank 0 the most important). Ties go by index; each
// partition lists its examples by index. Error(kInvalidArgument) for
// another heuristic.
std::vector<std::vector<int64_t>> PartitionByImportance(const std::vector<float>& scores, int world,
                                                        const std::string& heuristic);
// SHA-256 (hex) of a partition's indices as little-endian int64: its name
// in lineage.
std::string PartitionDigest(const std::vector<int64_t>& indices);

// One task's collective: a Gloo process group over ranks [0, size).
class Collective {
 public:
  Collective(std::shared_ptr<c10d::ProcessGroupGloo> group, int rank, int size);
  int rank() const { return rank_; }
  int size() const { return size_; }
  // Sums each tensor over the ranks, in place (one collective per tensor).
  void AllReduceSum(std::vector<torch::Tensor>& tensors);
  // Rank 0's tensors to every rank, in place (one collective per tensor).
  void Broadcast(std::vector<torch::Tensor>& tensors);

 private:
  void EachTensor(const char* what, std::vector<torch::Tensor>& tensors,
                  const std::function<void(std::vector<torch::Tensor>&)>& op);
  std::shared_ptr<c10d::ProcessGroupGloo> group_;
  int rank_, size_;
};

// The group of processes a worker belongs to, for the worker's life. Rank 0
// serves the TCPStore; every rank connects to it.
class RankGroup {
 public:
  // Connects (rank 0: serves and waits for the others) within `timeout`.
  // `collective_timeout`: how long a collective waits for a silent rank.
  explicit RankGroup(RankPlace place, std::chrono::milliseconds timeout = std::chrono::seconds(120),
                     std::chrono::milliseconds collective_timeout = std::chrono::seconds(120));
  ~RankGroup();
  int rank() const { return place_.rank; }
  int world() const { return place_.world; }

  // Rank 0: tells the other ranks the next command (a task to train, or
  // {"exit": true}). Commands are numbered; each rank reads every one.
  void Post(const Json& command);
  // Ranks > 0: the next command; blocks until rank 0 posts it. Throws
  // Error(kUnavailable) once rank 0 is gone.
  Json Await();

  // A new process group over the first `size` ranks for one task attempt
  // (`key` names it, e.g. "task-12-1"); every one of those ranks calls it
  // with the same key. Throws Error(kUnavailable) when a rank does not come.
  std::unique_ptr<Collective> Begin(const std::string& key, int size);

 private:
  RankPlace place_;
  std::chrono::milliseconds collective_timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  int64_t posted_ = 0, read_ = 0;
};

}  // namespace baton::stages
