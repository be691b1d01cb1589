#include "orchestrator/internal/tpe.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <utility>

#include "common/error.h"
#include "orchestrator/internal/search.h"

namespace baton::orchestrator {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr double kPi = 3.14159265358979323846;
const double kLogSqrt2Pi = 0.5 * std::log(2.0 * kPi);

// Draws from the generator's raw bits, so the stream does not depend on the
// standard library's distribution algorithms.
double Uniform01(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;  // [0, 1)
}

double StandardNormal(std::mt19937_64& rng) {
  const double u1 = 1.0 - Uniform01(rng);  // (0, 1]
  const double u2 = Uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
}

double LogSumExp(const std::vector<double>& xs) {
  double top = kNegInf;
  for (double x : xs) top = std::max(top, x);
  if (top == kNegInf) return kNegInf;
  double sum = 0;
  for (double x : xs) sum += std::exp(x - top);
  return top + std::log(sum);
}

double LogStandardPdf(double z) { return -0.5 * z * z - kLogSqrt2Pi; }

// log P(Z > z) for a standard normal Z, accurate far into the tail.
double LogUpperTail(double z) {
  if (z < 30) return std::log(0.5 * std::erfc(z / std::sqrt(2.0)));
  // Asymptotic series of the Mills ratio.
  const double z2 = z * z;
  return LogStandardPdf(z) - std::log(z) + std::log1p(-1.0 / z2 + 3.0 / (z2 * z2));
}

// log P(a < Z < b) for a standard normal Z, a <= b.
double LogStandardMass(double a, double b) {
  if (b <= 0) return LogStandardMass(-b, -a);
  if (a >= 0) {
    const double la = LogUpperTail(a);
    const double lb = LogUpperTail(b);
    if (!(lb < la)) return kNegInf;
    return la + std::log1p(-std::exp(lb - la));
  }
  const double mass = 1.0 - 0.5 * std::erfc(-a / std::sqrt(2.0)) - 0.5 * std::erfc(b / std::sqrt(2.0));
  return mass > 0 ? std::log(mass) : kNegInf;
}

// A mixture of Gaussians, each truncated to [low, high]: one per observed
// point plus, when asked (or when there is no point), a broad prior at the
// middle. Bandwidths follow Optuna 3.x: the larger gap to a sorted neighbour
// (the outermost points use their one inner gap), clipped to
// [(high-low)/min(100, 1+n), high-low]; the prior's is high-low.
class TruncatedGaussianMixture {
 public:
  TruncatedGaussianMixture(std::vector<double> points, bool prior, double low, double high) : low_(low), high_(high) {
    const double range = high - low;
    const double prior_mu = 0.5 * (low + high);
    const bool with_prior = prior || points.empty();
    if (with_prior) points.push_back(prior_mu);
    const size_t prior_index = points.size() - 1;
    const size_t n = points.size();

    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return points[a] < points[b]; });

    mu_ = points;
    sigma_.assign(n, range);
    for (size_t r = 0; r < n; ++r) {
      const size_t i = order[r];
      const double left = r > 0 ? points[i] - points[order[r - 1]] : points[i] - low;
      const double right = r + 1 < n ? points[order[r + 1]] - points[i] : high - points[i];
      if (n == 1) {
        sigma_[i] = std::max(left, right);
      } else if (r == 0) {
        sigma_[i] = right;
      } else if (r + 1 == n) {
        sigma_[i] = left;
      } else {
        sigma_[i] = std::max(left, right);
      }
    }
    if (with_prior) sigma_[prior_index] = range;
    const double min_sigma = range / std::min(100.0, 1.0 + static_cast<double>(n));
    for (double& s : sigma_) s = std::clamp(s, min_sigma, range);

    // Equal weights; each component's log weight less its log mass inside the bounds.
    log_scale_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      log_scale_[i] =
          -std::log(static_cast<double>(n)) - LogStandardMass((low - mu_[i]) / sigma_[i], (high - mu_[i]) / sigma_[i]);
    }
  }

  double Sample(std::mt19937_64& rng) const {
    const size_t n = mu_.size();
    const size_t i = std::min(n - 1, static_cast<size_t>(Uniform01(rng) * static_cast<double>(n)));
    // Every centre lies inside the bounds and no sigma exceeds their width,
    // so at least a third of each component's mass is inside: rejection ends fast.
    for (int attempt = 0; attempt < 1000; ++attempt) {
      const double x = mu_[i] + sigma_[i] * StandardNormal(rng);
      if (x >= low_ && x <= high_) return x;
    }
    return std::clamp(mu_[i], low_, high_);
  }

  double LogDensity(double x) const {
    std::vector<double> terms(mu_.size());
    for (size_t i = 0; i < mu_.size(); ++i) {
      const double z = (x - mu_[i]) / sigma_[i];
      terms[i] = log_scale_[i] + LogStandardPdf(z) - std::log(sigma_[i]);
    }
    return LogSumExp(terms);
  }

  // log of the mixture's probability of [a, b].
  double LogMass(double a, double b) const {
    std::vector<double> terms(mu_.size());
    for (size_t i = 0; i < mu_.size(); ++i) {
      terms[i] = log_scale_[i] + LogStandardMass((a - mu_[i]) / sigma_[i], (b - mu_[i]) / sigma_[i]);
    }
    return LogSumExp(terms);
  }

 private:
  double low_;
  double high_;
  std::vector<double> mu_;
  std::vector<double> sigma_;
  std::vector<double> log_scale_;  // log(weight / mass inside the bounds)
};

