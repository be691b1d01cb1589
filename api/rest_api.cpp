// The public REST API under /api/v1 (docs: api/openapi.json, served at
// /api/v1/openapi.json). Every route is registered through Route(), which
// turns its OpenAPI path into a strict regex (digests are 64 hex
// characters, ids digits), checks the token for mutations (and for reads
// unless public_read), and records the route for the OpenAPI test. Errors
// leave through detail::SendError, in MLflow's envelope.
#include <algorithm>
#include <array>
#include <atomic>
#include <ctime>
#include <map>
#include <mutex>
#include <filesystem>
#include <regex>

#include "api/internal/http_server.h"
#include "api/internal/run_manager.h"
#include "api/internal/views.h"
#include "common/digest.h"
#include "common/vocabulary.h"
#include "maintenance/checkpoint_export.h"
#include "maintenance/gc.h"
#include "orchestrator/pipeline_spec.h"

namespace baton::api {

namespace {

using maintenance::CheckpointJson;
using maintenance::SafetensorsSize;
using maintenance::VerifyTensorBlobs;
using maintenance::WriteSafetensors;

using detail::SendError;
using detail::SendJson;
using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

constexpr int kDefaultPage = 100;
constexpr int kMaxPage = 1000;
constexpr int64_t kLinkSeconds = 60;  // a signed download URL's life
constexpr size_t kMetricsCached = 8;  // ended stages whose metrics answer is kept encoded
constexpr size_t kCheckpointAnswersCached = 4096;  // checkpoint GET answers kept; then they start over
constexpr size_t kRunAnswersCached = 1024;  // succeeded runs whose GET answer is kept; then it starts over

// The regex of one OpenAPI path parameter.
std::string ParamPattern(const std::string& name) {
  if (name == "digest" || name == "sha256" || name == "pipeline_id") return "([0-9a-f]{64})";
  if (name == "trial_id") return "([0-9]{1,18})";
  if (name == "run_id") return "([0-9]{8}-[0-9]{6}-[0-9a-f]{4})";
  return "([A-Za-z0-9_-]{1,64})";  // stage names
}

std::string PathRegex(const std::string& openapi_path) {
  static const std::regex param(R"(\{([a-z_0-9]+)\})");
  std::string out;
  auto begin = std::sregex_iterator(openapi_path.begin(), openapi_path.end(), param);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    out += openapi_path.substr(last, it->position() - last);
    out += ParamPattern((*it)[1]);
    last = it->position() + it->length();
  }
  return out + openapi_path.substr(last);
}

// Whether `path` (made absolute against the server's folder, symlinks and
// ".." resolved) lies in one of `roots`.
bool UnderARoot(const std::string& path, const std::vector<std::string>& roots) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path target = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) return false;
  for (const std::string& root : roots) {
    const fs::path base = fs::weakly_canonical(fs::absolute(root, ec), ec);
    if (ec) continue;
    const fs::path rel = target.lexically_relative(base);
    if (!rel.empty() && *rel.begin() != "..") return true;
  }
  return false;
}

// A pipeline from a remote caller may read data only under the data roots.
// Checked on the document before it is validated, whose messages would
// otherwise tell the caller which paths exist on the server.
void CheckDataRoots(const Json& doc, const std::vector<std::string>& roots, const std::string& prefix) {
  if (!doc.is_object() || !doc.contains("stages") || !doc["stages"].is_object()) return;
  std::vector<ErrorDetail> outside;
  // Files a stage reads: its dataset, its (or its ablation base's)
  // TorchScript model.
  auto check = [&](const Json& parent, const std::string& key, const std::string& pointer) {
    if (!parent.is_object()) return;
    const Json& path = parent.value(key, Json());
    if (!path.is_string() || UnderARoot(path.get<std::string>(), roots)) return;
    outside.push_back({pointer, "\"" + path.get<std::string>() + "\" is outside the server's data roots"});
  };
  for (const auto& [name, stage] : doc["stages"].items()) {
    if (!stage.is_object()) continue;
    const std::string sp = prefix + PointerAppend("/stages", name);
    check(stage.value("dataset", Json()), "path", sp + "/dataset/path");
    check(stage.value("model", Json()), "torchscript", sp + "/model/torchscript");
    if (stage.contains("base") && stage["base"].is_object()) {
      check(stage["base"].value("model", Json()), "torchscript", sp + "/base/model/torchscript");
    }
    // The npy format's array names are files in the folder `path`: plain
    // names only, so that they cannot lead out of it.
    const Json& dataset = stage.value("dataset", Json());
    for (const char* key : {"x", "y", "x_test", "y_test"}) {
      if (!dataset.is_object()) break;
      const Json& array = dataset.value(key, Json());
      if (!array.is_string()) continue;
      const std::string text = array.get<std::string>();
      if (text.find('/') == std::string::npos && text.rfind('.', 0) != 0) continue;
      outside.push_back({sp + "/dataset/" + key,
                         "\"" + text + "\" is not a plain array name and could lead outside the server's data roots"});
    }
  }
  if (outside.empty()) return;
  std::string allowed;
  for (const auto& r : roots) allowed += (allowed.empty() ? "" : ", ") + r;
  throw Error(ErrorCode::kPermissionDenied,
              outside[0].pointer + ": " + outside[0].message + " (" + allowed +
                  "; `baton serve --data-root DIR` allows more)",
              outside);
}

