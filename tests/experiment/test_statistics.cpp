#include <catch2/catch.hpp>

#include <sparsimix/experiment/statistics.hpp>

#include "support/golden.hpp"

using namespace sparsimix;

TEST_CASE("spearman matches the rank formulas", "[experiment][statistics]") {
  // No ties: 1 - 6 sum d^2 / (n (n^2 - 1)) with d = (-1, 1, -1, 1, 0): 1 - 24 / 120.
  CHECK(spearman({1, 2, 3, 4, 5}, {2, 1, 4, 3, 5}) == Approx(0.8));
  CHECK(spearman({1, 2, 3}, {10, 20, 30}) == Approx(1.0));
  CHECK(spearman({1, 2, 3}, {3, 2, 1}) == Approx(-1.0));
  // Ties take average ranks: a -> (1, 2.5, 2.5, 4, 5), b -> (2, 4, 3, 5, 1); Pearson of the
  // ranks = -0.5 / sqrt(9.5 * 10).
  CHECK(spearman({1, 2, 2, 3, 7}, {1, 3, 2, 4, 0}) == Approx(-0.5 / std::sqrt(95.0)));
  // Undefined cases are 0: a constant side, fewer than two points, mismatched sizes.
  CHECK(spearman({1, 1, 1}, {1, 2, 3}) == 0.0);
  CHECK(spearman({1}, {2}) == 0.0);
  CHECK(spearman({1, 2}, {1, 2, 3}) == 0.0);
}

TEST_CASE("quantile and percentile_interval match numpy.percentile", "[experiment][statistics]") {
  const auto f = test::golden("statistics.safetensors");
  const auto values = f.get<double>("quantile.values"), qs = f.get<double>("quantile.q"),
             expected = f.get<double>("quantile.expected");
  const std::vector<double> v(values.begin(), values.end());
  for (index_t i = 0; i < qs.numel(); ++i) CHECK(quantile(v, qs.data()[i]) == Approx(expected.data()[i]).margin(1e-12));
  const auto ci = percentile_interval(v, 0.95);
  CHECK(ci.lo == Approx(expected.data()[1]).margin(1e-12));
  CHECK(ci.hi == Approx(expected.data()[5]).margin(1e-12));
  CHECK_THROWS_AS(quantile({}, 0.5), config_error);
  CHECK_THROWS_AS(quantile(v, 1.5), config_error);
  CHECK_THROWS_AS(percentile_interval(v, 1.0), config_error);
}

TEST_CASE("bootstrap_means draws the indices numpy's reference draws", "[experiment][statistics]") {
  const auto f = test::golden("statistics.safetensors");
  const auto cols = f.get<double>("bootstrap.columns"), expected = f.get<double>("bootstrap.means");
  const index_t n = cols.size(1), resamples = expected.size(1);
  std::vector<std::vector<double>> columns;
  for (index_t c = 0; c < cols.size(0); ++c) columns.emplace_back(cols.data() + c * n, cols.data() + (c + 1) * n);
  const auto seed = std::stoull(f.metadata().at("bootstrap_seed"));
  const auto means = bootstrap_means(columns, n, static_cast<int>(resamples), seed);
  REQUIRE(means.size() == columns.size());
  for (std::size_t c = 0; c < means.size(); ++c)
    for (index_t r = 0; r < resamples; ++r)
      CHECK(means[c][static_cast<std::size_t>(r)] ==
            Approx(expected.data()[static_cast<index_t>(c) * resamples + r]).margin(1e-12));
  // The paired difference of columns 0 and 1 and its 95% interval.
  std::vector<double> diff(static_cast<std::size_t>(resamples));
  for (std::size_t r = 0; r < diff.size(); ++r) diff[r] = means[0][r] - means[1][r];
  const auto ci = percentile_interval(diff);
  const auto want = f.get<double>("bootstrap.diff_ci95");
  CHECK(ci.lo == Approx(want.data()[0]).margin(1e-12));
  CHECK(ci.hi == Approx(want.data()[1]).margin(1e-12));
  CHECK_THROWS_AS(bootstrap_means({{1.0, 0.0}}, 3, 10, 0), shape_error);
  CHECK_THROWS_AS(bootstrap_means({}, 0, 10, 0), config_error);
}

TEST_CASE("spearman_permutation_test matches scipy's exact permutation test", "[experiment][statistics]") {
  const auto f = test::golden("statistics.safetensors");
  for (const std::string n : {"perm6", "perm8"}) {
    const auto x = f.get<double>(n + ".x"), y = f.get<double>(n + ".y"), want = f.get<double>(n + ".expected");
    const std::vector<double> xs(x.begin(), x.end()), ys(y.begin(), y.end());
    const auto r = spearman_permutation_test(xs, ys);
    INFO(n);
    CHECK(r.exact);
    CHECK(r.permutations == (n == "perm6" ? 720 : 40320));
    CHECK(r.statistic == Approx(want.data()[0]).margin(1e-12));
    CHECK(r.p_value == Approx(want.data()[1]).margin(1e-12));
    // A random sample of orderings estimates the same p-value (binomial sd < 0.0015 here).
    const auto mc = spearman_permutation_test(xs, ys, 1, 100000, 3);
    CHECK_FALSE(mc.exact);
    CHECK(mc.permutations == 100000);
    CHECK(mc.p_value == Approx(want.data()[1]).margin(0.006));
  }
  // A perfect monotone relation over 5 points: only 2 of the 120 orderings reach |rho| = 1.
  const auto r = spearman_permutation_test({1, 2, 3, 4, 5}, {2, 4, 6, 8, 10});
  CHECK(r.statistic == Approx(1.0));
  CHECK(r.p_value == Approx(2.0 / 120));
}

TEST_CASE("partial_spearman removes what the control variable explains", "[experiment][statistics]") {
  // x = (1, 2, 3, 4), y = (1, 3, 2, 4), z = (1, 2, 4, 3), no ties, so each rho is
  // 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - sum d^2 / 10: r_xy = r_xz = 0.8 (sum d^2 = 2), r_yz = 0.4
  // (sum d^2 = 6). Partial: (0.8 - 0.8 * 0.4) / sqrt((1 - 0.64)(1 - 0.16)) = 0.48 / sqrt(0.3024).
  CHECK(partial_spearman({1, 2, 3, 4}, {1, 3, 2, 4}, {1, 2, 4, 3}) == Approx(0.48 / std::sqrt(0.3024)));
  // When depth orders sparsity completely there is nothing left to separate: undefined.
  CHECK(std::isnan(partial_spearman({1, 2, 3}, {3, 1, 2}, {1, 2, 3})));
  CHECK(mean_sd({1, 2, 3, 4}).first == Approx(2.5));
  CHECK(mean_sd({1, 2, 3, 4}).second == Approx(std::sqrt(5.0 / 3.0)));
}