// How a numeric parameter maps to the space TPE models: log for log=true;
// int and stepped params are continuous on the grid's range widened by half a
// step, then rounded back to the grid (a candidate's density there is the
// mass of its grid cell).
class NumericAxis {
 public:
  explicit NumericAxis(const Json& p) {
    is_int_ = p.at("type").get<std::string>() == "int";
    low_ = p.at("low").get<double>();
    high_ = p.at("high").get<double>();
    log_ = p.value("log", false);
    if (log_ && !(low_ > 0)) {
      throw Error(ErrorCode::kInvalidArgument, "a log parameter needs low > 0");
    }
    if (is_int_) {
      // As the random sampler: a log int ignores step and rounds to integers.
      step_ =
          log_ ? 1.0 : (p.contains("step") ? static_cast<double>(static_cast<int64_t>(p["step"].get<double>())) : 1.0);
      low_ = static_cast<double>(static_cast<int64_t>(low_));
      high_ = static_cast<double>(static_cast<int64_t>(high_));
      if (!log_) {
        const int64_t cells = (static_cast<int64_t>(high_) - static_cast<int64_t>(low_)) / static_cast<int64_t>(step_);
        high_ = low_ + static_cast<double>(cells) * step_;
      }
    } else if (!log_ && p.contains("step")) {
      step_ = p["step"].get<double>();
      cells_ = static_cast<int64_t>(std::floor((high_ - low_) / step_ + 1e-9));
    }
    if (is_int_ && log_) {
      inner_low_ = std::log(low_ - 0.5);
      inner_high_ = std::log(high_ + 0.5);
    } else if (log_) {
      inner_low_ = std::log(low_);
      inner_high_ = std::log(high_);
    } else if (step_ > 0) {
      const double top = is_int_ ? high_ : low_ + static_cast<double>(cells_) * step_;
      inner_low_ = low_ - 0.5 * step_;
      inner_high_ = top + 0.5 * step_;
    } else {
      inner_low_ = low_;
      inner_high_ = high_;
    }
  }

  double inner_low() const { return inner_low_; }
  double inner_high() const { return inner_high_; }
  bool discrete() const { return step_ > 0; }

  // The modelled coordinate of a value (snapped to the grid, clipped).
  double InnerOf(double value) const {
    const double v = Snap(value);
    return log_ ? std::log(v) : v;
  }

  // The parameter's value nearest the modelled coordinate `x`.
  Json Value(double x) const { return ToJson(Snap(Outer(x))); }

  // The grid cell of the value nearest `x`, in modelled coordinates.
  std::pair<double, double> Cell(double x) const {
    const double v = Snap(Outer(x));
    if (log_) {
      return {std::max(inner_low_, std::log(v - 0.5)), std::min(inner_high_, std::log(v + 0.5))};
    }
    return {v - 0.5 * step_, v + 0.5 * step_};
  }

 private:
  double Outer(double x) const { return log_ ? std::exp(x) : x; }

  double Snap(double v) const {
    if (is_int_ && log_) return std::clamp(static_cast<double>(std::llround(v)), low_, high_);
    if (is_int_) {
      const double k = std::round((v - low_) / step_);
      return std::clamp(low_ + k * step_, low_, high_);
    }
    if (log_) return std::clamp(v, low_, high_);
    if (step_ > 0) {
      const int64_t k = std::clamp<int64_t>(std::llround((v - low_) / step_), 0, cells_);
      return low_ + static_cast<double>(k) * step_;  // as the random sampler computes it
    }
    return std::clamp(v, low_, high_);
  }

  Json ToJson(double v) const {
    if (is_int_) return static_cast<int64_t>(std::llround(v));
    return v;
  }

  bool is_int_ = false;
  bool log_ = false;
  double low_ = 0;
  double high_ = 0;
  double step_ = 0;    // 0: continuous
  int64_t cells_ = 0;  // stepped floats: the grid is low + k * step, k in [0, cells]
  double inner_low_ = 0;
  double inner_high_ = 0;
};

