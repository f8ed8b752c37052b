// Fused bias + activation over [rows, cols] with bias [cols].
// PLACEHOLDER bodies until the xsimd versions land: forward to ref/.
#pragma once
#include "ref/bias_act.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

template <class T> void add_bias(T* y, const T* bias, index_t rows, index_t cols) noexcept { ref::add_bias(y, bias, rows, cols); }
template <class T> void bias_gelu(T* y, const T* bias, index_t rows, index_t cols, T* pre) noexcept { ref::bias_gelu(y, bias, rows, cols, pre); }

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
