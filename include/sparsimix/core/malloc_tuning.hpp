// Opt-in process setting for programs (the library never calls it by itself).
//
// Eigen allocates its GEMM packing buffers on the heap once they exceed its stack limit
// (128 KB), i.e. for every training-size product. glibc serves blocks over 128 KB-32 MB
// with mmap and returns them with munmap, so each GEMM then pays fresh page faults and page
// zeroing: measured here, 157 -> 215 images/s (+37%) for the demo ViT's training step with
// 1 thread. Keeping large blocks in the heap removes that cost; the price is that freed
// memory is not returned to the OS until exit.
#pragma once
#include "../fwd.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Returns true when the setting was applied (glibc), false elsewhere.
inline bool keep_large_allocations_in_heap() noexcept {
#if defined(__GLIBC__)
  const bool a = mallopt(M_MMAP_THRESHOLD, 1 << 30) == 1;
  const bool b = mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
  return a && b;
#else
  return false;
#endif
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
