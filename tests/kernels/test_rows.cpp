// Row kernels (softmax, layernorm, bias + GELU) and reductions: every compiled arch against
// the twins in kernels/ref/, plus properties that hold whatever the arch.
//
// Tolerances. These kernels sum along a row in a different order than the sequential twin;
// each order is within gamma_n = n eps / (1 - n eps) of the exact sum relative to the sum of
// |terms| (Higham, Accuracy and Stability, eq. 4.4), so the two differ by at most
// 2 gamma_n sum|terms|. The tests use that bound plus 8 ulp for the elementwise work:
//   softmax:    |simd - ref| <= (8 + 2 cols) eps |ref|         (the sum scales every entry)
//   layernorm:  |simd - ref| <= (8 + 4 cols) eps (1 + |ref|)   (mean and variance sums)
//   reductions: |simd - ref| <= 2 n eps sum|terms| + min normal; max is exact
//   bias_gelu:  the GELU tolerance of test_activations.cpp; `pre` bit-exact (one add)
#include <catch2/catch.hpp>

#include <vector>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/core/rng.hpp>

#include "arch_loop.hpp"

using namespace sparsimix;
using test::close_ulps;

namespace {

template <class T>
std::vector<T> random_vec(index_t n, std::uint64_t seed, double lo, double hi) {
  std::vector<T> v(static_cast<std::size_t>(n));
  Rng rng(seed);
  fill_uniform(rng, v.data(), n, lo, hi);
  return v;
}

template <class T>
double eps() {
  return static_cast<double>(std::numeric_limits<T>::epsilon());
}

const index_t kRows = 3;

}  // namespace

TEMPLATE_TEST_CASE("softmax_rows and its backward match the twins on every arch", "[kernels][softmax]", float, double) {
  using T = TestType;
  const int ran = test::for_each_arch([](auto arch, const char*) {
    using A = decltype(arch);
    for (index_t cols : test::kernel_lengths()) {
      if (cols == 0) continue;
      const index_t n = kRows * cols;
      const auto x = random_vec<T>(n, 11 + static_cast<std::uint64_t>(cols), -20, 20);
      const auto dy = random_vec<T>(n, 12 + static_cast<std::uint64_t>(cols), -1, 1);
      std::vector<T> y(x.size()), yr(x.size()), dx(x.size()), dxr(x.size());
      kernels::simd::softmax_rows(A{}, x.data(), y.data(), kRows, cols);
      kernels::ref::softmax_rows(x.data(), yr.data(), kRows, cols);
      const double tol = 8 + 2 * static_cast<double>(cols);
      for (std::size_t i = 0; i < y.size(); ++i) {
        INFO("softmax cols " << cols << " i " << i << ": got " << y[i] << ", want " << yr[i]);
        REQUIRE(close_ulps(y[i], yr[i], std::abs(yr[i]), tol));
      }
      kernels::simd::softmax_rows_backward(A{}, yr.data(), dy.data(), dx.data(), kRows, cols);
      kernels::ref::softmax_rows_backward(yr.data(), dy.data(), dxr.data(), kRows, cols);
      // dx = y (dy - d): errors of d = sum(dy y) scale with y, sum|dy y| <= 1.
      for (std::size_t i = 0; i < y.size(); ++i) {
        INFO("softmax_backward cols " << cols << " i " << i << ": got " << dx[i] << ", want " << dxr[i]);
        REQUIRE(close_ulps(dx[i], dxr[i], std::abs(yr[i]) * T(2), tol));
      }
      // In place.
      auto inplace = x;
      kernels::simd::softmax_rows(A{}, inplace.data(), inplace.data(), kRows, cols);
      for (std::size_t i = 0; i < y.size(); ++i) REQUIRE(inplace[i] == y[i]);
    }
  });
  REQUIRE(ran >= 1);
}

