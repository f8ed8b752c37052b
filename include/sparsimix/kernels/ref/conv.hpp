// Scalar reference twin of kernels/conv.hpp: the causal (or anti-causal) depthwise conv1d
// over one packed sequence, and its backward.
#pragma once
#include "../../fwd.hpp"

namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// xc[t, c] = bias[c] + sum_k wt[k, c] x[t - (K-1) + k, c]  (reverse: x[t + (K-1) - k, c]).
template <class T>
void conv1d_depthwise_forward(const T* x, index_t ldx, const T* wt, const T* bias, T* xc, index_t L, index_t Di,
                              index_t K, bool reverse) noexcept {
  for (index_t t = 0; t < L; ++t)
    for (index_t c = 0; c < Di; ++c) {
      T acc = bias[c];
      for (index_t k = 0; k < K; ++k) {
        const index_t s = reverse ? t + (K - 1) - k : t - (K - 1) + k;
        if (s >= 0 && s < L) acc += wt[k * Di + c] * x[s * ldx + c];
      }
      xc[t * Di + c] = acc;
    }
}

// Adds dL/dx (rows ldx apart), dL/dwt [K, Di] and dL/dbias [Di] given gxc = dL/dxc.
template <class T>
void conv1d_depthwise_backward(const T* x, index_t ldx, const T* wt, const T* gxc, T* gx, T* gwt, T* gb, index_t L,
                               index_t Di, index_t K, bool reverse) noexcept {
  for (index_t t = 0; t < L; ++t)
    for (index_t c = 0; c < Di; ++c) {
      const T g = gxc[t * Di + c];
      gb[c] += g;
      for (index_t k = 0; k < K; ++k) {
        const index_t s = reverse ? t + (K - 1) - k : t - (K - 1) + k;
        if (s < 0 || s >= L) continue;
        gx[s * ldx + c] += wt[k * Di + c] * g;
        gwt[k * Di + c] += g * x[s * ldx + c];
      }
    }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
