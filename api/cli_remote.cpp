// `baton --server URL run|resume|runs|show|lineage`: the same commands through a
// `baton serve` instead of a local store. The token comes from --token or
// $BATON_TOKEN (the server's <store>/api-token); a server started with
// --public-read needs it only for `run`.
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include <httplib.h>

#include "api/internal/cli.h"
#include "api/internal/cli_run.h"
#include "api/internal/progress.h"
#include "api/internal/view_source.h"
#include "common/error.h"
#include "common/json_util.h"
#include "common/vocabulary.h"

namespace baton::api {
namespace {

httplib::Client Connect(const RemoteOptions& remote) {
  httplib::Client c(remote.url);
  if (!c.is_valid()) throw Error(ErrorCode::kInvalidArgument, "--server " + remote.url + " is not an http:// URL");
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(60, 0);
  if (!remote.token.empty()) c.set_bearer_token_auth(remote.token);
  return c;
}

ErrorCode CodeOfStatus(int status) {
  switch (status) {
    case 400: case 413: return ErrorCode::kInvalidArgument;
    case 401: return ErrorCode::kUnauthenticated;
    case 403: return ErrorCode::kPermissionDenied;
    case 404: return ErrorCode::kNotFound;
    case 507: return ErrorCode::kResourceExhausted;
    case 409: return ErrorCode::kConflict;
    default: return status >= 500 ? ErrorCode::kUnavailable : ErrorCode::kInternal;
  }
}

// The answer's JSON; the server's error envelope becomes an Error with its
// message and pointers.
Json Check(const RemoteOptions& remote, const httplib::Result& res, const std::string& what) {
  if (!res) {
    throw Error(ErrorCode::kUnavailable, "cannot reach " + remote.url + " (" + what + "): " + httplib::to_string(res.error()));
  }
  Json body = Json::object();
  try {
    if (!res->body.empty()) body = Json::parse(res->body);
  } catch (const Json::exception&) {
    throw Error(ErrorCode::kInternal, what + ": the server answered " + std::to_string(res->status) + " with no JSON");
  }
  if (res->status >= 400) {
    std::vector<ErrorDetail> details;
    for (const auto& d : body.value("details", Json::array())) {
      details.push_back({d.value("pointer", ""), d.value("message", "")});
    }
    std::string message = body.value("message", "HTTP " + std::to_string(res->status));
    for (const auto& d : details) message += "\n  " + (d.pointer.empty() ? "/" : d.pointer) + ": " + d.message;
    if (res->status == 401) message += " (give --token or set BATON_TOKEN)";
    throw Error(CodeOfStatus(res->status), message, details);
  }
  return body;
}

void Print(const Json& j) { std::printf("%s\n", j.dump(2).c_str()); }

// Follows run `run_id` of pipeline `doc` on the server until it ends,
// printing its progress as `baton run` does; the exit code of its end.
int FollowRun(const RemoteOptions& remote, httplib::Client& c, const std::string& run_id, const Json& doc,
              const RunOptions& options) {
  std::FILE* out = options.json ? stderr : stdout;
  std::vector<std::string> order;
  for (const auto& [name, stage] : doc.value("stages", Json::object()).items()) order.push_back(name);
  ProgressPrinter printer(out, options.progress && isatty(fileno(out)), orchestrator::ParseStageSpecs(doc), order);
  // Follow the event stream; reconnect after the last event seen if it breaks.
  int64_t last = 0;
  bool finished = false;
  std::string buffer;
  for (int attempt = 0; !finished && attempt < 100; ++attempt) {
    httplib::Headers headers;
    if (last > 0) headers.emplace("Last-Event-ID", std::to_string(last));
    c.set_read_timeout(60, 0);
    buffer.clear();
    c.Get(("/api/v1/runs/" + run_id + "/events").c_str(), headers, [&](const char* data, size_t n) {
      buffer.append(data, n);
      for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
        std::istringstream lines(buffer.substr(0, end));
        buffer.erase(0, end + 2);
        for (std::string line; std::getline(lines, line);) {
          if (line.rfind("data: ", 0) != 0) continue;
          const Json e = Json::parse(line.substr(6));
          last = e.value("id", last);
          orchestrator::Event event;
          event.type = e.value("type", "");
          event.run_id = run_id;
          event.stage = e.value("stage", "");
          event.trial_id = e.value("trial_id", int64_t{0});
          event.trial_number = e.value("trial_number", -1);
          event.data = e.value("data", Json::object());
          event.time = e.value("time", 0.0);
          printer.OnEvent(event);
          finished = finished || event.type == "run_finished" || event.type == "run_status";
        }
      }
      printer.Tick();
      return true;
    });
    if (!finished) sleep(1);
  }
  printer.Finish();
  const Json run = Check(remote, c.Get(("/api/v1/runs/" + run_id).c_str()), "reading the run");
  if (options.json) {
    Print(run);
  } else {
    // As `baton run` ends: the run's table.
    std::fprintf(out, "\nrun %s %s\n", run_id.c_str(), run.value("status", "?").c_str());
    std::fflush(out);
    CmdShow(*RemoteViews(remote), run_id, "", false);
  }
  if (Is(run.value("status", ""), RunStatus::kInterrupted)) return kExitResourceExhausted;  // the server's disk is full
  return Is(run.value("status", ""), RunStatus::kSucceeded) ? kExitOk : kExitRunFailed;
}

}  // namespace