Json SampleNumeric(const Json& p, const std::vector<double>& below, const std::vector<double>& above,
                   const TpeOptions& options, std::mt19937_64& rng) {
  const NumericAxis axis(p);
  if (!(axis.inner_high() > axis.inner_low())) return axis.Value(axis.inner_low());  // low == high
  std::vector<double> good;
  std::vector<double> bad;
  for (double v : below) good.push_back(axis.InnerOf(v));
  for (double v : above) bad.push_back(axis.InnerOf(v));
  const TruncatedGaussianMixture l(good, options.prior, axis.inner_low(), axis.inner_high());
  const TruncatedGaussianMixture g(bad, options.prior, axis.inner_low(), axis.inner_high());

  double best_x = 0;
  double best_score = kNegInf;
  const int candidates = std::max(1, options.n_ei_candidates);
  for (int c = 0; c < candidates; ++c) {
    const double x = l.Sample(rng);
    double score;
    if (axis.discrete()) {
      const auto [a, b] = axis.Cell(x);
      score = l.LogMass(a, b) - g.LogMass(a, b);
    } else {
      score = l.LogDensity(x) - g.LogDensity(x);
    }
    if (c == 0 || score > best_score) {
      best_score = score;
      best_x = x;
    }
  }
  return axis.Value(best_x);
}

// Per-category weights: counts plus a pseudo-count (1 per category with the
// prior, 1/K without, so no category is ever impossible).
std::vector<double> CategoryLogWeights(const std::vector<size_t>& picks, size_t k, bool prior) {
  std::vector<double> w(k, prior ? 1.0 : 1.0 / static_cast<double>(k));
  for (size_t i : picks) w[i] += 1.0;
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  for (double& x : w) x = std::log(x / total);
  return w;
}

Json SampleCategorical(const Json& p, const std::vector<size_t>& below, const std::vector<size_t>& above,
                       const TpeOptions& options, std::mt19937_64& rng) {
  const Json& values = p.at("values");
  const size_t k = values.size();
  const std::vector<double> l = CategoryLogWeights(below, k, options.prior);
  const std::vector<double> g = CategoryLogWeights(above, k, options.prior);
  size_t best = 0;
  double best_score = kNegInf;
  const int candidates = std::max(1, options.n_ei_candidates);
  for (int c = 0; c < candidates; ++c) {
    double u = Uniform01(rng);
    size_t pick = k - 1;
    for (size_t i = 0; i < k; ++i) {
      u -= std::exp(l[i]);
      if (u < 0) {
        pick = i;
        break;
      }
    }
    const double score = l[pick] - g[pick];
    if (c == 0 || score > best_score) {
      best_score = score;
      best = pick;
    }
  }
  return values[best];
}

// Optuna's default gamma: how many of n observations count as good.
size_t GoodCount(size_t n) {
  return std::min<size_t>(static_cast<size_t>(std::ceil(0.1 * static_cast<double>(n))), 25);
}

}  // namespace

Json SampleTpe(const Json& search_space, const std::vector<TpeObservation>& observed, const std::string& mode,
               uint64_t seed, const TpeOptions& options) {
  if (mode != "max" && mode != "min") {
    throw Error(ErrorCode::kInvalidArgument, "objective mode must be \"max\" or \"min\", not \"" + mode + "\"");
  }
  for (const auto& [name, p] : search_space.items()) {
    const std::string type = p.at("type").get<std::string>();
    if (type != "float" && type != "int" && type != "categorical") {
      throw Error(ErrorCode::kInvalidArgument, "parameter " + name + " has unknown type " + type);
    }
  }
  std::mt19937_64 rng(seed);
  if (observed.empty() || static_cast<int64_t>(observed.size()) < options.n_startup_trials) {
    return SampleRandomPoint(search_space, rng);
  }

  // Best first; NaN last; ties keep the given order.
  std::vector<size_t> order(observed.size());
  std::iota(order.begin(), order.end(), 0);
  const bool maximise = mode == "max";
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const double va = observed[a].value;
    const double vb = observed[b].value;
    if (std::isnan(va) || std::isnan(vb)) return !std::isnan(va) && std::isnan(vb);
    return maximise ? va > vb : va < vb;
  });
  const size_t n_good = GoodCount(observed.size());

  Json point = Json::object();
  for (const auto& [name, p] : search_space.items()) {
    const bool categorical = p.at("type").get<std::string>() == "categorical";
    std::vector<double> good_numbers, bad_numbers;
    std::vector<size_t> good_picks, bad_picks;
    for (size_t r = 0; r < order.size(); ++r) {
      const Json& params = observed[order[r]].params;
      if (!params.is_object() || !params.contains(name)) continue;
      const Json& v = params[name];
      const bool good = r < n_good;
      if (categorical) {
        const Json& values = p.at("values");
        const auto it = std::find(values.begin(), values.end(), v);
        if (it == values.end()) continue;
        (good ? good_picks : bad_picks).push_back(static_cast<size_t>(it - values.begin()));
      } else {
        if (!v.is_number()) continue;
        (good ? good_numbers : bad_numbers).push_back(v.get<double>());
      }
    }
    point[name] = categorical ? SampleCategorical(p, good_picks, bad_picks, options, rng)
                              : SampleNumeric(p, good_numbers, bad_numbers, options, rng);
  }
  return point;
}

}  // namespace baton::orchestrator
