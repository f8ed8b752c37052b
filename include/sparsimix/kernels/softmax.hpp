// Row softmax over [rows, cols] (numerically stable) and its backward.
// PLACEHOLDER bodies until the xsimd versions land: forward to ref/.
#pragma once
#include "ref/softmax.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

template <class T> void softmax_rows(const T* x, T* y, index_t rows, index_t cols) noexcept { ref::softmax_rows(x, y, rows, cols); }
template <class T> void softmax_rows_backward(const T* y, const T* dy, T* dx, index_t rows, index_t cols) noexcept { ref::softmax_rows_backward(y, dy, dx, rows, cols); }

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
