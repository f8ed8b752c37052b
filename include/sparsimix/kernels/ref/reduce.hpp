// Scalar reference twins of kernels/reduce.hpp: sequential accumulation in T.
#pragma once
#include <limits>

#include "../../fwd.hpp"

namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// Sum of x[0..n), accumulated in order.
template <class T>
T sum(const T* x, index_t n) noexcept {
  T s = 0;
  for (index_t i = 0; i < n; ++i) s += x[i];
  return s;
}
// Dot product of a[0..n) and b[0..n), accumulated in order.
template <class T>
T dot(const T* a, const T* b, index_t n) noexcept {
  T s = 0;
  for (index_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
// Sum of x[i]^2 over n elements, accumulated in order.
template <class T>
T sum_squares(const T* x, index_t n) noexcept {
  T s = 0;
  for (index_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}
// -inf for n == 0 (the identity of max). NaNs are skipped, like std::max's comparison.
template <class T>
T max(const T* x, index_t n) noexcept {
  T m = -std::numeric_limits<T>::infinity();
  for (index_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
