// Scalar reference twin of kernels/lstm.hpp (the fused LSTM gate/cell step and its
// backward). PyTorch nn.LSTM cell, gate order i, f, g, o (METHOD.md 1.3):
//   c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t).
// Tests compare the fast kernels against these, element by element.
#pragma once
#include <cmath>

#include "activations.hpp"

namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// gates [4d]: pre-activations (i | f | g | o) in, activations out. c_prev, c [d] (may alias):
// c_{t-1} in, c_t out. h [d]: h_t out.
template <class T>
void lstm_cell_forward(T* gates, const T* c_prev, T* c, T* h, index_t d) noexcept {
  for (index_t k = 0; k < d; ++k) {
    const T i = sigmoid(gates[k]);
    const T f = sigmoid(gates[d + k]);
    const T g = std::tanh(gates[2 * d + k]);
    const T o = sigmoid(gates[3 * d + k]);
    const T ct = f * c_prev[k] + i * g;
    gates[k] = i;
    gates[d + k] = f;
    gates[2 * d + k] = g;
    gates[3 * d + k] = o;
    c[k] = ct;
    h[k] = o * std::tanh(ct);
  }
}

// Backward of one step. gates [4d]: the activations saved by the forward; c_prev, c [d];
// dh [d]: dL/dh_t (output gradient plus the recurrent one); dc [d]: dL/dc_t coming from
// step t+1 in, dL/dc_{t-1} out; dpre [4d]: dL/d(pre-activations) out.
template <class T>
void lstm_cell_backward(const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dpre,
                        index_t d) noexcept {
  for (index_t k = 0; k < d; ++k) {
    const T i = gates[k], f = gates[d + k], g = gates[2 * d + k], o = gates[3 * d + k];
    const T tc = std::tanh(c[k]);
    const T dct = dc[k] + dh[k] * o * (T(1) - tc * tc);
    dpre[k] = dct * g * i * (T(1) - i);
    dpre[d + k] = dct * c_prev[k] * f * (T(1) - f);
    dpre[2 * d + k] = dct * i * (T(1) - g * g);
    dpre[3 * d + k] = dh[k] * tc * o * (T(1) - o);
    dc[k] = dct * f;
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
