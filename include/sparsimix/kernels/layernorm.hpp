// LayerNorm forward/backward over [rows, cols].
// PLACEHOLDER bodies until the xsimd versions land: forward to ref/.
#pragma once
#include "ref/layernorm.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

template <class T>
void layernorm_forward(const T* x, const T* gamma, const T* beta, T* y, T* mean, T* rstd, index_t rows, index_t cols, T eps) noexcept {
  ref::layernorm_forward(x, gamma, beta, y, mean, rstd, rows, cols, eps);
}
template <class T>
void layernorm_backward(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dgamma, T* dbeta, index_t rows, index_t cols) noexcept {
  ref::layernorm_backward(x, gamma, mean, rstd, dy, dx, dgamma, dbeta, rows, cols);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
