// Depthwise conv1d over one packed sequence (the selective scan's causal conv; its reversed
// branch runs the anti-causal one in place, no flipped copy), forward and backward. SIMD axis:
// channels (contiguous). Arch-keyed with a scalar twin in ref/conv.hpp; the public entry
// points dispatch once per call (one sequence, one direction). Pointers only.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "detail/simd.hpp"
#include "ref/conv.hpp"

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN

// x rows ldx apart (a column block of a wider buffer); wt [K, Di]: the taps transposed so the
// channel loop is contiguous; xc [L, Di]. xc[t] = bias + sum_k wt[k] x[t - (K-1) + k]
// (reverse: x[t + (K-1) - k]); taps outside the sequence read 0.
template <class A, class T>
void conv1d_depthwise_forward(A, const T* x, index_t ldx, const T* wt, const T* bias, T* xc, index_t L, index_t Di,
                              index_t K, bool reverse) noexcept {
  using V = vec<T, A>;
  constexpr index_t W = static_cast<index_t>(V::size);
  for (index_t t = 0; t < L; ++t) {
    T* o = xc + t * Di;
    for (index_t c = 0; c < Di; ++c) o[c] = bias[c];
    // Tap by tap over all channels (streams x and w rows; the order of the sums is bias, then
    // taps in order, as in ref/conv.hpp).
    for (index_t k = 0; k < K; ++k) {
      const index_t s = reverse ? t + (K - 1) - k : t - (K - 1) + k;
      if (s < 0 || s >= L) continue;
      const T* xs = x + s * ldx;
      const T* w = wt + k * Di;
      index_t c = 0;
      for (; c + W <= Di; c += W)
        xsimd::fma(V::load_unaligned(w + c), V::load_unaligned(xs + c), V::load_unaligned(o + c)).store_unaligned(o + c);
      for (; c < Di; ++c) o[c] += w[c] * xs[c];
    }
  }
}

// Adds dL/dx (rows ldx apart), dL/dwt [K, Di] and dL/dbias [Di] given gxc = dL/dxc [L, Di].
template <class A, class T>
void conv1d_depthwise_backward(A, const T* x, index_t ldx, const T* wt, const T* gxc, T* gx, T* gwt, T* gb, index_t L,
                               index_t Di, index_t K, bool reverse) noexcept {
  using V = vec<T, A>;
  constexpr index_t W = static_cast<index_t>(V::size);
  for (index_t t = 0; t < L; ++t) {
    const T* g = gxc + t * Di;
    index_t c = 0;
    for (; c + W <= Di; c += W) {
      const V gv = V::load_unaligned(g + c);
      (V::load_unaligned(gb + c) + gv).store_unaligned(gb + c);
      for (index_t k = 0; k < K; ++k) {
        const index_t s = reverse ? t + (K - 1) - k : t - (K - 1) + k;
        if (s < 0 || s >= L) continue;
        T* gxs = gx + s * ldx + c;
        T* gw = gwt + k * Di + c;
        xsimd::fma(V::load_unaligned(wt + k * Di + c), gv, V::load_unaligned(gxs)).store_unaligned(gxs);
        xsimd::fma(gv, V::load_unaligned(x + s * ldx + c), V::load_unaligned(gw)).store_unaligned(gw);
      }
    }
    for (; c < Di; ++c) {
      gb[c] += g[c];
      for (index_t k = 0; k < K; ++k) {
        const index_t s = reverse ? t + (K - 1) - k : t - (K - 1) + k;
        if (s < 0 || s >= L) continue;
        gx[s * ldx + c] += wt[k * Di + c] * g[c];
        gwt[k * Di + c] += g[c] * x[s * ldx + c];
      }
    }
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// The causal (reverse: anti-causal) depthwise conv of one sequence: xc [L, Di] from x, wt
// [K, Di] and bias, as the arch-keyed kernel above.
template <class T>
void conv1d_depthwise_forward(const T* x, index_t ldx, const T* wt, const T* bias, T* xc, index_t L, index_t Di,
                              index_t K, bool reverse) noexcept {
  SPARSIMIX_KERNELS_ENTRY(conv1d_depthwise_forward, x, ldx, wt, bias, xc, L, Di, K, reverse);
}
// Adds dL/dx, dL/dwt and dL/dbias of one sequence given gxc = dL/dxc, as the arch-keyed
// kernel above.
template <class T>
void conv1d_depthwise_backward(const T* x, index_t ldx, const T* wt, const T* gxc, T* gx, T* gwt, T* gb, index_t L,
                               index_t Di, index_t K, bool reverse) noexcept {
  SPARSIMIX_KERNELS_ENTRY(conv1d_depthwise_backward, x, ldx, wt, gxc, gx, gwt, gb, L, Di, K, reverse);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
