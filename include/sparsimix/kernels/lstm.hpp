// The LSTM recurrence of one head and direction over a packed batch (Note [token mask
// gather], core/token_mask.hpp), forward and backward (BPTT), and its two pieces: the fused
// cell step (PyTorch nn.LSTM, gate order i, f, g, o; docs/method.md 1.3) and the hidden-to-hidden
// product. Arch-keyed (simd::, Note [arch-keyed code] in detail/simd.hpp) with scalar twins
// in ref/lstm.hpp. The public entry points dispatch once per call: a whole recurrence
// (one head, one direction, every sequence and step) is one call, so the mixer dispatches
// 2H times per forward, never per token. Pointers only, no allocation, no STL algorithms.
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "activations.hpp"
#include "detail/simd.hpp"
#include "ref/lstm.hpp"

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN

// hh[B, G] = hs[B, d] wt[d, G] (wt row-major), the hidden-to-hidden product of one step
// (wt = W_hh^T) and, in backward, dh[B, d] = dgates[B, G] W_hh[G, d] (the same product with
// the roles of d and G swapped). Eigen's GEMM re-packs W_hh on every one of the N steps,
// which at these sizes (B <= 8 sequences, d = 64) costs about as much as the product; here
// each output chunk of four vectors stays in registers across the reduction (xsimd: plain
// arrays are spilled to the stack by GCC 12). Chunks outermost so the chunk's slice of wt
// stays in L1 for all B rows.
template <class A, class T>
void lstm_hh_product(A, const T* hs, const T* wt, T* hh, index_t B, index_t d, index_t G) noexcept {
  using V = xsimd::batch<T, A>;
  constexpr index_t W = static_cast<index_t>(V::size);
  index_t b = 0;
  // Four rows x four vectors: 16 independent FMA chains sharing each load of wt.
  for (; b + 4 <= B; b += 4) {
    index_t j0 = 0;
    for (; j0 + 4 * W <= G; j0 += 4 * W) {
      V acc[4][4];
      for (auto& r : acc)
        for (auto& v : r) v = V(T(0));
      for (index_t k = 0; k < d; ++k) {
        const T* w = wt + k * G + j0;
        const V w0 = V::load_unaligned(w), w1 = V::load_unaligned(w + W), w2 = V::load_unaligned(w + 2 * W),
                w3 = V::load_unaligned(w + 3 * W);
        for (index_t r = 0; r < 4; ++r) {
          const V x(hs[(b + r) * d + k]);
          acc[r][0] = xsimd::fma(x, w0, acc[r][0]);
          acc[r][1] = xsimd::fma(x, w1, acc[r][1]);
          acc[r][2] = xsimd::fma(x, w2, acc[r][2]);
          acc[r][3] = xsimd::fma(x, w3, acc[r][3]);
        }
      }
      for (index_t r = 0; r < 4; ++r)
        for (index_t q = 0; q < 4; ++q) acc[r][q].store_unaligned(hh + (b + r) * G + j0 + q * W);
    }
    // Narrow outputs one vector at a time: a pruned LSTM's gates (G = 4 k) are often fewer
    // than four vectors wide, and the scalar loop below cost 1.5x the whole forward at k = 8.
    for (; j0 + W <= G; j0 += W) {
      V acc[4];
      for (auto& v : acc) v = V(T(0));
      for (index_t k = 0; k < d; ++k) {
        const V w = V::load_unaligned(wt + k * G + j0);
        for (index_t r = 0; r < 4; ++r) acc[r] = xsimd::fma(V(hs[(b + r) * d + k]), w, acc[r]);
      }
      for (index_t r = 0; r < 4; ++r) acc[r].store_unaligned(hh + (b + r) * G + j0);
    }
    for (; j0 < G; ++j0)
      for (index_t r = b; r < b + 4; ++r) {
        T acc = T(0);
        for (index_t k = 0; k < d; ++k) acc += hs[r * d + k] * wt[k * G + j0];
        hh[r * G + j0] = acc;
      }
  }
  // Remaining rows one at a time: eight chains (two FMA pipes x four cycles of latency).
  for (; b < B; ++b) {
    const T* hb = hs + b * d;
    index_t j0 = 0;
    for (; j0 + 8 * W <= G; j0 += 8 * W) {
      V acc[8];
      for (auto& v : acc) v = V(T(0));
      for (index_t k = 0; k < d; ++k) {
        const V x(hb[k]);
        const T* w = wt + k * G + j0;
        for (index_t q = 0; q < 8; ++q) acc[q] = xsimd::fma(x, V::load_unaligned(w + q * W), acc[q]);
      }
      for (index_t q = 0; q < 8; ++q) acc[q].store_unaligned(hh + b * G + j0 + q * W);
    }
    // Narrow outputs (backward's dh has G = d = 64, fewer than 8 vectors of 16 floats).
    for (; j0 + W <= G; j0 += W) {
      V acc = V(T(0));
      for (index_t k = 0; k < d; ++k) acc = xsimd::fma(V(hb[k]), V::load_unaligned(wt + k * G + j0), acc);
      acc.store_unaligned(hh + b * G + j0);
    }
    for (; j0 < G; ++j0) {
      T acc = T(0);
      for (index_t k = 0; k < d; ++k) acc += hb[k] * wt[k * G + j0];
      hh[b * G + j0] = acc;
    }
  }
}

