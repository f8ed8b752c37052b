// GEMMs through Eigen, in PyTorch's Linear convention: W is [out, in], y = x W^T + b.
// Pointers to contiguous row-major buffers.
//
// Threads (Note [GEMM threading]): with SPARSIMIX_USE_OPENMP, large products are split by
// rows over parallel_for here, and Eigen's own GEMM threading is switched off
// (Eigen::setNbThreads(1), once): Eigen's parallel GEMM synchronises its threads with
// spin-waits per block, which on these 2-core VMs made a training step 10-30x slower as soon
// as the cores were shared (measured: 290 -> 15 images/s). Mixers call these from inside their
// own parallel_for tasks, where the products stay serial.
#pragma once
#include <algorithm>
#include <type_traits>
#include <vector>

// GCC 12 with -march=native (AVX-512) reports -Wmaybe-uninitialized inside its own
// avx512fintrin.h when Eigen's double GEMM packing (ptranspose) is inlined: a false
// positive (`__m512d __Y = __Y;` is _mm512_undefined_pd) that -Werror turns fatal.
// Silenced for Eigen's headers only; include Eigen through this header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"  // the same false positive under -fsanitize=address
#endif
#include <Eigen/Core>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "../fwd.hpp"
#include "parallel.hpp"
#include "tensor.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Eigen's row-major dynamic matrix of T (const stripped), the layout of every sparsimix buffer.
template <class T>
using RowMatrix = Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A [rows, cols] row-major Eigen map over p (const-correct).
template <class T>
auto as_matrix(T* p, index_t rows, index_t cols) {
  if constexpr (std::is_const_v<T>)
    return Eigen::Map<const RowMatrix<T>>(p, rows, cols);
  else
    return Eigen::Map<RowMatrix<T>>(p, rows, cols);
}
// A length-n Eigen vector map over p (const-correct).
template <class T>
auto as_vector(T* p, index_t n) {
  using V = Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, 1>;
  if constexpr (std::is_const_v<T>)
    return Eigen::Map<const V>(p, n);
  else
    return Eigen::Map<V>(p, n);
}

// Whether a product overwrites its output (no) or adds into it (yes: gradients summed over uses).
enum class accumulate : bool { no = false, yes = true };

namespace detail {
// Row chunks for a product of m x k x n multiply-adds: one per thread when it is worth a
// parallel region (about 10 us to open here), else 1. Also turns Eigen's threading off once.
inline index_t gemm_chunks(index_t m, index_t k, index_t n) {
#if defined(SPARSIMIX_USE_OPENMP)
  static const bool eigen_serial = [] {
    Eigen::setNbThreads(1);
    return true;
  }();
  (void)eigen_serial;
#endif
  const double work = static_cast<double>(m) * static_cast<double>(k) * static_cast<double>(n);
  if (work < 4e6 || in_parallel()) return 1;
  return std::max<index_t>(1, std::min<index_t>(max_threads(), m / 32));
}
}  // namespace detail

// y[M, N] = x[M, K] W[N, K]^T (+ b[N] when b != nullptr); with accumulate::yes, y +=.
template <class T>
void linear_forward(const T* x, const T* w, const T* b, T* y, index_t m, index_t k, index_t n,
                    accumulate acc = accumulate::no) {
  const auto W = as_matrix(w, n, k);
  const index_t chunks = detail::gemm_chunks(m, k, n);
  parallel_for(chunks, [&](index_t c) {
    const index_t r0 = row_chunk_begin(m, chunks, c), rows = row_chunk_begin(m, chunks, c + 1) - r0;
    auto Y = as_matrix(y + r0 * n, rows, n);
    const auto X = as_matrix(x + r0 * k, rows, k);
    if (acc == accumulate::yes)
      Y.noalias() += X * W.transpose();
    else
      Y.noalias() = X * W.transpose();
    if (b) Y.rowwise() += as_vector(b, n).transpose();
  });
}

// Given dy[M, N] of y = x W^T + b: dW[N, K] += dy^T x, db[N] += sum_rows dy,
// dx[M, K] = dy W (or += with accumulate::yes). Any output pointer may be null.
template <class T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, index_t m, index_t k,
                     index_t n, accumulate acc_dx = accumulate::no) {
  const index_t chunks = detail::gemm_chunks(m, k, n);
  // dW sums over the M rows: chunk 0 adds into dw, the others into per-chunk partials
  // (kept by the calling thread, reused across calls) that are added at the end.
  // db likewise: chunk c > 0 sums its rows into partial_db[c].
  thread_local std::vector<Tensor<T>> partial_storage, partial_db_storage;
  auto& partial = partial_storage;  // the caller's: a worker naming the thread_local gets its own
  auto& partial_db = partial_db_storage;
  if (dw && chunks > 1 && static_cast<index_t>(partial.size()) < chunks) partial.resize(static_cast<std::size_t>(chunks));
  if (db && chunks > 1 && static_cast<index_t>(partial_db.size()) < chunks) partial_db.resize(static_cast<std::size_t>(chunks));
  parallel_for(chunks, [&](index_t c) {
    const index_t r0 = row_chunk_begin(m, chunks, c), rows = row_chunk_begin(m, chunks, c + 1) - r0;
    const auto DY = as_matrix(dy + r0 * n, rows, n);
    if (db) {
      if (c == 0) {
        as_vector(db, n) += DY.colwise().sum().transpose();
      } else {
        auto& p = partial_db[static_cast<std::size_t>(c)];
        p.resize(Shape{n});
        as_vector(p.data(), n) = DY.colwise().sum().transpose();
      }
    }
    if (dw) {
      const auto X = as_matrix(x + r0 * k, rows, k);
      if (c == 0) {
        as_matrix(dw, n, k).noalias() += DY.transpose() * X;
      } else {
        auto& p = partial[static_cast<std::size_t>(c)];
        p.resize(Shape{n, k});
        as_matrix(p.data(), n, k).noalias() = DY.transpose() * X;
      }
    }
    if (dx) {
      auto DX = as_matrix(dx + r0 * k, rows, k);
      if (acc_dx == accumulate::yes)
        DX.noalias() += DY * as_matrix(w, n, k);
      else
        DX.noalias() = DY * as_matrix(w, n, k);
    }
  });
  if (dw)
    for (index_t c = 1; c < chunks; ++c)
      as_matrix(dw, n, k) += as_matrix(static_cast<const T*>(partial[static_cast<std::size_t>(c)].data()), n, k);
  if (db)
    for (index_t c = 1; c < chunks; ++c)
      as_vector(db, n) += as_vector(static_cast<const T*>(partial_db[static_cast<std::size_t>(c)].data()), n);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