// Command stages run programs as the server's user: anyone holding the API
// token could run anything. A server runs them from HTTP-sent pipelines
// only when started with --allow-commands.
void CheckCommands(const Json& doc, bool allow_commands, const std::string& prefix) {
  if (allow_commands || !doc.is_object() || !doc.contains("stages") || !doc["stages"].is_object()) return;
  std::vector<ErrorDetail> commands;
  for (const auto& [name, stage] : doc["stages"].items()) {
    if (stage.is_object() && stage.value("type", Json()) == "command") {
      commands.push_back({prefix + "/stages/" + name + "/type",
                          "stage \"" + name + "\" is a command stage, and this server runs no commands from "
                          "pipelines sent over HTTP"});
    }
  }
  if (commands.empty()) return;
  throw Error(ErrorCode::kPermissionDenied,
              commands[0].pointer + ": " + commands[0].message +
                  " (a command runs as the server's user, so anyone with the API token could run any program; "
                  "start `baton serve --allow-commands` where that is acceptable, or run the pipeline with "
                  "`baton run` on the server)",
              commands);
}

// What a pipeline sent over HTTP may not do: read outside the data roots,
// run commands unless allowed.
void CheckRemotePipeline(const Json& doc, const ApiOptions& options, const std::string& prefix) {
  CheckCommands(doc, options.allow_commands, prefix);
  CheckDataRoots(doc, options.data_roots, prefix);
}

struct Api {
  httplib::Server& server;
  ApiOptions options;
  StoreHandle& store;
  RunManager& runs;
  std::vector<std::pair<std::string, std::string>>& routes;
  // Event streams hold a request thread each: at most half of them may, so
  // that idle or slow stream clients cannot starve the rest of the API.
  int max_streams = 1;
  std::shared_ptr<std::atomic<int>> streams = std::make_shared<std::atomic<int>>(0);

  // Signs the short-lived download URLs of GET .../download-link; new for
  // each server, so a restart ends every link.
  std::string link_key = NewToken();
  // Ended runs' summaries for the runs list (they no longer change).
  struct Summaries {
    std::mutex mu;
    std::map<std::string, Json> by_run;
  };
  std::shared_ptr<Summaries> summaries = std::make_shared<Summaries>();
  // The metrics answers of ended stages, raw and gzipped (a 1,000-trial
  // stage's is megabytes): the last few, by stage id.
  struct EncodedAnswer {
    int64_t stage_id = 0;
    std::shared_ptr<const std::string> raw, gzipped;
  };
  struct MetricsCache {
    std::mutex mu;
    std::vector<EncodedAnswer> recent;  // newest last, at most kMetricsCached
  };
  std::shared_ptr<MetricsCache> metrics_cache = std::make_shared<MetricsCache>();
  // GET /runs/{id} of succeeded runs, encoded (unpinned, pinned), with the
  // pin as it was at the lineage's RetentionVersion `version` (pins move it).
  struct RunAnswer {
    std::shared_ptr<const std::array<std::string, 2>> encoded;
    uint64_t version = 0;
    bool pinned = false;
  };
  struct RunAnswers {
    std::mutex mu;
    std::map<std::string, RunAnswer> by_run;
  };
  std::shared_ptr<RunAnswers> run_answers = std::make_shared<RunAnswers>();
  // GET /checkpoints/{digest} of recorded checkpoints, encoded, while the
  // lineage's RetentionVersion stays `version` (a checkpoint recorded or
  // released may change any answer's shared_with, or end one).
  struct CheckpointAnswers {
    std::mutex mu;
    uint64_t version = 0;
    std::map<std::string, EncodedAnswer> by_digest;  // gzipped only when large
  };
  std::shared_ptr<CheckpointAnswers> checkpoint_answers = std::make_shared<CheckpointAnswers>();

