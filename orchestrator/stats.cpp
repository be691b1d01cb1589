#include "orchestrator/internal/stats.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

// NaN rather than an exception for arguments outside a function's domain:
// the tests report an invalid result, they do not throw.
#define BOOST_MATH_DOMAIN_ERROR_POLICY errno_on_error
#define BOOST_MATH_OVERFLOW_ERROR_POLICY errno_on_error
#include <boost/math/distributions/normal.hpp>
#include <boost/math/distributions/students_t.hpp>
#include <boost/math/special_functions/beta.hpp>

#include "common/error.h"

namespace baton::orchestrator {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int kMaxExactSampleSize = 8;

bool AllFinite(const std::vector<double>& xs) {
  return std::all_of(xs.begin(), xs.end(), [](double x) { return std::isfinite(x); });
}

TestResult Invalid(std::string note, double statistic = kNaN) {
  TestResult r;
  r.statistic = statistic;
  r.p_value = kNaN;
  r.valid = false;
  r.note = std::move(note);
  return r;
}

// P(Z >= z) for the standard normal, accurate in the upper tail.
double NormalSf(double z) {
  return boost::math::cdf(boost::math::complement(boost::math::normal_distribution<double>(), z));
}

// Number of arrangements of n1 + n2 distinct values giving each U of the
// first sample, u = 0 .. n1 * n2: c(i, j, u) = c(i - 1, j, u - j) + c(i, j - 1, u)
// (the largest value belongs to sample one and beats all j of sample two, or
// to sample two).
std::vector<double> UCounts(int n1, int n2) {
  const int width = n1 * n2 + 1;
  std::vector<std::vector<std::vector<double>>> c(
      n1 + 1, std::vector<std::vector<double>>(n2 + 1, std::vector<double>(width, 0.0)));
  for (int i = 0; i <= n1; ++i) {
    for (int j = 0; j <= n2; ++j) {
      if (i == 0 || j == 0) {
        c[i][j][0] = 1.0;
        continue;
      }
      for (int u = 0; u <= i * j; ++u) {
        c[i][j][u] = c[i][j - 1][u] + (u >= j ? c[i - 1][j][u - j] : 0.0);
      }
    }
  }
  return c[n1][n2];
}

bool Reached(double value, double target, const std::string& mode) {
  return mode == "max" ? value >= target : value <= target;
}

void CheckMode(const std::string& mode) {
  if (mode != "max" && mode != "min") {
    throw Error(ErrorCode::kInvalidArgument, "mode must be \"max\" or \"min\", not \"" + mode + "\"");
  }
}

}  // namespace

Summary Summarize(const std::vector<double>& xs) {
  Summary s;
  s.n = static_cast<int>(xs.size());
  if (xs.empty()) return s;
  s.mean = std::accumulate(xs.begin(), xs.end(), 0.0) / static_cast<double>(xs.size());
  if (xs.size() > 1) {
    double ss = 0;
    for (double x : xs) ss += (x - s.mean) * (x - s.mean);
    s.sd = std::sqrt(ss / static_cast<double>(xs.size() - 1));
  }
  return s;
}

// Boost.Math (libboost-all-dev): its incomplete beta and distributions
// are decades old and tested against reference tables; ours pin p-values
// to R's in tests/orchestrator/stats_test.cpp.
double RegularizedIncompleteBeta(double a, double b, double x) {
  if (x <= 0) return 0.0;
  if (x >= 1) return 1.0;
  return boost::math::ibeta(a, b, x);
}

double StudentTCdf(double t, double df) {
  if (std::isnan(t) || !(df > 0)) return kNaN;
  if (std::isinf(t)) return t > 0 ? 1.0 : 0.0;
  return boost::math::cdf(boost::math::students_t_distribution<double>(df), t);
}

double NormalCdf(double z) { return boost::math::cdf(boost::math::normal_distribution<double>(), z); }

