// Elementwise activations over contiguous arrays, written once over xsimd::batch<T, Arch>
// (STYLE.md section 4). y may alias x. Scalar twins: ref/activations.hpp.
//
//   kernels::gelu(x, y, n)                  public entry: xsimd::default_arch (the caller's
//                                           -m flags), or the runtime dispatcher when the
//                                           target opted in (cmake/sparsimixDispatch.cmake)
//   kernels::simd::gelu(Arch{}, x, y, n)    one arch, for code that is itself arch-templated
//   kernels::simd::gelu(batch)              one batch, for fusing into other kernels
//
// Accuracy against the libm twins (measured over 2e5 points in [-12, 12], same on sse2, avx2
// and avx512bw; tests/kernels asserts the bounds in brackets): exp 1.0 ulp, sigmoid 1.4,
// tanh 1.8, silu 2.0, softplus 1.6 [4]; GELU float 1.5 [4], double 34 [64] ulp of
// max(|gelu(x)|, |x|/2) (xsimd 8.1's double erf; 0.5 x (1 + erf) cancels for x << 0 in both,
// as in PyTorch's formula). Results below the smallest normal may come back as 0.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "detail/simd.hpp"
#include "ref/activations.hpp"

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN

// ---- one batch ------------------------------------------------------------------------
// Logistic sigmoid 1 / (1 + exp(-x)) of one batch (0 where exp(-x) overflows).
template <class T, class A>
vec<T, A> sigmoid(const vec<T, A>& x) noexcept {
  using V = vec<T, A>;
  return V(T(1)) / (V(T(1)) + simd::fast_exp(-x));  // exp(50) is finite in float; exp(-x) = inf gives 0
}
// SiLU x * sigmoid(x) of one batch (Mamba's gate activation).
template <class T, class A>
vec<T, A> silu(const vec<T, A>& x) noexcept {
  return x * sigmoid(x);
}
// PyTorch's softplus (beta 1, threshold 20): identity above 20, where log1p(exp(x)) == x
// in float and exp would overflow past 88.
template <class T, class A>
vec<T, A> softplus(const vec<T, A>& x) noexcept {
  using V = vec<T, A>;
  return xsimd::select(x > V(T(20)), x, xsimd::log1p(simd::fast_exp(x)));
}
// Exact GELU, x/2 (1 + erf(x / sqrt 2)), torch.nn.GELU(approximate='none').
template <class T, class A>
vec<T, A> gelu(const vec<T, A>& x) noexcept {
  using V = vec<T, A>;
  return V(T(0.5)) * x * (V(T(1)) + xsimd::erf(x * V(T(0.70710678118654752440))));
}
// d gelu / dx = Phi(x) + x phi(x).
template <class T, class A>
vec<T, A> gelu_grad(const vec<T, A>& x) noexcept {
  using V = vec<T, A>;
  const V cdf = V(T(0.5)) * (V(T(1)) + xsimd::erf(x * V(T(0.70710678118654752440))));
  const V pdf = simd::fast_exp(V(T(-0.5)) * x * x) * V(T(0.39894228040143267794));
  return cdf + x * pdf;
}
// d silu / dx = s (1 + x (1 - s)), s = sigmoid(x).
template <class T, class A>
vec<T, A> silu_grad(const vec<T, A>& x) noexcept {
  using V = vec<T, A>;
  const V s = sigmoid(x);
  return s * (V(T(1)) + x * (V(T(1)) - s));
}

// ---- one arch, whole arrays -------------------------------------------------------------
// y = exp(x) for one arch.
template <class A, class T>
[[gnu::flatten]] void exp(A, const T* x, T* y, index_t n) noexcept {
  map(A{}, x, y, n, [](const vec<T, A>& v) { return simd::fast_exp(v); });
}
// y = sigmoid(x) for one arch.
template <class A, class T>
[[gnu::flatten]] void sigmoid(A, const T* x, T* y, index_t n) noexcept {
  map(A{}, x, y, n, [](const vec<T, A>& v) { return sigmoid(v); });
}
// y = tanh(x) for one arch.
template <class A, class T>
[[gnu::flatten]] void tanh(A, const T* x, T* y, index_t n) noexcept {
  map(A{}, x, y, n, [](const vec<T, A>& v) { return simd::fast_tanh(v); });
}
// y = silu(x) for one arch.
template <class A, class T>
[[gnu::flatten]] void silu(A, const T* x, T* y, index_t n) noexcept {
  map(A{}, x, y, n, [](const vec<T, A>& v) { return silu(v); });
}
// y = softplus(x) for one arch.
template <class A, class T>
[[gnu::flatten]] void softplus(A, const T* x, T* y, index_t n) noexcept {
  map(A{}, x, y, n, [](const vec<T, A>& v) { return softplus(v); });
}
// y = gelu(x), exact erf form, for one arch.
template <class A, class T>
[[gnu::flatten]] void gelu(A, const T* x, T* y, index_t n) noexcept {
  map(A{}, x, y, n, [](const vec<T, A>& v) { return gelu(v); });
}
// dx = dy * gelu'(x); dx may alias dy.
template <class A, class T>
[[gnu::flatten]] void gelu_backward(A, const T* x, const T* dy, T* dx, index_t n) noexcept {
  map_grad(A{}, x, dy, dx, n, [](const vec<T, A>& v) { return gelu_grad(v); });
}
// dx = dy * silu'(x); dx may alias dy.
template <class A, class T>
[[gnu::flatten]] void silu_backward(A, const T* x, const T* dy, T* dx, index_t n) noexcept {
  map_grad(A{}, x, dy, dx, n, [](const vec<T, A>& v) { return silu_grad(v); });
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

// Public entry points: once per call over the whole array (STYLE.md section 5).
namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// y = exp(x) over n elements; y may alias x.
template <class T> void exp(const T* x, T* y, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(exp, x, y, n); }
// y = sigmoid(x) over n elements; y may alias x.
template <class T> void sigmoid(const T* x, T* y, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(sigmoid, x, y, n); }
// y = tanh(x) over n elements; y may alias x.
template <class T> void tanh(const T* x, T* y, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(tanh, x, y, n); }
// y = silu(x) = x * sigmoid(x) over n elements; y may alias x.
template <class T> void silu(const T* x, T* y, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(silu, x, y, n); }
// y = softplus(x) = log(1 + exp(x)) over n elements (PyTorch's threshold 20); y may alias x.
template <class T> void softplus(const T* x, T* y, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(softplus, x, y, n); }
// y = gelu(x), exact erf form, over n elements; y may alias x.
template <class T> void gelu(const T* x, T* y, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(gelu, x, y, n); }
// dx = dy * gelu'(x) over n elements; dx may alias dy.
template <class T> void gelu_backward(const T* x, const T* dy, T* dx, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(gelu_backward, x, dy, dx, n); }
// dx = dy * silu'(x) over n elements; dx may alias dy.
template <class T> void silu_backward(const T* x, const T* dy, T* dx, index_t n) noexcept { SPARSIMIX_KERNELS_ENTRY(silu_backward, x, dy, dx, n); }

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