int RemoteRun(const RemoteOptions& remote, const RunOptions& options) {
  std::ifstream in(options.pipeline_file, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "cannot read pipeline file " + options.pipeline_file);
  std::stringstream text;
  text << in.rdbuf();
  const Json doc = ParseJson(text.str(), options.pipeline_file);
  httplib::Client c = Connect(remote);
  const Json made = Check(remote, c.Post("/api/v1/runs", Json{{"pipeline", doc}}.dump(), "application/json"),
                          "triggering the run");
  const std::string run_id = made["run_id"].get<std::string>();
  std::fprintf(options.json ? stderr : stdout, "run %s on %s (it goes on if this command stops)\n", run_id.c_str(),
               remote.url.c_str());
  return FollowRun(remote, c, run_id, doc, options);
}

int RemoteResume(const RemoteOptions& remote, const std::string& run_id, const RunOptions& options) {
  httplib::Client c = Connect(remote);
  Check(remote, c.Post(("/api/v1/runs/" + run_id + ":resume").c_str(), "", "application/json"),
        "resuming run " + run_id);
  const Json run = Check(remote, c.Get(("/api/v1/runs/" + run_id).c_str()), "reading run " + run_id);
  const Json pipeline = Check(remote, c.Get(("/api/v1/pipelines/" + run.value("pipeline_id", "")).c_str()),
                              "reading the pipeline of run " + run_id);
  std::fprintf(options.json ? stderr : stdout, "resuming run %s on %s (it goes on if this command stops)\n",
               run_id.c_str(), remote.url.c_str());
  return FollowRun(remote, c, run_id, pipeline.value("pipeline", Json::object()), options);
}

namespace {

class RemoteViewSource : public ViewSource {
 public:
  explicit RemoteViewSource(const RemoteOptions& remote) : remote_(remote), c_(Connect(remote)) {}
  std::string Where() const override { return remote_.url; }
  Json Runs(int max) override {
    return Check(remote_, c_.Get(("/api/v1/runs?max_results=" + std::to_string(max)).c_str()), "listing runs")["runs"];
  }
  Json Run(const std::string& run_id) override {
    return Check(remote_, c_.Get(("/api/v1/runs/" + Encode(run_id)).c_str()), "reading run " + run_id);
  }
  Json Stage(const std::string& run_id, const std::string& stage) override {
    return Check(remote_, c_.Get(("/api/v1/runs/" + Encode(run_id) + "/stages/" + Encode(stage)).c_str()),
                 "reading stage " + stage + " of run " + run_id);
  }
  Json Pipeline(const std::string& pipeline_id) override {
    return Check(remote_, c_.Get(("/api/v1/pipelines/" + Encode(pipeline_id)).c_str()),
                 "reading pipeline " + pipeline_id)["pipeline"];
  }
  Json Lineage(const std::string& id, bool downstream, int depth) override {
    const std::string path = "/api/v1/lineage?node=" + Encode(id) + "&direction=" +
                             (downstream ? "downstream" : "upstream") + "&depth=" + std::to_string(depth);
    return Check(remote_, c_.Get(path.c_str()), "reading the lineage of " + id);
  }
  Json StageLogs(const std::string& run_id, const std::string& stage) override {
    return Check(remote_, c_.Get(("/api/v1/runs/" + Encode(run_id) + "/stages/" + Encode(stage) + "/logs").c_str()),
                 "reading the logs of stage " + stage + " of run " + run_id);
  }

 private:
  static std::string Encode(const std::string& s) { return httplib::detail::encode_query_param(s); }

  const RemoteOptions remote_;
  httplib::Client c_;
};

}  // namespace

std::unique_ptr<ViewSource> RemoteViews(const RemoteOptions& remote) {
  return std::make_unique<RemoteViewSource>(remote);
}

}  // namespace baton::api
