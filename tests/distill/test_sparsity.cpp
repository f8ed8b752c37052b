#include <catch2/catch.hpp>

#include <sparsimix/distill/sparsity.hpp>

using namespace sparsimix;

namespace {
// One batch, one head, N x N maps built by a per-row rule.
template <class F>
Tensor<double> maps_from(index_t N, F row) {
  Tensor<double> m(Shape{1, 1, N, N});
  for (index_t q = 0; q < N; ++q) row(q, &m(0, 0, q, 0));
  return m;
}
}  // namespace

TEST_CASE("uniform attention is the least sparse, one-hot the most", "[distill][sparsity]") {
  const index_t N = 20;
  const auto uniform = maps_from(N, [&](index_t, double* r) { for (index_t k = 0; k < N; ++k) r[k] = 1.0 / N; });
  const auto onehot = maps_from(N, [&](index_t q, double* r) { for (index_t k = 0; k < N; ++k) r[k] = k == q; });
  sparsity_accumulator u, o;
  u.add<double>(uniform.view());
  o.add<double>(onehot.view());
  const auto su = u.layer(), so = o.layer();
  REQUIRE(su.entropy == Approx(0.0).margin(1e-12));
  REQUIRE(su.top_k_mass == Approx(0.1));           // 2 of 20 keys at 1/20 each
  REQUIRE(su.k90 == Approx(18.0 / 20.0));          // 18 keys reach 0.9
  REQUIRE(su.threshold == 0.0);
  REQUIRE(so.entropy == Approx(1.0));
  REQUIRE(so.top_k_mass == Approx(1.0));
  REQUIRE(so.k90 == Approx(1.0 / 20.0));
  REQUIRE(so.threshold == Approx(19.0 / 20.0));
  REQUIRE(rank_layers({su, so}, sparsity_metric::k90) == std::vector<index_t>{1, 0});
  REQUIRE(rank_layers({so, su}, sparsity_metric::entropy) == std::vector<index_t>{0, 1});
}

TEST_CASE("sparsity of a two-level row matches a hand computation", "[distill][sparsity]") {
  // Row: one key with 0.5, nine with 0.5/9, N = 10.
  const index_t N = 10;
  const auto m = maps_from(N, [&](index_t, double* r) {
    r[0] = 0.5;
    for (index_t k = 1; k < N; ++k) r[k] = 0.5 / 9;
  });
  sparsity_accumulator acc;
  acc.add<double>(m.view());
  const auto s = acc.layer();
  const double h = -(0.5 * std::log(0.5) + 9 * (0.5 / 9) * std::log(0.5 / 9));
  REQUIRE(s.entropy == Approx(1 - h / std::log(10.0)));
  REQUIRE(s.top_k_mass == Approx(0.5));  // k = 1
  // 0.5 + 8 * 0.0556 = 0.944 >= 0.9 but 0.5 + 7 * 0.0556 = 0.889: 8 keys... plus the first = 9.
  REQUIRE(s.k90 == Approx(9.0 / 10.0));
  REQUIRE(s.threshold == 0.0);
}

TEST_CASE("masked keys and queries are excluded, CLS-only reads row 0", "[distill][sparsity]") {
  const index_t N = 4;
  // Row q: all mass on key 0 for q = 0; uniform over alive keys {0, 1, 2} otherwise.
  Tensor<double> m(Shape{1, 2, N, N});
  for (index_t h = 0; h < 2; ++h)
    for (index_t q = 0; q < N; ++q)
      for (index_t k = 0; k < N; ++k) m(0, h, q, k) = q == 0 ? (k == 0 ? 1.0 : 0.0) : (k < 3 ? 1.0 / 3 : 0.0);
  TokenMask mask(1, N);
  mask.set(0, 3, false);
  sparsity_accumulator all(2), cls(2, true);
  all.add<double>(m.view(), &mask);
  cls.add<double>(m.view(), &mask);
  // Alive queries 0, 1, 2: one one-hot row over 3 keys (k90 = 1/3), two uniform (k90 = 1).
  REQUIRE(all.head(1).k90 == Approx((1.0 / 3 + 1 + 1) / 3));
  REQUIRE(all.head(0).entropy == Approx(1.0 / 3));
  REQUIRE(cls.layer().k90 == Approx(1.0 / 3));
  REQUIRE_THROWS_AS(all.add<double>(Tensor<double>(Shape{1, 3, N, N}).view()), shape_error);
}
