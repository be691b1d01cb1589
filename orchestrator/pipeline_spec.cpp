#include "orchestrator/pipeline_spec.h"

#include <fstream>
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

std::vector<ErrorDetail> ValidatePipeline(const Json& doc) {
  Issues issues;
  DocumentIssues(doc, issues);
  if (issues.empty()) SchemaIssues(doc, issues);
  if (issues.empty()) SemanticIssues(doc, nullptr, issues);
  return issues;
}

Pipeline LoadPipeline(const Json& doc) {
  Issues issues;
  DocumentIssues(doc, issues);
  if (issues.empty()) SchemaIssues(doc, issues);
  Pipeline plan;
  if (issues.empty()) SemanticIssues(doc, &plan, issues);
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
  return plan;
}

Pipeline LoadPipelineFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read pipeline file " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return LoadPipeline(ParseJson(buf.str(), path));
}

}  // namespace baton::orchestrator
