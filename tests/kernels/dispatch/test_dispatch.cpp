// Runtime-dispatched kernels (built without -march; see CMakeLists.txt here): for every arch
// compiled in and supported by this CPU, force it and compare every public entry point with
// the scalar twins. Tolerances as in ../test_activations.cpp and ../test_rows.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/kernels.hpp>

#include "kernels/arch_loop.hpp"

#ifndef SPARSIMIX_KERNELS_RUNTIME_DISPATCH
#error "this test must be built through sparsimix_add_dispatched_kernels"
#endif
#if defined(__AVX__) || defined(__AVX2__) || defined(__AVX512F__)
#error "this test must be built without AVX flags: it stands for a portable consumer"
#endif

using namespace sparsimix;
using test::close_ulps;

namespace {

template <class T>
std::vector<T> rnd(index_t n, std::uint64_t seed, double lo, double hi) {
  std::vector<T> v(static_cast<std::size_t>(n));
  Rng rng(seed);
  fill_uniform(rng, v.data(), n, lo, hi);
  return v;
}

template <class T>
void check_all_kernels() {
  namespace k = kernels;
  namespace r = kernels::ref;
  for (index_t n : test::kernel_lengths()) {
    INFO("n " << n << ", arch " << k::dispatched::arch_name());
    auto x = rnd<T>(n, 1 + static_cast<std::uint64_t>(n), -12, 12);
    if (n > 3) x[0] = T(50), x[1] = T(-50), x[2] = T(25), x[3] = T(-104);
    const auto dy = rnd<T>(n, 2 + static_cast<std::uint64_t>(n), -1, 1);
    std::vector<T> got(x.size()), want(x.size());
    const auto same_rel = [&](double ulps) {
      for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(close_ulps(got[i], want[i], std::abs(want[i]), ulps));
    };
    k::exp(x.data(), got.data(), n), r::exp(x.data(), want.data(), n), same_rel(4);
    k::sigmoid(x.data(), got.data(), n), r::sigmoid(x.data(), want.data(), n), same_rel(4);
    k::tanh(x.data(), got.data(), n), r::tanh(x.data(), want.data(), n), same_rel(4);
    k::silu(x.data(), got.data(), n), r::silu(x.data(), want.data(), n), same_rel(4);
    k::softplus(x.data(), got.data(), n), r::softplus(x.data(), want.data(), n), same_rel(4);
    k::gelu(x.data(), got.data(), n), r::gelu(x.data(), want.data(), n);
    for (std::size_t i = 0; i < x.size(); ++i)
      REQUIRE(close_ulps(got[i], want[i], std::max(std::abs(want[i]), std::abs(x[i]) / 2), test::gelu_ulps<T>()));
    k::gelu_backward(x.data(), dy.data(), got.data(), n), r::gelu_backward(x.data(), dy.data(), want.data(), n);
    for (std::size_t i = 0; i < x.size(); ++i)
      REQUIRE(close_ulps(got[i], want[i], std::abs(dy[i]) * (T(1) + std::abs(x[i])), 8));
    k::silu_backward(x.data(), dy.data(), got.data(), n), r::silu_backward(x.data(), dy.data(), want.data(), n);
    for (std::size_t i = 0; i < x.size(); ++i)
      REQUIRE(close_ulps(got[i], want[i], std::abs(dy[i]) * (T(1) + std::abs(x[i])), 8));

    // Reductions: 2 n eps sum|terms| (test_rows.cpp).
    double sa = 0, sab = 0, sq = 0;
    for (std::size_t i = 0; i < x.size(); ++i)
      sa += std::abs(double(x[i])), sab += std::abs(double(x[i]) * double(dy[i])), sq += double(x[i]) * double(x[i]);
    const double g = 2 * double(n) * double(std::numeric_limits<T>::epsilon()), tiny = double(std::numeric_limits<T>::min());
    REQUIRE(std::abs(double(k::sum(x.data(), n)) - double(r::sum(x.data(), n))) <= g * sa + tiny);
    REQUIRE(std::abs(double(k::dot(x.data(), dy.data(), n)) - double(r::dot(x.data(), dy.data(), n))) <= g * sab + tiny);
    REQUIRE(std::abs(double(k::sum_squares(x.data(), n)) - double(r::sum_squares(x.data(), n))) <= g * sq + tiny);
    REQUIRE(k::max(x.data(), n) == r::max(x.data(), n));

    if (n == 0) continue;
    // Rows: 2 x n.
    const index_t rows = 2, cols = n;
    const auto xs = rnd<T>(rows * cols, 3 + static_cast<std::uint64_t>(n), -4, 6);
    const auto gs = rnd<T>(rows * cols, 4 + static_cast<std::uint64_t>(n), -1, 1);
    const auto gamma = rnd<T>(cols, 5, 0.5, 1.5), beta = rnd<T>(cols, 6, -1, 1);
    std::vector<T> y(xs.size()), yr(xs.size()), d(xs.size()), dr(xs.size());
    const double sm_tol = 8 + 2 * double(cols), ln_tol = 8 + 4 * double(cols);
    k::softmax_rows(xs.data(), y.data(), rows, cols), r::softmax_rows(xs.data(), yr.data(), rows, cols);
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(close_ulps(y[i], yr[i], std::abs(yr[i]), sm_tol));
    k::softmax_rows_backward(yr.data(), gs.data(), d.data(), rows, cols);
    r::softmax_rows_backward(yr.data(), gs.data(), dr.data(), rows, cols);
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(close_ulps(d[i], dr[i], 2 * std::abs(yr[i]), sm_tol));
    std::vector<T> mean(2), rstd(2), meanr(2), rstdr(2);
    k::layernorm_forward(xs.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), rows, cols, T(1e-5));
    r::layernorm_forward(xs.data(), gamma.data(), beta.data(), yr.data(), meanr.data(), rstdr.data(), rows, cols, T(1e-5));
    for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(close_ulps(y[i], yr[i], T(1) + std::abs(yr[i]), ln_tol));
    std::vector<T> dgm(static_cast<std::size_t>(cols), T(0)), dgr(dgm), dbt(dgm), dbr(dgm);
    k::layernorm_backward(xs.data(), gamma.data(), meanr.data(), rstdr.data(), gs.data(), d.data(), dgm.data(),
                          dbt.data(), rows, cols);
    r::layernorm_backward(xs.data(), gamma.data(), meanr.data(), rstdr.data(), gs.data(), dr.data(), dgr.data(),
                          dbr.data(), rows, cols);
    for (std::size_t i = 0; i < d.size(); ++i) REQUIRE(close_ulps(d[i], dr[i], rstdr[0] * T(4), ln_tol));
    for (std::size_t c = 0; c < dgm.size(); ++c) {
      REQUIRE(close_ulps(dgm[c], dgr[c], T(8), 16));
      REQUIRE(close_ulps(dbt[c], dbr[c], T(4), 16));
    }
    auto yb = xs, yb2 = xs;
    std::vector<T> pre(xs.size());
    k::bias_gelu(yb.data(), beta.data(), rows, cols, pre.data());
    k::add_bias(yb2.data(), beta.data(), rows, cols);
    for (index_t i = 0; i < rows * cols; ++i) {
      const auto u = static_cast<std::size_t>(i);
      const T v = xs[u] + beta[static_cast<std::size_t>(i % cols)];
      REQUIRE(pre[u] == v);
      REQUIRE(yb2[u] == v);
      REQUIRE(close_ulps(yb[u], r::gelu(v), std::max(std::abs(r::gelu(v)), std::abs(v) / 2), test::gelu_ulps<T>()));
    }
  }
}

}  // namespace