TEMPLATE_TEST_CASE("softmax rows sum to 1 and stay finite for huge logits", "[kernels][softmax]", float, double) {
  using T = TestType;
  const T huge = std::numeric_limits<T>::max() / 4;
  for (index_t cols : {index_t(1), index_t(5), index_t(17), index_t(100)}) {
    std::vector<T> x(static_cast<std::size_t>(2 * cols)), y(x.size());
    for (index_t c = 0; c < cols; ++c) {
      x[static_cast<std::size_t>(c)] = c % 3 == 0 ? huge : -huge;            // row 0: max/4 and -max/4
      x[static_cast<std::size_t>(cols + c)] = T(1000) + static_cast<T>(c % 7);  // row 1: exp(1000) overflows
    }
    kernels::softmax_rows(x.data(), y.data(), 2, cols);
    const index_t n_top = (cols + 2) / 3;
    for (index_t r = 0; r < 2; ++r) {
      double s = 0;
      for (index_t c = 0; c < cols; ++c) {
        const T v = y[static_cast<std::size_t>(r * cols + c)];
        REQUIRE(std::isfinite(v));
        s += static_cast<double>(v);
      }
      REQUIRE(std::abs(s - 1) <= 2 * static_cast<double>(cols) * eps<T>());
    }
    for (index_t c = 0; c < cols; ++c)
      REQUIRE(close_ulps(y[static_cast<std::size_t>(c)], c % 3 == 0 ? T(1) / static_cast<T>(n_top) : T(0),
                         T(1), 4 + 2 * static_cast<double>(cols)));
    // Shift invariance: softmax(x + 1000) == softmax(x) for integer logits (exact shifts).
    std::vector<T> z(static_cast<std::size_t>(cols)), yz(z.size());
    for (index_t c = 0; c < cols; ++c) z[static_cast<std::size_t>(c)] = static_cast<T>(c % 7);
    kernels::softmax_rows(z.data(), yz.data(), 1, cols);
    for (index_t c = 0; c < cols; ++c)
      REQUIRE(close_ulps(y[static_cast<std::size_t>(cols + c)], yz[static_cast<std::size_t>(c)], yz[static_cast<std::size_t>(c)], 4));
  }
}

TEMPLATE_TEST_CASE("layernorm forward/backward match the twins on every arch", "[kernels][layernorm]", float, double) {
  using T = TestType;
  const int ran = test::for_each_arch([](auto arch, const char*) {
    using A = decltype(arch);
    for (index_t cols : test::kernel_lengths()) {
      if (cols == 0) continue;
      const index_t n = kRows * cols;
      auto x = random_vec<T>(n, 21 + static_cast<std::uint64_t>(cols), -3, 3);
      for (auto& v : x) v += T(5);  // an offset mean, as after a residual add
      const auto gamma = random_vec<T>(cols, 22, 0.5, 1.5), beta = random_vec<T>(cols, 23, -1, 1);
      const auto dy = random_vec<T>(n, 24 + static_cast<std::uint64_t>(cols), -1, 1);
      const double tol = 8 + 4 * static_cast<double>(cols);
      for (int affine = 0; affine < 2; ++affine) {
        const T* g = affine ? gamma.data() : nullptr;
        const T* b = affine ? beta.data() : nullptr;
        std::vector<T> y(x.size()), yr(x.size()), mean(kRows), rstd(kRows), meanr(kRows), rstdr(kRows);
        kernels::simd::layernorm_forward(A{}, x.data(), g, b, y.data(), mean.data(), rstd.data(), kRows, cols, T(1e-5));
        kernels::ref::layernorm_forward(x.data(), g, b, yr.data(), meanr.data(), rstdr.data(), kRows, cols, T(1e-5));
        for (std::size_t i = 0; i < y.size(); ++i) {
          INFO("layernorm affine " << affine << " cols " << cols << " i " << i << ": got " << y[i] << ", want " << yr[i]);
          REQUIRE(close_ulps(y[i], yr[i], T(1) + std::abs(yr[i]), tol));
        }
        for (index_t r = 0; r < kRows; ++r) {
          REQUIRE(close_ulps(mean[static_cast<std::size_t>(r)], meanr[static_cast<std::size_t>(r)], T(8), tol));
          REQUIRE(close_ulps(rstd[static_cast<std::size_t>(r)], rstdr[static_cast<std::size_t>(r)], rstdr[static_cast<std::size_t>(r)], tol));
        }
        // Inference (no statistics saved) gives the same y.
        std::vector<T> yi(x.size());
        kernels::simd::layernorm_forward(A{}, x.data(), g, b, yi.data(), static_cast<T*>(nullptr),
                                         static_cast<T*>(nullptr), kRows, cols, T(1e-5));
        REQUIRE(yi == y);
        // Backward: dgamma/dbeta start at 1 to see that they accumulate.
        std::vector<T> dx(x.size()), dxr(x.size()), dg(static_cast<std::size_t>(cols), T(1)), dgr(dg), db(dg), dbr(dg);
        kernels::simd::layernorm_backward(A{}, x.data(), g, meanr.data(), rstdr.data(), dy.data(), dx.data(),
                                          dg.data(), db.data(), kRows, cols);
        kernels::ref::layernorm_backward(x.data(), g, meanr.data(), rstdr.data(), dy.data(), dxr.data(), dgr.data(),
                                         dbr.data(), kRows, cols);
        const T rs = rstdr[0];
        for (std::size_t i = 0; i < dx.size(); ++i) {
          INFO("layernorm_backward cols " << cols << " dx[" << i << "]: got " << dx[i] << ", want " << dxr[i]);
          REQUIRE(close_ulps(dx[i], dxr[i], rs * T(4), tol));
        }
        for (std::size_t c = 0; c < dg.size(); ++c) {
          INFO("dgamma/dbeta cols " << cols << " c " << c);
          REQUIRE(close_ulps(dg[c], dgr[c], T(1) + T(kRows) * T(3), 16));
          REQUIRE(close_ulps(db[c], dbr[c], T(1) + T(kRows), 16));
        }
      }
    }
  });
  REQUIRE(ran >= 1);
}

