// Scalar reference twin of kernels/attention.hpp: the same per-(batch, head) contracts,
// written as the plainest loops (two passes per query row, std::exp). Tests compare the
// tiled online-softmax kernel and the full-matrix path against these.
#pragma once
#include <cmath>

#include "../../fwd.hpp"

namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// One (batch, head) of scaled dot-product attention, Vaswani et al. 2017 eq. 1:
//   o[i, :] = sum_j softmax_j(scale * q_i . k_j) v[j, :]
// q, k, v: [n, d] rows `ld` apart (views into a fused qkv buffer); o: [n, d] rows `ldo` apart.
template <class T>
void attention_online(const T* q, const T* k, const T* v, index_t ld, T* o, index_t ldo, index_t n, index_t d,
                      T scale) noexcept {
  for (index_t i = 0; i < n; ++i) {
    const T* qi = q + i * ld;
    T* oi = o + i * ldo;
    T mx = -INFINITY;
    for (index_t j = 0; j < n; ++j) {
      T s = 0;
      for (index_t c = 0; c < d; ++c) s += qi[c] * k[j * ld + c];
      mx = std::fmax(mx, scale * s);
    }
    for (index_t c = 0; c < d; ++c) oi[c] = 0;
    T l = 0;
    for (index_t j = 0; j < n; ++j) {
      T s = 0;
      for (index_t c = 0; c < d; ++c) s += qi[c] * k[j * ld + c];
      const T p = std::exp(scale * s - mx);
      l += p;
      for (index_t c = 0; c < d; ++c) oi[c] += p * v[j * ld + c];
    }
    for (index_t c = 0; c < d; ++c) oi[c] /= l;
  }
}

// p[i, j] = softmax_j(scale * q_i . k_j), p: [n, n] contiguous.
template <class T>
void attention_probs(const T* q, const T* k, index_t ld, index_t n, index_t d, T scale, T* p) noexcept {
  for (index_t i = 0; i < n; ++i) {
    T* pi = p + i * n;
    T mx = -INFINITY;
    for (index_t j = 0; j < n; ++j) {
      T s = 0;
      for (index_t c = 0; c < d; ++c) s += q[i * ld + c] * k[j * ld + c];
      pi[j] = scale * s;
      mx = std::fmax(mx, pi[j]);
    }
    T l = 0;
    for (index_t j = 0; j < n; ++j) l += (pi[j] = std::exp(pi[j] - mx));
    for (index_t j = 0; j < n; ++j) pi[j] /= l;
  }
}

// Backward of o = P v, P = softmax(scale q k^T), given dout [n, d] (rows `lddo` apart):
// writes dq, dk, dv ([n, d], rows `ldd` apart). dp: [n, n] scratch.
template <class T>
void attention_backward(const T* p, const T* q, const T* k, const T* v, index_t ld, const T* dout, index_t lddo,
                        index_t n, index_t d, T scale, T* dp, T* dq, T* dk, T* dv, index_t ldd) noexcept {
  for (index_t j = 0; j < n; ++j)
    for (index_t c = 0; c < d; ++c) {
      T s = 0;
      for (index_t i = 0; i < n; ++i) s += p[i * n + j] * dout[i * lddo + c];
      dv[j * ldd + c] = s;
    }
  for (index_t i = 0; i < n; ++i) {
    T dot = 0;
    for (index_t j = 0; j < n; ++j) {
      T s = 0;
      for (index_t c = 0; c < d; ++c) s += dout[i * lddo + c] * v[j * ld + c];
      dp[i * n + j] = s;
      dot += s * p[i * n + j];
    }
    // softmax backward, then the chain through the scale
    for (index_t j = 0; j < n; ++j) dp[i * n + j] = scale * p[i * n + j] * (dp[i * n + j] - dot);
  }
  for (index_t i = 0; i < n; ++i)
    for (index_t c = 0; c < d; ++c) {
      T s = 0;
      for (index_t j = 0; j < n; ++j) s += dp[i * n + j] * k[j * ld + c];
      dq[i * ldd + c] = s;
    }
  for (index_t j = 0; j < n; ++j)
    for (index_t c = 0; c < d; ++c) {
      T s = 0;
      for (index_t i = 0; i < n; ++i) s += dp[i * n + j] * q[i * ld + c];
      dk[j * ldd + c] = s;
    }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