  // Why a request to /api/v1 may not go on ("" if it may): HttpServer's
  // guard asks this before any route sees the request. Reads need the token
  // unless public_read; a URL signed by GET .../download-link stands in for
  // it on the routes registered `signed_ok`. The token is compared first:
  // requests that carry it match no route pattern here.
  std::string Refusal(const httplib::Request& req) const {
    const bool mutation = req.method != "GET" && req.method != "HEAD";
    if (!mutation && options.public_read) return "";
    const std::string given = req.get_header_value("Authorization");
    if (detail::ConstantTimeEquals(given, "Bearer " + options.token)) return "";
    const RoutePattern* route = Routed(req);
    // A path no route takes is answered 404 by the router, token or not.
    if (route == nullptr) return "";
    if (!mutation && route->signed_ok &&
        detail::SignatureValid(link_key, req, static_cast<int64_t>(std::time(nullptr)))) {
      return "";
    }
    return given.empty() ? "this request needs \"Authorization: Bearer <token>\" (the token is in the store's "
                           "api-token file)"
                         : "wrong token";
  }
  struct RoutePattern {
    std::string method;
    std::regex path;
    bool signed_ok = false;
  };
  const RoutePattern* Routed(const httplib::Request& req) const {
    for (const auto& r : patterns) {
      if (r.method == req.method && std::regex_match(req.path, r.path)) return &r;
    }
    return nullptr;
  }
  std::vector<RoutePattern> patterns = {};  // every route's, as registered

  // `signed_ok`: a URL signed by GET .../download-link may stand in for the
  // token (downloads a browser starts cannot send a header).
  void Route(const std::string& method, const std::string& path, Handler handler, bool signed_ok = false) {
    routes.emplace_back(method, path);
    const std::string pattern = "/api/v1" + PathRegex(path);
    const bool mutation = method != "GET";
    patterns.push_back({method, std::regex(pattern), signed_ok});
    // Who may call was decided before routing (Refusal).
    auto guarded = [this, mutation, handler](const httplib::Request& req, httplib::Response& res) {
      // A read sees one snapshot of the lineage DB on a reader connection
      // of its own: it waits for no writer, and opening one read
      // transaction per request instead of one per query halves its cost.
      if (mutation) handler(req, res);
      else store.db->ReadSnapshot([&] { handler(req, res); });
    };
    if (method == "GET") server.Get(pattern, guarded);
    else if (method == "POST") server.Post(pattern, guarded);
    else if (method == "DELETE") server.Delete(pattern, guarded);
  }

  // The body as JSON; ParseJson checks its nesting depth before it builds a DOM.
  static Json Body(const httplib::Request& req) { return ParseJson(req.body, "request body"); }

  // The run as the lineage DB has it, or as it ended here if a full disk
  // kept the DB from recording that (RunManager::Overlay).
  store::RunRecord MustRun(const std::string& id) const {
    auto run = store.db->GetRun(id);
    if (!run) throw Error(ErrorCode::kNotFound, "no run " + id);
    runs.Overlay(*run);
    return *run;
  }
  // A checkpoint `store gc` released keeps its lineage rows, not its weights.
  void MustBeKept(const std::string& digest) const {
    if (store.db->CheckpointReleasedAt(digest) > 0) {
      throw Error(ErrorCode::kNotFound, "checkpoint " + digest +
                                            " was released by baton store gc (its stage's checkpoints.keep); its "
                                            "lineage is kept, its weights are not");
    }
  }
  store::StageRecord MustStage(const std::string& run_id, const std::string& name) const {
    MustRun(run_id);
    for (auto& s : store.db->GetStages(run_id)) {
      if (s.name == name) return s;
    }
    throw Error(ErrorCode::kNotFound, "run " + run_id + " has no stage " + name);
  }

  // A pipeline from {"pipeline_id": ...} (stored earlier) or {"pipeline": {...}}.
  orchestrator::Pipeline PipelineOf(const Json& body) const {
    if (body.contains("pipeline")) {
      CheckRemotePipeline(body["pipeline"], options, "/pipeline");
      return LoadChecked(body["pipeline"], "/pipeline");
    }
    if (!body.contains("pipeline_id") || !body["pipeline_id"].is_string()) {
      throw Error(ErrorCode::kInvalidArgument, "give \"pipeline\" (the document) or \"pipeline_id\"", "/pipeline_id");
    }
    const std::string id = body["pipeline_id"].get<std::string>();
    auto doc = IsDigest(id) ? store.db->GetPipeline(id) : std::nullopt;
    if (!doc) throw Error(ErrorCode::kNotFound, "no pipeline " + id + " (POST /api/v1/pipelines stores one)");
    CheckRemotePipeline(*doc, options, "");
    return orchestrator::LoadPipeline(*doc, options.limits);
  }

