// LayerNorm over x, y, dy, dx: [rows, cols]; gamma, beta, dgamma, dbeta: [cols]; mean, rstd:
// [rows]. Ba et al. 2016, arXiv:1607.06450, eq. 4; biased variance, eps inside the sqrt, as
// torch.nn.LayerNorm. Scalar twins and the formulas: ref/layernorm.hpp.
// gamma/beta nullptr: no affine. Forward mean/rstd nullptr: inference (nothing saved).
// Backward dgamma/dbeta accumulate (+=) and may be nullptr; dx is overwritten.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <cmath>
#include <limits>

#include "detail/simd.hpp"
#include "ref/layernorm.hpp"

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN

// Two passes over the row (sum, then centred sum of squares) like the twin: E[x^2] - E[x]^2
// loses every digit when |mean| >> std, which happens after residual additions.
template <class A, class T>
[[gnu::flatten]] void layernorm_forward(A, const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, index_t rows,
                       index_t cols, T eps) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  SPARSIMIX_ASSERT(cols > 0 || rows == 0);  // a row needs at least one feature
  const T inv_n = T(1) / static_cast<T>(cols);
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    V vs(T(0));
    index_t c = 0;
    for (; c + w <= cols; c += w) vs += V::load_unaligned(xr + c);
    if (c < cols) vs += load_tail(A{}, xr + c, cols - c, T(0));
    const T mu_s = xsimd::hadd(vs) * inv_n;
    const V mu(mu_s);
    V vq(T(0));
    for (c = 0; c + w <= cols; c += w) {
      const V d = V::load_unaligned(xr + c) - mu;
      vq = xsimd::fma(d, d, vq);
    }
    if (c < cols) {
      const V d = load_tail(A{}, xr + c, cols - c, mu_s) - mu;  // padding with the mean adds 0
      vq = xsimd::fma(d, d, vq);
    }
    // A row whose squares overflow would give rstd 0 and an all-zero (finite, wrong) output:
    // make it NaN so that overflow shows in the result instead (as in float32 PyTorch).
    const T var = xsimd::hadd(vq) * inv_n;
    const V rs = std::isfinite(var) ? V(T(1)) / xsimd::sqrt(V(var + eps)) : V(std::numeric_limits<T>::quiet_NaN());
    if (mean) mean[r] = mu_s;
    if (rstd) rstd[r] = rs.get(0);
    const auto g_at = [gamma](index_t i) { return gamma ? V::load_unaligned(gamma + i) : V(T(1)); };
    const auto b_at = [beta](index_t i) { return beta ? V::load_unaligned(beta + i) : V(T(0)); };
    for (c = 0; c + w <= cols; c += w)
      xsimd::fma((V::load_unaligned(xr + c) - mu) * rs, g_at(c), b_at(c)).store_unaligned(yr + c);
    if (c < cols) {
      const index_t rem = cols - c;
      const V g = gamma ? load_tail(A{}, gamma + c, rem, T(1)) : V(T(1));
      const V b = beta ? load_tail(A{}, beta + c, rem, T(0)) : V(T(0));
      store_tail(A{}, xsimd::fma((load_tail(A{}, xr + c, rem, mu_s) - mu) * rs, g, b), yr + c, rem);
    }
  }
}

// LayerNorm backward for one arch: dx from dy and the saved mean and rstd; dgamma, dbeta +=.
template <class A, class T>
[[gnu::flatten]] void layernorm_backward(A, const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dgamma,
                        T* dbeta, index_t rows, index_t cols) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  SPARSIMIX_ASSERT(cols > 0 || rows == 0);  // a row needs at least one feature
  const T inv_n = T(1) / static_cast<T>(cols);
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    const T* gr = dy + r * cols;
    T* dr = dx + r * cols;
    const V mu(mean[r]), rs(rstd[r]);
    // Pass 1: sum(g), sum(g * xhat) and the parameter gradients, g = dy * gamma. One body
    // for full batches and the padded tail (x padded with the mean: xhat = 0; dy with 0).
    V sg(T(0)), sgx(T(0));
    const auto pass1 = [&](index_t c, const V& xv, const V& dyv, index_t rem) {
      const V xh = (xv - mu) * rs;
      const V g = gamma ? dyv * (rem == w ? V::load_unaligned(gamma + c) : load_tail(A{}, gamma + c, rem, T(0)))
                        : dyv;
      sg += g;
      sgx = xsimd::fma(g, xh, sgx);
      if (dgamma) {
        if (rem == w) xsimd::fma(dyv, xh, V::load_unaligned(dgamma + c)).store_unaligned(dgamma + c);
        else store_tail(A{}, xsimd::fma(dyv, xh, load_tail(A{}, dgamma + c, rem, T(0))), dgamma + c, rem);
      }
      if (dbeta) {
        if (rem == w) (V::load_unaligned(dbeta + c) + dyv).store_unaligned(dbeta + c);
        else store_tail(A{}, load_tail(A{}, dbeta + c, rem, T(0)) + dyv, dbeta + c, rem);
      }
    };
    index_t c = 0;
    for (; c + w <= cols; c += w) pass1(c, V::load_unaligned(xr + c), V::load_unaligned(gr + c), w);
    if (c < cols) pass1(c, load_tail(A{}, xr + c, cols - c, mean[r]), load_tail(A{}, gr + c, cols - c, T(0)), cols - c);
    const V a(xsimd::hadd(sg) * inv_n), b(xsimd::hadd(sgx) * inv_n);
    // Pass 2: dx = rstd * (g - a - xhat * b).
    const auto pass2 = [&](index_t i, const V& xv, const V& dyv, index_t rem) {
      const V xh = (xv - mu) * rs;
      const V g = gamma ? dyv * (rem == w ? V::load_unaligned(gamma + i) : load_tail(A{}, gamma + i, rem, T(0)))
                        : dyv;
      return rs * (g - a - xh * b);
    };
    for (c = 0; c + w <= cols; c += w)
      pass2(c, V::load_unaligned(xr + c), V::load_unaligned(gr + c), w).store_unaligned(dr + c);
    if (c < cols) {
      const index_t rem = cols - c;
      store_tail(A{}, pass2(c, load_tail(A{}, xr + c, rem, mean[r]), load_tail(A{}, gr + c, rem, T(0)), rem), dr + c,
                 rem);
    }
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// y = LayerNorm(x) row by row (header conventions); mean, rstd saved for backward unless nullptr.
template <class T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, index_t rows, index_t cols,
                       T eps) noexcept {
  SPARSIMIX_KERNELS_ENTRY(layernorm_forward, x, gamma, beta, y, mean, rstd, rows, cols, eps);
}
// dx = dL/dx from dy and the forward's mean and rstd; dgamma, dbeta += (each may be nullptr).
template <class T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dgamma,
                        T* dbeta, index_t rows, index_t cols) noexcept {
  SPARSIMIX_KERNELS_ENTRY(layernorm_backward, x, gamma, mean, rstd, dy, dx, dgamma, dbeta, rows, cols);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