TEST_CASE("layernorm says so when a row's squares overflow (NaN, not a finite all-zero row)", "[kernels][layernorm]") {
  const int ran = test::for_each_arch([](auto arch, const char*) {
    using A = decltype(arch);
    for (index_t cols : {index_t(3), index_t(16), index_t(37)}) {
      // Row 0: +-1e30 (finite, but the centred squares overflow float); row 1: ordinary values.
      std::vector<float> x(static_cast<std::size_t>(2 * cols)), y(x.size());
      for (index_t c = 0; c < cols; ++c) {
        x[static_cast<std::size_t>(c)] = c % 2 ? 1e30f : -1e30f;
        x[static_cast<std::size_t>(cols + c)] = static_cast<float>(c % 5);
      }
      kernels::simd::layernorm_forward(A{}, x.data(), static_cast<const float*>(nullptr),
                                       static_cast<const float*>(nullptr), y.data(), static_cast<float*>(nullptr),
                                       static_cast<float*>(nullptr), 2, cols, 1e-5f);
      for (index_t c = 0; c < cols; ++c) {
        INFO("cols " << cols << " c " << c);
        REQUIRE(std::isnan(y[static_cast<std::size_t>(c)]));
        REQUIRE(std::isfinite(y[static_cast<std::size_t>(cols + c)]));
      }
    }
  });
  REQUIRE(ran >= 1);
}

TEST_CASE("layernorm backward matches finite differences (double)", "[kernels][layernorm][gradcheck]") {
  const index_t rows = 3, cols = 19;  // 19: a tail on every arch
  auto x = random_vec<double>(rows * cols, 31, -2, 2);
  auto gamma = random_vec<double>(cols, 32, 0.5, 1.5);
  auto beta = random_vec<double>(cols, 33, -1, 1);
  const auto w = random_vec<double>(rows * cols, 34, -1, 1);  // loss = sum(w * y)
  const double eps = 1e-5;
  std::vector<double> y(x.size()), mean(rows), rstd(rows), dx(x.size()), dg(static_cast<std::size_t>(cols), 0.0),
      db(dg);
  kernels::layernorm_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), rows, cols, eps);
  kernels::layernorm_backward(x.data(), gamma.data(), mean.data(), rstd.data(), w.data(), dx.data(), dg.data(),
                              db.data(), rows, cols);
  auto loss = [&]() {
    std::vector<double> yy(x.size());
    kernels::layernorm_forward(x.data(), gamma.data(), beta.data(), yy.data(), static_cast<double*>(nullptr),
                               static_cast<double*>(nullptr), rows, cols, eps);
    double s = 0;
    for (std::size_t i = 0; i < yy.size(); ++i) s += yy[i] * w[i];
    return s;
  };
  const auto r = gradcheck(loss, {{"x", x.data(), dx.data(), rows * cols},
                                  {"gamma", gamma.data(), dg.data(), cols},
                                  {"beta", beta.data(), db.data(), cols}},
                           {.eps = 1e-6, .atol = 1e-7, .rtol = 1e-6});
  INFO(r.worst << " (max abs error " << r.max_abs_error << ")");
  REQUIRE(r.checked == rows * cols + 2 * cols);
  REQUIRE(r.ok);
}

