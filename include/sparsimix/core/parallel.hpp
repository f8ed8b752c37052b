// parallel_for over OpenMP when the consumer enables it (CMake option SPARSIMIX_WITH_OPENMP,
// which defines SPARSIMIX_USE_OPENMP and links OpenMP), serial otherwise.
// Parallelise over whole batches, heads or layers: an OpenMP region costs 8-25 us here.
#pragma once
#include "../fwd.hpp"

#include <span>

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

// Calls f(order[i]) for i in [0, order.size()), each thread taking the next index when it is
// free: for iterations of uneven cost, e.g. a pruned LSTM's (head, direction) recurrences,
// whose widths differ. List the costliest first, so that no thread starts a long one last
// (static halves gave one thread 34 of the 52 units a pruned demo block keeps).
template <class F>
void parallel_for_each_dynamic(std::span<const index_t> order, F&& f) {
  const auto n = static_cast<index_t>(order.size());
#if defined(SPARSIMIX_USE_OPENMP)
  if (n > 1 && omp_get_max_threads() > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic, 1)
    for (index_t i = 0; i < n; ++i) f(order[static_cast<std::size_t>(i)]);
    return;
  }
#endif
  for (index_t i = 0; i < n; ++i) f(order[static_cast<std::size_t>(i)]);
}

// Row chunks for a pass over a [rows, cols] array: one per thread when the pass is large
// enough to pay for a parallel region (about 64k elements: a memory-bound pass over fewer takes
// about as long as opening the region), else 1; 1 inside a parallel region.
inline index_t row_chunks(index_t rows, index_t cols) noexcept {
  if (max_threads() < 2 || in_parallel() || static_cast<double>(rows) * static_cast<double>(cols) < 65536.0) return 1;
  const index_t by_rows = rows / 8;
  return by_rows < 1 ? 1 : (by_rows < max_threads() ? by_rows : max_threads());
}
// The first row of chunk c of `chunks` over `rows` rows (chunk c ends where c + 1 begins).
inline index_t row_chunk_begin(index_t rows, index_t chunks, index_t c) noexcept { return rows * c / chunks; }

// Calls f(c, first_row, end_row) for every chunk of row_chunks(rows, cols), in parallel: for
// row-wise passes (LayerNorm, bias + activation, elementwise) over large batches, which would
// otherwise leave the second core idle between the parallel GEMMs. Chunk c's rows are the same
// at a given thread count, so a per-chunk partial sum is reproducible at that count.
template <class F>
void parallel_rows(index_t rows, index_t cols, F&& f) {
  const index_t chunks = row_chunks(rows, cols);
  parallel_for(chunks, [&](index_t c) { f(c, row_chunk_begin(rows, chunks, c), row_chunk_begin(rows, chunks, c + 1)); });
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
