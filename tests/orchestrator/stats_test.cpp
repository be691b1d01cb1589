// Statistics for comparing runs over seeds, against hand-computed values and
// reference values from scipy 1.10.1 (Debian python3-scipy 1.10.1-2); each
// literal says how it was obtained.
#include "orchestrator/internal/stats.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"

namespace baton::orchestrator {
namespace {

TEST(StatsSummarize, MeanAndSampleSd) {
  const Summary s = Summarize({2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(s.n, 8);
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  // Sum of squared deviations 32, divided by n - 1 = 7.
  EXPECT_NEAR(s.sd, std::sqrt(32.0 / 7.0), 1e-12);
}

TEST(StatsSummarize, SmallSamples) {
  const Summary empty = Summarize({});
  EXPECT_EQ(empty.n, 0);
  EXPECT_EQ(empty.mean, 0);
  EXPECT_EQ(empty.sd, 0);
  const Summary one = Summarize({0.93});
  EXPECT_EQ(one.n, 1);
  EXPECT_DOUBLE_EQ(one.mean, 0.93);
  EXPECT_EQ(one.sd, 0);
}

TEST(StatsDistributions, AgainstScipy) {
  // scipy.special.betainc(2.5, 0.5, 0.3) and betainc(3, 4, 0.7).
  EXPECT_NEAR(RegularizedIncompleteBeta(2.5, 0.5, 0.3), 0.01892712407194565, 1e-12);
  EXPECT_NEAR(RegularizedIncompleteBeta(3.0, 4.0, 0.7), 0.92953, 1e-12);
  EXPECT_EQ(RegularizedIncompleteBeta(3.0, 4.0, 0.0), 0.0);
  EXPECT_EQ(RegularizedIncompleteBeta(3.0, 4.0, 1.0), 1.0);
  // scipy.stats.t.cdf(t, df).
  EXPECT_NEAR(StudentTCdf(-2.1, 5.3), 0.043300798338698925, 1e-12);
  EXPECT_NEAR(StudentTCdf(1.5, 3), 0.8847080673775886, 1e-12);
  EXPECT_NEAR(StudentTCdf(-8.0, 4), 0.0006619484546085838, 1e-14);
  EXPECT_DOUBLE_EQ(StudentTCdf(0.0, 7), 0.5);
  // Hand: for df = 2, P(T <= t) = 1/2 + t / (2 sqrt(2 + t^2)).
  EXPECT_NEAR(StudentTCdf(1.0, 2), 0.5 + 1.0 / (2 * std::sqrt(3.0)), 1e-12);
  // scipy.stats.norm.cdf(1.96), norm.cdf(-3).
  EXPECT_NEAR(NormalCdf(1.96), 0.9750021048517795, 1e-12);
  EXPECT_NEAR(NormalCdf(-3.0), 0.0013498980316300933, 1e-14);
}

TEST(StatsWelch, TwoSmallSamplesAgainstScipy) {
  // scipy 1.10.1 ttest_ind(a, b, equal_var=False); df by the
  // Welch-Satterthwaite formula in numpy.
  const TestResult r = WelchTTest({0.912, 0.905, 0.918, 0.909, 0.915}, {0.897, 0.901, 0.893, 0.899});
  ASSERT_TRUE(r.valid) << r.note;
  EXPECT_NEAR(r.statistic, 5.038002046999303, 1e-9);
  EXPECT_NEAR(r.df, 6.875647129717829, 1e-9);
  EXPECT_NEAR(r.p_value, 0.0015820228702987313, 1e-9);

  // Unequal sizes, a negative t and a large p; same source.
  const TestResult s = WelchTTest({12, 15, 11, 14, 18, 13}, {22, 9, 30, 17});
  ASSERT_TRUE(s.valid) << s.note;
  EXPECT_NEAR(s.statistic, -1.2532566273166257, 1e-9);
  EXPECT_NEAR(s.df, 3.3204201524082264, 1e-9);
  EXPECT_NEAR(s.p_value, 0.2911029275689393, 1e-9);
}

TEST(StatsWelch, OneConstantSampleByHand) {
  // Hand: a = {1, 2, 3} (mean 2, variance 1), b = {5, 5, 5}: se^2 = 1/3,
  // t = -3 / sqrt(1/3) = -sqrt(27), df = (1/3)^2 / ((1/3)^2 / 2) = 2, and for
  // df = 2 the two-sided p is 1 - |t| / sqrt(2 + t^2) = 1 - sqrt(27/29).
  // scipy gives t -5.196152422706632, p 0.03509871864598465.
  const TestResult r = WelchTTest({1, 2, 3}, {5, 5, 5});
  ASSERT_TRUE(r.valid) << r.note;
  EXPECT_NEAR(r.statistic, -std::sqrt(27.0), 1e-12);
  EXPECT_NEAR(r.df, 2.0, 1e-12);
  EXPECT_NEAR(r.p_value, 1.0 - std::sqrt(27.0 / 29.0), 1e-12);
  EXPECT_NEAR(r.p_value, 0.03509871864598465, 1e-12);
}

TEST(StatsWelch, EqualSamplesGiveTZeroAndPOne) {
  // scipy: t 0.0, df 6.0, p 1.0.
  const TestResult r = WelchTTest({1, 2, 3, 4}, {1, 2, 3, 4});
  ASSERT_TRUE(r.valid) << r.note;
  EXPECT_EQ(r.statistic, 0.0);
  EXPECT_NEAR(r.df, 6.0, 1e-12);
  EXPECT_NEAR(r.p_value, 1.0, 1e-12);
}

TEST(StatsWelch, SymmetricInItsArguments) {
  const TestResult ab = WelchTTest({12, 15, 11, 14, 18, 13}, {22, 9, 30, 17});
  const TestResult ba = WelchTTest({22, 9, 30, 17}, {12, 15, 11, 14, 18, 13});
  EXPECT_NEAR(ab.statistic, -ba.statistic, 1e-12);
  EXPECT_NEAR(ab.df, ba.df, 1e-12);
  EXPECT_NEAR(ab.p_value, ba.p_value, 1e-12);
}

TEST(StatsWelch, DegenerateCases) {
  const TestResult few = WelchTTest({0.9}, {0.8, 0.85, 0.82});
  EXPECT_FALSE(few.valid);
  EXPECT_TRUE(std::isnan(few.p_value));
  EXPECT_NE(few.note.find("at least 2"), std::string::npos) << few.note;

  const TestResult empty = WelchTTest({}, {});
  EXPECT_FALSE(empty.valid);

  const TestResult differ = WelchTTest({0.9, 0.9, 0.9}, {0.8, 0.8});
  EXPECT_FALSE(differ.valid);
  EXPECT_TRUE(std::isnan(differ.p_value));
  EXPECT_TRUE(std::isinf(differ.statistic) && differ.statistic > 0);
  EXPECT_NE(differ.note.find("constant with different means"), std::string::npos) << differ.note;

  const TestResult same = WelchTTest({0.9, 0.9, 0.9}, {0.9, 0.9});
  EXPECT_TRUE(same.valid);
  EXPECT_EQ(same.statistic, 0.0);
  EXPECT_EQ(same.p_value, 1.0);
  EXPECT_NE(same.note.find("constant and equal"), std::string::npos) << same.note;

  const TestResult nan = WelchTTest({0.9, NAN, 0.8}, {0.8, 0.7});
  EXPECT_FALSE(nan.valid);
  EXPECT_NE(nan.note.find("not finite"), std::string::npos) << nan.note;
}

TEST(StatsMannWhitney, TiesUseTheTieCorrectedNormalApproximation) {
  // Hand: ranks of a = 1, 3, 3, 5.5, 9, 9, 12 (ties averaged), R1 = 42.5,
  // U1 = 42.5 - 7 * 8 / 2 = 14.5. Tie groups of sizes 3, 2, 3, 2 give
  // sum(t^3 - t) = 60; variance = 56/12 * (16 - 60 / 210) = 73.333...;
  // z = (41.5 - 28 - 0.5) / sqrt(73.333...) = 1.51807.
  // scipy 1.10.1 mannwhitneyu(a, b, method="asymptotic", use_continuity=True)
  // (also what method="auto" picks): U 14.5, p 0.12899601166748725.
  const TestResult r = MannWhitneyU({1, 2, 2, 3, 5, 5, 7}, {2, 3, 4, 5, 6, 8, 8, 9});
  ASSERT_TRUE(r.valid) << r.note;
  EXPECT_EQ(r.statistic, 14.5);
  const double z = 13.0 / std::sqrt(56.0 / 12.0 * (16.0 - 60.0 / 210.0));
  EXPECT_NEAR(r.p_value, 2.0 * (1.0 - NormalCdf(z)), 1e-12);
  EXPECT_NEAR(r.p_value, 0.12899601166748725, 1e-12);
  EXPECT_EQ(r.note, "normal approximation, tie-corrected");

  // U of the other sample is n1 * n2 - U; p is the same.
  const TestResult swapped = MannWhitneyU({2, 3, 4, 5, 6, 8, 8, 9}, {1, 2, 2, 3, 5, 5, 7});
  EXPECT_EQ(swapped.statistic, 56 - 14.5);
  EXPECT_NEAR(swapped.p_value, r.p_value, 1e-15);
}

TEST(StatsMannWhitney, ExactForSmallSamplesWithoutTies) {
  // Hand: a's ranks are 1, 2, 3, 5, so U1 = 11 - 10 = 1; of the C(9, 4) = 126
  // equally likely arrangements 2 give U <= 1, so p = 2 * 2 / 126.
  // scipy 1.10.1 mannwhitneyu(method="exact"): U 1.0, p 0.031746031746031744.
  const TestResult r = MannWhitneyU({1.2, 3.4, 0.5, 2.2}, {4.1, 5.0, 2.9, 6.3, 3.8});
  ASSERT_TRUE(r.valid) << r.note;
  EXPECT_EQ(r.statistic, 1.0);
  EXPECT_NEAR(r.p_value, 4.0 / 126.0, 1e-15);
  EXPECT_EQ(r.note, "exact");

  // Hand: complete separation of 3 and 3: p = 2 / C(6, 3) = 0.1 (scipy: 0.1).
  const TestResult sep = MannWhitneyU({1, 2, 3}, {4, 5, 6});
  EXPECT_EQ(sep.statistic, 0.0);
  EXPECT_NEAR(sep.p_value, 0.1, 1e-15);

  // Hand: 8 and 8 with one crossing, U1 = 1: p = 2 * 2 / C(16, 8) = 4 / 12870
  // (scipy: 0.0003108003108003108).
  const TestResult big = MannWhitneyU({1, 2, 3, 4, 5, 6, 7, 9}, {8, 10, 11, 12, 13, 14, 15, 16});
  EXPECT_EQ(big.statistic, 1.0);
  EXPECT_NEAR(big.p_value, 4.0 / 12870.0, 1e-15);
  EXPECT_EQ(big.note, "exact");

  // Hand: U = n1 * n2 / 2 is the centre: p is clipped to 1 (scipy: U 32, p 1.0).
  const TestResult centre = MannWhitneyU({5, 6, 7, 8, 9, 10, 11, 12}, {1, 2, 3, 4, 13, 14, 15, 16});
  EXPECT_EQ(centre.statistic, 32.0);
  EXPECT_EQ(centre.p_value, 1.0);

  // Hand: one value against 8: U is uniform on 0..8, U1 = 7, so
  // p = 2 * P(U >= 7) = 4 / 9 (scipy: U 7.0, p 0.4444444444444444).
  const TestResult one = MannWhitneyU({0.8}, {0.3, 0.5, 0.9, 0.1, 0.2, 0.4, 0.6, 0.7});
  EXPECT_EQ(one.statistic, 7.0);
  EXPECT_NEAR(one.p_value, 4.0 / 9.0, 1e-15);

  // 1 against 1: U in {0, 1} each with probability 1/2, p = 1 (scipy: 1.0).
  const TestResult pair = MannWhitneyU({4}, {3});
  EXPECT_EQ(pair.statistic, 1.0);
  EXPECT_EQ(pair.p_value, 1.0);
}

TEST(StatsMannWhitney, LargeSamplesWithoutTiesUseTheNormalApproximation) {
  // 9 against 10, no ties: scipy 1.10.1 mannwhitneyu(method="asymptotic") and
  // method="auto" agree: U 21.0, p 0.055013832353979004.
  const TestResult r = MannWhitneyU({1, 2, 3, 4, 5, 6, 7, 8, 9},
                                    {3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5});
  ASSERT_TRUE(r.valid) << r.note;
  EXPECT_EQ(r.statistic, 21.0);
  EXPECT_NEAR(r.p_value, 0.055013832353979004, 1e-12);
  EXPECT_EQ(r.note, "normal approximation, tie-corrected");
}

TEST(StatsMannWhitney, AllTiedGivesPOne) {
  // Hand: every rank is 4, U1 = 3 * 4 - 6 = 6 = n1 * n2 / 2, the tie-corrected
  // variance is 0. scipy (asymptotic): U 6.0, p 1.0.
  const TestResult r = MannWhitneyU({3, 3, 3}, {3, 3, 3, 3});
  ASSERT_TRUE(r.valid) << r.note;
  EXPECT_EQ(r.statistic, 6.0);
  EXPECT_EQ(r.p_value, 1.0);
  EXPECT_NE(r.note.find("all values tied"), std::string::npos) << r.note;
}

TEST(StatsMannWhitney, DegenerateCases) {
  const TestResult empty = MannWhitneyU({}, {1, 2});
  EXPECT_FALSE(empty.valid);
  EXPECT_TRUE(std::isnan(empty.p_value));
  const TestResult inf = MannWhitneyU({1, INFINITY}, {1, 2});
  EXPECT_FALSE(inf.valid);
  EXPECT_NE(inf.note.find("not finite"), std::string::npos) << inf.note;
}

TEST(StatsTimeToTarget, FirstEpochReachingTheTarget) {
  const std::vector<double> curve = {0.52, 0.71, 0.69, 0.80, 0.79, 0.83};
  const std::vector<double> seconds = {3.0, 2.5, 2.5, 2.0, 2.0, 2.0};
  EXPECT_EQ(EpochsToTarget(curve, 0.70), 1);
  EXPECT_EQ(EpochsToTarget(curve, 0.80), 3);  // reached exactly counts
  EXPECT_EQ(EpochsToTarget(curve, 0.83), 5);
  EXPECT_DOUBLE_EQ(*SecondsToTarget(curve, seconds, 0.80), 3.0 + 2.5 + 2.5 + 2.0);
  EXPECT_DOUBLE_EQ(*SecondsToTarget(curve, seconds, 0.83), 14.0);
}

TEST(StatsTimeToTarget, ReachedAtEpochZero) {
  EXPECT_EQ(EpochsToTarget({0.95, 0.96}, 0.90), 0);
  EXPECT_DOUBLE_EQ(*SecondsToTarget({0.95, 0.96}, {4.5, 3.0}, 0.90), 4.5);
}

TEST(StatsTimeToTarget, NeverReached) {
  const std::vector<double> curve = {0.52, 0.71, 0.69, 0.80};
  EXPECT_EQ(EpochsToTarget(curve, 0.81), std::nullopt);
  EXPECT_EQ(SecondsToTarget(curve, {1, 1, 1, 1}, 0.81), std::nullopt);
  EXPECT_EQ(EpochsToTarget({}, 0.5), std::nullopt);
  EXPECT_EQ(SecondsToTarget({}, {}, 0.5), std::nullopt);
  // A diverged epoch (NaN) never reaches the target, in either mode.
  EXPECT_EQ(EpochsToTarget({NAN, NAN}, 0.5), std::nullopt);
  EXPECT_EQ(EpochsToTarget({NAN, 0.4}, 0.5, "min"), 1);
}

TEST(StatsTimeToTarget, MinMode) {
  const std::vector<double> loss = {2.3, 1.1, 0.6, 0.7, 0.4};
  const std::vector<double> seconds = {1.0, 1.5, 1.5, 1.5, 1.5};
  EXPECT_EQ(EpochsToTarget(loss, 0.6, "min"), 2);
  EXPECT_DOUBLE_EQ(*SecondsToTarget(loss, seconds, 0.6, "min"), 4.0);
  EXPECT_EQ(EpochsToTarget(loss, 3.0, "min"), 0);
  EXPECT_EQ(EpochsToTarget(loss, 0.3, "min"), std::nullopt);
  // The same curve read as "max" reaches 0.6 at once.
  EXPECT_EQ(EpochsToTarget(loss, 0.6, "max"), 0);
}

TEST(StatsTimeToTarget, RejectsBadArguments) {
  EXPECT_THROW(EpochsToTarget({0.1}, 0.5, "maximize"), Error);
  EXPECT_THROW(SecondsToTarget({0.1, 0.6}, {1.0}, 0.5), Error);
}

}  // namespace
}  // namespace baton::orchestrator
