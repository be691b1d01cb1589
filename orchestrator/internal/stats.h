#pragma once

#include <optional>
#include <string>
#include <vector>

// Statistics for comparing runs over seeds: summaries, two-sided tests and
// time to target. Pure functions of their arguments; safe to call from any
// thread.
namespace baton::orchestrator {

// Mean and sample standard deviation (divisor n - 1) of a sample; sd is 0 for
// n < 2, mean is 0 for n = 0.
struct Summary {
  int n = 0;
  double mean = 0;
  double sd = 0;
};
Summary Summarize(const std::vector<double>& xs);

// The outcome of a two-sided test. When `valid` is false the test could not
// be computed (too few values, non-finite values, undefined statistic):
// `note` says why and p_value is NaN. `note` may also be set for a valid
// result (e.g. the method used, or why p is exactly 1).
struct TestResult {
  double statistic = 0;  // t for Welch, U of the first sample for Mann-Whitney
  double df = 0;         // Welch-Satterthwaite degrees of freedom; 0 where not used
  double p_value = 1;    // two-sided
  bool valid = false;
  std::string note;
};

// Two-sided Welch's t-test (unequal variances), as
// scipy.stats.ttest_ind(a, b, equal_var=False): t = (mean a - mean b) / se.
// Invalid when a group has fewer than 2 values, when a value is not finite,
// or when both samples are constant with different means (t infinite, p
// undefined). Both samples constant and equal: valid, t = 0, p = 1, df 0.
TestResult WelchTTest(const std::vector<double>& a, const std::vector<double>& b);

// Two-sided Mann-Whitney U test; `statistic` is U of sample `a` (ties count
// one half), ranks averaged over ties. With no ties and both samples of at
// most 8 values the p-value is exact (the U distribution enumerated, as
// scipy's method="exact"; note "exact"); otherwise the normal approximation
// with tie and continuity corrections (as method="asymptotic",
// use_continuity=True; note "normal approximation, tie-corrected"). Unlike
// scipy's method="auto", a small sample against one of more than 8 values
// uses the normal approximation. All values tied: valid, p = 1. Invalid when
// a sample is empty or a value is not finite.
TestResult MannWhitneyU(const std::vector<double>& a, const std::vector<double>& b);

// The index (0-based epoch) of the first value of `curve` that reaches
// `target`: >= for mode "max", <= for mode "min". NaN values never reach it.
// std::nullopt when no epoch reaches it. Throws Error(kInvalidArgument) for
// another mode.
std::optional<int> EpochsToTarget(const std::vector<double>& curve, double target,
                                  const std::string& mode = "max");

// Seconds until the target is reached: the sum of `seconds` (per epoch, same
// length as `curve`) up to and including the epoch EpochsToTarget returns;
// std::nullopt when never reached. Throws Error(kInvalidArgument) when the
// lengths differ or for an unknown mode.
std::optional<double> SecondsToTarget(const std::vector<double>& curve, const std::vector<double>& seconds,
                                      double target, const std::string& mode = "max");

// Distribution functions behind the tests, exposed for testing.
// Regularized incomplete beta I_x(a, b) for a, b > 0 and x in [0, 1].
double RegularizedIncompleteBeta(double a, double b, double x);
// P(T <= t) for Student's t with `df` > 0 degrees of freedom.
double StudentTCdf(double t, double df);
// P(Z <= z) for the standard normal.
double NormalCdf(double z);

}  // namespace baton::orchestrator
