// parallel_for over OpenMP when the consumer enables it (CMake option SPARSIMIX_WITH_OPENMP,
// which defines SPARSIMIX_USE_OPENMP and links OpenMP), serial otherwise.
// Parallelise over whole batches, heads or layers: an OpenMP region costs 8-25 us here.
#pragma once
#include "../fwd.hpp"

#if defined(SPARSIMIX_USE_OPENMP)
#include <omp.h>
#endif

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Threads a parallel_for may use: OpenMP's limit, 1 without OpenMP.
inline int max_threads() noexcept {
#if defined(SPARSIMIX_USE_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}
// Sets the OpenMP thread count (at least 1); a no-op without OpenMP.
inline void set_num_threads(int n) noexcept {
#if defined(SPARSIMIX_USE_OPENMP)
  omp_set_num_threads(n < 1 ? 1 : n);
#else
  (void)n;
#endif
}
// True inside a parallel region, where parallel_for runs serially.
inline bool in_parallel() noexcept {
#if defined(SPARSIMIX_USE_OPENMP)
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// Calls f(i) for i in [0, n); iterations must be independent. Nested calls run serially.
template <class F>
void parallel_for(index_t n, F&& f) {
#if defined(SPARSIMIX_USE_OPENMP)
  if (n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(static)
    for (index_t i = 0; i < n; ++i) f(i);
    return;
  }
#endif
  for (index_t i = 0; i < n; ++i) f(i);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
