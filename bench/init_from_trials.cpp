// The paper's protocol (Deep Neural Network Weight Initialization from
// Hyperparameter Tuning Trials, ICONIP 2024) on Fashion-MNIST with the
// example CNN, through Baton's own `compare`: tune, then train from the best
// trial's weights at several epochs and from Kaiming uniform, over several
// seeds, and print the comparison as a markdown table.
//
//   build/bench/bench_init_from_trials [--seeds 6] [--epochs 10] [--trials 8] [--tune-epochs 5]
//       [--train-subset 8000] [--epochs-from 1,3,last] [--lr-schedule constant] [--workers 2]
//       [--pipeline examples/fashion-mnist.json] [--baton PATH] [--dir /tmp] [--out FILE] [--keep 0]
//
// The model, search space and seed come from the pipeline; baton-worker is
// found beside baton (or BATON_WORKER).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "bench/bench_common.h"
#include "common/json_util.h"
#include "store/lineage_db.h"

namespace fs = std::filesystem;
using baton::Json;

namespace {

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string Capture(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("cannot run " + cmd);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  if (pclose(p) != 0) throw std::runtime_error("failed: " + cmd);
  return out;
}

std::string Fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

std::string MeanSd(const Json& s, const char* f = "%.4f") {
  if (!s.contains("mean")) return "-";
  return Fmt(f, s["mean"].get<double>()) + " ± " + Fmt(f, s["sd"].get<double>());
}

std::string P(const Json& t) { return t.contains("p_value") ? Fmt("%.3g", t["p_value"].get<double>()) : "-"; }

std::string Table(const Json& c) {
  std::ostringstream out;
  out << "| start | tuning epochs | best val acc | best test acc | TTA epochs (reached) | TTA s | speed-up | "
         "speed-up incl. tuning | speed-up (s) | p best val (Welch / MWU) | best test diff, p (Welch / MWU) | "
         "p TTA (Welch / MWU) | TTA@100% epochs (reached) | checkpoint bytes |\n"
         "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& v : c["variants"]) {
    const Json& t = v["tta"];
    const Json& f = v["tta_100"];
    const bool base = v["variant"] == "kaiming_uniform";
    out << "| " << v["variant"].get<std::string>() << " | " << v["tuning_epochs"].get<int>() << " | "
        << MeanSd(v["best_val_accuracy"]) << " | " << MeanSd(v["best_test_accuracy"]) << " | "
        << MeanSd(t["epochs"], "%.2f") << " (" << t["reached"].get<int>() << "/" << t["seeds"].get<int>() << ") | "
        << MeanSd(t["seconds"], "%.0f") << " | "
        << (t.contains("speedup_epochs") ? Fmt("%.2fx", t["speedup_epochs"].get<double>()) : "-") << " | "
        << (t.contains("speedup_epochs_with_tuning") ? Fmt("%.2fx", t["speedup_epochs_with_tuning"].get<double>()) : "-")
        << " | " << (t.contains("speedup_seconds") ? Fmt("%.2fx", t["speedup_seconds"].get<double>()) : "-") << " | "
        << (base ? "-" : P(v["best_val_welch_t"]) + " / " + P(v["best_val_mann_whitney_u"])) << " | "
        << (base || !v.contains("best_test_difference")
                ? "-"
                : Fmt("%+.4f", v["best_test_difference"].get<double>()) + ", " + P(v["best_test_welch_t"]) + " / " +
                      P(v["best_test_mann_whitney_u"]))
        << " | "
        << (base ? "-" : P(t["welch_t"]) + " / " + P(t["mann_whitney_u"])) << " | " << MeanSd(f["epochs"], "%.2f")
        << " (" << f["reached"].get<int>() << "/" << f["seeds"].get<int>() << ") | "
        << v["checkpoint_bytes"].get<uint64_t>() << " |\n";
  }
  return out.str();
}

}  // namespace

