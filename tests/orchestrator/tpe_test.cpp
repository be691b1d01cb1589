#include "orchestrator/internal/tpe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>

#include "common/error.h"
#include "orchestrator/internal/search.h"

namespace baton::orchestrator {
namespace {

// Every kind of parameter the sampler must keep in range.
Json MixedSpace() {
  return Json::parse(R"({
    "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": true},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
    "momentum": {"type": "float", "low": 0.5, "high": 0.95, "step": 0.15},
    "width": {"type": "int", "low": 8, "high": 100, "step": 8},
    "layers": {"type": "int", "low": 1, "high": 6},
    "batch": {"type": "int", "low": 16, "high": 512, "log": true},
    "opt": {"type": "categorical", "values": ["sgd", "adam", "rmsprop"]}})");
}

// `n` random points of `space` with arbitrary values.
std::vector<TpeObservation> RandomObservations(const Json& space, int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<TpeObservation> out;
  for (int i = 0; i < n; ++i) {
    Json p = SampleRandomPoint(space, rng);
    out.push_back({p, static_cast<double>(rng() % 1000) / 1000.0});
  }
  return out;
}

void ExpectInMixedSpace(const Json& p) {
  ASSERT_EQ(p.size(), 7u) << p;
  const double lr = p["lr"].get<double>();
  EXPECT_GE(lr, 1e-5);
  EXPECT_LE(lr, 1.0);
  const double dropout = p["dropout"].get<double>();
  EXPECT_GE(dropout, 0.0);
  EXPECT_LE(dropout, 0.5);
  // The random sampler's grid: low + k * step, computed the same way.
  const double momentum = p["momentum"].get<double>();
  bool on_grid = false;
  for (int k = 0; k <= 3; ++k) on_grid |= momentum == 0.5 + k * 0.15;
  EXPECT_TRUE(on_grid) << momentum;
  ASSERT_TRUE(p["width"].is_number_integer()) << p;
  EXPECT_EQ(p["width"].get<int64_t>() % 8, 0);
  EXPECT_GE(p["width"].get<int64_t>(), 8);
  EXPECT_LE(p["width"].get<int64_t>(), 96);  // the last grid point below 100
  ASSERT_TRUE(p["layers"].is_number_integer()) << p;
  EXPECT_GE(p["layers"].get<int64_t>(), 1);
  EXPECT_LE(p["layers"].get<int64_t>(), 6);
  ASSERT_TRUE(p["batch"].is_number_integer()) << p;
  EXPECT_GE(p["batch"].get<int64_t>(), 16);
  EXPECT_LE(p["batch"].get<int64_t>(), 512);
  EXPECT_TRUE(p["opt"] == "sgd" || p["opt"] == "adam" || p["opt"] == "rmsprop") << p;
}

TEST(TpeTest, SameInputsGiveTheSamePointAndSeedsDiffer) {
  const Json space = MixedSpace();
  const auto observed = RandomObservations(space, 30, 1);
  EXPECT_EQ(SampleTpe(space, observed, "max", 5), SampleTpe(space, observed, "max", 5));
  std::set<std::string> points;
  for (uint64_t seed = 0; seed < 10; ++seed) points.insert(SampleTpe(space, observed, "max", seed).dump());
  EXPECT_EQ(points.size(), 10u);
}

TEST(TpeTest, ValuesRespectBoundsStepsAndTypes) {
  const Json space = MixedSpace();
  auto observed = RandomObservations(space, 40, 2);
  // Values at and beyond the edges, and a parameter missing, are tolerated.
  observed.push_back({{{"lr", 1.0}, {"dropout", 0.5}, {"momentum", 0.95}, {"width", 100}, {"layers", 6},
                       {"batch", 512}, {"opt", "adam"}}, 2.0});
  observed.push_back({{{"lr", 1e-7}, {"dropout", -1.0}, {"width", 3}, {"layers", 9}, {"batch", 2},
                       {"opt", "lbfgs"}}, 3.0});
  for (bool prior : {true, false}) {
    TpeOptions options;
    options.prior = prior;
    for (uint64_t seed = 0; seed < 200; ++seed) {
      ExpectInMixedSpace(SampleTpe(space, observed, seed % 2 ? "max" : "min", seed, options));
    }
  }
}

