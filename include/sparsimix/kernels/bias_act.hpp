// Fused bias + activation over y, pre: [rows, cols] with bias: [cols] (the epilogue of a
// Linear: one pass over the GEMM output instead of two). Scalar twins: ref/bias_act.hpp.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "activations.hpp"
#include "ref/bias_act.hpp"

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN

namespace detail {
// y[r, c] = f(y[r, c] + bias[c]); pre (if not nullptr) receives y + bias.
template <class A, class T, class F>
void bias_map(A, T* y, const T* bias, index_t rows, index_t cols, T* pre, F f) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  for (index_t r = 0; r < rows; ++r) {
    T* yr = y + r * cols;
    T* pr = pre ? pre + r * cols : nullptr;
    index_t c = 0;
    for (; c + w <= cols; c += w) {
      const V v = V::load_unaligned(yr + c) + V::load_unaligned(bias + c);
      if (pr) v.store_unaligned(pr + c);
      f(v).store_unaligned(yr + c);
    }
    if (c < cols) {
      const index_t rem = cols - c;
      const V v = load_tail(A{}, yr + c, rem, T(0)) + load_tail(A{}, bias + c, rem, T(0));
      if (pr) store_tail(A{}, v, pr + c, rem);
      store_tail(A{}, f(v), yr + c, rem);
    }
  }
}
}  // namespace detail

// y[r, c] += bias[c] for one arch.
template <class A, class T>
[[gnu::flatten]] void add_bias(A, T* y, const T* bias, index_t rows, index_t cols) noexcept {
  detail::bias_map(A{}, y, bias, rows, cols, static_cast<T*>(nullptr), [](const vec<T, A>& v) { return v; });
}
// y = gelu(y + bias) for one arch; pre (if not nullptr) receives y + bias for gelu_backward.
template <class A, class T>
[[gnu::flatten]] void bias_gelu(A, T* y, const T* bias, index_t rows, index_t cols, T* pre) noexcept {
  detail::bias_map(A{}, y, bias, rows, cols, pre, [](const vec<T, A>& v) { return gelu(v); });
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// y[r, c] += bias[c] over a [rows, cols] buffer (a Linear's epilogue).
template <class T>
void add_bias(T* y, const T* bias, index_t rows, index_t cols) noexcept {
  SPARSIMIX_KERNELS_ENTRY(add_bias, y, bias, rows, cols);
}
// y = gelu(y + bias) over [rows, cols], in one pass; pre (if not nullptr) receives y + bias,
// which gelu_backward needs.
template <class T>
void bias_gelu(T* y, const T* bias, index_t rows, index_t cols, T* pre) noexcept {
  SPARSIMIX_KERNELS_ENTRY(bias_gelu, y, bias, rows, cols, pre);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