int main(int argc, char** argv) {
  int seeds = 6, epochs = 10, trials = 8, tune_epochs = 5, subset = 8000, workers = 2, keep = 0;
  std::string epochs_from = "1,3,last";
  std::string schedule = "constant";  // the reference measurement's
  std::string pipeline = BATON_SOURCE_DIR "/examples/fashion-mnist.json";
  std::string baton = ::baton::bench::BatonBinary();
  std::string base = "/tmp", out_file;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--seeds") seeds = std::stoi(v);
    else if (a == "--epochs") epochs = std::stoi(v);
    else if (a == "--trials") trials = std::stoi(v);
    else if (a == "--tune-epochs") tune_epochs = std::stoi(v);
    else if (a == "--train-subset") subset = std::stoi(v);
    else if (a == "--epochs-from") epochs_from = v;
    else if (a == "--lr-schedule") schedule = v;
    else if (a == "--workers") workers = std::stoi(v);
    else if (a == "--pipeline") pipeline = v;
    else if (a == "--baton") baton = v;
    else if (a == "--dir") base = v;
    else if (a == "--out") out_file = v;
    else if (a == "--keep") keep = std::stoi(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return 2;
    }
  }
  std::ifstream in(pipeline);
  if (!in) {
    std::fprintf(stderr, "cannot read %s\n", pipeline.c_str());
    return 2;
  }
  Json doc = Json::parse(in);
  doc["stages"]["prep"]["train_subset"] = subset;
  doc["stages"]["tune"]["budget"] = {{"max_trials", trials}, {"max_parallel", workers}, {"max_epochs", tune_epochs}};
  doc["stages"]["tune"]["hyperparameters"]["lr_schedule"] = schedule;
  doc["stages"]["tune"].erase("pruner");  // every trial trains its full epochs, as in the paper
  Json from = Json::array();
  std::stringstream ss(epochs_from);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item == "initial" || item == "last" || item == "best") {
      from.push_back(item);
    } else {
      from.push_back(std::stoi(item));
    }
  }
  Json& train = doc["stages"]["train"];
  train["epochs"] = epochs;
  // The paper: the winner's learning rate and weight decay, optimizer and
  // schedule started fresh; the winner ranked by final-epoch validation accuracy.
  train["compare"] = {{"baseline", "kaiming_uniform"}, {"seeds", seeds}, {"epochs_from", from},
                      {"max_parallel", workers}};
  const fs::path dir = fs::path(base) / ("baton-bench-init-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "pipeline.json") << doc.dump(2);
  const std::string store = (dir / "store").string();
  const auto t0 = std::chrono::steady_clock::now();
  std::string cmd = Quote(baton) + " --store " + Quote(store) + " run " + Quote((dir / "pipeline.json").string()) +
                    " --workers " + std::to_string(workers) + " --no-progress > " + Quote((dir / "run.log").string()) +
                    " 2>&1";
  std::fprintf(stderr, "running: %s\n", cmd.c_str());
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "baton run failed; see %s\n", (dir / "run.log").c_str());
    return 1;
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  auto db = baton::store::LineageDb::Open(dir / "store" / "lineage.db");
  const std::string run = db->ListRuns(1).at(0).id;
  Json show = Json::parse(Capture(Quote(baton) + " --store " + Quote(store) + " show " + run + " --stage train --json"));
  const Json& c = show.at("comparison");
  std::ostringstream report;
  report << "init from tuning trials: Fashion-MNIST (train_subset " << subset << "), the example CNN; tune "
         << trials << " random trials x " << tune_epochs << " epochs; lr_schedule " << schedule << "; then " << seeds << " seeds x (Kaiming uniform + starts "
         << "from the best trial's epochs " << from.dump() << "), " << epochs << " epochs each, the best trial's "
         << "hyperparameters, fresh optimizer and schedule; " << workers << " workers; whole run " << Fmt("%.0f", wall)
         << " s\n\n";
  report << "best trial: " << show["resolved"]["init_from"]["trial_number"].get<int>() << " ("
         << show["resolved"]["init_from"]["objective"]["metric"].get<std::string>() << " "
         << Fmt("%.4f", show["resolved"]["init_from"]["objective"]["value"].get<double>()) << "); target val_accuracy "
         << Fmt("%.4f", c["target"]["value"].get<double>());
  if (c["target"].contains("fraction_of_baseline_best")) {
    report << " = " << c["target"]["fraction_of_baseline_best"].get<double>() << " x the baseline's mean best "
           << Fmt("%.4f", c["target"]["baseline_best_mean"].get<double>());
  }
  report << "\n\n" << Table(c) << "\n";
  report << "- TTA: epochs trained until val_accuracy first reaches the target (mean ± sd over the seeds that did); "
            "speed-up = the baseline's mean TTA / the variant's; 'incl. tuning' adds the epochs the tuning trial "
            "trained to make the checkpoint. p-values: two-sided Welch t-test and Mann-Whitney U against the baseline.\n";
  report << "- " << show.value("speedup_line", "") << "\n";
  std::printf("%s", report.str().c_str());
  if (!out_file.empty()) std::ofstream(out_file) << report.str();
  if (!keep) fs::remove_all(dir);
  return 0;
}
