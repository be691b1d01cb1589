#include "orchestrator/internal/search.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "common/error.h"

namespace baton::orchestrator {
namespace {

Json Stage(const std::string& sampler, int max_trials) {
  Json s = Json::parse(R"({
    "search_space": {
      "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": true},
      "width": {"type": "int", "low": 8, "high": 64, "step": 8},
      "bs": {"type": "categorical", "values": [32, 64]}},
    "hyperparameters": {"optimizer": "sgd"},
    "budget": {"max_trials": 1, "max_epochs": 1}})");
  s["sampler"] = {{"type", sampler}};
  s["budget"]["max_trials"] = max_trials;
  return s;
}

TEST(SearchTest, RandomIsReproducibleAndInBounds) {
  auto a = SampleTrials(Stage("random", 50), 42);
  auto b = SampleTrials(Stage("random", 50), 42);
  auto c = SampleTrials(Stage("random", 50), 43);
  ASSERT_EQ(a.size(), 50u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::set<int64_t> widths;
  int small_lr = 0;
  for (const auto& hp : a) {
    double lr = hp["lr"].get<double>();
    EXPECT_GE(lr, 0.001);
    EXPECT_LE(lr, 0.1);
    if (lr < 0.01) ++small_lr;  // log-uniform: about half below the geometric middle
    int64_t w = hp["width"].get<int64_t>();
    EXPECT_EQ(w % 8, 0);
    EXPECT_GE(w, 8);
    EXPECT_LE(w, 64);
    widths.insert(w);
    EXPECT_TRUE(hp["bs"] == 32 || hp["bs"] == 64);
    EXPECT_EQ(hp["optimizer"], "sgd");  // fixed hyperparameters are merged in
  }
  EXPECT_GT(small_lr, 12);
  EXPECT_LT(small_lr, 38);
  EXPECT_GT(widths.size(), 4u);
}

TEST(SearchTest, GridEnumeratesInNameOrderLastFastest) {
  Json s = Json::parse(R"({
    "search_space": {"a": {"type": "categorical", "values": ["x", "y"]},
                     "b": {"type": "int", "low": 0, "high": 2}},
    "sampler": {"type": "grid"}, "budget": {"max_trials": 100, "max_epochs": 1}})");
  auto trials = SampleTrials(s, 0);
  ASSERT_EQ(trials.size(), 6u);
  EXPECT_EQ(trials[0], Json({{"a", "x"}, {"b", 0}}));
  EXPECT_EQ(trials[1], Json({{"a", "x"}, {"b", 1}}));
  EXPECT_EQ(trials[3], Json({{"a", "y"}, {"b", 0}}));
  EXPECT_EQ(trials[5], Json({{"a", "y"}, {"b", 2}}));
  s["budget"]["max_trials"] = 4;
  EXPECT_EQ(SampleTrials(s, 0).size(), 4u);
}

TEST(SearchTest, GridOverFloatsUsesStep) {
  Json s = Json::parse(R"({
    "search_space": {"p": {"type": "float", "low": 0.0, "high": 0.5, "step": 0.25}},
    "sampler": {"type": "grid"}, "budget": {"max_trials": 10, "max_epochs": 1}})");
  auto trials = SampleTrials(s, 0);
  ASSERT_EQ(trials.size(), 3u);
  EXPECT_DOUBLE_EQ(trials[2]["p"].get<double>(), 0.5);
}

TEST(SearchTest, SubstituteModelFillsReferences) {
  Json model = {{"layers", {{{"name", "d"}, {"type", "dropout"}, {"p", "$dropout"}},
                            {{"name", "fc"}, {"type", "linear"}, {"out_features", 10}}}}};
  Json out = SubstituteModel(model, {{"dropout", 0.25}});
  EXPECT_DOUBLE_EQ(out["layers"][0]["p"].get<double>(), 0.25);
  EXPECT_EQ(out["layers"][1]["out_features"], 10);
  EXPECT_THROW(SubstituteModel(model, {{"lr", 0.1}}), Error);
}

TEST(SearchTest, SubstituteModelFillsReferencesInsideResidualBlocks) {
  Json model = Json::parse(R"({"layers": [{"name": "b", "type": "residual",
      "layers": [{"name": "c", "type": "conv2d", "out_channels": "$width", "kernel_size": 3, "padding": 1},
                 {"name": "inner", "type": "residual", "layers": [{"name": "d", "type": "dropout", "p": "$p"}]}],
      "shortcut": [{"name": "s", "type": "conv2d", "out_channels": "$width", "kernel_size": 1}]}]})");
  Json out = SubstituteModel(model, {{"width", 32}, {"p", 0.1}});
  EXPECT_EQ(out["layers"][0]["layers"][0]["out_channels"], 32);
  EXPECT_DOUBLE_EQ(out["layers"][0]["layers"][1]["layers"][0]["p"].get<double>(), 0.1);
  EXPECT_EQ(out["layers"][0]["shortcut"][0]["out_channels"], 32);
  EXPECT_EQ(out["layers"][0]["shortcut"][0]["kernel_size"], 1);
  try {
    SubstituteModel(model, {{"width", 32}});
    ADD_FAILURE() << "an unknown reference inside a block was substituted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("b.inner.d"), std::string::npos) << e.what();
  }
}

TEST(SearchTest, DerivedSeedsDifferByLabel) {
  EXPECT_EQ(DeriveSeed(7, "tune/trial/0"), DeriveSeed(7, "tune/trial/0"));
  EXPECT_NE(DeriveSeed(7, "tune/trial/0"), DeriveSeed(7, "tune/trial/1"));
  EXPECT_NE(DeriveSeed(7, "tune"), DeriveSeed(8, "tune"));
}

}  // namespace
}  // namespace baton::orchestrator