  // LoadPipeline, its problems' pointers prefixed (where the document sits
  // in the request body).
  orchestrator::Pipeline LoadChecked(const Json& doc, const std::string& prefix) const {
    try {
      return orchestrator::LoadPipeline(doc, options.limits);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kInvalidArgument || e.details().empty()) throw;
      std::vector<ErrorDetail> issues = e.details();
      for (auto& i : issues) i.pointer = prefix + i.pointer;
      throw Error(ErrorCode::kInvalidArgument,
                  "invalid pipeline: " + std::to_string(issues.size()) + " problem(s), first: " +
                      (issues[0].pointer.empty() ? "/" : issues[0].pointer) + ": " + issues[0].message,
                  issues);
    }
  }

  // RunSummaryJson, kept once the run has ended.
  Json Summary(const store::RunRecord& run) {
    const bool ended = RunFinished(run.status);
    if (ended) {
      std::lock_guard<std::mutex> lock(summaries->mu);
      auto it = summaries->by_run.find(run.id);
      if (it != summaries->by_run.end()) return it->second;
    }
    Json summary = RunSummaryJson(store, run);
    if (ended) {
      std::lock_guard<std::mutex> lock(summaries->mu);
      summaries->by_run[run.id] = summary;
    }
    return summary;
  }

  void Mount();
  void MountRuns();        // the runs and each run
  void MountRunActions();  // cancel, pin, resume, the event stream
  void MountStages();      // a run's stages: trials, ablation, comparison, metrics
  void MountTrials();
  void MountStore();
};

int IntParam(const httplib::Request& req, const std::string& name, int fallback, int low, int high) {
  if (!req.has_param(name)) return fallback;
  const std::string v = req.get_param_value(name);
  try {
    size_t used = 0;
    const int n = std::stoi(v, &used);
    if (used == v.size() && n >= low && n <= high) return n;
  } catch (const std::exception&) {
  }
  throw Error(ErrorCode::kInvalidArgument,
              name + " must be an integer from " + std::to_string(low) + " to " + std::to_string(high) + ", got \"" +
                  v + "\"");
}

// Not ::isdigit, which is undefined for the negative chars of bytes >= 0x80.
bool IsAsciiDigit(char c) { return c >= '0' && c <= '9'; }

// page_token is the offset of the next page, opaque to clients ("o" + n).
int PageOffset(const httplib::Request& req) {
  if (!req.has_param("page_token")) return 0;
  const std::string t = req.get_param_value("page_token");
  // At most 9 digits: the offset and offset + max_results stay ints.
  if (t.size() > 1 && t.size() <= 10 && t[0] == 'o' && std::all_of(t.begin() + 1, t.end(), IsAsciiDigit)) {
    return std::stoi(t.substr(1));
  }
  throw Error(ErrorCode::kInvalidArgument, "page_token \"" + t + "\" is not one this server gave");
}

void Api::Mount() {
  Route("GET", "/openapi.json", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(OpenApiRaw(), "application/json; charset=utf-8");
  });
  Route("POST", "/pipelines", [this](const httplib::Request& req, httplib::Response& res) {
    const Json doc = Body(req);
    CheckRemotePipeline(doc, options, "");
    const orchestrator::Pipeline p = LoadChecked(doc, "");
    store.db->PutPipeline(p.id, p.name, p.doc);
    res.status = 201;
    res.set_content(Json{{"pipeline_id", p.id}, {"name", p.name}, {"stages", p.order}}.dump(), "application/json; charset=utf-8");
  });
  Route("GET", "/pipelines", [this](const httplib::Request& req, httplib::Response& res) {
    const int max = IntParam(req, "max_results", kDefaultPage, 1, kMaxPage);
    const int offset = PageOffset(req);
    // One more than asked for tells whether there is a next page.
    auto rows = store.db->ListPipelines(max + 1, offset);
    Json out = {{"pipelines", Json::array()}};
    for (size_t i = 0; i < rows.size() && i < static_cast<size_t>(max); ++i) {
      out["pipelines"].push_back({{"pipeline_id", rows[i].id}, {"name", rows[i].name}, {"created_at", rows[i].created_at}});
    }
    if (rows.size() > static_cast<size_t>(max)) out["next_page_token"] = "o" + std::to_string(offset + max);
    SendJson(res, out);
  });
  Route("GET", "/pipelines/{pipeline_id}", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    auto doc = store.db->GetPipeline(id);
    if (!doc) throw Error(ErrorCode::kNotFound, "no pipeline " + id);
    SendJson(res, {{"pipeline_id", id}, {"pipeline", *doc}});
  });
  MountRuns();
  MountRunActions();
  MountStages();
  MountTrials();
  MountStore();
}

