// The fused LSTM step (gates, cell, hidden) and its backward, over the d hidden units of
// one head for one token. PyTorch nn.LSTM cell, gate order i, f, g, o (METHOD.md 1.3).
// The transcendental work goes through kernels::sigmoid / kernels::tanh over whole gate
// slices (xsimd); the products are plain contiguous loops the compiler vectorises.
// Scalar twins: kernels/ref/lstm.hpp. Pointers only, no allocation.
#pragma once
#include "activations.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// gates [4d]: pre-activations (i | f | g | o) in, activations out (kept for backward).
// c_prev, c [d] (may alias): c_{t-1} in, c_t out. h [d]: h_t = o * tanh(c_t) out.
template <class T>
void lstm_cell_forward(T* gates, const T* c_prev, T* c, T* h, index_t d) noexcept {
  T* i = gates;
  T* f = gates + d;
  T* g = gates + 2 * d;
  T* o = gates + 3 * d;
  sigmoid(gates, gates, 2 * d);  // i and f are adjacent: one call
  tanh(g, g, d);
  sigmoid(o, o, d);
  for (index_t k = 0; k < d; ++k) c[k] = f[k] * c_prev[k] + i[k] * g[k];
  tanh(c, h, d);
  for (index_t k = 0; k < d; ++k) h[k] *= o[k];
}

// Backward of one step. gates [4d]: saved activations; c_prev, c [d]; dh [d]: dL/dh_t
// (output plus recurrent gradient); dc [d]: dL/dc_t from step t+1 in, dL/dc_{t-1} out;
// dpre [4d]: dL/d(pre-activations) out. c must not alias dpre.
template <class T>
void lstm_cell_backward(const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dpre,
                        index_t d) noexcept {
  const T* i = gates;
  const T* f = gates + d;
  const T* g = gates + 2 * d;
  const T* o = gates + 3 * d;
  T* tc = dpre + 3 * d;  // tanh(c_t) lives in the o slot until that slot's own value is written
  tanh(c, tc, d);
  for (index_t k = 0; k < d; ++k) {
    const T t = tc[k];
    const T dct = dc[k] + dh[k] * o[k] * (T(1) - t * t);
    dpre[k] = dct * g[k] * i[k] * (T(1) - i[k]);
    dpre[d + k] = dct * c_prev[k] * f[k] * (T(1) - f[k]);
    dpre[2 * d + k] = dct * i[k] * (T(1) - g[k] * g[k]);
    dpre[3 * d + k] = dh[k] * t * o[k] * (T(1) - o[k]);
    dc[k] = dct * f[k];
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
