#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <set>

#include "api/internal/cli.h"
#include "api/internal/view_source.h"
#include "api/internal/views.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/vocabulary.h"
#include "orchestrator/stage_spec.h"
#include "store/checkpoint.h"

namespace baton::api {
namespace {

std::string Short(const std::string& digest) { return digest.size() > 12 ? digest.substr(0, 12) : digest; }

std::string Time(double t) {
  if (t <= 0) return "-";
  std::time_t s = static_cast<std::time_t>(t);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", std::gmtime(&s));
  return buf;
}

std::string Seconds(double a, double b) {
  if (a <= 0 || b <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1fs", b - a);
  return buf;
}

std::string Num(const Json& v) {
  if (v.is_number_float()) {
    char buf[32];
    double d = v.get<double>();
    std::snprintf(buf, sizeof(buf), (std::fabs(d) < 0.01 && d != 0) ? "%.3g" : "%.4f", d);
    return buf;
  }
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// Where a trial's attempts ran when an executor said more than "local"
// ("slurm job 6 (attempt 1), slurm job 9 (attempt 2)"); "" otherwise.
std::string RanOn(const Json& trial) {
  std::string out;
  for (const auto& p : trial.value("placements", Json::array())) {
    if (!p.contains("slurm_job_id")) continue;
    out += (out.empty() ? "" : ", ") + std::string("slurm job ") + Num(p["slurm_job_id"]) + " (attempt " +
           Num(p.value("attempt", Json(0))) + ")";
  }
  return out;
}

store::RunRecord MustRun(StoreHandle& store, const std::string& id) {
  auto run = store.db->GetRun(id);
  if (!run) throw Error(ErrorCode::kNotFound, "no run " + id + " in store " + store.dir + " (see `baton runs`)");
  return *run;
}

int64_t Effective(const store::StageRecord& s) { return EffectiveStageId(s); }

std::string SpeedupLine(const Json& comparison);

}  // namespace

// Trials of a tune stage with their epochs, ranked by the objective at the
// final epoch (the order init_from's "best" and ranks use).

std::vector<TrialView> RankedTrials(StoreHandle& store, const store::StageRecord& stage) {
  const Json objective = StageObjective(stage);
  const std::string metric = objective["metric"].get<std::string>();
  const bool max = objective["mode"] == "max";
  std::vector<TrialView> out;
  for (auto& t : store.db->GetTrials(Effective(stage))) {
    TrialView v;
    v.trial = t;
    v.epochs = store.db->GetEpochs(t.id);
    for (const auto& e : v.epochs) {
      if (store.db->CheckpointReleasedAt(e.checkpoint) > 0) v.released.insert(e.checkpoint);
    }
    if (!t.initial_checkpoint.empty() && store.db->CheckpointReleasedAt(t.initial_checkpoint) > 0) {
      v.released.insert(t.initial_checkpoint);
    }
    for (const auto& e : v.epochs) {
      if (!e.metrics.contains(metric)) continue;
      double x = e.metrics[metric].get<double>();
      if (!v.has_final || (max ? x > v.best_value : x < v.best_value)) v.best_value = x;
      v.has_final = true;
      v.final_value = x;
    }
    out.push_back(v);
  }
  // Succeeded trials by their final value (init_from's ranking), then the
  // rest (pruned, failed, ...) by their best value so far, then those with
  // no epochs.
  auto group = [](const TrialView& v) { return !v.has_final ? 2 : Is(v.trial.status, TrialStatus::kSucceeded) ? 0 : 1; };
  std::stable_sort(out.begin(), out.end(), [&](const TrialView& a, const TrialView& b) {
    const int ga = group(a), gb = group(b);
    if (ga != gb) return ga < gb;
    if (ga == 2) return false;
    const double va = ga == 0 ? a.final_value : a.best_value, vb = gb == 0 ? b.final_value : b.best_value;
    return max ? va > vb : va < vb;
  });
  return out;
}

Json TrialJson(const TrialView& v) {
  Json j = {{"trial_id", v.trial.id}, {"number", v.trial.number}, {"status", v.trial.status},
            {"reason", v.trial.reason}, {"attempts", v.trial.attempts}, {"hyperparameters", v.trial.hyperparameters},
            {"epochs_run", v.epochs.size()}, {"initial_checkpoint", v.trial.initial_checkpoint},
            {"output", v.trial.output}, {"placements", v.trial.placements}, {"epochs", Json::array()}};
  if (v.has_final) {
    j["final_objective"] = v.final_value;
    j["best_objective"] = v.best_value;
  }
  for (const auto& e : v.epochs) {
    j["epochs"].push_back({{"epoch", e.epoch}, {"metrics", e.metrics}, {"checkpoint", e.checkpoint}, {"seconds", e.seconds}});
    if (v.released.count(e.checkpoint)) j["epochs"].back()["released"] = "released by baton store gc";
  }
  if (v.released.count(v.trial.initial_checkpoint)) j["initial_checkpoint_released"] = true;
  // Which start and seed of an ablation or a compare this trial is.
  if (v.trial.task.contains("variant")) j["variant"] = v.trial.task["variant"];
  if (v.trial.task.contains("repeat")) j["repeat"] = v.trial.task["repeat"];
  return j;
}

Json StageJson(StoreHandle& store, const store::StageRecord& s) {
  Json j = {{"stage_id", s.id}, {"name", s.name}, {"type", s.type}, {"status", s.status},
            {"cache_key", s.cache_key}, {"cached_from_stage", s.cached_from}, {"output", s.output},
            {"resolved", s.resolved}, {"started_at", s.started_at}, {"finished_at", s.finished_at},
            {"error", s.error}};
  if (s.cached_from != 0) {
    if (auto src = store.db->GetStage(s.cached_from)) j["cached_from_run"] = src->run_id;
  }
  if (Is(s.type, StageType::kTrain)) {
    Json comparison = ComparisonJson(store, s);
    if (!comparison.is_null()) {
      j["comparison"] = comparison;
      j["speedup_line"] = SpeedupLine(comparison);
    }
    for (const auto& v : RankedTrials(store, s)) {
      if (v.epochs.empty() || v.trial.task.contains("variant")) continue;  // compare runs are not the model
      const auto& last = v.epochs.back();
      j["model"] = {{"checkpoint", v.trial.output.empty() ? last.checkpoint : v.trial.output},
                    {"initial_checkpoint", v.trial.initial_checkpoint},
                    {"epochs", v.epochs.size()}, {"final_metrics", last.metrics}};
    }
  }
  return j;
}

// An ablation stage's results (its output blob, written when it finished)
// with, per variant, which tensors its first repeat took from init_from.
Json AblationJson(StoreHandle& store, const store::StageRecord& s) {
  Json out = Json::object();
  if (s.output.empty() || !store.blobs->Has(s.output)) return out;
  out = ParseJson(store.blobs->Get(s.output), "ablation results " + s.output);
  std::map<std::string, Json> init;
  for (const auto& t : store.db->GetTrials(Effective(s))) {
    const std::string variant = t.task.value("variant", "");
    if (init.count(variant)) continue;
    for (const auto& e : store.db->Upstream("trial:" + std::to_string(t.id), 1)) {
      if (e.kind != "initialized_from") continue;
      init[variant] = {{"checkpoint", e.dst.substr(e.dst.find(':') + 1)},
                       {"transferred", e.attrs.value("transferred", Json::array())},
                       {"reinitialized", e.attrs.value("reinitialized", Json::array())}};
    }
  }
  auto attach = [&](Json& row) {
    auto it = init.find(row.value("variant", ""));
    if (it != init.end()) row["init"] = it->second;
  };
  attach(out["base"]);
  for (auto& row : out["variants"]) attach(row);
  return out;
}

// A train stage's comparison of initialisations (its resolved "comparison"
// blob, written when it finished), or null.
Json ComparisonJson(StoreHandle& store, const store::StageRecord& s) {
  if (!s.resolved.contains("comparison")) return nullptr;
  const std::string digest = s.resolved["comparison"].get<std::string>();
  return ParseJson(store.blobs->Get(digest), "comparison " + digest);
}

namespace {

std::string MeanSd(const Json& summary, const char* fmt = "%.4f") {
  if (!summary.contains("mean")) return "-";
  char a[32], b[32];
  std::snprintf(a, sizeof(a), fmt, summary["mean"].get<double>());
  std::snprintf(b, sizeof(b), fmt, summary["sd"].get<double>());
  return std::string(a) + "±" + b;
}

std::string PValue(const Json& test) {
  if (!test.contains("p_value")) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", test["p_value"].get<double>());
  return buf;
}

// The one line the demo prints: the start from a trial's weights with the
// largest speed-up, or, if none has one, the first start.
// "epoch:last" -> "last epoch", "epoch:3" -> "epoch 3", "epoch:initial" ->
// "initial weights": a compare start in words.
std::string StartWords(const std::string& variant) {
  if (variant.rfind("epoch:", 0) != 0) return variant;
  const std::string e = variant.substr(6);
  if (e == "last" || e == "best") return e + " epoch";
  if (e == "initial") return "initial weights";
  return "epoch " + e;
}

std::string SpeedupLine(const Json& c) {
  const Json* pick = nullptr;
  for (const auto& v : c["variants"]) {
    if (v["variant"] == "kaiming_uniform") continue;
    const bool has = v["tta"].contains("speedup_epochs");
    if (pick == nullptr || (has && (!(*pick)["tta"].contains("speedup_epochs") ||
                                    v["tta"]["speedup_epochs"].get<double>() >
                                        (*pick)["tta"]["speedup_epochs"].get<double>()))) {
      pick = &v;
    }
  }
  if (pick != nullptr) {
    const Json& v = *pick;
    const Json& tta = v["tta"];
    char buf[512];
    if (tta.contains("speedup_epochs")) {
      std::snprintf(buf, sizeof(buf),
                    "speed-up: starting from the tuning trial's %s reached %.4f val_accuracy in %.1f epochs vs %.1f "
                    "for Kaiming uniform: %.2fx (%.2fx counting its %d tuning epochs; %.2fx in seconds), %d seeds",
                    StartWords(v["variant"].get<std::string>()).c_str(), c["target"]["value"].get<double>(),
                    tta["epochs"]["mean"].get<double>(),
                    tta["epochs"]["mean"].get<double>() * tta["speedup_epochs"].get<double>(),
                    tta["speedup_epochs"].get<double>(), tta["speedup_epochs_with_tuning"].get<double>(),
                    v["tuning_epochs"].get<int>(), tta["speedup_seconds"].get<double>(), tta["seeds"].get<int>());
    } else {
      const Json& base = c["variants"][0]["tta"];
      std::snprintf(buf, sizeof(buf),
                    "speed-up: none measured: the target %.4f val_accuracy was reached by %d of %d seeds from "
                    "Kaiming uniform and %d of %d from %s (a speed-up needs every seed of both)",
                    c["target"]["value"].get<double>(), base["reached"].get<int>(), base["seeds"].get<int>(),
                    tta["reached"].get<int>(), tta["seeds"].get<int>(),
                    ("the tuning trial's " + StartWords(v["variant"].get<std::string>())).c_str());
    }
    return buf;
  }
  return "";
}

void PrintComparison(const Json& c) {
  const Json& target = c["target"];
  std::printf("comparison over %d seeds; target val_accuracy %.4f", c["seeds"].get<int>(), target["value"].get<double>());
  if (target.contains("fraction_of_baseline_best")) {
    std::printf(" (%.3g x the baseline's mean best %.4f)", target["fraction_of_baseline_best"].get<double>(),
                target["baseline_best_mean"].get<double>());
  }
  std::printf("\nTTA = epochs trained until val_accuracy first reaches the target (mean±sd over the seeds that did)\n");
  std::printf("%-16s %-6s %-16s %-16s %-7s %-13s %-9s %-8s %-9s %-9s %-9s %-13s %s\n", "START", "TUNED", "BEST VAL",
              "BEST TEST", "REACHED", "TTA EPOCHS", "TTA s", "SPEEDUP", "+TUNING", "p(t) acc", "p(U) acc", "TTA@100%",
              "CKPT BYTES");
  for (const auto& v : c["variants"]) {
    const Json& tta = v["tta"];
    auto fmt = [](const Json& j, const char* k, const char* f) {
      if (!j.contains(k)) return std::string("-");
      char buf[32];
      std::snprintf(buf, sizeof(buf), f, j[k].get<double>());
      return std::string(buf);
    };
    std::string reached = std::to_string(tta["reached"].get<int>()) + "/" + std::to_string(tta["seeds"].get<int>());
    std::string full = MeanSd(v["tta_100"]["epochs"], "%.1f") + " (" + std::to_string(v["tta_100"]["reached"].get<int>()) + "/" +
                       std::to_string(v["tta_100"]["seeds"].get<int>()) + ")";
    std::printf("%-16s %-6d %-16s %-16s %-7s %-13s %-9s %-8s %-9s %-9s %-9s %-13s %s\n",
                v["variant"].get<std::string>().c_str(), v["tuning_epochs"].get<int>(),
                MeanSd(v["best_val_accuracy"]).c_str(), MeanSd(v["best_test_accuracy"]).c_str(), reached.c_str(),
                MeanSd(tta["epochs"], "%.1f").c_str(), MeanSd(tta["seconds"], "%.0f").c_str(),
                fmt(tta, "speedup_epochs", "%.2fx").c_str(), fmt(tta, "speedup_epochs_with_tuning", "%.2fx").c_str(),
                v.contains("best_val_welch_t") ? PValue(v["best_val_welch_t"]).c_str() : "-",
                v.contains("best_val_mann_whitney_u") ? PValue(v["best_val_mann_whitney_u"]).c_str() : "-",
                full.c_str(), HumanBytes(v["checkpoint_bytes"].get<uint64_t>()).c_str());
    if (v.contains("best_test_difference")) {
      std::printf("%-16s best test accuracy vs baseline: %+.4f (Welch t p %s, Mann-Whitney U p %s)\n", "",
                  v["best_test_difference"].get<double>(), PValue(v["best_test_welch_t"]).c_str(),
                  PValue(v["best_test_mann_whitney_u"]).c_str());
    }
    if (tta.contains("welch_t") && tta["welch_t"].contains("p_value")) {
      std::printf("%-16s TTA p-values vs baseline: Welch t %s, Mann-Whitney U %s\n", "",
                  PValue(tta["welch_t"]).c_str(), PValue(tta["mann_whitney_u"]).c_str());
    }
    if (v.contains("failures")) {
      for (const auto& f : v["failures"]) std::printf("%-16s %s\n", "", f.get<std::string>().c_str());
    }
  }
  std::printf("%s\n", SpeedupLine(c).c_str());
}

void PrintAblation(const Json& a) {
  const std::string metric = a["objective"]["metric"].get<std::string>();
  std::printf("objective %s (%s); impact = how much worse than the base (mean over repeats, paired by seed)\n",
              metric.c_str(), a["objective"]["mode"].get<std::string>().c_str());
  std::printf("%-18s %-24s %-8s %-8s %-9s %-8s %-8s %-6s %-8s %-13s %s\n", "VARIANT", "REMOVED", "MEAN", "SD",
              "DELTA", "SD", "IMPACT", "EPOCHS", "SECONDS", "INIT (xfer/re)", "RUNS");
  auto row = [&](const Json& r) {
    std::string removed;
    for (const auto& l : r["removed_layers"]) removed += (removed.empty() ? "" : ",") + l.get<std::string>();
    for (const auto& f : r["dropped_features"]) removed += (removed.empty() ? "" : ",") + ("feature " + f.get<std::string>());
    if (removed.empty()) removed = "-";
    if (removed.size() > 24) removed = removed.substr(0, 21) + "...";
    auto num = [&](const char* k, const char* fmt) {
      if (!r.contains(k)) return std::string("-");
      char buf[32];
      std::snprintf(buf, sizeof(buf), fmt, r[k].get<double>());
      return std::string(buf);
    };
    std::string init = "-";
    if (r.contains("init")) {
      init = std::to_string(r["init"]["transferred"].size()) + "/" + std::to_string(r["init"]["reinitialized"].size());
    }
    std::string runs;
    for (const auto& [st, n] : r["runs"].items()) runs += (runs.empty() ? "" : ", ") + std::to_string(n.get<int>()) + " " + st;
    std::printf("%-18s %-24s %-8s %-8s %-9s %-8s %-8s %-6s %-8s %-13s %s\n", r["variant"].get<std::string>().c_str(),
                removed.c_str(), num("objective_mean", "%.4f").c_str(), num("objective_sd", "%.4f").c_str(),
                num("delta_mean", "%+.4f").c_str(), num("delta_sd", "%.4f").c_str(), num("impact", "%+.4f").c_str(),
                num("epochs_mean", "%.0f").c_str(), num("seconds_mean", "%.1f").c_str(), init.c_str(), runs.c_str());
    for (const auto& reason : r["reasons"]) std::printf("%-18s reason: %s\n", "", reason.get<std::string>().c_str());
  };
  row(a["base"]);
  for (const auto& r : a["variants"]) row(r);
}

}  // namespace

Json RunJson(const store::RunRecord& r) {
  return {{"run_id", r.id}, {"pipeline", r.name}, {"pipeline_id", r.pipeline_id}, {"status", r.status},
          {"created_at", r.created_at}, {"finished_at", r.finished_at}, {"error", r.error}};
}

Json RunDetailJson(StoreHandle& store, const store::RunRecord& run) {
  Json out = RunJson(run);
  out["stages"] = Json::array();
  for (const auto& s : store.db->GetStages(run.id)) out["stages"].push_back(StageJson(store, s));
  return out;
}

Json StageDetailJson(StoreHandle& store, const store::StageRecord& s) {
  Json out = StageJson(store, s);
  if (Is(s.type, StageType::kAblate)) out["ablation"] = AblationJson(store, s);
  out["trials"] = Json::array();
  for (const auto& v : RankedTrials(store, s)) out["trials"].push_back(TrialJson(v));
  return out;
}

namespace {

class LocalViewSource : public ViewSource {
 public:
  explicit LocalViewSource(StoreHandle& store) : store_(store) {}
  std::string Where() const override { return "store " + store_.dir; }
  Json Runs(int max) override {
    Json out = Json::array();
    for (const auto& r : store_.db->ListRuns(max)) {
      out.push_back(RunJson(r));
      out.back()["summary"] = RunSummaryJson(store_, r);  // as GET /runs gives it
    }
    return out;
  }
  Json Run(const std::string& run_id) override {
    const store::RunRecord run = MustRun(store_, run_id);
    Json out = RunDetailJson(store_, run);
    const auto pins = store_.db->PinnedRuns();
    out["pinned"] = std::find(pins.begin(), pins.end(), run.id) != pins.end();
    return out;
  }
  Json Stage(const std::string& run_id, const std::string& name) override {
    MustRun(store_, run_id);
    for (const auto& s : store_.db->GetStages(run_id)) {
      if (s.name == name) return StageDetailJson(store_, s);
    }
    throw Error(ErrorCode::kNotFound, "run " + run_id + " has no stage " + name);
  }
  Json Pipeline(const std::string& pipeline_id) override {
    auto doc = store_.db->GetPipeline(pipeline_id);
    if (!doc) throw Error(ErrorCode::kNotFound, "no pipeline " + pipeline_id + " in store " + store_.dir);
    return *doc;
  }
  Json Lineage(const std::string& id, bool downstream, int depth) override {
    return LineageJson(store_, id, downstream, depth);
  }
  Json StageLogs(const std::string& run_id, const std::string& name) override {
    MustRun(store_, run_id);
    for (const auto& s : store_.db->GetStages(run_id)) {
      if (s.name == name) return StageLogsJson(store_, s);
    }
    throw Error(ErrorCode::kNotFound, "run " + run_id + " has no stage " + name);
  }

 private:
  StoreHandle& store_;
};

std::string Text(const Json& j, const char* key) { return j.value(key, std::string()); }

void PrintStage(const std::string& run_id, const Json& s, const Json& spec) {
  const std::string type = Text(s, "type"), status = Text(s, "status");
  const Json& resolved = s["resolved"];
  const Json& trials = s["trials"];
  std::printf("stage %s (%s) of run %s: %s%s\n", Text(s, "name").c_str(), type.c_str(), run_id.c_str(),
              status.c_str(), s.value("cached_from_stage", int64_t{0}) != 0 ? " (cache hit: results of an earlier run)" : "");
  if (!Text(s, "error").empty()) std::printf("error: %s\n", Text(s, "error").c_str());
  if (resolved.contains("init_from")) {
    const Json& r = resolved["init_from"];
    std::printf("init_from: stage %s trial %d (rank %d) epoch %s checkpoint %s\n",
                r["stage"].get<std::string>().c_str(), r["trial_number"].get<int>(), r["rank"].get<int>(),
                r["epoch"].dump().c_str(), r["checkpoint"].get<std::string>().c_str());
  }
  if (resolved.contains("hyperparameters_from")) {
    const Json& r = resolved["hyperparameters_from"];
    std::printf("hyperparameters from trial %d of %s: %s\n", r["trial_number"].get<int>(),
                r["stage"].get<std::string>().c_str(), r["hyperparameters"].dump().c_str());
  }
  if (Is(type, StageType::kAblate)) {
    if (resolved.contains("base")) {
      const Json& b = resolved["base"];
      std::printf("base: trial %d of %s (%s %s), hyperparameters %s\n", b["trial_number"].get<int>(),
                  b["stage"].get<std::string>().c_str(), b["objective"]["metric"].get<std::string>().c_str(),
                  Num(b["objective"]["value"]).c_str(), b["hyperparameters"].dump().c_str());
    }
    const Json a = s.value("ablation", Json::object());
    if (a.contains("base")) {
      PrintAblation(a);
    } else {
      std::printf("no results yet (the stage is %s); tasks:\n", status.c_str());
      for (const auto& t : trials) {
        std::printf("  %s repeat %d: %s %s\n", Text(t, "variant").c_str(), t.value("repeat", 0),
                    Text(t, "status").c_str(), Text(t, "reason").c_str());
      }
    }
  } else if (Is(type, StageType::kTune)) {
    const orchestrator::StageSpec typed = orchestrator::ParseStageSpec(Text(s, "name"), spec);
    const orchestrator::Objective objective = orchestrator::RecordedObjective(spec, resolved);
    const std::string metric = objective.metric;
    std::map<std::string, int> by_status;
    for (const auto& t : trials) by_status[Text(t, "status")] += 1;
    std::string counts;
    for (const auto& [st, n] : by_status) counts += (counts.empty() ? "" : ", ") + std::to_string(n) + " " + st;
    std::printf("%zu trials (%s); sampler %s, pruner %s, %s; objective %s %s\n", trials.size(), counts.c_str(),
                typed.sampler.type.c_str(), typed.pruner.type.c_str(),
                typed.synchronous ? "synchronous" : "asynchronous", metric.c_str(), objective.mode.c_str());
    std::printf("%-5s %-10s %-6s %-10s %-10s %s\n", "TRIAL", "STATUS", "EPOCHS", ("last " + metric.substr(0, 5)).c_str(),
                "best", "HYPERPARAMETERS");
    for (const auto& t : trials) {
      std::string hp;
      for (const auto& [k, val] : t["hyperparameters"].items()) hp += (hp.empty() ? "" : " ") + k + "=" + Num(val);
      const bool has_final = t.contains("final_objective");
      std::printf("%-5d %-10s %-6zu %-10s %-10s %s\n", t["number"].get<int>(), Text(t, "status").c_str(),
                  t["epochs_run"].get<size_t>(), has_final ? Num(t["final_objective"]).c_str() : "-",
                  has_final ? Num(t["best_objective"]).c_str() : "-", hp.c_str());
      if (!Text(t, "reason").empty()) std::printf("      reason: %s\n", Text(t, "reason").c_str());
      if (const std::string where = RanOn(t); !where.empty()) std::printf("      ran on: %s\n", where.c_str());
    }
  } else {
    const Json comparison = s.value("comparison", Json());
    for (const auto& t : trials) {
      if (!comparison.is_null() && t.contains("variant")) continue;  // in the table below
      std::printf("task %d %s%s\n", t["number"].get<int>(), Text(t, "status").c_str(),
                  Text(t, "reason").empty() ? "" : (": " + Text(t, "reason")).c_str());
      if (const std::string where = RanOn(t); !where.empty()) std::printf("ran on: %s\n", where.c_str());
      if (!Text(t, "initial_checkpoint").empty()) {
        std::printf("initial checkpoint %s\n", Text(t, "initial_checkpoint").c_str());
      }
      if (!Text(t, "output").empty()) std::printf("output %s\n", Text(t, "output").c_str());
      if (t["epochs"].empty()) continue;
      std::printf("%-6s %-10s %-10s %-10s %-10s %-10s %s\n", "EPOCH", "train_loss", "val_loss", "val_acc",
                  "test_acc", "seconds", "CHECKPOINT");
      for (const auto& e : t["epochs"]) {
        const Json& metrics = e["metrics"];
        auto m = [&](const char* k) { return metrics.contains(k) ? Num(metrics[k]) : std::string("-"); };
        std::printf("%-6d %-10s %-10s %-10s %-10s %-10.1f %s\n", e["epoch"].get<int>(), m("train_loss").c_str(),
                    m("val_loss").c_str(), m("val_accuracy").c_str(), m("test_accuracy").c_str(),
                    e["seconds"].get<double>(),
                    (Short(Text(e, "checkpoint")) + (e.contains("released") ? " (released by gc)" : "")).c_str());
      }
    }
    if (!comparison.is_null()) {
      std::printf("\n");
      PrintComparison(comparison);
    }
  }
}

// The RESULT column of a stage in the run's table.
std::string StageResult(ViewSource& views, const std::string& run_id, const Json& s, const Json& spec) {
  const std::string type = Text(s, "type");
  const Json& resolved = s["resolved"];
  std::string result;
  if (s.contains("cached_from_run")) result = "cache hit from run " + Text(s, "cached_from_run") + "; ";
  else if (s.value("cached_from_stage", int64_t{0}) != 0) result = "cache hit from run ?; ";
  if (Is(type, StageType::kPrepare) && !Text(s, "output").empty()) {
    result += "dataset " + Short(Text(s, "output"));
  } else if (Is(type, StageType::kTune)) {
    const Json trials = views.Stage(run_id, Text(s, "name"))["trials"];
    int ok = 0;
    for (const auto& t : trials) ok += Is(Text(t, "status"), TrialStatus::kSucceeded);
    result += std::to_string(ok) + "/" + std::to_string(trials.size()) + " trials succeeded";
    if (!trials.empty() && trials[0].contains("final_objective")) {
      result += "; best " + orchestrator::RecordedObjective(spec, resolved).metric + " " +
                Num(trials[0]["final_objective"]) +
                " (trial " + std::to_string(trials[0]["number"].get<int>()) + ")";
    }
  } else if (Is(type, StageType::kAblate)) {
    const Json a = views.Stage(run_id, Text(s, "name")).value("ablation", Json::object());
    if (a.contains("variants") && !a["variants"].empty() && a["variants"][0].contains("impact")) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%+.4f", a["variants"][0]["impact"].get<double>());
      result += std::to_string(a["variants"].size()) + " variants; largest impact " +
                a["variants"][0]["variant"].get<std::string>() + " (" + buf + " " +
                a["objective"]["metric"].get<std::string>() + ")";
    }
  } else if (Is(type, StageType::kTrain)) {
    if (s.contains("model")) {
      const Json& m = s["model"]["final_metrics"];
      result += "model " + Short(s["model"]["checkpoint"].get<std::string>());
      if (m.contains("test_accuracy")) result += " test_accuracy " + Num(m["test_accuracy"]);
    }
    if (resolved.contains("init_from")) {
      const Json& r = resolved["init_from"];
      const bool separated = result.empty() || (result.size() >= 2 && result.compare(result.size() - 2, 2, "; ") == 0);
      result += std::string(separated ? "" : "; ") + "init from " + r["stage"].get<std::string>() + " trial " +
                std::to_string(r["trial_number"].get<int>()) + " epoch " + r["epoch"].dump() + " (" +
                Short(r["checkpoint"].get<std::string>()) + ")";
    }
  }
  if (!Text(s, "error").empty()) result += (result.empty() ? "" : "; ") + Text(s, "error");
  return result;
}

}  // namespace

std::unique_ptr<ViewSource> LocalViews(StoreHandle& store) { return std::make_unique<LocalViewSource>(store); }

int CmdRuns(ViewSource& views, bool json, bool quiet) {
  const Json runs = views.Runs(100);
  if (quiet) {
    for (const auto& r : runs) std::printf("%s\n", Text(r, "run_id").c_str());
    return kExitOk;
  }
  if (json) {
    std::printf("%s\n", runs.dump(2).c_str());
    return kExitOk;
  }
  if (runs.empty()) {
    std::printf("no runs in %s\n", views.Where().c_str());
    return kExitOk;
  }
  std::printf("%-22s %-20s %-10s %-20s %s\n", "RUN", "PIPELINE", "STATUS", "CREATED (UTC)", "TOOK");
  for (const auto& r : runs) {
    std::printf("%-22s %-20s %-10s %-20s %s\n", Text(r, "run_id").c_str(), Text(r, "pipeline").c_str(),
                Text(r, "status").c_str(), Time(r.value("created_at", 0.0)).c_str(),
                Seconds(r.value("created_at", 0.0), r.value("finished_at", 0.0)).c_str());
  }
  return kExitOk;
}

int CmdShow(ViewSource& views, const std::string& run_id, const std::string& stage_name, bool json) {
  if (!stage_name.empty()) {
    const Json s = views.Stage(run_id, stage_name);
    if (json) {
      std::printf("%s\n", s.dump(2).c_str());
      return kExitOk;
    }
    const Json run = views.Run(run_id);
    const Json spec = views.Pipeline(Text(run, "pipeline_id")).at("stages").value(stage_name, Json::object());
    PrintStage(run_id, s, spec);
    return kExitOk;
  }
  const Json run = views.Run(run_id);
  if (json) {
    std::printf("%s\n", run.dump(2).c_str());
    return kExitOk;
  }
  const Json pipeline = views.Pipeline(Text(run, "pipeline_id"));
  std::printf("run %s  pipeline %s  %s  created %s  took %s\n", Text(run, "run_id").c_str(),
              Text(run, "pipeline").c_str(), Text(run, "status").c_str(), Time(run.value("created_at", 0.0)).c_str(),
              Seconds(run.value("created_at", 0.0), run.value("finished_at", 0.0)).c_str());
  if (!Text(run, "error").empty()) std::printf("error: %s\n", Text(run, "error").c_str());
  std::printf("%-12s %-8s %-10s %-8s %s\n", "STAGE", "TYPE", "STATUS", "TIME", "RESULT");
  for (const auto& s : run["stages"]) {
    const Json spec = pipeline.at("stages").value(Text(s, "name"), Json::object());
    std::printf("%-12s %-8s %-10s %-8s %s\n", Text(s, "name").c_str(), Text(s, "type").c_str(),
                Text(s, "status").c_str(), Seconds(s.value("started_at", 0.0), s.value("finished_at", 0.0)).c_str(),
                StageResult(views, run_id, s, spec).c_str());
  }
  return kExitOk;
}

void AddViewCommands(CLI::App& app, const GlobalOptions& g, CliAction* action) {
  struct State {
    bool json = false;
    bool quiet = false;
    std::string run_id, stage, node;
    bool downstream = false;
    int depth = 64;
  };
  auto st = std::make_shared<State>();
  // On the store itself, or through the server --server names.
  auto with_views = [&g](const std::function<int(ViewSource&)>& command) {
    if (!g.remote.url.empty()) return command(*RemoteViews(g.remote));
    StoreHandle store = OpenStore(g.store_dir);
    return command(*LocalViews(store));
  };

  auto* runs = app.add_subcommand("runs", "list runs, newest first");
  runs->add_flag("--json", st->json, "machine-readable output");
  runs->add_flag("-q,--quiet", st->quiet, "only run ids");
  runs->callback([st, action, with_views] {
    *action = [st, with_views] { return with_views([&](ViewSource& v) { return CmdRuns(v, st->json, st->quiet); }); };
  });

  auto* show = app.add_subcommand("show", "show a run, or one of its stages");
  show->add_option("RUN", st->run_id, "run id")->required();
  show->add_option("--stage", st->stage, "stage name: its trials or training epochs");
  show->add_flag("--json", st->json, "machine-readable output");
  show->callback([st, action, with_views] {
    *action = [st, with_views] {
      return with_views([&](ViewSource& v) { return CmdShow(v, st->run_id, st->stage, st->json); });
    };
  });

  auto* logs = app.add_subcommand("logs", "a command stage's output: its stdout to stdout, its stderr to stderr");
  logs->add_option("RUN", st->run_id, "run id")->required();
  logs->add_option("STAGE", st->stage, "stage name")->required();
  logs->add_flag("--json", st->json, "machine-readable output");
  logs->callback([st, action, with_views] {
    *action = [st, with_views] {
      return with_views([&](ViewSource& v) { return CmdLogs(v, st->run_id, st->stage, st->json); });
    };
  });

  auto* lineage = app.add_subcommand("lineage", "what a model, checkpoint, trial or run came from");
  lineage->add_option("ID", st->node, "run id, checkpoint or artifact digest, trial:N, stage:N")->required();
  lineage->add_flag("--downstream", st->downstream, "what was made from it instead");
  lineage->add_option("--depth", st->depth, "hops to follow (default 64)");
  lineage->add_flag("--json", st->json, "machine-readable output");
  lineage->callback([st, action, with_views] {
    *action = [st, with_views] {
      return with_views(
          [&](ViewSource& v) { return CmdLineage(v, st->node, st->downstream, st->depth, st->json); });
    };
  });
}

}  // namespace baton::api