void Api::MountRuns() {
  Route("POST", "/runs", [this](const httplib::Request& req, httplib::Response& res) {
    const orchestrator::Pipeline p = PipelineOf(Body(req));
    const std::string key = req.get_header_value("Idempotency-Key");
    if (key.size() > 200) throw Error(ErrorCode::kInvalidArgument, "Idempotency-Key is longer than 200 characters");
    const RunManager::Triggered t = runs.Trigger(p, key);
    res.status = t.created ? 201 : 200;
    res.set_content(Json{{"run_id", t.run_id}, {"pipeline_id", p.id}, {"created", t.created}}.dump(),
                    "application/json; charset=utf-8");
  });
  Route("GET", "/runs", [this](const httplib::Request& req, httplib::Response& res) {
    const int max = IntParam(req, "max_results", kDefaultPage, 1, kMaxPage);
    const int offset = PageOffset(req);
    const std::string status = req.get_param_value("status"), pipeline = req.get_param_value("pipeline_id");
    std::vector<store::RunRecord> all;
    for (auto& r : store.db->ListRuns(1 << 30)) {
      runs.Overlay(r);
      if ((status.empty() || r.status == status) && (pipeline.empty() || r.pipeline_id == pipeline)) all.push_back(r);
    }
    Json out = {{"runs", Json::array()}};
    for (size_t i = offset; i < all.size() && i < static_cast<size_t>(offset) + max; ++i) {
      out["runs"].push_back(RunJson(all[i]));
      out["runs"].back()["summary"] = Summary(all[i]);
    }
    if (static_cast<size_t>(offset) + max < all.size()) out["next_page_token"] = "o" + std::to_string(offset + max);
    SendJson(req, res, out);
  });
  Route("GET", "/runs/{run_id}", [this](const httplib::Request& req, httplib::Response& res) {
    // A succeeded run no longer changes but for its pin: its answer is
    // encoded once, in both pin states, and while no pin has changed since
    // (the version is read before this request's first query), served
    // without a query.
    const std::string id = req.matches[1];
    const uint64_t version = store.db->RetentionVersion();
    std::shared_ptr<const std::array<std::string, 2>> encoded;
    {
      std::lock_guard<std::mutex> lock(run_answers->mu);
      auto it = run_answers->by_run.find(id);
      if (it != run_answers->by_run.end()) {
        if (it->second.version == version) {
          res.status = 200;
          res.set_content(it->second.encoded->at(it->second.pinned ? 1 : 0), "application/json; charset=utf-8");
          return;
        }
        encoded = it->second.encoded;
      }
    }
    const store::RunRecord run = MustRun(id);
    const auto pins = store.db->PinnedRuns();
    const bool pinned = std::find(pins.begin(), pins.end(), run.id) != pins.end();
    if (!Is(run.status, RunStatus::kSucceeded)) {
      Json out = RunDetailJson(store, run);
      out["pinned"] = pinned;
      return SendJson(req, res, out);
    }
    if (!encoded) {
      Json out = RunDetailJson(store, run);
      std::array<std::string, 2> both;
      for (const bool p : {false, true}) {
        out["pinned"] = p;
        both[p ? 1 : 0] = out.dump(-1, ' ', false, Json::error_handler_t::replace);
      }
      encoded = std::make_shared<const std::array<std::string, 2>>(std::move(both));
    }
    {
      std::lock_guard<std::mutex> lock(run_answers->mu);
      if (run_answers->by_run.size() >= kRunAnswersCached) run_answers->by_run.clear();
      run_answers->by_run[run.id] = RunAnswer{encoded, version, pinned};
    }
    res.status = 200;
    res.set_content((*encoded)[pinned ? 1 : 0], "application/json; charset=utf-8");
  });
}

void Api::MountRunActions() {
  Route("POST", "/runs/{run_id}:cancel", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    runs.Cancel(id, "cancelled through the API");
    SendJson(res, RunJson(MustRun(id)));
  });
  for (const bool pin : {true, false}) {
    Route("POST", pin ? "/runs/{run_id}:pin" : "/runs/{run_id}:unpin",
          [this, pin](const httplib::Request& req, httplib::Response& res) {
            const std::string id = req.matches[1];
            pin ? store.db->PinRun(id) : store.db->UnpinRun(id);
            Json out = RunJson(MustRun(id));
            out["pinned"] = pin;
            SendJson(res, out);
          });
  }
  Route("POST", "/runs/{run_id}:resume", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    runs.Resume(id);
    res.status = 202;
    res.set_content(RunJson(MustRun(id)).dump(), "application/json; charset=utf-8");
  });
  Route("GET", "/runs/{run_id}/events", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    MustRun(id);
    int64_t after = 0;
    const std::string last = req.get_header_value("Last-Event-ID");
    if (!last.empty()) {
      if (last.size() > 18 || !std::all_of(last.begin(), last.end(), IsAsciiDigit)) {
        throw Error(ErrorCode::kInvalidArgument, "Last-Event-ID must be an event id (digits), got \"" + last + "\"");
      }
      after = std::stoll(last);
    }
    if (streams->fetch_add(1) >= max_streams) {
      streams->fetch_sub(1);
      throw Error(ErrorCode::kUnavailable, std::to_string(max_streams) +
                                               " event streams are open already; try again when one has closed");
    }
    res.set_header("Cache-Control", "no-cache");
    auto cursor = std::make_shared<int64_t>(after);
    res.set_chunked_content_provider("text/event-stream", [this, id, cursor](size_t, httplib::DataSink& sink) {
      bool over = false;
      const auto events = runs.Events(id, *cursor, std::chrono::seconds(15), &over);
      std::string chunk = events.empty() && !over ? ": keep-alive\n\n" : "";
      for (const RunEvent& e : events) {
        chunk += "id: " + std::to_string(e.id) + "\nevent: " + e.type + "\ndata: " + e.data.dump() + "\n\n";
        *cursor = e.id;
      }
      if (!chunk.empty() && !sink.write(chunk.data(), chunk.size())) return false;
      if (over) sink.done();
      return true;
    }, [counter = streams](bool) { counter->fetch_sub(1); });
  });
}

