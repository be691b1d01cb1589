#include "api/internal/progress.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/vocabulary.h"

namespace baton::api {
namespace {

double Now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string Duration(double seconds) {
  if (seconds < 0 || !std::isfinite(seconds)) return "?";
  long s = std::lround(seconds);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof(buf), "%ldh%02ldm", s / 3600, (s / 60) % 60);
  } else if (s >= 60) {
    std::snprintf(buf, sizeof(buf), "%ldm%02lds", s / 60, s % 60);
  } else {
    std::snprintf(buf, sizeof(buf), "%lds", s);
  }
  return buf;
}

std::string Metrics(const Json& m) {
  std::string out;
  for (const char* k : {"train_loss", "val_loss", "val_accuracy", "test_accuracy"}) {
    if (!m.contains(k)) continue;
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%s%s=%.4f", out.empty() ? "" : " ", k, m[k].get<double>());
    out += buf;
  }
  return out;
}

}  // namespace

ProgressPrinter::ProgressPrinter(std::FILE* out, bool live, std::map<std::string, orchestrator::StageSpec> specs,
                                 std::vector<std::string> stage_order)
    : out_(out), live_(live), order_(std::move(stage_order)) {
  for (const auto& [name, spec] : specs) objectives_[name] = spec.objective;
  for (const auto& name : order_) stages_[name];
  run_started_ = Now();
}

void ProgressPrinter::OnEvent(const orchestrator::Event& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!e.stage.empty()) {
    StageLine& s = stages_[e.stage];
    if (e.type == "stage_started") {
      s.status = Name(StageStatus::kRunning);
      s.type = e.data.value("type", "");
      s.tasks = e.data.value("tasks", 0);
      s.done = e.data.value("finished_before", 0);  // a resumed stage's trials that had ended
      s.started = e.time;
    } else if (e.type == "stage_cached") {
      s.status = Name(StageStatus::kCached);
      s.started = s.finished = e.time;
    } else if (e.type == "stage_finished") {
      s.status = e.data.value("status", "");
      s.finished = e.time;
    } else if (e.type == "trial_started") {
      s.running += 1;
    } else if (e.type == "trial_retry") {
      s.running -= 1;
    } else if (e.type == "trial_finished") {
      s.running -= 1;
      s.done += 1;
      const std::string status = e.data.value("status", "");
      if (Is(status, TrialStatus::kPruned)) {
        s.pruned += 1;
      } else if (Is(status, TrialStatus::kSkipped)) {
        s.skipped += 1;
      } else if (!Is(status, TrialStatus::kSucceeded)) {
        s.failed += 1;
      }
    } else if (e.type == "trial_promoted" && !e.data.value("continued", false)) {
      // A paused (pruned) trial goes on: it is not done after all.
      s.done -= 1;
      s.pruned -= 1;
    } else if (e.type == "epoch") {
      int total = e.data.value("epochs", 0);
      if (s.epochs_total < static_cast<long>(s.tasks) * total) s.epochs_total = static_cast<long>(s.tasks) * total;
      s.epochs_done += 1;
      const Json& m = e.data["metrics"];
      const orchestrator::Objective objective = Objective(e.stage);
      if (m.contains(objective.metric)) {
        double v = m[objective.metric].get<double>();
        if (!s.has_best || objective.Better(v, s.best)) s.best = v;
        s.has_best = true;
      }
    }
  }
  if (live_ && !finished_) {
    Redraw();
  } else if (!live_) {
    Log(e);
  }
}

