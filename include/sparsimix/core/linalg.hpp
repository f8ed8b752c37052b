// GEMMs through Eigen, in PyTorch's Linear convention: W is [out, in], y = x W^T + b.
// Pointers to contiguous row-major buffers; no allocation.
#pragma once
#include <type_traits>

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

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

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
template <class T>
auto as_vector(T* p, index_t n) {
  using V = Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, 1>;
  if constexpr (std::is_const_v<T>)
    return Eigen::Map<const V>(p, n);
  else
    return Eigen::Map<V>(p, n);
}

enum class accumulate : bool { no = false, yes = true };

// y[M, N] = x[M, K] W[N, K]^T (+ b[N] when b != nullptr); with accumulate::yes, y +=.
template <class T>
void linear_forward(const T* x, const T* w, const T* b, T* y, index_t m, index_t k, index_t n,
                    accumulate acc = accumulate::no) {
  auto Y = as_matrix(y, m, n);
  const auto X = as_matrix(x, m, k);
  const auto W = as_matrix(w, n, k);
  if (acc == accumulate::yes)
    Y.noalias() += X * W.transpose();
  else
    Y.noalias() = X * W.transpose();
  if (b) Y.rowwise() += as_vector(b, n).transpose();
}

// Given dy[M, N] of y = x W^T + b: dW[N, K] += dy^T x, db[N] += sum_rows dy,
// dx[M, K] = dy W (or += with accumulate::yes). Any output pointer may be null.
template <class T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, T* db, index_t m, index_t k,
                     index_t n, accumulate acc_dx = accumulate::no) {
  const auto DY = as_matrix(dy, m, n);
  if (dw) as_matrix(dw, n, k).noalias() += DY.transpose() * as_matrix(x, m, k);
  if (db) as_vector(db, n) += DY.colwise().sum().transpose();
  if (dx) {
    auto DX = as_matrix(dx, m, k);
    if (acc_dx == accumulate::yes)
      DX.noalias() += DY * as_matrix(w, n, k);
    else
      DX.noalias() = DY * as_matrix(w, n, k);
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
