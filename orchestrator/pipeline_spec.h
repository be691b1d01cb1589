#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json_util.h"
#include "orchestrator/stage_spec.h"

namespace baton::orchestrator {

// A validated pipeline: the document as written plus what planning derived
// from it. Immutable once built; safe to share between threads.
// Where a run's workers run ("executor" of the pipeline; `--executor` on
// the command line overrides `type`).
enum class ExecutorType { kLocal, kSlurm };
struct ExecutorSpec {
  ExecutorType type = ExecutorType::kLocal;
  // The Slurm jobs' sbatch options; "" / 0 = the cluster's default
  // (cpus_per_task 0: the worker's torch threads).
  std::string partition, account, mem, time_limit;
  int cpus_per_task = 0;
  std::vector<std::string> extra_args;  // passed to sbatch as written
  // A run whose worker jobs all stay pending this long fails. Default: 600 s.
  double pending_timeout_seconds = 600;
};
// "local" | "slurm"; Error(kInvalidArgument) naming the choices otherwise.
ExecutorType ParseExecutorType(const std::string& name);
// The sbatch options that extra_args may not set: Baton sets them itself
// (--wrap, --output, --export, --job-name, ...).
bool IsReservedSbatchOption(const std::string& arg);

struct Pipeline {
  Json doc;                         // the pipeline as written (validated)
  std::string id;                   // SHA-256 of the canonical JSON of `doc`
  std::string name;
  uint64_t seed = 0;                // "seed", default 0
  std::vector<std::string> order;   // stage names, dependencies first
  // For each stage, the names of its direct dependencies and of the nearest
  // upstream prepare stage that feeds it data ("" for prepare stages).
  std::map<std::string, std::vector<std::string>> depends_on;
  std::map<std::string, std::string> data_stage;
  // Every stage, typed, defaults applied (stage_spec.h).
  std::map<std::string, StageSpec> specs;
  ExecutorSpec executor;            // "executor", defaults applied

  const Json& stage(const std::string& name) const { return doc.at("stages").at(name); }
  const StageSpec& spec(const std::string& name) const { return specs.at(name); }
};

// The pipeline JSON Schema (schema/pipeline.schema.json, compiled in).
const std::string& PipelineSchemaText();

// This machine's memory / 2: the default PipelineLimits::max_model_bytes.
uint64_t DefaultMaxModelBytes();

// Whether this build's LibTorch (that of baton-worker) has CUDA.
bool BuiltWithCuda();

// What a pipeline may ask of this machine.
struct PipelineLimits {
  // The most memory a stage's model may need at least: float32 parameters
  // with their gradients, and one training batch's layer outputs, estimated
  // from the layer list, the shape of one example (from the dataset files'
  // headers; 1 x 1 when they do not say) and the smallest values its
  // "$name" fields can take. A bigger one is refused at its largest layer.
  uint64_t max_model_bytes = DefaultMaxModelBytes();
  // Whether "device": "cuda" can run: the worker's LibTorch has CUDA.
  // Default: BuiltWithCuda().
  bool cuda = BuiltWithCuda();
};

// Every problem in `doc`, each with a JSON pointer: schema violations first,
// then semantic ones (dangling or cyclic depends_on, selectors that name a
// stage that is not upstream, search-space bounds, "$name" references that no
// hyperparameter defines, ...). Empty when the pipeline is valid.
std::vector<ErrorDetail> ValidatePipeline(const Json& doc, const PipelineLimits& limits = {});

// Validates and plans. Throws Error(kInvalidArgument) listing every problem
// in details() when the pipeline is invalid.
Pipeline LoadPipeline(const Json& doc, const PipelineLimits& limits = {});
// Reads a file (a clear error if it is missing or not JSON), then LoadPipeline.
Pipeline LoadPipelineFile(const std::string& path, const PipelineLimits& limits = {});

}  // namespace baton::orchestrator