// gates [4d]: pre-activations (i | f | g | o) in, activations out (kept for backward).
// c_prev, c [d] (may alias): c_{t-1} in, c_t out. h [d]: h_t = o * tanh(c_t) out.
template <class A, class T>
void lstm_cell_forward(A, T* gates, const T* c_prev, T* c, T* h, index_t d) noexcept {
  T* i = gates;
  T* f = gates + d;
  T* g = gates + 2 * d;
  T* o = gates + 3 * d;
  sigmoid(A{}, gates, gates, 2 * d);  // i and f are adjacent: one call
  tanh(A{}, g, g, d);
  sigmoid(A{}, o, o, d);
  for (index_t k = 0; k < d; ++k) c[k] = f[k] * c_prev[k] + i[k] * g[k];
  tanh(A{}, c, h, d);
  for (index_t k = 0; k < d; ++k) h[k] *= o[k];
}

// Backward of one step. gates [4d]: saved activations; c_prev, c [d]; dh [d]: dL/dh_t
// (output plus recurrent gradient); dc [d]: dL/dc_t from step t+1 in, dL/dc_{t-1} out;
// dpre [4d]: dL/d(pre-activations) out. c must not alias dpre.
template <class A, class T>
void lstm_cell_backward(A, const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dpre,
                        index_t d) noexcept {
  const T* i = gates;
  const T* f = gates + d;
  const T* g = gates + 2 * d;
  const T* o = gates + 3 * d;
  T* tc = dpre + 3 * d;  // tanh(c_t) lives in the o slot until that slot's own value is written
  tanh(A{}, c, tc, d);
  for (index_t k = 0; k < d; ++k) {
    const T t = tc[k];
    const T dct = dc[k] + dh[k] * o[k] * (T(1) - t * t);
    dpre[k] = dct * g[k] * i[k] * (T(1) - i[k]);
    dpre[d + k] = dct * c_prev[k] * f[k] * (T(1) - f[k]);
    dpre[2 * d + k] = dct * i[k] * (T(1) - g[k] * g[k]);
    dpre[3 * d + k] = dh[k] * t * o[k] * (T(1) - o[k]);
    dc[k] = dct * f[k];
  }
}

// The forward recurrence of one head and direction. gates [M, 4d]: the input-to-hidden part
// (x W_ih^T + b_ih + b_hh) in, the activations out. wt [d, 4d] = W_hh^T. cells [M, d]:
// c_t per row (training), or nullptr (inference: c lives in cs). h_t of row r goes to
// hid + r * ldh. Scratch: hh [B, 4d], hs [B, d], cs [B, d].
template <class A, class T>
void lstm_recurrence_forward(A, const lstm_problem<T>& p, T* gates, const T* wt, T* cells, T* hid, index_t ldh,
                             T* hh, T* hs, T* cs) noexcept {
  const index_t B = p.batch, d = p.d, G = 4 * d;
  for (index_t k = 0; k < B * d; ++k) hs[k] = cs[k] = T(0);
  for (index_t t = 0; t < p.max_len; ++t) {
    if (t > 0) lstm_hh_product(A{}, hs, wt, hh, B, d, G);
    for (index_t b = 0; b < B; ++b) {
      const index_t off = p.offset[b], len = p.offset[b + 1] - off;
      if (t >= len) continue;
      const index_t r = off + (p.reverse ? len - 1 - t : t);
      T* g = gates + r * G;
      if (t > 0)
        for (index_t k = 0; k < G; ++k) g[k] += hh[b * G + k];
      T* hb = hs + b * d;
      if (cells) {
        const T* cp = t == 0 ? cs + b * d : cells + (p.reverse ? r + 1 : r - 1) * d;
        lstm_cell_forward(A{}, g, cp, cells + r * d, hb, d);
      } else {
        lstm_cell_forward(A{}, g, cs + b * d, cs + b * d, hb, d);
      }
      T* out = hid + r * ldh;
      for (index_t k = 0; k < d; ++k) out[k] = hb[k];
    }
  }
}

