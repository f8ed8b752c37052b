// Reductions over contiguous arrays.
// PLACEHOLDER bodies until the xsimd versions land: forward to ref/.
#pragma once
#include "ref/reduce.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

template <class T> T sum(const T* x, index_t n) noexcept { return ref::sum(x, n); }
template <class T> T dot(const T* a, const T* b, index_t n) noexcept { return ref::dot(a, b, n); }
template <class T> T max(const T* x, index_t n) noexcept { return ref::max(x, n); }
template <class T> T sum_squares(const T* x, index_t n) noexcept { return ref::sum_squares(x, n); }

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
