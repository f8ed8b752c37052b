// Scalar reference twins of kernels/bias_act.hpp. y, pre: [rows, cols]; bias: [cols].
#pragma once
#include "activations.hpp"

namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// y[r, c] += bias[c]
template <class T>
void add_bias(T* y, const T* bias, index_t rows, index_t cols) noexcept {
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c) y[r * cols + c] += bias[c];
}

// y[r, c] = gelu(y[r, c] + bias[c]); pre (if not nullptr) receives y + bias, which
// gelu_backward needs.
template <class T>
void bias_gelu(T* y, const T* bias, index_t rows, index_t cols, T* pre) noexcept {
  for (index_t r = 0; r < rows; ++r)
    for (index_t c = 0; c < cols; ++c) {
      const T v = y[r * cols + c] + bias[c];
      if (pre) pre[r * cols + c] = v;
      y[r * cols + c] = gelu(v);
    }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
