// Scaled dot-product attention kernels, one (batch, head) per call. Vaswani et al. 2017,
// eq. 1; the online softmax of Milakov & Gimelshein 2018 (arXiv:1805.02867) as tiled by
// FlashAttention (Dao et al. 2022, arXiv:2205.14135, Alg. 1), on the CPU.
//
// Layout: q, k, v are [n, d] row blocks `ld` elements apart, i.e. column slices of a fused
// [n, 3C] qkv buffer (timm's layout, docs/formats.md section 2); outputs likewise take a row stride.
// Two paths:
//   attention_online   inference: key tiles of attention_key_tile<T>, running max/sum per query
//                      row, no n x n buffer (O(tile^2) scratch).
//   attention_probs +  training and map capture: the full [n, n] probabilities (kept for
//   attention_apply    backward; at ViT sizes, n ~ 197, that is 155 KB per head in float).
// Pointers only, no allocation, no STL containers (keeps per-arch TUs ODR-safe).
// The scalar twins live in ref/attention.hpp.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <cmath>
#include <limits>

#include "../core/linalg.hpp"  // Eigen, via the GCC 12 warning guard
#include "detail/simd.hpp"
#include "ref/attention.hpp"
#include "softmax.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// Score tiles of 64 queries x 256 keys in float (128 in double): 64 KB, so the tile, a K/V
// tile pair and the query block stay in L2, and Eigen packs P (the left operand of P V)
// within its 128 KB stack limit (no malloc). Measured at n = 197, d = 64: 256 keys beat 64
// by about 15% (fewer, larger Eigen products).
inline constexpr index_t attention_query_tile = 64;
// Keys per score tile: 256 in float, 128 in double (the tile stays 64 KB).
template <class T>
inline constexpr index_t attention_key_tile = static_cast<index_t>(1024 / sizeof(T));

// Scratch elements attention_online<T> needs (the score tile, running max and sum).
template <class T>
constexpr index_t attention_online_scratch_size() noexcept {
  return attention_query_tile * attention_key_tile<T> + 2 * attention_query_tile;
}

namespace detail {
template <class T>
using StridedMap = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstStridedMap = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;

template <class T>
ConstStridedMap<T> cmap(const T* p, index_t rows, index_t cols, index_t ld) {
  return ConstStridedMap<T>(p, rows, cols, Eigen::OuterStride<>(ld));
}
template <class T>
StridedMap<T> map(T* p, index_t rows, index_t cols, index_t ld) {
  return StridedMap<T>(p, rows, cols, Eigen::OuterStride<>(ld));
}
}  // namespace detail

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN

// The softmax half of one (query block, key tile) step of the online softmax, all SIMD
// (the GEMM halves are Eigen's). For each of the bq rows r of s ([bq, bk], rows `lds`
// apart, holding q.k): s *= scale; m' = max(m, rowmax s); s = exp(s - m');
// l = l exp(m - m') + rowsum s; o[r, :] *= exp(m - m') (o: [bq, d], rows `ldo` apart).
// Tails pad with -inf, which neither wins the max nor adds to the sum.
template <class A, class T>
[[gnu::flatten]] void attention_online_rows(A, T* s, index_t lds, index_t bq, index_t bk, T scale, T* m, T* l, T* o,
                                             index_t ldo, index_t d) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  const T ninf = -std::numeric_limits<T>::infinity();
  const V vscale(scale);
  for (index_t r = 0; r < bq; ++r) {
    T* sr = s + r * lds;
    V vm(ninf);
    index_t c = 0;
    for (; c + w <= bk; c += w) {
      const V x = V::load_unaligned(sr + c) * vscale;
      x.store_unaligned(sr + c);
      vm = xsimd::max(vm, x);
    }
    if (c < bk) {
      const V x = load_tail(A{}, sr + c, bk - c, ninf) * vscale;
      store_tail(A{}, x, sr + c, bk - c);
      vm = xsimd::max(vm, x);
    }
    const T tile_max = hmax(A{}, vm);
    const T mnew = tile_max > m[r] ? tile_max : m[r];
    const V vmn(mnew);
    V vs(T(0));
    for (c = 0; c + w <= bk; c += w) {
      const V e = simd::fast_exp(V::load_unaligned(sr + c) - vmn);
      e.store_unaligned(sr + c);
      vs += e;
    }
    if (c < bk) {
      const V e = simd::fast_exp(load_tail(A{}, sr + c, bk - c, ninf) - vmn);
      store_tail(A{}, e, sr + c, bk - c);
      vs += e;
    }
    if (mnew != m[r]) {  // m = -inf on the first tile: l = 0 and o = 0 stay 0
      // exp(m - m') of one lane, through the batch exp (Note [arch-keyed code]).
      const V alpha = simd::fast_exp(V(m[r]) - vmn);
      T* orow = o + r * ldo;
      for (c = 0; c + w <= d; c += w) (V::load_unaligned(orow + c) * alpha).store_unaligned(orow + c);
      if (c < d) store_tail(A{}, load_tail(A{}, orow + c, d - c, T(0)) * alpha, orow + c, d - c);
      l[r] *= hmax(A{}, alpha);
      m[r] = mnew;
    }
    l[r] += xsimd::hadd(vs);
  }
}