// BPTT of one head and direction. gates, cells: what the training forward kept; dhid: dL/dh_t
// of row r at dhid + r * ldh (from the layers above); whh [4d, d] = W_hh. dg [M, 4d] out:
// dL/d(pre-activations) per row. Scratch: dgs [B, 4d], dh [B, d], dc [B, d], zeros [d].
template <class A, class T>
void lstm_recurrence_backward(A, const lstm_problem<T>& p, const T* gates, const T* cells, const T* dhid, index_t ldh,
                              const T* whh, T* dg, T* dgs, T* dh, T* dc, T* zeros) noexcept {
  const index_t B = p.batch, d = p.d, G = 4 * d;
  for (index_t k = 0; k < B * G; ++k) dgs[k] = T(0);
  for (index_t k = 0; k < B * d; ++k) dh[k] = dc[k] = T(0);
  for (index_t k = 0; k < d; ++k) zeros[k] = T(0);
  for (index_t t = p.max_len - 1; t >= 0; --t) {
    for (index_t b = 0; b < B; ++b) {
      const index_t off = p.offset[b], len = p.offset[b + 1] - off;
      if (t >= len) continue;
      const index_t r = off + (p.reverse ? len - 1 - t : t);
      T* dhb = dh + b * d;
      const T* dor = dhid + r * ldh;
      for (index_t k = 0; k < d; ++k) dhb[k] += dor[k];
      const T* cp = t == 0 ? zeros : cells + (p.reverse ? r + 1 : r - 1) * d;
      lstm_cell_backward(A{}, gates + r * G, cp, cells + r * d, dhb, dc + b * d, dg + r * G, d);
      for (index_t k = 0; k < G; ++k) dgs[b * G + k] = dg[r * G + k];
    }
    // dh_{t-1} = dgates_t W_hh; rows of sequences not yet started stay 0 (their dgs rows are 0).
    if (t > 0) lstm_hh_product(A{}, dgs, whh, dh, B, G, d);
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

// Public entry points: once per call (STYLE.md section 5).
namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// hh[B, G] = hs[B, d] wt[d, G]: the recurrent product of one step for every sequence.
template <class T>
void lstm_hh_product(const T* hs, const T* wt, T* hh, index_t B, index_t d, index_t G) noexcept {
  SPARSIMIX_KERNELS_ENTRY(lstm_hh_product, hs, wt, hh, B, d, G);
}
// One fused LSTM step for one row: gate activations, c_t and h_t (contract above).
template <class T>
void lstm_cell_forward(T* gates, const T* c_prev, T* c, T* h, index_t d) noexcept {
  SPARSIMIX_KERNELS_ENTRY(lstm_cell_forward, gates, c_prev, c, h, d);
}
// The backward of one LSTM step for one row: dpre from dh and dc (contract above).
template <class T>
void lstm_cell_backward(const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dpre, index_t d) noexcept {
  SPARSIMIX_KERNELS_ENTRY(lstm_cell_backward, gates, c_prev, c, dh, dc, dpre, d);
}
// The forward recurrence of one head and direction over a packed batch (contract above).
template <class T>
void lstm_recurrence_forward(const lstm_problem<T>& p, T* gates, const T* wt, T* cells, T* hid, index_t ldh, T* hh,
                             T* hs, T* cs) noexcept {
  SPARSIMIX_KERNELS_ENTRY(lstm_recurrence_forward, p, gates, wt, cells, hid, ldh, hh, hs, cs);
}
// Backpropagation through time of one head and direction over a packed batch (contract above).
template <class T>
void lstm_recurrence_backward(const lstm_problem<T>& p, const T* gates, const T* cells, const T* dhid, index_t ldh,
                              const T* whh, T* dg, T* dgs, T* dh, T* dc, T* zeros) noexcept {
  SPARSIMIX_KERNELS_ENTRY(lstm_recurrence_backward, p, gates, cells, dhid, ldh, whh, dg, dgs, dh, dc, zeros);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
