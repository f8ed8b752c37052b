#include <catch2/catch.hpp>

#include <sparsimix/experiment/statistics.hpp>

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
