// Every compiled xsimd arch against the scalar twins in kernels/ref/activations.hpp.
//
// Tolerance (written per kernel below): |simd - ref| <= K ulp of a scale, in T.
//   exp, sigmoid, tanh, silu, softplus: 4 ulp of |ref|. xsimd is within 1-2 ulp of a
//     correctly rounded result and glibc's libm within 1 (TOOLCHAIN.md), so 4 leaves margin.
//   gelu: test::gelu_ulps<T>() (4 float, 64 double: xsimd's double erf, measured 34) ulp of
//     max(|ref|, |x|/2). 0.5 x (1 + erf) cancels for x << 0 in both versions (PyTorch's
//     formula), so the error is relative to the terms, not to the result.
//   Any kernel: differences below the smallest normal pass (xsimd flushes subnormal results).
//   gelu_backward, silu_backward: 8 ulp of |dy| (1 + |x|), the size of the summed terms.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include <sparsimix/core/rng.hpp>

#include "arch_loop.hpp"

using namespace sparsimix;
using test::close_ulps;

namespace {

// Random values in [-12, 12] with the edge cases spliced in where the length allows:
// overflow and underflow of exp, softplus around its threshold 20, sigmoid of +-50.
template <class T>
std::vector<T> inputs(index_t n, std::uint64_t seed) {
  std::vector<T> x(static_cast<std::size_t>(n));
  Rng rng(seed);
  fill_uniform(rng, x.data(), n, -12.0, 12.0);
  const T special[] = {T(50),   T(-50),  T(0),   T(-0.0), T(19.5), T(20),    T(20.5), T(25),    T(88),
                       T(89),   T(-87),  T(-104), T(100), T(-100), T(1e-6), T(-1e-6), T(709),  T(-745), T(3),
                       T(-3),   T(-6),   T(6),   T(0.5),  T(-0.5)};
  const index_t ns = static_cast<index_t>(sizeof(special) / sizeof(special[0]));
  for (index_t i = 0; i < n && i < ns; ++i) x[static_cast<std::size_t>((i * 7) % n)] = special[i];
  return x;
}

template <class T>
using unary_fn = std::function<void(const T*, T*, index_t)>;

// Runs `simd` and the twin over every length; compares with `ulps` units of scale(x, ref).
template <class T, class Scale>
void check_unary(const char* what, const unary_fn<T>& simd, const unary_fn<T>& ref, double ulps, Scale scale) {
  for (index_t n : test::kernel_lengths()) {
    const auto x = inputs<T>(n, 42 + static_cast<std::uint64_t>(n));
    std::vector<T> got(x.size() + 1, T(-7)), want(x.size());
    simd(x.data(), got.data(), n);
    ref(x.data(), want.data(), n);
    REQUIRE(got[x.size()] == T(-7));  // nothing written past n
    for (index_t i = 0; i < n; ++i) {
      const auto k = static_cast<std::size_t>(i);
      INFO(what << " n " << n << " x[" << i << "] = " << x[k] << ": got " << got[k] << ", want " << want[k]);
      REQUIRE(close_ulps(got[k], want[k], scale(x[k], want[k]), ulps));
    }
    // In place (y aliases x) gives the same values.
    auto inplace = x;
    simd(inplace.data(), inplace.data(), n);
    for (index_t i = 0; i < n; ++i) REQUIRE(inplace[static_cast<std::size_t>(i)] == got[static_cast<std::size_t>(i)]);
  }
}

template <class T>
T of_ref(T, T r) {
  return std::abs(r);
}

}  // namespace

TEMPLATE_TEST_CASE("activation kernels match their scalar twins on every arch", "[kernels][activations]", float,
                   double) {
  using T = TestType;
  const int ran = test::for_each_arch([](auto arch, const char* name) {
    using A = decltype(arch);
    INFO("arch " << name);
    namespace s = kernels::simd;
    namespace r = kernels::ref;
    check_unary<T>("exp", [](const T* x, T* y, index_t n) { s::exp(A{}, x, y, n); }, &r::exp<T>, 4, of_ref<T>);
    check_unary<T>("sigmoid", [](const T* x, T* y, index_t n) { s::sigmoid(A{}, x, y, n); },
                   [](const T* x, T* y, index_t n) { r::sigmoid(x, y, n); }, 4, of_ref<T>);
    check_unary<T>("tanh", [](const T* x, T* y, index_t n) { s::tanh(A{}, x, y, n); }, &r::tanh<T>, 4, of_ref<T>);
    check_unary<T>("silu", [](const T* x, T* y, index_t n) { s::silu(A{}, x, y, n); },
                   [](const T* x, T* y, index_t n) { r::silu(x, y, n); }, 4, of_ref<T>);
    check_unary<T>("softplus", [](const T* x, T* y, index_t n) { s::softplus(A{}, x, y, n); },
                   [](const T* x, T* y, index_t n) { r::softplus(x, y, n); }, 4, of_ref<T>);
    check_unary<T>("gelu", [](const T* x, T* y, index_t n) { s::gelu(A{}, x, y, n); },
                   [](const T* x, T* y, index_t n) { r::gelu(x, y, n); }, test::gelu_ulps<T>(),
                   [](T x, T rv) { return std::max(std::abs(rv), std::abs(x) / 2); });
    // Backward: dy fixed per element, compared with 8 ulp of |dy| (1 + |x|).
    for (index_t n : test::kernel_lengths()) {
      const auto x = inputs<T>(n, 7 + static_cast<std::uint64_t>(n));
      auto dy = inputs<T>(n, 99 + static_cast<std::uint64_t>(n));
      for (auto& v : dy) v = v / T(10);
      std::vector<T> got(x.size()), want(x.size());
      for (int which = 0; which < 2; ++which) {
        if (which == 0) {
          s::gelu_backward(A{}, x.data(), dy.data(), got.data(), n);
          r::gelu_backward(x.data(), dy.data(), want.data(), n);
        } else {
          s::silu_backward(A{}, x.data(), dy.data(), got.data(), n);
          r::silu_backward(x.data(), dy.data(), want.data(), n);
        }
        for (std::size_t i = 0; i < x.size(); ++i) {
          INFO((which == 0 ? "gelu_backward" : "silu_backward") << " n " << n << " x " << x[i] << " dy " << dy[i]
                                                                << ": got " << got[i] << ", want " << want[i]);
          REQUIRE(close_ulps(got[i], want[i], std::abs(dy[i]) * (T(1) + std::abs(x[i])), 8));
        }
      }
    }
  });
  REQUIRE(ran >= 1);
}

