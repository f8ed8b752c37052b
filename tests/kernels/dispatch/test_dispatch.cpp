// Runtime-dispatched kernels (built without -march; see CMakeLists.txt here): for every arch
// compiled in and supported by this CPU, force it and compare every public entry point with
// the scalar twins. Tolerances as in ../test_activations.cpp and ../test_rows.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/kernels.hpp>
#include <sparsimix/mixers/mh_lstm.hpp>
#include <sparsimix/mixers/selective_scan.hpp>

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

    // Depthwise conv over a 2-token sequence of n channels, and an LSTM step of n units.
    const double seq_tol = std::is_same_v<T, float> ? 1e-5 : 1e-13;
    const auto taps = rnd<T>(4 * cols, 7, -1, 1);
    std::vector<T> c1(xs.size()), c2(xs.size());
    k::conv1d_depthwise_forward(xs.data(), cols, taps.data(), beta.data(), c1.data(), rows, cols, 4, false);
    r::conv1d_depthwise_forward(xs.data(), cols, taps.data(), beta.data(), c2.data(), rows, cols, 4, false);
    for (std::size_t i = 0; i < c1.size(); ++i) REQUIRE(std::abs(double(c1[i]) - double(c2[i])) <= seq_tol * 8);
    auto g1 = rnd<T>(4 * cols, 8, -2, 2), g2 = g1;
    const auto cp = rnd<T>(cols, 9, -1, 1);
    std::vector<T> cc1(static_cast<std::size_t>(cols)), cc2 = cc1, h1 = cc1, h2 = cc1;
    k::lstm_cell_forward(g1.data(), cp.data(), cc1.data(), h1.data(), cols);
    r::lstm_cell_forward(g2.data(), cp.data(), cc2.data(), h2.data(), cols);
    for (std::size_t i = 0; i < h1.size(); ++i) REQUIRE(std::abs(double(h1[i]) - double(h2[i])) <= seq_tol);
  }
}

// The sequence kernels (LSTM recurrence and cell, depthwise conv, scan) through the mixers
// that call them, masked, forward and backward: output and every gradient, flattened.
template <class T>
std::vector<T> run_sequence_mixers() {
  const index_t B = 3, N = 9, C = 16;
  Rng rng(5);
  Tensor<T> x(Shape{B, N, C}), y(Shape{B, N, C}), dy(Shape{B, N, C}), dx(Shape{B, N, C});
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  fill_uniform(rng, dy.data(), dy.numel(), -1.0, 1.0);
  TokenMask mask(B, N);
  mask.set(0, 3, false), mask.set(2, 0, false), mask.set(2, 8, false);
  std::vector<T> out;
  auto run = [&](auto& m) {
    m.init(rng);
    typename std::decay_t<decltype(m)>::cache_type cache;
    m.forward(x.view(), y.view(), cache, &mask);
    m.backward(cache, dy.view(), dx.view());
    out.insert(out.end(), y.begin(), y.end());
    out.insert(out.end(), dx.begin(), dx.end());
    for (const auto& p : m.parameters()) out.insert(out.end(), p.grad.begin(), p.grad.end());
  };
  MultiHeadLSTM<T> lstm({C, 2});
  run(lstm);
  typename SelectiveScan<T>::config sc;
  sc.dim = C;
  sc.bidirectional = true;
  SelectiveScan<T> scan(sc);
  run(scan);
  return out;
}

}  // namespace

TEMPLATE_TEST_CASE("the sequence mixers' dispatched kernels agree on every arch this CPU has",
                   "[kernels][dispatch][mixers]", float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
  std::vector<T> first;
  int ran = 0;
  for (const char* arch : {"sse2", "fma3<avx2>", "avx512bw"}) {
    if (!kernels::dispatched::arch_available(arch)) continue;
    REQUIRE(kernels::dispatched::set_arch(arch));
    const auto got = run_sequence_mixers<T>();
    if (first.empty()) {
      first = got;
    } else {
      REQUIRE(got.size() == first.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        INFO("arch " << arch << " value " << i);
        REQUIRE(std::abs(double(got[i]) - double(first[i])) <= tol * (1 + std::abs(double(first[i]))));
      }
    }
    ++ran;
  }
  REQUIRE(kernels::dispatched::set_arch("best"));
  REQUIRE(ran >= 1);
}

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