TEMPLATE_TEST_CASE("dispatched kernels match the twins on every arch this CPU has", "[kernels][dispatch]", float,
                   double) {
  std::vector<std::string> ran;
  for (const char* arch : {"sse2", "fma3<avx2>", "avx512bw"}) {
    if (!kernels::dispatched::arch_available(arch)) {
      WARN("dispatch arch " << arch << " not compiled in or not supported by this CPU: not tested");
      continue;
    }
    REQUIRE(kernels::dispatched::set_arch(arch));
    REQUIRE(std::string(kernels::dispatched::arch_name()) == arch);
    check_all_kernels<TestType>();
    ran.push_back(arch);
  }
  REQUIRE(kernels::dispatched::set_arch("best"));
  std::string list;
  for (const auto& a : ran) list += (list.empty() ? "" : ", ") + a;
  WARN("dispatched archs tested: " << list << " (compiled: " << kernels::dispatched::compiled_archs()
                                   << "; automatic choice: " << kernels::dispatched::arch_name() << ")");
  REQUIRE(!ran.empty());
  REQUIRE_FALSE(kernels::dispatched::set_arch("neon"));
}

TEST_CASE("the automatic dispatch choice is the best arch the CPU has", "[kernels][dispatch]") {
  REQUIRE(kernels::dispatched::set_arch("best"));
  const std::string best = kernels::dispatched::arch_name();
  if (kernels::dispatched::arch_available("avx512bw")) REQUIRE(best == "avx512bw");
  else if (kernels::dispatched::arch_available("fma3<avx2>")) REQUIRE(best == "fma3<avx2>");
  else REQUIRE(best == "sse2");
}