void Api::MountStages() {
  Route("GET", "/runs/{run_id}/stages/{stage}", [this](const httplib::Request& req, httplib::Response& res) {
    SendJson(req, res, StageDetailJson(store, MustStage(req.matches[1], req.matches[2])));
  });
  Route("GET", "/runs/{run_id}/stages/{stage}/logs", [this](const httplib::Request& req, httplib::Response& res) {
    SendJson(req, res, StageLogsJson(store, MustStage(req.matches[1], req.matches[2])));
  });
  Route("GET", "/runs/{run_id}/stages/{stage}/trials", [this](const httplib::Request& req, httplib::Response& res) {
    const store::StageRecord s = MustStage(req.matches[1], req.matches[2]);
    std::vector<TrialView> trials = RankedTrials(store, s);
    if (req.has_param("order_by")) {
      const std::string metric = req.get_param_value("order_by");
      const bool desc = req.get_param_value("direction") != "asc";
      auto last = [&](const TrialView& v) -> std::optional<double> {
        for (auto it = v.epochs.rbegin(); it != v.epochs.rend(); ++it) {
          if (it->metrics.contains(metric) && it->metrics[metric].is_number()) return it->metrics[metric].get<double>();
        }
        return std::nullopt;
      };
      std::stable_sort(trials.begin(), trials.end(), [&](const TrialView& a, const TrialView& b) {
        const auto va = last(a), vb = last(b);
        if (!va || !vb) return va.has_value() && !vb.has_value();  // trials without the metric last
        return desc ? *va > *vb : *va < *vb;
      });
    }
    Json out = {{"run_id", s.run_id}, {"stage", s.name}, {"trials", Json::array()}};
    for (const auto& v : trials) out["trials"].push_back(TrialJson(v));
    SendJson(req, res, out);
  });
  Route("GET", "/runs/{run_id}/stages/{stage}/ablation", [this](const httplib::Request& req, httplib::Response& res) {
    const store::StageRecord s = MustStage(req.matches[1], req.matches[2]);
    if (!Is(s.type, StageType::kAblate)) throw Error(ErrorCode::kNotFound, "stage " + s.name + " is a " + s.type + " stage, not ablate");
    SendJson(res, AblationJson(store, s));
  });
  Route("GET", "/runs/{run_id}/stages/{stage}/comparison", [this](const httplib::Request& req, httplib::Response& res) {
    const store::StageRecord s = MustStage(req.matches[1], req.matches[2]);
    Json c = ComparisonJson(store, s);
    if (c.is_null()) throw Error(ErrorCode::kNotFound, "stage " + s.name + " has no comparison (yet)");
    SendJson(res, c);
  });
  Route("GET", "/runs/{run_id}/stages/{stage}/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    const store::StageRecord stage = MustStage(req.matches[1], req.matches[2]);
    if (!StageFinished(stage.status)) return SendJson(req, res, StageMetricsJson(store, stage));
    EncodedAnswer answer;
    {
      std::lock_guard<std::mutex> lock(metrics_cache->mu);
      for (const auto& a : metrics_cache->recent) {
        if (a.stage_id == stage.id) answer = a;
      }
    }
    if (!answer.raw) {
      answer.stage_id = stage.id;
      answer.raw = std::make_shared<const std::string>(
          StageMetricsJson(store, stage).dump(-1, ' ', false, Json::error_handler_t::replace));
      answer.gzipped = std::make_shared<const std::string>(detail::Gzip(*answer.raw, 6));
      std::lock_guard<std::mutex> lock(metrics_cache->mu);
      metrics_cache->recent.push_back(answer);
      if (metrics_cache->recent.size() > kMetricsCached) metrics_cache->recent.erase(metrics_cache->recent.begin());
    }
    res.status = 200;
    detail::SendBody(req, res, answer.raw, answer.gzipped, "application/json; charset=utf-8");
  });
}

