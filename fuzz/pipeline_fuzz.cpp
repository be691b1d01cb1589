// libFuzzer target: any bytes as a pipeline file. ParseJson, then
// ValidatePipeline, then LoadPipeline when valid. A baton::Error is the
// expected answer to bad input; any other exception, a crash, a hang or a
// sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "common/json_util.h"
#include "orchestrator/pipeline_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const baton::Json doc = baton::ParseJson(text, "fuzz input");
    if (baton::orchestrator::ValidatePipeline(doc).empty()) {
      const baton::orchestrator::Pipeline plan = baton::orchestrator::LoadPipeline(doc);
      // A valid pipeline's planned order names every stage once.
      if (plan.order.size() != doc.at("stages").size()) __builtin_trap();
    }
  } catch (const baton::Error&) {
  }
  return 0;
}