TEMPLATE_TEST_CASE("public activation entry points use the compile-time arch and agree with the twins",
                   "[kernels][activations]", float, double) {
  using T = TestType;
  const index_t n = 1000;
  const auto x = inputs<T>(n, 5);
  std::vector<T> got(x.size()), want(x.size());
  kernels::gelu(x.data(), got.data(), n);
  kernels::ref::gelu(x.data(), want.data(), n);
  for (std::size_t i = 0; i < x.size(); ++i)
    REQUIRE(close_ulps(got[i], want[i], std::max(std::abs(want[i]), std::abs(x[i]) / 2), test::gelu_ulps<T>()));
  kernels::softplus(x.data(), got.data(), n);
  kernels::ref::softplus(x.data(), want.data(), n);
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(close_ulps(got[i], want[i], std::abs(want[i]), 4));
  // PyTorch's threshold: identity strictly above 20.
  const T big[] = {T(20.5), T(30), T(1e4)};
  T out[3];
  kernels::softplus(big, out, 3);
  for (int i = 0; i < 3; ++i) REQUIRE(out[i] == big[i]);
  // Saturation without NaN: sigmoid(+-50), tanh(+-50), exp overflow to inf.
  const T sat[] = {T(50), T(-50), T(1000), T(-1000)};
  T o[4];
  kernels::sigmoid(sat, o, 4);
  REQUIRE(o[0] == T(1));
  REQUIRE(o[1] >= T(0));
  REQUIRE(o[1] < T(1e-21));
  REQUIRE(o[2] == T(1));
  REQUIRE(o[3] == T(0));
  kernels::tanh(sat, o, 4);
  REQUIRE(o[0] == T(1));
  REQUIRE(o[1] == T(-1));
  kernels::exp(sat, o, 4);
  REQUIRE(std::isinf(o[2]));
  REQUIRE(o[3] == T(0));
}

// fast_exp replaces xsimd::exp in every kernel (AVX-512 float: a vscalefps variant). The
// edge cases the kernels rely on: masked softmax keys (-inf) give exactly 0, overflow gives
// inf, NaN stays NaN (check_finite must still see it), and the polynomial agrees with the
// correctly rounded exp over the whole normal range.
TEMPLATE_TEST_CASE("fast_exp keeps exp's edge cases and accuracy on every arch", "[kernels][activations]", float,
                   double) {
  using T = TestType;
  const int ran = test::for_each_arch([](auto arch, const char* name) {
    using A = decltype(arch);
    using V = kernels::simd::vec<T, A>;
    constexpr std::size_t w = V::size;
    INFO("arch " << name);
    const T inf = std::numeric_limits<T>::infinity();
    const std::vector<T> specials = {-inf, inf, std::numeric_limits<T>::quiet_NaN(), T(-88.38), T(-1000), T(1000), T(0)};
    std::vector<T> in(((specials.size() + w - 1) / w) * w, T(0)), out(in.size());
    std::copy(specials.begin(), specials.end(), in.begin());
    for (std::size_t i = 0; i < in.size(); i += w)
      kernels::simd::fast_exp(V::load_unaligned(in.data() + i)).store_unaligned(out.data() + i);
    CHECK(out[0] == T(0));
    CHECK(std::isinf(out[1]));
    CHECK(out[1] > 0);
    CHECK(std::isnan(out[2]));
    CHECK(out[3] >= T(0));
    CHECK(out[3] < T(1e-37));
    CHECK(out[4] == T(0));
    CHECK(std::isinf(out[5]));
    CHECK(out[6] == T(1));
    // Every 1/64 step over the normal-result range (xsimd gives inf from 88.376 on, a little early):
    // within 2 ulp of the correctly rounded value.
    const double lo = std::is_same_v<T, float> ? -87.3 : -700, hi = std::is_same_v<T, float> ? 88.37 : 709;
    std::vector<T> xs;
    for (double x = lo; x <= hi; x += 1.0 / 64) xs.push_back(static_cast<T>(x));
    xs.resize(((xs.size() + w - 1) / w) * w, T(0));
    std::vector<T> ys(xs.size());
    for (std::size_t i = 0; i < xs.size(); i += w)
      kernels::simd::fast_exp(V::load_unaligned(xs.data() + i)).store_unaligned(ys.data() + i);
    for (std::size_t i = 0; i < xs.size(); ++i) {
      INFO("x = " << xs[i]);
      REQUIRE(close_ulps(ys[i], std::exp(xs[i]), std::exp(xs[i]), 2));
    }
  });
  REQUIRE(ran >= 1);
}
