// kernels/lstm.hpp (fused gate/cell step and its backward) against the scalar twins in
// kernels/ref/lstm.hpp, for d with and without a SIMD tail.
#include <catch2/catch.hpp>

#include <vector>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/kernels/lstm.hpp>
#include <sparsimix/kernels/ref/lstm.hpp>

using namespace sparsimix;

TEMPLATE_TEST_CASE("lstm_cell_forward/backward match the scalar reference", "[kernels][lstm]", float, double) {
  using T = TestType;
  // The activations may differ from libm by a couple of ulp (TOOLCHAIN.md).
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-14;
  for (index_t d : {1, 7, 16, 64, 67}) {
    Rng rng(static_cast<std::uint64_t>(d));
    auto vec = [&](index_t n, double s) {
      std::vector<T> v(static_cast<std::size_t>(n));
      fill_uniform(rng, v.data(), n, -s, s);
      return v;
    };
    const auto pre = vec(4 * d, 4.0), c_prev = vec(d, 2.0), dh = vec(d, 1.0), dc0 = vec(d, 1.0);
    auto g1 = pre, g2 = pre;
    std::vector<T> c1(static_cast<std::size_t>(d)), c2 = c1, h1 = c1, h2 = c1;
    kernels::lstm_cell_forward(g1.data(), c_prev.data(), c1.data(), h1.data(), d);
    kernels::ref::lstm_cell_forward(g2.data(), c_prev.data(), c2.data(), h2.data(), d);
    for (std::size_t k = 0; k < g1.size(); ++k) REQUIRE(g1[k] == Approx(g2[k]).epsilon(tol).margin(tol));
    for (std::size_t k = 0; k < c1.size(); ++k) {
      REQUIRE(c1[k] == Approx(c2[k]).epsilon(tol).margin(tol));
      REQUIRE(h1[k] == Approx(h2[k]).epsilon(tol).margin(tol));
    }
    // c may alias c_prev (the inference path updates the state in place).
    auto c3 = c_prev;
    auto g3 = pre;
    std::vector<T> h3(static_cast<std::size_t>(d));
    kernels::lstm_cell_forward(g3.data(), c3.data(), c3.data(), h3.data(), d);
    for (std::size_t k = 0; k < c1.size(); ++k) REQUIRE(c3[k] == c1[k]);

    auto dc1 = dc0, dc2 = dc0;
    std::vector<T> dp1(static_cast<std::size_t>(4 * d)), dp2 = dp1;
    kernels::lstm_cell_backward(g2.data(), c_prev.data(), c2.data(), dh.data(), dc1.data(), dp1.data(), d);
    kernels::ref::lstm_cell_backward(g2.data(), c_prev.data(), c2.data(), dh.data(), dc2.data(), dp2.data(), d);
    for (std::size_t k = 0; k < dp1.size(); ++k) REQUIRE(dp1[k] == Approx(dp2[k]).epsilon(tol).margin(tol));
    for (std::size_t k = 0; k < dc1.size(); ++k) REQUIRE(dc1[k] == Approx(dc2[k]).epsilon(tol).margin(tol));
  }
}

TEST_CASE("ref::lstm_cell_backward matches finite differences of ref::lstm_cell_forward", "[kernels][lstm]") {
  // L = sum(w_h * h_t) + sum(w_c * c_t): dL/dpre and dL/dc_prev from the backward.
  const index_t d = 5;
  Rng rng(77);
  std::vector<double> pre(4 * d), cp(d), wh(d), wc(d);
  fill_uniform(rng, pre.data(), 4 * d, -2, 2);
  fill_uniform(rng, cp.data(), d, -1, 1);
  fill_uniform(rng, wh.data(), d, -1, 1);
  fill_uniform(rng, wc.data(), d, -1, 1);
  auto loss = [&]() {
    auto g = pre;
    std::vector<double> c(d), h(d);
    kernels::ref::lstm_cell_forward(g.data(), cp.data(), c.data(), h.data(), d);
    double l = 0;
    for (index_t k = 0; k < d; ++k) l += wh[k] * h[k] + wc[k] * c[k];
    return l;
  };
  auto g = pre;
  std::vector<double> c(d), h(d), dc = wc, dpre(4 * d);
  kernels::ref::lstm_cell_forward(g.data(), cp.data(), c.data(), h.data(), d);
  kernels::ref::lstm_cell_backward(g.data(), cp.data(), c.data(), wh.data(), dc.data(), dpre.data(), d);
  const double eps = 1e-6;
  for (index_t k = 0; k < 4 * d; ++k) {
    const double o = pre[k];
    pre[k] = o + eps;
    const double lp = loss();
    pre[k] = o - eps;
    const double lm = loss();
    pre[k] = o;
    REQUIRE(dpre[k] == Approx((lp - lm) / (2 * eps)).margin(1e-8));
  }
  for (index_t k = 0; k < d; ++k) {
    const double o = cp[k];
    cp[k] = o + eps;
    const double lp = loss();
    cp[k] = o - eps;
    const double lm = loss();
    cp[k] = o;
    REQUIRE(dc[k] == Approx((lp - lm) / (2 * eps)).margin(1e-8));
  }
}