TEST(TpeTest, BeforeStartupTrialsItIsTheRandomSamplersDraw) {
  const Json space = MixedSpace();
  const auto observed = RandomObservations(space, 9, 3);  // one short of the default 10
  for (uint64_t seed : {0u, 17u, 123456u}) {
    // The random sampler's first trial for a stage with this space and seed.
    const Json stage = {{"search_space", space}, {"budget", {{"max_trials", 1}, {"max_epochs", 1}}}};
    EXPECT_EQ(SampleTpe(space, observed, "max", seed), SampleTrials(stage, seed)[0]);
    EXPECT_EQ(SampleTpe(space, {}, "min", seed), SampleTrials(stage, seed)[0]);
  }
  // With n_startup_trials reached, the model takes over.
  TpeOptions options;
  options.n_startup_trials = 9;
  int differs = 0;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    std::mt19937_64 rng(seed);
    differs += SampleTpe(space, observed, "max", seed, options) != SampleRandomPoint(space, rng);
  }
  EXPECT_EQ(differs, 5);
}

TEST(TpeTest, ProposesNearTheBestObservations) {
  // x in [0, 1]; the two best of 20 observations sit at 0.8, the rest spread
  // evenly. gamma(20) = 2, so l(x) is centred on 0.8.
  const Json space = Json::parse(R"({"x": {"type": "float", "low": 0.0, "high": 1.0},
                                      "c": {"type": "categorical", "values": ["a", "b", "c"]}})");
  std::vector<TpeObservation> observed;
  for (int i = 0; i < 18; ++i) {
    observed.push_back({{{"x", i / 17.0}, {"c", i % 2 ? "a" : "c"}}, static_cast<double>(i % 5)});
  }
  observed.push_back({{{"x", 0.8}, {"c", "b"}}, 10.0});
  observed.push_back({{{"x", 0.8}, {"c", "b"}}, 11.0});
  int near = 0;
  int b = 0;
  for (uint64_t seed = 0; seed < 100; ++seed) {
    const Json p = SampleTpe(space, observed, "max", seed);
    near += std::abs(p["x"].get<double>() - 0.8) < 0.1;
    b += p["c"] == "b";
  }
  EXPECT_GE(near, 90);
  EXPECT_GE(b, 99);
}

TEST(TpeTest, MinModeIsMaxModeOfTheNegatedObjective) {
  const Json space = MixedSpace();
  const auto observed = RandomObservations(space, 30, 4);
  auto negated = observed;
  for (auto& o : negated) o.value = -o.value;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    EXPECT_EQ(SampleTpe(space, observed, "max", seed), SampleTpe(space, negated, "min", seed));
  }
}

TEST(TpeTest, AOneValueRangeGivesThatValue) {
  const Json space = Json::parse(R"({"x": {"type": "float", "low": 0.5, "high": 0.5},
                                      "n": {"type": "int", "low": 3, "high": 3}})");
  std::vector<TpeObservation> observed(12, TpeObservation{{{"x", 0.5}, {"n", 3}}, 1.0});
  EXPECT_EQ(SampleTpe(space, observed, "max", 1), Json({{"x", 0.5}, {"n", 3}}));
}

TEST(TpeTest, RejectsUnknownModeAndType) {
  const Json space = MixedSpace();
  EXPECT_THROW(SampleTpe(space, {}, "maximize", 1), Error);
  EXPECT_THROW(SampleTpe(Json::parse(R"({"x": {"type": "uniform", "low": 0, "high": 1}})"), {}, "max", 1), Error);
}