void Api::MountTrials() {
  Route("GET", "/trials/{trial_id}", [this](const httplib::Request& req, httplib::Response& res) {
    SendJson(req, res, TrialPageJson(store, std::stoll(req.matches[1])));
  });
  Route("GET", "/trials/{trial_id}/metrics", [this](const httplib::Request& req, httplib::Response& res) {
    const int64_t id = std::stoll(req.matches[1]);
    auto trial = store.db->GetTrial(id);
    if (!trial) throw Error(ErrorCode::kNotFound, "no trial " + std::to_string(id));
    const std::string metric = req.get_param_value("metric");
    Json out = {{"trial_id", id}, {"status", trial->status}, {"history", Json::array()}};
    for (const auto& e : store.db->GetEpochs(id)) {
      Json row = {{"epoch", e.epoch}, {"checkpoint", e.checkpoint}, {"seconds", e.seconds}, {"time", e.created_at}};
      if (metric.empty()) row["metrics"] = e.metrics;
      else if (e.metrics.contains(metric)) row["value"] = e.metrics[metric];
      out["history"].push_back(row);
    }
    SendJson(res, out);
  });
}

void Api::MountStore() {
  Route("GET", "/checkpoints/{digest}", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string digest = req.matches[1];
    // Read before this request's snapshot starts (its first query), so an
    // answer is never kept under a version newer than its rows.
    const uint64_t version = store.db->RetentionVersion();
    EncodedAnswer answer;
    {
      std::lock_guard<std::mutex> lock(checkpoint_answers->mu);
      if (checkpoint_answers->version != version) {
        checkpoint_answers->by_digest.clear();
        checkpoint_answers->version = version;
      }
      auto it = checkpoint_answers->by_digest.find(digest);
      if (it != checkpoint_answers->by_digest.end()) answer = it->second;
    }
    if (!answer.raw) {
      MustBeKept(digest);
      const Json out = CheckpointJson(*store.blobs, *store.db, digest);
      if (out["recorded"].is_null()) return SendJson(req, res, out);  // gc may free it unseen: not kept
      answer.raw = std::make_shared<const std::string>(out.dump(-1, ' ', false, Json::error_handler_t::replace));
      if (answer.raw->size() >= detail::kGzipAbove) {
        answer.gzipped = std::make_shared<const std::string>(detail::Gzip(*answer.raw, 6));
      }
      std::lock_guard<std::mutex> lock(checkpoint_answers->mu);
      if (checkpoint_answers->version == version) {
        if (checkpoint_answers->by_digest.size() >= kCheckpointAnswersCached) checkpoint_answers->by_digest.clear();
        checkpoint_answers->by_digest[digest] = answer;
      }
    }
    res.status = 200;
    if (answer.gzipped) return detail::SendBody(req, res, answer.raw, answer.gzipped, "application/json; charset=utf-8");
    res.set_content(*answer.raw, "application/json; charset=utf-8");
  });
  Route("GET", "/checkpoints/{digest}/download-link", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string digest = req.matches[1];
    MustBeKept(digest);
    CheckpointJson(*store.blobs, *store.db, digest);  // 404 for what is not a checkpoint
    const int64_t expires = static_cast<int64_t>(std::time(nullptr)) + kLinkSeconds;
    const std::string path = "/api/v1/checkpoints/" + digest + "/safetensors";
    SendJson(res, {{"url", path + "?expires=" + std::to_string(expires) + "&signature=" +
                               detail::SignPath(link_key, path, expires)},
                   {"expires_at", expires}});
  });
  Route("GET", "/checkpoints/{digest}/safetensors", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string digest = req.matches[1];
    MustBeKept(digest);
    CheckpointJson(*store.blobs, *store.db, digest);  // 404 / 400 before any byte is sent
    auto manifest = std::make_shared<store::Manifest>(store::ParseManifest(store.blobs->Get(digest)));
    const uint64_t size = SafetensorsSize(*manifest, digest);
    // Reads and hashes every tensor once more than the download needs, so
    // that a corrupt one is a 500 DATA_CORRUPTED rather than a 200 cut short.
    VerifyTensorBlobs(*store.blobs, *manifest, digest);
    res.set_header("Content-Disposition", "attachment; filename=\"" + digest.substr(0, 12) + ".safetensors\"");
    res.set_content_provider(size, "application/octet-stream",
                             [this, manifest, digest](size_t offset, size_t, httplib::DataSink& sink) {
                               if (offset != 0) return false;  // one pass; ranges are not offered here
                               try {
                                 WriteSafetensors(*store.blobs, *manifest, digest, [&](std::string_view bytes) {
                                   return sink.write(bytes.data(), bytes.size());
                                 });
                               } catch (const std::exception&) {
                                 // Damaged since the check above. The status is sent: cut the body short
                                 // (an exception out of here would end the server).
                                 return false;
                               }
                               return true;
                             });
  }, /*signed_ok=*/true);
  Route("GET", "/blobs/{sha256}", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string digest = req.matches[1];
    const std::string etag = "\"" + digest + "\"";
    res.set_header("ETag", etag);
    res.set_header("Cache-Control", "public, max-age=31536000, immutable");  // content-addressed
    if (req.get_header_value("If-None-Match") == etag && store.blobs->Has(digest)) {
      res.status = 304;
      return;
    }
    // Get verifies the SHA-256 before a byte leaves; cpp-httplib serves
    // Range requests (206) from the content.
    res.set_content(store.blobs->Get(digest), "application/octet-stream");
  });
  Route("GET", "/lineage", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string node = req.get_param_value("node");
    if (node.empty()) throw Error(ErrorCode::kInvalidArgument, "give node= (a run id, digest or kind:id)");
    const std::string direction = req.has_param("direction") ? req.get_param_value("direction") : "upstream";
    if (direction != "upstream" && direction != "downstream") {
      throw Error(ErrorCode::kInvalidArgument, "direction must be upstream or downstream, got \"" + direction + "\"");
    }
    SendJson(req, res, LineageJson(store, node, direction == "downstream", IntParam(req, "depth", 64, 1, 64)));
  });
  Route("POST", "/store:gc", [this](const httplib::Request& req, httplib::Response& res) {
    const Json body = req.body.empty() ? Json::object() : Body(req);
    const Json apply = body.value("apply", Json(false));
    if (!apply.is_boolean()) throw Error(ErrorCode::kInvalidArgument, "apply must be true or false", "/apply");
    // Safe while runs write: the store spares blobs a worker was just told
    // it has (store/guarded_blob_store.h).
    SendJson(res, maintenance::GcJson(maintenance::CollectGarbage(*store.blobs, *store.db, apply.get<bool>())));
  });
  Route("GET", "/store/retention", [this](const httplib::Request& req, httplib::Response& res) {
    // A dry run for the checkpoints a page shows: reads only (no token
    // under --public-read), and bounded, since it plans over the whole store.
    constexpr size_t kMaxAsked = 500;
    const std::string list = req.get_param_value("checkpoints");
    std::vector<std::string> digests;
    for (size_t at = 0; at <= list.size() && !list.empty();) {
      const size_t comma = std::min(list.find(',', at), list.size());
      const std::string d = list.substr(at, comma - at);
      if (!IsDigest(d)) {
        throw Error(ErrorCode::kInvalidArgument, "checkpoints: \"" + d.substr(0, 80) + "\" is not a digest (64 hex digits)");
      }
      digests.push_back(d);
      at = comma + 1;
    }
    if (digests.empty()) throw Error(ErrorCode::kInvalidArgument, "give checkpoints=DIGEST[,DIGEST...]");
    if (digests.size() > kMaxAsked) {
      throw Error(ErrorCode::kInvalidArgument, "checkpoints: " + std::to_string(digests.size()) + " digests, at most " +
                                                   std::to_string(kMaxAsked));
    }
    SendJson(req, res, maintenance::RetentionJson(*store.db, digests));
  });
  Route("GET", "/store/stats", [this](const httplib::Request&, httplib::Response& res) {
    const store::BlobStoreStats b = store.blobs->Stats();
    Json out = {{"blobs", b.blobs}, {"bytes", b.bytes}, {"stages", Json::array()}};
    for (const auto& u : store.db->Usage()) {
      out["stages"].push_back({{"run_id", u.run_id}, {"stage", u.stage_name}, {"checkpoints", u.checkpoints},
                               {"referenced_bytes", u.referenced_bytes}, {"new_bytes", u.new_bytes}});
    }
    SendJson(res, out);
  });
}

}  // namespace

void HttpServer::MountApi(const ApiOptions& options, StoreHandle* store, RunManager* runs) {
  auto& s = impl_->server;
  // Unknown paths (every traversal attempt among them: no route takes a
  // file name) and errors cpp-httplib raises itself (413, 400) get the
  // envelope too; a handler's own error body is left as it is.
  s.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) SendError(res, ErrorCode::kNotFound, "no such resource");
    else if (res.status == 413) {
      SendError(res, ErrorCode::kInvalidArgument, "request body too large");
      res.status = 413;
    } else {
      const int status = res.status;
      SendError(res, ErrorCode::kInvalidArgument, "bad request");
      res.status = status;
    }
    return httplib::Server::HandlerResponse::Handled;
  }));
  auto api = std::make_shared<Api>(Api{s, options, *store, *runs, impl_->routes});
  api->max_streams = std::max(1, impl_->options.threads / 2);
  api->Mount();
  impl_->Guard("/api/v1/", [a = api.get()](const httplib::Request& req) { return a->Refusal(req); });
  impl_->keep.push_back(api);
  detail::MountWebUi(s, options.web_dir);
}

std::vector<std::pair<std::string, std::string>> HttpServer::ApiRoutes() const { return impl_->routes; }

}  // namespace baton::api