void ProgressPrinter::Log(const orchestrator::Event& e) {
  // Events stamped a moment before the printer saw the run start (a
  // resumed run's first ones) print as 0.0s, not -0.0s.
  double t = std::max(0.0, e.time - run_started_);
  std::string what;
  // "trial N", or an ablation task's "variant V (repeat R)".
  std::string trial = "trial " + std::to_string(e.trial_number);
  if (e.data.contains("variant")) {
    trial = "variant " + e.data["variant"].get<std::string>() + " (repeat " +
            std::to_string(e.data.value("repeat", 0)) + ")";
  }
  if (e.type == "run_started") {
    what = "run " + e.run_id + " started";
  } else if (e.type == "run_finished") {
    what = "run " + e.run_id + " " + e.data.value("status", "");
    if (!e.data.value("error", "").empty()) what += ": " + e.data.value("error", "");
  } else if (e.type == "stage_started") {
    const bool resumed = e.data.value("resumed", false);
    what = e.stage + (resumed ? ": resumed, " : ": started, ") + std::to_string(e.data.value("tasks", 0)) + " task(s)";
    if (resumed) what += ", " + std::to_string(e.data.value("finished_before", 0)) + " of them finished before";
  } else if (e.type == "stage_cached") {
    what = e.stage + ": cache hit (reusing run " + e.data.value("cached_from_run", "") + ")";
  } else if (e.type == "stage_finished") {
    what = e.stage + ": " + e.data.value("status", "");
    if (e.data.contains("error")) what += ": " + e.data["error"].get<std::string>();
  } else if (e.type == "trial_started") {
    const Json placement = e.data.value("placement", Json::object());
    const std::string job =
        placement.contains("slurm_job_id") ? ", Slurm job " + placement["slurm_job_id"].get<std::string>() : "";
    what = e.stage + ": " + trial + " started on worker " + std::to_string(e.data.value("worker", -1)) + " (attempt " +
           std::to_string(e.data.value("attempt", 1)) + job + ")";
  } else if (e.type == "epoch") {
    char buf[64];
    std::snprintf(buf, sizeof(buf), " (%.1fs)", e.data.value("seconds", 0.0));
    what = e.stage + ": " + trial + " epoch " +
           std::to_string(e.data.value("epoch", 0) + 1) + "/" + std::to_string(e.data.value("epochs", 0)) + " " +
           Metrics(e.data["metrics"]) + buf;
  } else if (e.type == "trial_stopping") {
    what = e.stage + ": " + trial + " told to stop after epoch " +
           std::to_string(e.data.value("epoch", 0) + 1) + ": " + e.data.value("reason", "");
  } else if (e.type == "trial_promoted") {
    what = e.stage + ": " + trial + " promoted at rung " +
           std::to_string(e.data.value("rung", 0)) + " (" + std::to_string(e.data.value("epochs", 0)) + " epochs)" +
           (e.data.value("continued", false) ? ", goes straight on" : ", resumes from its rung checkpoint");
  } else if (e.type == "stage_timeout") {
    what = e.stage + ": budget.timeout_seconds reached; " + std::to_string(e.data.value("skipped", 0)) +
           " trial(s) will not start";
  } else if (e.type == "trial_finished" || e.type == "trial_retry") {
    what = e.stage + ": " + trial + " " +
           (e.type == "trial_retry" ? "will be retried" : e.data.value("status", ""));
    if (e.data.contains("reason")) what += ": " + e.data["reason"].get<std::string>();
  } else {
    return;
  }
  std::fprintf(out_, "[%7.1fs] %s\n", t, what.c_str());
  std::fflush(out_);
}

std::string ProgressPrinter::Line(const std::string& name, const StageLine& s, double now) {
  char buf[256];
  std::string detail;
  if (Is(s.status, StageStatus::kCached)) {
    detail = "cache hit";
  } else if (s.tasks > 0) {
    std::snprintf(buf, sizeof(buf), "%s %d/%d", Is(s.type, StageType::kTune) ? "trials" : "tasks", s.done, s.tasks);
    detail = buf;
    if (s.running > 0) detail += " (" + std::to_string(s.running) + " running)";
    if (s.failed > 0) detail += " " + std::to_string(s.failed) + " failed";
    if (s.pruned > 0) detail += " " + std::to_string(s.pruned) + " pruned";
    if (s.skipped > 0) detail += " " + std::to_string(s.skipped) + " skipped";
    if (s.epochs_total > 0) {
      std::snprintf(buf, sizeof(buf), "  epochs %ld/%ld", s.epochs_done, s.epochs_total);
      detail += buf;
    }
    if (s.has_best) {
      std::snprintf(buf, sizeof(buf), "  best %s %.4f", Objective(name).metric.c_str(), s.best);
      detail += buf;
    }
  }
  if (s.started > 0) {
    double end = s.finished > 0 ? s.finished : now;
    detail += "  elapsed " + Duration(end - s.started);
    if (s.finished == 0 && s.epochs_done > 0 && s.epochs_total > s.epochs_done) {
      double per_epoch = (now - s.started) / static_cast<double>(s.epochs_done);
      detail += "  ETA " + Duration(per_epoch * static_cast<double>(s.epochs_total - s.epochs_done));
    }
  }
  std::snprintf(buf, sizeof(buf), "%-12s %-9s ", name.c_str(), s.status.c_str());
  return buf + detail;
}

void ProgressPrinter::Redraw() {
  double now = Now();
  if (drawn_ > 0) std::fprintf(out_, "\033[%dA", drawn_);
  for (const auto& name : order_) {
    std::fprintf(out_, "\033[2K%s\n", Line(name, stages_[name], now).c_str());
  }
  drawn_ = static_cast<int>(order_.size());
  std::fflush(out_);
}

void ProgressPrinter::Tick() {
  std::lock_guard<std::mutex> lock(mu_);
  if (live_ && !finished_) Redraw();
}

void ProgressPrinter::Finish() {
  std::lock_guard<std::mutex> lock(mu_);
  if (live_ && !finished_) Redraw();
  finished_ = true;
}

}  // namespace baton::api
