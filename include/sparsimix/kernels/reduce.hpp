// Reductions over contiguous arrays, returning T. Scalar twins: ref/reduce.hpp.
// Float accumulates in float lanes (4 independent batch accumulators, then hadd), so the
// result differs from the sequential twin by rounding: both are within n * eps * sum|terms|
// of the exact value, which is the tolerance tests/kernels/test_reduce.cpp uses.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "detail/simd.hpp"
#include "ref/reduce.hpp"

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN

namespace detail {
// acc = f(acc, load(a + i), load(b + i)) over n with 4 accumulators (hides the add/fma
// latency), joined by `join`; tails padded with `fill`, the identity of the reduction.
template <class A, class T, class F, class J>
vec<T, A> reduce4(A, const T* a, const T* b, index_t n, T fill, F f, J join) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  V s0(fill), s1(fill), s2(fill), s3(fill);
  index_t i = 0;
  for (; i + 4 * w <= n; i += 4 * w) {
    s0 = f(s0, V::load_unaligned(a + i), V::load_unaligned(b + i));
    s1 = f(s1, V::load_unaligned(a + i + w), V::load_unaligned(b + i + w));
    s2 = f(s2, V::load_unaligned(a + i + 2 * w), V::load_unaligned(b + i + 2 * w));
    s3 = f(s3, V::load_unaligned(a + i + 3 * w), V::load_unaligned(b + i + 3 * w));
  }
  for (; i + w <= n; i += w) s0 = f(s0, V::load_unaligned(a + i), V::load_unaligned(b + i));
  if (i < n) s1 = f(s1, load_tail(A{}, a + i, n - i, fill), load_tail(A{}, b + i, n - i, fill));
  return join(join(s0, s1), join(s2, s3));
}
}  // namespace detail

// Sum of x[0..n) for one arch (0 for n == 0).
template <class A, class T>
[[gnu::flatten]] T sum(A, const T* x, index_t n) noexcept {
  using V = vec<T, A>;
  const auto add = [](const V& u, const V& v) { return u + v; };
  return xsimd::hadd(detail::reduce4(A{}, x, x, n, T(0), [](const V& s, const V& a, const V&) { return s + a; }, add));
}
// Dot product of a[0..n) and b[0..n) for one arch, fused multiply-adds.
template <class A, class T>
[[gnu::flatten]] T dot(A, const T* a, const T* b, index_t n) noexcept {
  using V = vec<T, A>;
  const auto add = [](const V& u, const V& v) { return u + v; };
  return xsimd::hadd(detail::reduce4(A{}, a, b, n, T(0), [](const V& s, const V& u, const V& v) {
    return xsimd::fma(u, v, s);
  }, add));
}
// Sum of x[i]^2 over n elements for one arch (squared L2 norm).
template <class A, class T>
[[gnu::flatten]] T sum_squares(A, const T* x, index_t n) noexcept {
  using V = vec<T, A>;
  const auto add = [](const V& u, const V& v) { return u + v; };
  return xsimd::hadd(detail::reduce4(A{}, x, x, n, T(0), [](const V& s, const V& u, const V&) {
    return xsimd::fma(u, u, s);
  }, add));
}
// -inf for n == 0, like ref::max.
template <class A, class T>
[[gnu::flatten]] T max(A, const T* x, index_t n) noexcept {
  using V = vec<T, A>;
  const T ninf = -std::numeric_limits<T>::infinity();
  return hmax(A{}, detail::reduce4(A{}, x, x, n, ninf, [](const V& s, const V& a, const V&) {
    return xsimd::max(s, a);
  }, [](const V& u, const V& v) { return xsimd::max(u, v); }));
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// Sum of x[0..n) (0 for n == 0), lane-parallel: see the header on rounding.
template <class T> T sum(const T* x, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(sum, x, n); }
// Dot product of a[0..n) and b[0..n).
template <class T> T dot(const T* a, const T* b, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(dot, a, b, n); }
// Largest of x[0..n); -inf for n == 0.
template <class T> T max(const T* x, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(max, x, n); }
// Sum of x[i]^2 over n elements (the squared L2 norm gradient clipping needs).
template <class T> T sum_squares(const T* x, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(sum_squares, x, n); }

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
