// kernels/attention.hpp against its scalar twin kernels/ref/attention.hpp, for sizes around
// the query tile (64) and the key tile (256 float, 128 double), and head dims that are not
// a multiple of the SIMD width.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/kernels/attention.hpp>
#include <sparsimix/kernels/ref/attention.hpp>

#include "support/golden.hpp"

using namespace sparsimix;

namespace {
template <class T>
struct qkv_case {
  index_t n, d, ld;
  Tensor<T> qkv;  // [n, ld], q | k | v at columns 0, d, 2d
  T scale;
  qkv_case(index_t n_, index_t d_, double logit_scale, std::uint64_t seed) : n(n_), d(d_), ld(3 * d_ + 5) {
    Rng rng(seed);
    qkv = Tensor<T>(Shape{n, ld});
    fill_uniform(rng, qkv.data(), qkv.numel(), -logit_scale, logit_scale);
    scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
  }
  Tensor<double> as_double() const {
    Tensor<double> t(qkv.shape());
    for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<double>(qkv.data()[i]);
    return t;
  }
  const T* q() const { return qkv.data(); }
  const T* k() const { return qkv.data() + d; }
  const T* v() const { return qkv.data() + 2 * d; }
};
}  // namespace

TEMPLATE_TEST_CASE("attention_online matches the scalar twin", "[kernels][attention]", float, double) {
  using T = TestType;
  const index_t n = GENERATE(1, 2, 13, 64, 65, 127, 128, 129, 197, 256, 257, 300);
  const index_t d = GENERATE(8, 17, 64);
  const double logit_scale = GENERATE(1.0, 6.0);
  // The twin runs in double on the same inputs, so this measures the kernel's rounding.
  // With q, k, v ~ U(-ls, ls), a logit scale * q.k carries a float error of about
  // eps * sqrt(d) * ls^2 / 4, which moves the output by that times |v| <= ls; plus the
  // output's own rounding. Bound with a 3x margin: 1e-6 ls + 4e-8 sqrt(d) ls^3.
  const double u = std::is_same_v<T, float> ? 1.0 : 1e-8;  // double: eps ratio ~ 2^-29
  const double tol = u * (1e-6 * logit_scale + 4e-8 * std::sqrt(static_cast<double>(d)) * std::pow(logit_scale, 3));
  CAPTURE(n, d, logit_scale);
  qkv_case<T> c(n, d, logit_scale, static_cast<std::uint64_t>(n * 1000 + d));
  const index_t ldo = d + 3;
  Tensor<T> o(Shape{n, ldo}, T(-7));
  Tensor<double> r(Shape{n, ldo}, -7.0);
  std::vector<T> scratch(static_cast<std::size_t>(kernels::attention_online_scratch_size<T>()));
  kernels::attention_online(c.q(), c.k(), c.v(), c.ld, o.data(), ldo, n, d, c.scale, scratch.data());
  const auto q64 = c.as_double();
  kernels::ref::attention_online(q64.data(), q64.data() + d, q64.data() + 2 * d, c.ld, r.data(), ldo, n, d,
                                 static_cast<double>(c.scale));
  SPARSIMIX_REQUIRE_CLOSE(o, r, tol, tol);
  // The padding columns between rows are untouched.
  for (index_t i = 0; i < n; ++i)
    for (index_t j = d; j < ldo; ++j) REQUIRE(o(i, j) == T(-7));
}

TEMPLATE_TEST_CASE("attention_probs, attention_apply and attention_backward match the scalar twin",
                   "[kernels][attention]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 5e-6 : 1e-12;
  const index_t n = GENERATE(1, 13, 70);
  const index_t d = GENERATE(8, 19);
  CAPTURE(n, d);
  qkv_case<T> c(n, d, 2.0, static_cast<std::uint64_t>(n + 77 * d));
  Tensor<T> p(Shape{n, n}), pr(Shape{n, n});
  kernels::attention_probs(c.q(), c.k(), c.ld, n, d, c.scale, p.data());
  kernels::ref::attention_probs(c.q(), c.k(), c.ld, n, d, c.scale, pr.data());
  SPARSIMIX_REQUIRE_CLOSE(p, pr, tol, tol);

  Tensor<T> o(Shape{n, d}), orf(Shape{n, d});
  kernels::attention_apply(p.data(), c.v(), c.ld, o.data(), d, n, d);
  kernels::ref::attention_online(c.q(), c.k(), c.v(), c.ld, orf.data(), d, n, d, c.scale);
  SPARSIMIX_REQUIRE_CLOSE(o, orf, tol, tol);

  Rng rng(4);
  Tensor<T> dout(Shape{n, d});
  fill_uniform(rng, dout.data(), dout.numel(), -1.0, 1.0);
  const index_t ldd = 3 * d;
  Tensor<T> dqkv(Shape{n, ldd}), dqkv_r(Shape{n, ldd}), dp(Shape{n, n}), dp_r(Shape{n, n});
  kernels::attention_backward(p.data(), c.q(), c.k(), c.v(), c.ld, dout.data(), d, n, d, c.scale, dp.data(),
                              dqkv.data(), dqkv.data() + d, dqkv.data() + 2 * d, ldd);
  kernels::ref::attention_backward(pr.data(), c.q(), c.k(), c.v(), c.ld, dout.data(), d, n, d, c.scale, dp_r.data(),
                                   dqkv_r.data(), dqkv_r.data() + d, dqkv_r.data() + 2 * d, ldd);
  SPARSIMIX_REQUIRE_CLOSE(dqkv, dqkv_r, tol, tol);
}
