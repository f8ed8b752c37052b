// Scalar reference twin of kernels/lstm.hpp (the recurrence of one head and direction, the
// fused gate/cell step and the hidden-to-hidden product). PyTorch nn.LSTM cell, gate order
// i, f, g, o (docs/method.md 1.3):
//   c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t).
// Tests compare the fast kernels against these, element by element.
#pragma once
#include <cmath>

#include "activations.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// One recurrence over a packed batch: sequence b owns rows [offset[b], offset[b + 1]) of the
// packed buffers (core/token_packing.hpp), walked forwards or, for the reverse direction,
// backwards.
template <class T>
struct lstm_problem {
  index_t batch = 0;                // B sequences
  index_t d = 0;                    // hidden units of the head (gates: G = 4d)
  const index_t* offset = nullptr;  // [B + 1]
  index_t max_len = 0;              // longest sequence
  bool reverse = false;             // walk each sequence backwards (the reverse direction)
};

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels

namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// hh[B, G] = hs[B, d] wt[d, G].
template <class T>
void lstm_hh_product(const T* hs, const T* wt, T* hh, index_t B, index_t d, index_t G) noexcept {
  for (index_t b = 0; b < B; ++b)
    for (index_t j = 0; j < G; ++j) {
      T acc = T(0);
      for (index_t k = 0; k < d; ++k) acc += hs[b * d + k] * wt[k * G + j];
      hh[b * G + j] = acc;
    }
}

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

// The forward recurrence (kernels/lstm.hpp has the contract).
template <class T>
void lstm_recurrence_forward(const lstm_problem<T>& p, T* gates, const T* wt, T* cells, T* hid, index_t ldh, T* hh,
                             T* hs, T* cs) noexcept {
  const index_t B = p.batch, d = p.d, G = 4 * d;
  for (index_t k = 0; k < B * d; ++k) hs[k] = cs[k] = T(0);
  for (index_t t = 0; t < p.max_len; ++t) {
    if (t > 0) lstm_hh_product(hs, wt, hh, B, d, G);
    for (index_t b = 0; b < B; ++b) {
      const index_t off = p.offset[b], len = p.offset[b + 1] - off;
      if (t >= len) continue;
      const index_t r = off + (p.reverse ? len - 1 - t : t);
      T* g = gates + r * G;
      if (t > 0)
        for (index_t k = 0; k < G; ++k) g[k] += hh[b * G + k];
      T* c = cells ? cells + r * d : cs + b * d;
      const T* cp = cells && t > 0 ? cells + (p.reverse ? r + 1 : r - 1) * d : cs + b * d;
      lstm_cell_forward(g, cp, c, hs + b * d, d);
      for (index_t k = 0; k < d; ++k) hid[r * ldh + k] = hs[b * d + k];
    }
  }
}

// BPTT (kernels/lstm.hpp has the contract).
template <class T>
void lstm_recurrence_backward(const lstm_problem<T>& p, const T* gates, const T* cells, const T* dhid, index_t ldh,
                              const T* whh, T* dg, T* dgs, T* dh, T* dc, T* zeros) noexcept {
  const index_t B = p.batch, d = p.d, G = 4 * d;
  for (index_t k = 0; k < B * G; ++k) dgs[k] = T(0);
  for (index_t k = 0; k < B * d; ++k) dh[k] = dc[k] = T(0);
  for (index_t k = 0; k < d; ++k) zeros[k] = T(0);
  for (index_t t = p.max_len - 1; t >= 0; --t) {
    for (index_t b = 0; b < B; ++b) {
      const index_t off = p.offset[b], len = p.offset[b + 1] - off;
      if (t >= len) continue;
      const index_t r = off + (p.reverse ? len - 1 - t : t);
      for (index_t k = 0; k < d; ++k) dh[b * d + k] += dhid[r * ldh + k];
      const T* cp = t == 0 ? zeros : cells + (p.reverse ? r + 1 : r - 1) * d;
      lstm_cell_backward(gates + r * G, cp, cells + r * d, dh + b * d, dc + b * d, dg + r * G, d);
      for (index_t k = 0; k < G; ++k) dgs[b * G + k] = dg[r * G + k];
    }
    if (t > 0) lstm_hh_product(dgs, whh, dh, B, G, d);
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
