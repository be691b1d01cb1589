// `baton logs RUN STAGE` and the stage logs view: a command stage's stdout
// and stderr, kept in the blob store (views.h, view_source.h).
#include <cstdio>
#include <string>

#include "api/internal/view_source.h"
#include "api/internal/views.h"
#include "common/error.h"
#include "store/blob_store.h"

namespace baton::api {
namespace {

// Most bytes of each stream a view carries: the end of a longer one.
constexpr size_t kMaxLogBytes = 8u << 20;

// `bytes` as a JSON string: invalid UTF-8 becomes U+FFFD.
Json Text(const std::string& bytes) {
  return Json::parse(Json(bytes).dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace

Json StageLogsJson(StoreHandle& store, const store::StageRecord& stage) {
  Json out = {{"run_id", stage.run_id}, {"stage", stage.name}, {"type", stage.type}, {"status", stage.status}};
  const Json logs = stage.resolved.is_object() ? stage.resolved.value("logs", Json()) : Json();
  if (!logs.is_object()) {
    throw Error(ErrorCode::kNotFound, "stage " + stage.name + " of run " + stage.run_id +
                                          " has no logs (only command stages keep their output, once they ran)");
  }
  out["attempt"] = logs.value("attempt", 0);
  if (stage.cached_from != 0) {
    if (auto from = store.db->GetStage(stage.cached_from)) out["cached_from_run"] = from->run_id;
  }
  for (const char* stream : {"stdout", "stderr"}) {
    const std::string digest = logs.value(stream, "");
    std::string bytes;
    if (!digest.empty()) bytes = store.blobs->Get(digest);
    out[std::string(stream) + "_blob"] = digest;
    out[std::string(stream) + "_bytes"] = bytes.size();
    if (bytes.size() > kMaxLogBytes) bytes = bytes.substr(bytes.size() - kMaxLogBytes);
    out[stream] = Text(bytes);
  }
  return out;
}

int CmdLogs(ViewSource& views, const std::string& run_id, const std::string& stage, bool json) {
  const Json logs = views.StageLogs(run_id, stage);
  if (json) {
    std::printf("%s\n", logs.dump(2).c_str());
    return kExitOk;
  }
  // Each stream where it came from, as `docker logs` does.
  const std::string out = logs.value("stdout", ""), err = logs.value("stderr", "");
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  std::fwrite(err.data(), 1, err.size(), stderr);
  return kExitOk;
}

}  // namespace baton::api
