// Scalar reference twins of kernels/softmax.hpp. x, y, dy, dx: [rows, cols], row-major.
#pragma once
#include <cmath>
#include <limits>

#include "../../fwd.hpp"

namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// y = exp(x - max) / sum(exp(x - max)) per row. Subtracting the row max keeps exp from
// overflowing for huge logits; multiplying by 1/sum is what PyTorch's vectorised CPU kernel
// does. A row of all -inf gives NaN, as in PyTorch. y may alias x.
template <class T>
void softmax_rows(const T* x, T* y, index_t rows, index_t cols) noexcept {
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T m = -std::numeric_limits<T>::infinity();
    for (index_t c = 0; c < cols; ++c) m = xr[c] > m ? xr[c] : m;
    T s = 0;
    for (index_t c = 0; c < cols; ++c) {
      const T e = std::exp(xr[c] - m);
      yr[c] = e;
      s += e;
    }
    const T inv = T(1) / s;
    for (index_t c = 0; c < cols; ++c) yr[c] *= inv;
  }
}

// dx = y * (dy - sum(dy * y)) per row (the softmax Jacobian-vector product). dx may alias dy.
template <class T>
void softmax_rows_backward(const T* y, const T* dy, T* dx, index_t rows, index_t cols) noexcept {
  for (index_t r = 0; r < rows; ++r) {
    const T* yr = y + r * cols;
    const T* gr = dy + r * cols;
    T* dr = dx + r * cols;
    T d = 0;
    for (index_t c = 0; c < cols; ++c) d += gr[c] * yr[c];
    for (index_t c = 0; c < cols; ++c) dr[c] = yr[c] * (gr[c] - d);
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
