// Row softmax over x, y: [rows, cols] (row-major, contiguous), numerically stable, and its
// backward. Scalar twins: ref/softmax.hpp. Three passes per row (max, exp + sum, scale):
// a row of a ViT attention matrix (N <= a few thousand) stays in L1/L2 between passes.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "detail/simd.hpp"
#include "ref/softmax.hpp"

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN

// y = exp(x - max) / sum(exp(x - max)) per row; y may alias x. Tails pad with -inf, which
// neither wins the max nor adds to the sum (exp(-inf) = 0). A row of all -inf gives NaN,
// as in PyTorch and ref::softmax_rows.
template <class A, class T>
[[gnu::flatten]] void softmax_rows(A, const T* x, T* y, index_t rows, index_t cols) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  const T ninf = -std::numeric_limits<T>::infinity();
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    V vm(ninf);
    index_t c = 0;
    for (; c + w <= cols; c += w) vm = xsimd::max(vm, V::load_unaligned(xr + c));
    if (c < cols) vm = xsimd::max(vm, load_tail(A{}, xr + c, cols - c, ninf));
    const V m(hmax(A{}, vm));
    V vs(T(0));
    for (c = 0; c + w <= cols; c += w) {
      const V e = simd::fast_exp(V::load_unaligned(xr + c) - m);
      e.store_unaligned(yr + c);
      vs += e;
    }
    if (c < cols) {
      const V e = simd::fast_exp(load_tail(A{}, xr + c, cols - c, ninf) - m);
      store_tail(A{}, e, yr + c, cols - c);
      vs += e;
    }
    const V inv(T(1) / xsimd::hadd(vs));
    for (c = 0; c + w <= cols; c += w) (V::load_unaligned(yr + c) * inv).store_unaligned(yr + c);
    if (c < cols) store_tail(A{}, load_tail(A{}, yr + c, cols - c, T(0)) * inv, yr + c, cols - c);
  }
}

// dx = y * (dy - sum(dy * y)) per row; dx may alias dy.
template <class A, class T>
[[gnu::flatten]] void softmax_rows_backward(A, const T* y, const T* dy, T* dx, index_t rows, index_t cols) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  for (index_t r = 0; r < rows; ++r) {
    const T* yr = y + r * cols;
    const T* gr = dy + r * cols;
    T* dr = dx + r * cols;
    V vd(T(0));
    index_t c = 0;
    for (; c + w <= cols; c += w) vd = xsimd::fma(V::load_unaligned(gr + c), V::load_unaligned(yr + c), vd);
    if (c < cols) vd = xsimd::fma(load_tail(A{}, gr + c, cols - c, T(0)), load_tail(A{}, yr + c, cols - c, T(0)), vd);
    const V d(xsimd::hadd(vd));
    for (c = 0; c + w <= cols; c += w)
      (V::load_unaligned(yr + c) * (V::load_unaligned(gr + c) - d)).store_unaligned(dr + c);
    if (c < cols) {
      const V g = load_tail(A{}, yr + c, cols - c, T(0)) * (load_tail(A{}, gr + c, cols - c, T(0)) - d);
      store_tail(A{}, g, dr + c, cols - c);
    }
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// Softmax of each row of x [rows, cols] into y (the attention maps); y may alias x.
template <class T>
void softmax_rows(const T* x, T* y, index_t rows, index_t cols) noexcept {
  SPARSIMIX_KERNELS_ENTRY(softmax_rows, x, y, rows, cols);
}
// dx = y * (dy - sum(dy * y)) per row, the softmax backward; dx may alias dy.
template <class T>
void softmax_rows_backward(const T* y, const T* dy, T* dx, index_t rows, index_t cols) noexcept {
  SPARSIMIX_KERNELS_ENTRY(softmax_rows_backward, y, dy, dx, rows, cols);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