TEMPLATE_TEST_CASE("bias_gelu equals gelu(y + bias) and add_bias adds, on every arch", "[kernels][bias_act]", float,
                   double) {
  using T = TestType;
  const int ran = test::for_each_arch([](auto arch, const char*) {
    using A = decltype(arch);
    for (index_t cols : test::kernel_lengths()) {
      const index_t n = kRows * cols;
      const auto y0 = random_vec<T>(n, 41 + static_cast<std::uint64_t>(cols), -6, 6);
      const auto bias = random_vec<T>(cols, 42, -1, 1);
      auto y = y0, y2 = y0;
      std::vector<T> pre(y0.size()), want(y0.size());
      kernels::simd::bias_gelu(A{}, y.data(), bias.data(), kRows, cols, pre.data());
      kernels::simd::add_bias(A{}, y2.data(), bias.data(), kRows, cols);
      for (index_t r = 0; r < kRows; ++r)
        for (index_t c = 0; c < cols; ++c) {
          const auto i = static_cast<std::size_t>(r * cols + c);
          const T v = y0[i] + bias[static_cast<std::size_t>(c)];
          REQUIRE(pre[i] == v);
          REQUIRE(y2[i] == v);
          const T g = kernels::ref::gelu(v);
          INFO("bias_gelu cols " << cols << " v " << v << ": got " << y[i] << ", want " << g);
          REQUIRE(close_ulps(y[i], g, std::max(std::abs(g), std::abs(v) / 2), test::gelu_ulps<T>()));
        }
      // Without `pre` the output is the same.
      auto y3 = y0;
      kernels::simd::bias_gelu(A{}, y3.data(), bias.data(), kRows, cols, static_cast<T*>(nullptr));
      REQUIRE(y3 == y);
    }
  });
  REQUIRE(ran >= 1);
}

TEMPLATE_TEST_CASE("reductions match the twins on every arch", "[kernels][reduce]", float, double) {
  using T = TestType;
  const int ran = test::for_each_arch([](auto arch, const char*) {
    using A = decltype(arch);
    for (index_t n : test::kernel_lengths()) {
      const auto a = random_vec<T>(n, 51 + static_cast<std::uint64_t>(n), -2, 3);
      const auto b = random_vec<T>(n, 52 + static_cast<std::uint64_t>(n), -1, 1);
      double abs_a = 0, abs_ab = 0, sq = 0;
      for (std::size_t i = 0; i < a.size(); ++i) {
        abs_a += std::abs(static_cast<double>(a[i]));
        abs_ab += std::abs(static_cast<double>(a[i]) * static_cast<double>(b[i]));
        sq += static_cast<double>(a[i]) * static_cast<double>(a[i]);
      }
      const double g = 2 * static_cast<double>(n) * eps<T>();
      const double tiny = static_cast<double>(std::numeric_limits<T>::min());
      INFO("n " << n);
      REQUIRE(std::abs(static_cast<double>(kernels::simd::sum(A{}, a.data(), n) - kernels::ref::sum(a.data(), n))) <=
              g * abs_a + tiny);
      REQUIRE(std::abs(static_cast<double>(kernels::simd::dot(A{}, a.data(), b.data(), n) -
                                           kernels::ref::dot(a.data(), b.data(), n))) <= g * abs_ab + tiny);
      REQUIRE(std::abs(static_cast<double>(kernels::simd::sum_squares(A{}, a.data(), n) -
                                           kernels::ref::sum_squares(a.data(), n))) <= g * sq + tiny);
      REQUIRE(kernels::simd::max(A{}, a.data(), n) == kernels::ref::max(a.data(), n));
      // The max sits in the tail as well as in the body.
      if (n > 0) {
        auto m = a;
        m.back() = T(100);
        REQUIRE(kernels::simd::max(A{}, m.data(), n) == T(100));
      }
    }
  });
  REQUIRE(ran >= 1);
  REQUIRE(kernels::max(static_cast<const T*>(nullptr), 0) == -std::numeric_limits<T>::infinity());
  REQUIRE(kernels::sum(static_cast<const T*>(nullptr), 0) == T(0));
}

TEST_CASE("kernel archs under test", "[kernels]") {
  std::string ran, compiled_only, absent;
  for (const auto& a : test::kernel_archs()) {
    auto& dst = a.compiled ? (a.cpu ? ran : compiled_only) : absent;
    dst += std::string(dst.empty() ? "" : ", ") + a.name;
  }
  WARN("kernel archs tested: " << (ran.empty() ? "none" : ran)
                               << "; compiled in but not on this CPU: " << (compiled_only.empty() ? "none" : compiled_only)
                               << "; not compiled into this test: " << (absent.empty() ? "none" : absent)
                               << "; public entry points use " << xsimd::default_arch::name());
  REQUIRE(!ran.empty());
}
