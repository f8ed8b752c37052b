// Statistics the experiments' claims are computed with (docs/study.md says how each is used):
// rank correlation, partial rank correlation, a permutation test, and the paired bootstrap
// over test examples. Conventions follow numpy and scipy so that a committed script
// (tests/golden/gen_statistics.py) can check them: quantiles interpolate linearly between
// order statistics (numpy.percentile's default), and the permutation test's two-sided
// p-value is scipy.stats.permutation_test's.
#pragma once
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/rng.hpp"
#include "../fwd.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

namespace detail {
// Ranks 1..n of v, ties sharing their average rank.
inline std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<std::size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), std::size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t i, std::size_t j) { return v[i] < v[j]; });
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    for (std::size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * static_cast<double>(i + j) + 1.0;
    i = j + 1;
  }
  return r;
}
}  // namespace detail

// Pearson correlation; 0 when either side is constant, has fewer than two values, or the sizes differ.
inline double pearson(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) return 0.0;
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(a.begin(), a.end(), 0.0) / n, mb = std::accumulate(b.begin(), b.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

// Spearman rank correlation (average ranks for ties); 0 when either side is constant.
inline double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) return 0.0;
  return pearson(detail::average_ranks(a), detail::average_ranks(b));
}

// Spearman correlation of x and y controlling for z: the partial correlation formula applied
// to the three rank correlations, (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)).
// NaN (undefined) when z orders x or y completely (the denominator vanishes): nothing is left
// to separate.
inline double partial_spearman(const std::vector<double>& x, const std::vector<double>& y, const std::vector<double>& z) {
  const double rxy = spearman(x, y), rxz = spearman(x, z), ryz = spearman(y, z);
  const double den = (1 - rxz * rxz) * (1 - ryz * ryz);
  return den > 1e-12 ? (rxy - rxz * ryz) / std::sqrt(den) : std::numeric_limits<double>::quiet_NaN();
}

// Mean and sample standard deviation (n - 1; 0 for fewer than two values).
inline std::pair<double, double> mean_sd(const std::vector<double>& v) {
  if (v.empty()) return {0.0, 0.0};
  double m = 0;
  for (double x : v) m += x / static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0};
}

// The q-quantile (q in [0, 1]) of v, interpolating linearly between order statistics as
// numpy.percentile(v, 100 q) does by default. Throws config_error for an empty v or q outside [0, 1].
inline double quantile(std::vector<double> v, double q) {
  if (v.empty()) throw config_error("quantile: no values");
  if (!(q >= 0 && q <= 1)) throw config_error(detail::concat("quantile: q is ", q, ", expected a value in [0, 1]"));
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

// A two-sided interval [lo, hi].
struct interval {
  double lo = 0, hi = 0;  // its ends
};

// The central percentile interval of v holding `level` of it (0.95: the 2.5% and 97.5% quantiles).
inline interval percentile_interval(const std::vector<double>& v, double level = 0.95) {
  if (!(level > 0 && level < 1))
    throw config_error(detail::concat("percentile_interval: level is ", level, ", expected a value in (0, 1)"));
  return {quantile(v, (1 - level) / 2), quantile(v, 1 - (1 - level) / 2)};
}

// The paired bootstrap over examples: `resamples` draws of n example indices with replacement
// (draw r: n calls of Rng(seed) below(n), continuing one stream), and for every column of
// per-example scores (e.g. 1 for a correctly classified test image, 0 otherwise) its mean on
// each draw. Columns are resampled together, so differences between two columns on the same
// draw give the paired bootstrap distribution of the difference of their means.
// Returns means[column][draw]. Every column must hold n values.
inline std::vector<std::vector<double>> bootstrap_means(const std::vector<std::vector<double>>& columns, index_t n,
                                                        int resamples, std::uint64_t seed) {
  if (n < 1) throw config_error(detail::concat("bootstrap_means: n is ", n, ", expected >= 1 examples"));
  if (resamples < 1) throw config_error(detail::concat("bootstrap_means: resamples is ", resamples, ", expected >= 1"));
  for (std::size_t c = 0; c < columns.size(); ++c)
    if (static_cast<index_t>(columns[c].size()) != n)
      throw shape_error(detail::concat("bootstrap_means: column ", c, " has ", columns[c].size(), " values, expected ", n));
  std::vector<std::vector<double>> means(columns.size(), std::vector<double>(static_cast<std::size_t>(resamples)));
  std::vector<std::uint32_t> idx(static_cast<std::size_t>(n));
  Rng rng(seed);
  for (int r = 0; r < resamples; ++r) {
    for (auto& i : idx) i = static_cast<std::uint32_t>(rng.below(static_cast<std::uint64_t>(n)));
    for (std::size_t c = 0; c < columns.size(); ++c) {
      const double* col = columns[c].data();
      double s = 0;
      for (const std::uint32_t i : idx) s += col[i];
      means[c][static_cast<std::size_t>(r)] = s / static_cast<double>(n);
    }
  }
  return means;
}

// A permutation test's outcome.
struct permutation_result {
  double statistic = 0;          // the observed statistic
  double p_value = 1;            // two-sided
  std::int64_t permutations = 0;  // how many permutations the null distribution holds
  bool exact = false;            // every permutation (else a random sample of them)
};

// Permutation test of Spearman's rho between x and y: the null distribution pairs x with
// every ordering of y (all n! when n! <= max_exact, else `resamples` random orderings from
// Rng(seed)). The two-sided p-value is scipy.stats.permutation_test's (permutation_type
// "pairings"): twice the smaller tail, at most 1; a random sample counts the observed
// ordering in ((k + 1) / (resamples + 1)).
inline permutation_result spearman_permutation_test(const std::vector<double>& x, const std::vector<double>& y,
                                                    std::int64_t max_exact = 40320, std::int64_t resamples = 9999,
                                                    std::uint64_t seed = 0) {
  if (x.size() != y.size())
    throw shape_error(detail::concat("spearman_permutation_test: x has ", x.size(), " values, y ", y.size()));
  permutation_result r;
  if (x.size() < 2) return r;
  const auto rx = detail::average_ranks(x), ry = detail::average_ranks(y);
  r.statistic = pearson(rx, ry);
  const double gamma = std::abs(r.statistic) * 100 * DBL_EPSILON;
  std::int64_t less = 0, greater = 0, count = 0;
  auto tally = [&](const std::vector<double>& perm) {
    const double s = pearson(rx, perm);
    less += s <= r.statistic + gamma;
    greater += s >= r.statistic - gamma;
    ++count;
  };
  std::int64_t factorial = 1;
  for (std::size_t k = 2; k <= x.size() && factorial <= max_exact; ++k) factorial *= static_cast<std::int64_t>(k);
  std::vector<double> perm(ry.size());
  if (factorial <= max_exact) {
    std::vector<std::size_t> order(ry.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    do {
      for (std::size_t i = 0; i < order.size(); ++i) perm[i] = ry[order[i]];
      tally(perm);
    } while (std::next_permutation(order.begin(), order.end()));
    r.exact = true;
    r.p_value = std::min(1.0, 2.0 * static_cast<double>(std::min(less, greater)) / static_cast<double>(count));
  } else {
    Rng rng(seed);
    perm = ry;
    for (std::int64_t i = 0; i < resamples; ++i) {
      rng.shuffle(perm.begin(), perm.end());
      tally(perm);
    }
    r.p_value = std::min(1.0, 2.0 * static_cast<double>(std::min(less, greater) + 1) / static_cast<double>(count + 1));
  }
  r.permutations = count;
  return r;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
