// libFuzzer target: any bytes as a pipeline file. ParseJson, then
// ValidatePipeline, then LoadPipeline when valid. A baton::Error is the
// expected answer to bad input; any other exception, a crash, a hang or a
// sanitizer report is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/json_util.h"
#include "orchestrator/pipeline_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const baton::Json doc = baton::ParseJson(text, "fuzz input");
    const std::vector<baton::ErrorDetail> issues = baton::orchestrator::ValidatePipeline(doc);
    for (const auto& d : issues) baton::Json({{"pointer", d.pointer}, {"message", d.message}}).dump();
    if (issues.empty()) {
      const baton::orchestrator::Pipeline plan = baton::orchestrator::LoadPipeline(doc);
      // A valid pipeline's planned order names every stage once.
      if (plan.order.size() != doc.at("stages").size()) __builtin_trap();
    }
  } catch (const baton::Error& e) {
    // Messages and pointers are sent as JSON: they must be valid UTF-8
    // (dump() throws otherwise, which is a finding).
    baton::Json answer = {{"message", e.what()}, {"pointer", e.pointer()}};
    for (const auto& d : e.details()) answer["details"].push_back({{"pointer", d.pointer}, {"message", d.message}});
    answer.dump();
  }
  return 0;
}
