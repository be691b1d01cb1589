#include "orchestrator/pipeline_spec.h"

#include <unistd.h>

#include <fstream>
#include <set>
#include <sstream>

#include "orchestrator/internal/pipeline_checks.h"

namespace baton::orchestrator {

const char* PipelineSchemaRaw();  // generated from schema/pipeline.schema.json

using spec_detail::DocumentIssues;
using spec_detail::Issues;
using spec_detail::SchemaIssues;
using spec_detail::SemanticIssues;

const std::string& PipelineSchemaText() {
  static const std::string text = PipelineSchemaRaw();
  return text;
}

uint64_t DefaultMaxModelBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return uint64_t{1} << 34;  // 16 GiB when the machine does not say
  return static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 2;
}

std::vector<ErrorDetail> ValidatePipeline(const Json& doc, const PipelineLimits& limits) {
  Issues issues;
  DocumentIssues(doc, issues);
  if (issues.empty()) SchemaIssues(doc, issues);
  if (issues.empty()) SemanticIssues(doc, limits, nullptr, issues);
  return issues;
}

Pipeline LoadPipeline(const Json& doc, const PipelineLimits& limits) {
  Issues issues;
  DocumentIssues(doc, issues);
  if (issues.empty()) SchemaIssues(doc, issues);
  Pipeline plan;
  if (issues.empty()) SemanticIssues(doc, limits, &plan, issues);
  if (!issues.empty()) {
    std::ostringstream msg;
    msg << "invalid pipeline: " << issues.size() << " problem" << (issues.size() == 1 ? "" : "s");
    for (const auto& i : issues) msg << "\n  " << (i.pointer.empty() ? "/" : i.pointer) << ": " << i.message;
    throw Error(ErrorCode::kInvalidArgument, msg.str(), issues);
  }
  plan.doc = doc;
  plan.id = JsonDigest(doc);
  plan.name = doc.at("name").get<std::string>();
  plan.seed = doc.value("seed", static_cast<uint64_t>(0));
  plan.specs = ParseStageSpecs(doc);
  if (const auto it = doc.find("executor"); it != doc.end()) {
    const Json& e = *it;
    ExecutorSpec& x = plan.executor;
    x.type = ParseExecutorType(e.value("type", "local"));
    x.partition = e.value("partition", "");
    x.account = e.value("account", "");
    x.mem = e.value("mem", "");
    x.time_limit = e.value("time_limit", "");
    x.cpus_per_task = e.value("cpus_per_task", 0);
    x.extra_args = e.value("extra_args", std::vector<std::string>{});
    x.pending_timeout_seconds = e.value("pending_timeout_seconds", x.pending_timeout_seconds);
  }
  return plan;
}

#ifndef BATON_TORCH_CUDA
#define BATON_TORCH_CUDA 0
#endif

bool BuiltWithCuda() { return BATON_TORCH_CUDA != 0; }

ExecutorType ParseExecutorType(const std::string& name) {
  if (name == "local") return ExecutorType::kLocal;
  if (name == "slurm") return ExecutorType::kSlurm;
  throw Error(ErrorCode::kInvalidArgument, "unknown executor \"" + name + "\": choose local or slurm");
}

bool IsReservedSbatchOption(const std::string& arg) {
  static const std::set<std::string> kReserved = {
      "--wrap",    "--output",        "--error",   "--input",     "--export", "--export-file", "--job-name",
      "--chdir",   "--get-user-env",  "--uid",     "--gid",       "--parsable", "--requeue",   "--no-requeue",
      "--open-mode", "--cpus-per-task", "--partition", "--account", "--mem",    "--time",        "--array",
      "--wait",    "--test-only",     "--hold"};
  return kReserved.count(arg.substr(0, arg.find('='))) != 0;
}

Pipeline LoadPipelineFile(const std::string& path, const PipelineLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read pipeline file " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return LoadPipeline(ParseJson(buf.str(), path), limits);
}

}  // namespace baton::orchestrator
