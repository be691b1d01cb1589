#pragma once

// The checks behind ValidatePipeline and LoadPipeline, shared by their source
// files (pipeline_schema_check.cpp: the document as such and the JSON Schema;
// pipeline_semantics.cpp: dependencies, references and what else the schema
// cannot express; pipeline_tune_checks.cpp: a tune stage's search space and
// pruner; pipeline_spec.cpp: the public functions). Not for use outside
// orchestrator/. Each check appends what it finds to `issues`, each problem
// with a JSON pointer.

#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json_util.h"
#include "orchestrator/pipeline_spec.h"

namespace baton::orchestrator {
namespace spec_detail {

using Issues = std::vector<ErrorDetail>;

inline std::string StagePtr(const std::string& stage) { return PointerAppend("/stages", stage); }
inline std::string Quote(const std::string& s) { return "\"" + s + "\""; }

// Problems with the document as such (nesting, sizes, UTF-8, int64 range),
// found before the schema runs.
void DocumentIssues(const Json& doc, Issues& issues);

// Schema violations: the top level, then each stage against its type's
// definition. Expects a document DocumentIssues found nothing wrong with.
void SchemaIssues(const Json& doc, Issues& issues);

// Dependencies (dangling, cyclic), selectors that name a stage that is not
// upstream, search-space bounds, "$name" references and the like. Expects a
// document valid against the schema. When `plan` is not null and nothing is
// wrong, fills its order, depends_on and data_stage. Models bigger than
// limits.max_model_bytes are refused (CheckModelSize).
void SemanticIssues(const Json& doc, const PipelineLimits& limits, Pipeline* plan, Issues& issues);

// A model (at pointer `mp`) that needs more than `limit` bytes at least:
// an issue at its largest layer naming the bytes. `fixed` and `space` are
// the stage's hyperparameters and search space, for "$name" fields and the
// batch size; `input` the shape of one example ([channels, height, width]
// or [features]; empty when unknown: then 1 x 1). (pipeline_model_size.cpp)
void CheckModelSize(const std::string& mp, const Json& model, const Json& fixed, const Json& space,
                    const std::vector<int64_t>& input, uint64_t limit, Issues& issues);

// One example's shape before each top-level layer of `model` and after the
// last (so one more than it has layers): [channels, height, width] or
// [features], found without LibTorch from `input` (as for CheckModelSize)
// and the layers' fields ("$name" from `fixed`). A shape is empty where it
// cannot be known so: the input's shape unknown, a size from a search
// space, a layer type the walk does not know. (pipeline_model_size.cpp)
std::vector<std::vector<int64_t>> ModelShapes(const Json& model, const Json& fixed,
                                              const std::vector<int64_t>& input);

// The shape of one example a prepare stage will produce, read from its
// files' headers (an idx image file's rows and columns; a CSV's columns but
// the label; an npy x array's shape but its first dimension) or, for an
// image folder, its image_size and channels; empty when they do not say.
std::vector<int64_t> ExampleShape(const Json& prepare_stage);

// The bounds of each parameter of a tune stage's search space at pointer `sp`,
// and for the grid sampler how many values it would enumerate.
void CheckSearchSpace(const std::string& sp, const Json& space,
                      const std::string& sampler, Issues& issues);

// A tune stage's pruner and sampler settings, against their types and its
// epoch budget; `sp` is the stage's pointer.
void CheckPruner(const std::string& sp, const Json& stage, Issues& issues);

// The tune stage `ref` that a selector of stage `stage` at `pointer` names,
// if it is one and upstream; records an issue otherwise.
bool CheckTuneRef(const Json& stages, const std::string& stage, const std::string& ref,
                  const std::set<std::string>& upstream, const std::string& pointer, Issues& issues);

// A command stage (pipeline_command_checks.cpp): "${params.NAME}" in cmd and
// env names a param; outs are relative paths inside the working directory,
// not nested in each other, not also deps; checkpoint deps name an upstream
// tune stage's epoch; a dep another command writes needs that stage upstream.
void CheckCommand(const Json& stages, const std::string& name, const std::set<std::string>& upstream,
                  Issues& issues);
// Whether `path` is, or lies inside, an out of a command stage among `upstream`.
bool IsCommandOut(const Json& stages, const std::set<std::string>& upstream, const std::string& path);
// An issue at `pointer` when a command stage not upstream of `name` writes `path`.
void CheckWrittenUpstream(const Json& stages, const std::string& name, const std::set<std::string>& upstream,
                          const std::string& path, const std::string& pointer, Issues& issues);
// Two command stages that write the same path (or one inside the other's).
void CheckCommandOutsUnique(const Json& stages, Issues& issues);

}  // namespace spec_detail
}  // namespace baton::orchestrator
