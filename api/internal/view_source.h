#pragma once

// Where `baton runs`, `show` and `lineage` read what they print: the local
// store or a `baton serve` (--server). Both give the same views (views.h), so
// the commands render the same tables and the same --json either way.
#include <memory>
#include <string>

#include "api/internal/cli.h"
#include "common/json_util.h"

namespace baton::api {

class ViewSource {
 public:
  virtual ~ViewSource() = default;
  // "store DIR" or "http://host:port", for messages.
  virtual std::string Where() const = 0;
  // The newest `max` runs (RunJson each), newest first.
  virtual Json Runs(int max) = 0;
  // RunDetailJson with "pinned"; Error(kNotFound) for an unknown run.
  virtual Json Run(const std::string& run_id) = 0;
  // StageDetailJson; Error(kNotFound) for an unknown run or stage.
  virtual Json Stage(const std::string& run_id, const std::string& stage) = 0;
  // The pipeline document stored under `pipeline_id`.
  virtual Json Pipeline(const std::string& pipeline_id) = 0;
  // LineageJson.
  virtual Json Lineage(const std::string& id, bool downstream, int depth) = 0;
  // StageLogsJson; Error(kNotFound) for an unknown run or stage, or one
  // without logs.
  virtual Json StageLogs(const std::string& run_id, const std::string& stage) = 0;
};

// The views of the store at `store` (cli_show.cpp); it must outlive them.
std::unique_ptr<ViewSource> LocalViews(StoreHandle& store);
// The views a `baton serve` answers (cli_remote.cpp).
std::unique_ptr<ViewSource> RemoteViews(const RemoteOptions& remote);

// The commands, over either source.
int CmdRuns(ViewSource& views, bool json, bool quiet);
int CmdShow(ViewSource& views, const std::string& run_id, const std::string& stage, bool json);
int CmdLineage(ViewSource& views, const std::string& id, bool downstream, int depth, bool json);
// A command stage's stdout to stdout and stderr to stderr (cli_logs.cpp).
int CmdLogs(ViewSource& views, const std::string& run_id, const std::string& stage, bool json);

}  // namespace baton::api