// A synthetic tuning problem: best at lr = 1e-2, x = 0.3, opt = "adam".
const char* kSyntheticSpace = R"({
  "lr": {"type": "float", "low": 1e-5, "high": 1.0, "log": true},
  "x": {"type": "float", "low": 0.0, "high": 1.0},
  "opt": {"type": "categorical", "values": ["sgd", "adam", "rmsprop"]}})";

double Synthetic(const Json& p) {
  const double a = std::log10(p["lr"].get<double>()) + 2.0;
  const double b = p["x"].get<double>() - 0.3;
  return -a * a - b * b - (p["opt"] == "adam" ? 0.0 : 1.0);
}

struct Study {
  std::vector<double> values;
  std::vector<Json> points;
  double Best(bool maximise) const {
    return maximise ? *std::max_element(values.begin(), values.end())
                    : *std::min_element(values.begin(), values.end());
  }
  double MeanOfLast(size_t n) const {
    double sum = 0;
    for (size_t i = values.size() - n; i < values.size(); ++i) sum += values[i];
    return sum / static_cast<double>(n);
  }
};

// `trials` sequential TPE trials, each seeded by DeriveSeed(base, index).
Study TpeLoop(const Json& space, int trials, uint64_t base, const std::string& mode, double sign) {
  Study run;
  std::vector<TpeObservation> observed;
  for (int t = 0; t < trials; ++t) {
    Json p = SampleTpe(space, observed, mode, DeriveSeed(base, "trial/" + std::to_string(t)));
    const double v = sign * Synthetic(p);
    observed.push_back({p, v});
    run.values.push_back(v);
    run.points.push_back(p);
  }
  return run;
}

Study RandomLoop(const Json& space, int trials, uint64_t base, double sign) {
  Study run;
  const Json stage = {{"search_space", space}, {"budget", {{"max_trials", trials}, {"max_epochs", 1}}}};
  for (const Json& p : SampleTrials(stage, base)) {
    run.values.push_back(sign * Synthetic(p));
    run.points.push_back(p);
  }
  return run;
}

TEST(TpeTest, BeatsRandomSearchOnASyntheticObjective) {
  const Json space = Json::parse(kSyntheticSpace);
  const uint64_t base = 7;
  const Study tpe = TpeLoop(space, 60, base, "max", 1.0);
  const Study baseline = RandomLoop(space, 60, base, 1.0);
  RecordProperty("tpe_best", std::to_string(tpe.Best(true)));
  RecordProperty("random_best", std::to_string(baseline.Best(true)));
  RecordProperty("tpe_last20_mean", std::to_string(tpe.MeanOfLast(20)));
  RecordProperty("random_last20_mean", std::to_string(baseline.MeanOfLast(20)));
  EXPECT_GT(tpe.Best(true), baseline.Best(true));
  EXPECT_GT(tpe.MeanOfLast(20), baseline.MeanOfLast(20));
  // After warm-up (10 random trials) the good categorical value dominates.
  int adam = 0;
  for (size_t t = 10; t < tpe.points.size(); ++t) adam += tpe.points[t]["opt"] == "adam";
  EXPECT_GE(adam, 35);  // of 50; random search picks it a third of the time
}

TEST(TpeTest, MinimisesInMinMode) {
  const Json space = Json::parse(kSyntheticSpace);
  const uint64_t base = 11;
  const Study tpe = TpeLoop(space, 60, base, "min", -1.0);
  const Study baseline = RandomLoop(space, 60, base, -1.0);
  RecordProperty("tpe_best", std::to_string(tpe.Best(false)));
  RecordProperty("random_best", std::to_string(baseline.Best(false)));
  RecordProperty("tpe_last20_mean", std::to_string(tpe.MeanOfLast(20)));
  RecordProperty("random_last20_mean", std::to_string(baseline.MeanOfLast(20)));
  EXPECT_LT(tpe.Best(false), baseline.Best(false));
  EXPECT_LT(tpe.MeanOfLast(20), baseline.MeanOfLast(20));
}

}  // namespace
}  // namespace baton::orchestrator