TestResult WelchTTest(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() < 2 || b.size() < 2) {
    return Invalid("each sample needs at least 2 values (got " + std::to_string(a.size()) + " and " +
                   std::to_string(b.size()) + ")");
  }
  if (!AllFinite(a) || !AllFinite(b)) return Invalid("a value is not finite");
  const Summary sa = Summarize(a);
  const Summary sb = Summarize(b);
  const double va = sa.sd * sa.sd / sa.n;  // squared standard error of each mean
  const double vb = sb.sd * sb.sd / sb.n;
  const double diff = sa.mean - sb.mean;
  if (va + vb == 0) {
    if (diff == 0) {
      TestResult r;
      r.valid = true;
      r.note = "both samples constant and equal: no difference, p = 1";
      return r;
    }
    return Invalid("both samples constant with different means: t is infinite, p undefined",
                   std::copysign(std::numeric_limits<double>::infinity(), diff));
  }
  TestResult r;
  r.statistic = diff / std::sqrt(va + vb);
  r.df = (va + vb) * (va + vb) / (va * va / (sa.n - 1) + vb * vb / (sb.n - 1));
  r.p_value = std::min(1.0, RegularizedIncompleteBeta(r.df / 2.0, 0.5, r.df / (r.df + r.statistic * r.statistic)));
  r.valid = true;
  return r;
}

TestResult MannWhitneyU(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty()) {
    return Invalid("each sample needs at least 1 value (got " + std::to_string(a.size()) + " and " +
                   std::to_string(b.size()) + ")");
  }
  if (!AllFinite(a) || !AllFinite(b)) return Invalid("a value is not finite");
  const int n1 = static_cast<int>(a.size());
  const int n2 = static_cast<int>(b.size());
  const int n = n1 + n2;
  std::vector<double> all = a;
  all.insert(all.end(), b.begin(), b.end());
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int i, int j) { return all[i] < all[j]; });

  // Average ranks (1-based) over runs of equal values; tie_term = sum(t^3 - t).
  std::vector<double> rank(n);
  double tie_term = 0;
  for (int start = 0; start < n;) {
    int end = start + 1;
    while (end < n && all[order[end]] == all[order[start]]) ++end;
    const double average = (start + 1 + end) / 2.0;
    for (int k = start; k < end; ++k) rank[order[k]] = average;
    const double t = end - start;
    tie_term += t * t * t - t;
    start = end;
  }
  double rank_sum_a = 0;
  for (int i = 0; i < n1; ++i) rank_sum_a += rank[i];

  TestResult r;
  r.statistic = rank_sum_a - n1 * (n1 + 1) / 2.0;
  r.valid = true;
  const double n1n2 = static_cast<double>(n1) * n2;
  const double u_big = std::max(r.statistic, n1n2 - r.statistic);

  if (tie_term == 0 && n1 <= kMaxExactSampleSize && n2 <= kMaxExactSampleSize) {
    const std::vector<double> counts = UCounts(n1, n2);
    const double total = std::accumulate(counts.begin(), counts.end(), 0.0);
    double upper = 0;
    for (int u = static_cast<int>(std::lround(u_big)); u <= n1 * n2; ++u) upper += counts[u];
    r.p_value = std::min(1.0, 2.0 * upper / total);
    r.note = "exact";
    return r;
  }

  r.note = "normal approximation, tie-corrected";
  const double nd = n;
  const double variance = n1n2 / 12.0 * ((nd + 1.0) - tie_term / (nd * (nd - 1.0)));
  if (!(variance > 0)) {
    r.p_value = 1.0;
    r.note += "; all values tied, p = 1";
    return r;
  }
  const double z = (u_big - n1n2 / 2.0 - 0.5) / std::sqrt(variance);
  r.p_value = std::min(1.0, 2.0 * NormalSf(z));
  return r;
}

std::optional<int> EpochsToTarget(const std::vector<double>& curve, double target, const std::string& mode) {
  CheckMode(mode);
  for (size_t i = 0; i < curve.size(); ++i) {
    if (Reached(curve[i], target, mode)) return static_cast<int>(i);
  }
  return std::nullopt;
}

std::optional<double> SecondsToTarget(const std::vector<double>& curve, const std::vector<double>& seconds,
                                      double target, const std::string& mode) {
  if (curve.size() != seconds.size()) {
    throw Error(ErrorCode::kInvalidArgument, "the curve has " + std::to_string(curve.size()) + " epochs but " +
                                                 std::to_string(seconds.size()) + " epoch times");
  }
  const std::optional<int> epoch = EpochsToTarget(curve, target, mode);
  if (!epoch) return std::nullopt;
  return std::accumulate(seconds.begin(), seconds.begin() + *epoch + 1, 0.0);
}

}  // namespace baton::orchestrator