// o[r, :] *= 1 / l[r] for the bq rows of o ([bq, d], rows `ldo` apart).
template <class A, class T>
[[gnu::flatten]] void attention_online_finish(A, const T* l, T* o, index_t ldo, index_t bq, index_t d) noexcept {
  using V = vec<T, A>;
  constexpr index_t w = width<A, T>();
  for (index_t r = 0; r < bq; ++r) {
    const V inv(T(1) / l[r]);
    T* orow = o + r * ldo;
    index_t c = 0;
    for (; c + w <= d; c += w) (V::load_unaligned(orow + c) * inv).store_unaligned(orow + c);
    if (c < d) store_tail(A{}, load_tail(A{}, orow + c, d - c, T(0)) * inv, orow + c, d - c);
  }
}

// One (batch, head): o[i, :] = sum_j softmax_j(scale q_i . k_j) v[j, :], never forming
// the n x n matrix. q, k, v: [n, d] rows `ld` apart; o: [n, d] rows `ldo` apart (it is
// also the accumulator). scratch: attention_online_scratch_size<T>() elements.
// Per query block and key tile (FlashAttention Alg. 1, lines 9-12):
//   S = scale Q K^T;  m' = max(m, rowmax S);  P = exp(S - m');  l = l e^{m - m'} + rowsum P;
//   O = O e^{m - m'} + P V;  and O /= l at the end.
template <class A, class T>
void attention_online(A, const T* q, const T* k, const T* v, index_t ld, T* o, index_t ldo, index_t n, index_t d,
                      T scale, T* scratch) noexcept {
  constexpr index_t QT = attention_query_tile, KT = attention_key_tile<T>;
  T* s = scratch;
  T* m = scratch + QT * KT;
  T* l = m + QT;
  for (index_t i0 = 0; i0 < n; i0 += QT) {
    const index_t bq = n - i0 < QT ? n - i0 : QT;
    const auto Q = kernels::detail::cmap(q + i0 * ld, bq, d, ld);
    auto O = kernels::detail::map(o + i0 * ldo, bq, d, ldo);
    O.setZero();
    for (index_t r = 0; r < bq; ++r) m[r] = -std::numeric_limits<T>::infinity(), l[r] = T(0);
    for (index_t j0 = 0; j0 < n; j0 += KT) {
      const index_t bk = n - j0 < KT ? n - j0 : KT;
      auto S = kernels::detail::map(s, bq, bk, KT);
      S.noalias() = Q * kernels::detail::cmap(k + j0 * ld, bk, d, ld).transpose();
      attention_online_rows(A{}, s, KT, bq, bk, scale, m, l, o + i0 * ldo, ldo, d);
      O.noalias() += S * kernels::detail::cmap(v + j0 * ld, bk, d, ld);
    }
    attention_online_finish(A{}, l, o + i0 * ldo, ldo, bq, d);
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// Public entry: xsimd::default_arch (the caller's -m flags), else the scalar twin. Not
// wired into the runtime dispatcher: the GEMM halves are Eigen's, which is not keyed on
// the arch (Note [arch-keyed code] in detail/simd.hpp).
template <class T>
void attention_online(const T* q, const T* k, const T* v, index_t ld, T* o, index_t ldo, index_t n, index_t d,
                      T scale, T* scratch) noexcept {
  if constexpr (simd::has_default_arch)
    simd::attention_online(xsimd::default_arch{}, q, k, v, ld, o, ldo, n, d, scale, scratch);
  else
    ref::attention_online(q, k, v, ld, o, ldo, n, d, scale);
}

// p = softmax_rows(scale q k^T): the full [n, n] probabilities, contiguous. The scores go
// in [64, key tile] blocks so Eigen's packing buffers stay on its stack (no malloc).
template <class T>
void attention_probs(const T* q, const T* k, index_t ld, index_t n, index_t d, T scale, T* p) noexcept {
  constexpr index_t KC = attention_key_tile<T>;
  for (index_t i0 = 0; i0 < n; i0 += attention_query_tile) {
    const index_t bq = n - i0 < attention_query_tile ? n - i0 : attention_query_tile;
    const auto Q = detail::cmap(q + i0 * ld, bq, d, ld);
    for (index_t j0 = 0; j0 < n; j0 += KC) {
      const index_t bk = n - j0 < KC ? n - j0 : KC;
      detail::map(p + i0 * n + j0, bq, bk, n).noalias() = (scale * Q) * detail::cmap(k + j0 * ld, bk, d, ld).transpose();
    }
  }
  softmax_rows(p, p, n, n);
}

// o = p v: p [n, n] contiguous, v [n, d] rows `ld` apart, o [n, d] rows `ldo` apart.
// In [64, key tile] blocks of p: Eigen packs the whole left operand of a product, and beyond
// its 128 KB stack limit (a full p is 155 KB at n = 197) it calls malloc.
template <class T>
void attention_apply(const T* p, const T* v, index_t ld, T* o, index_t ldo, index_t n, index_t d) noexcept {
  constexpr index_t KC = attention_key_tile<T>;
  for (index_t i0 = 0; i0 < n; i0 += attention_query_tile) {
    const index_t bq = n - i0 < attention_query_tile ? n - i0 : attention_query_tile;
    auto O = detail::map(o + i0 * ldo, bq, d, ldo);
    for (index_t j0 = 0; j0 < n; j0 += KC) {
      const index_t bk = n - j0 < KC ? n - j0 : KC;
      const auto P = detail::cmap(p + i0 * n + j0, bq, bk, n);
      if (j0 == 0)
        O.noalias() = P * detail::cmap(v + j0 * ld, bk, d, ld);
      else
        O.noalias() += P * detail::cmap(v + j0 * ld, bk, d, ld);
    }
  }
}

// Backward of o = P v with P = softmax(scale q k^T), given dout ([n, d], rows `lddo` apart):
//   dv = P^T dout;  dP = dout v^T;  dS = softmax'(P) dP;  dq = scale dS k;  dk = scale dS^T q.
// Writes dq, dk, dv ([n, d], rows `ldd` apart); dp: [n, n] scratch.
template <class T>
void attention_backward(const T* p, const T* q, const T* k, const T* v, index_t ld, const T* dout, index_t lddo,
                        index_t n, index_t d, T scale, T* dp, T* dq, T* dk, T* dv, index_t ldd) noexcept {
  const auto P = as_matrix(p, n, n);
  const auto dO = detail::cmap(dout, n, d, lddo);
  auto dP = as_matrix(dp, n, n);
  detail::map(dv, n, d, ldd).noalias() = P.transpose() * dO;
  dP.noalias() = dO * detail::cmap(v, n, d, ld).transpose();
  softmax_rows_backward(p, dp, dp, n, n);
  detail::map(dq, n, d, ldd).noalias() = (scale * dP) * detail::cmap(k, n, d, ld);
  detail::map(dk, n, d, ldd).noalias() = (scale * dP.transpose()) * detail::cmap(q, n, d, ld);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
