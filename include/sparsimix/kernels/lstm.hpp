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

// Calls f(b, r) for every sequence b still running at step t, in ascending b, with r its
// packed row at step t (counted from the end when p.reverse).
template <class T, class F>
void for_each_running(const lstm_problem<T>& p, index_t t, F f) {
  for (index_t b = 0; b < p.batch; ++b) {
    const index_t off = p.offset[b], len = p.offset[b + 1] - off;
    if (t < len) f(b, off + (p.reverse ? len - 1 - t : t));
  }
}

// dst[0, n) = a[0, n) (+ b[0, n) when b is set). The gate rows copied per sequence and step are
// d = 8-32 floats: GCC turns a plain loop into a memcpy call, whose overhead at this size
// was 12% of a pruned mixer's forward.
template <class A, class T>
[[gnu::flatten]] void copy_add_row(A, const T* a, const T* b, T* dst, index_t n) noexcept {
  using V = vec<T, A>;
  constexpr index_t W = width<A, T>();
  index_t i = 0;
  if (b) {
    for (; i + W <= n; i += W) (V::load_unaligned(a + i) + V::load_unaligned(b + i)).store_unaligned(dst + i);
    if (i < n) store_tail(A{}, load_tail(A{}, a + i, n - i, T(0)) + load_tail(A{}, b + i, n - i, T(0)), dst + i, n - i);
  } else {
    for (; i + W <= n; i += W) V::load_unaligned(a + i).store_unaligned(dst + i);
    if (i < n) store_tail(A{}, load_tail(A{}, a + i, n - i, T(0)), dst + i, n - i);
  }
}

// The cell step of n units side by side, gate-major: pre [4n] holds the pre-activations
// (i | f | g | o, n each) in and the activations out; c_prev, c [n] (may alias): c_{t-1}
// in, c_t out; h [n]: h_t = o * tanh(c_t) out. One pass: the four activations, c and h of
// a vector of units stay in registers.
template <class A, class T>
[[gnu::flatten]] void lstm_cells_forward(A, T* pre, const T* c_prev, T* c, T* h, index_t n) noexcept {
  using V = vec<T, A>;
  constexpr index_t W = width<A, T>();
  T* pi = pre;
  T* pf = pre + n;
  T* pg = pre + 2 * n;
  T* po = pre + 3 * n;
  const auto cell = [](V& i, V& f, V& g, V& o, V& cv, V& hv) {
    i = sigmoid(i);
    f = sigmoid(f);
    g = simd::fast_tanh(g);
    o = sigmoid(o);
    cv = f * cv + i * g;
    hv = simd::fast_tanh(cv) * o;
  };
  index_t e = 0;
  for (; e + W <= n; e += W) {
    V i = V::load_unaligned(pi + e), f = V::load_unaligned(pf + e), g = V::load_unaligned(pg + e),
      o = V::load_unaligned(po + e), cv = V::load_unaligned(c_prev + e), hv;
    cell(i, f, g, o, cv, hv);
    i.store_unaligned(pi + e);
    f.store_unaligned(pf + e);
    g.store_unaligned(pg + e);
    o.store_unaligned(po + e);
    cv.store_unaligned(c + e);
    hv.store_unaligned(h + e);
  }
  if (e < n) {
    const index_t r = n - e;
    V i = load_tail(A{}, pi + e, r, T(0)), f = load_tail(A{}, pf + e, r, T(0)), g = load_tail(A{}, pg + e, r, T(0)),
      o = load_tail(A{}, po + e, r, T(0)), cv = load_tail(A{}, c_prev + e, r, T(0)), hv;
    cell(i, f, g, o, cv, hv);
    store_tail(A{}, i, pi + e, r);
    store_tail(A{}, f, pf + e, r);
    store_tail(A{}, g, pg + e, r);
    store_tail(A{}, o, po + e, r);
    store_tail(A{}, cv, c + e, r);
    store_tail(A{}, hv, h + e, r);
  }
}

// gates [4d]: pre-activations (i | f | g | o) in, activations out (kept for backward).
// c_prev, c [d] (may alias): c_{t-1} in, c_t out. h [d]: h_t = o * tanh(c_t) out.
template <class A, class T>
void lstm_cell_forward(A, T* gates, const T* c_prev, T* c, T* h, index_t d) noexcept {
  lstm_cells_forward(A{}, gates, c_prev, c, h, d);
}

// The backward of the cell step of n units side by side, gate-major like lstm_cells_forward:
// act [4n]: saved activations; c_prev, c [n]: c_{t-1}, c_t; dh [n]: dL/dh_t (output plus
// recurrent gradient); dc [n]: dL/dc_t from step t+1 in, dL/dc_{t-1} out; dpre [4n]:
// dL/d(pre-activations) out. dpre may alias act (each vector is read before it is written).
template <class A, class T>
[[gnu::flatten]] void lstm_cells_backward(A, const T* act, const T* c_prev, const T* c, const T* dh, T* dc, T* dpre,
                                          index_t n) noexcept {
  using V = vec<T, A>;
  constexpr index_t W = width<A, T>();
  const V one(T(1));
  const auto step = [&](index_t e, index_t r) {
    const auto load = [&](const T* q) { return r == W ? V::load_unaligned(q + e) : load_tail(A{}, q + e, r, T(0)); };
    const auto store = [&](const V& v, T* q) {
      if (r == W)
        v.store_unaligned(q + e);
      else
        store_tail(A{}, v, q + e, r);
    };
    const V i = load(act), f = load(act + n), g = load(act + 2 * n), o = load(act + 3 * n);
    const V t = simd::fast_tanh(load(c)), dhv = load(dh);
    const V dct = load(dc) + dhv * o * (one - t * t);
    store(dct * g * i * (one - i), dpre);
    store(dct * load(c_prev) * f * (one - f), dpre + n);
    store(dct * i * (one - g * g), dpre + 2 * n);
    store(dhv * t * o * (one - o), dpre + 3 * n);
    store(dct * f, dc);
  };
  index_t e = 0;
  for (; e + W <= n; e += W) step(e, W);
  if (e < n) step(e, n - e);
}

// Backward of one step. gates [4d]: saved activations; c_prev, c [d]; dh [d]: dL/dh_t
// (output plus recurrent gradient); dc [d]: dL/dc_t from step t+1 in, dL/dc_{t-1} out;
// dpre [4d]: dL/d(pre-activations) out (may alias gates).
template <class A, class T>
void lstm_cell_backward(A, const T* gates, const T* c_prev, const T* c, const T* dh, T* dc, T* dpre,
                        index_t d) noexcept {
  lstm_cells_backward(A{}, gates, c_prev, c, dh, dc, dpre, d);
}

// lstm_recurrence_forward's path for d a multiple of the vector width: each sequence's cell
// runs in place on its gate row (hs, cs: [B, d] in sequence order).
template <class A, class T>
void lstm_recurrence_forward_rows(A, const lstm_problem<T>& p, T* gates, const T* wt, T* cells, T* hid, index_t ldh,
                                  T* hh, T* hs, T* cs) noexcept {
  const index_t B = p.batch, d = p.d, G = 4 * d;
  for (index_t k = 0; k < B * d; ++k) hs[k] = cs[k] = T(0);
  for (index_t t = 0; t < p.max_len; ++t) {
    if (t > 0) lstm_hh_product(A{}, hs, wt, hh, B, d, G);
    for_each_running(p, t, [&](index_t b, index_t r) {
      T* g = gates + r * G;
      if (t > 0) copy_add_row(A{}, static_cast<const T*>(g), static_cast<const T*>(hh + b * G), g, G);
      T* hb = hs + b * d;
      if (cells) {
        const T* cp = t == 0 ? cs + b * d : cells + (p.reverse ? r + 1 : r - 1) * d;
        lstm_cells_forward(A{}, g, cp, cells + r * d, hb, d);
      } else {
        lstm_cells_forward(A{}, g, cs + b * d, cs + b * d, hb, d);
      }
      copy_add_row(A{}, static_cast<const T*>(hb), static_cast<const T*>(nullptr), hid + r * ldh, d);
    });
  }
}

// The forward recurrence of one head and direction. gates [M, 4d]: the input-to-hidden part
// (x W_ih^T + b_ih + b_hh) in, the activations out. wt [d, 4d] = W_hh^T. cells [M, d]:
// c_t per row (training), or nullptr (inference). h_t of row r goes to hid + r * ldh.
// Scratch: hh [2B, 4d], hs [B, d], cs [B, d].
//
// Each step runs the cell of every running sequence at once (Note [batched LSTM cell]).
template <class A, class T>
void lstm_recurrence_forward(A, const lstm_problem<T>& p, T* gates, const T* wt, T* cells, T* hid, index_t ldh,
                             T* hh, T* hs, T* cs) noexcept {
  // Note [batched LSTM cell]: with 8-16 units per head (a pruned mixer) a cell step per
  // sequence is four activations of one or two vectors, mostly masked tails, and the calls
  // and tails cost more than the arithmetic. Instead each step gathers the pre-activations
  // of all running sequences gate-major into pre [4][A][d] (adding the recurrent product on
  // the way), runs one fused pass over A d units, and scatters the results. hs and cs keep
  // only the A running sequences, in ascending order: a sequence that ends drops out (rows
  // compacted), so the recurrent product also shrinks with uneven lengths. When d is a
  // multiple of the vector width a row has no tails and the gather would only add copies
  // (5% slower at d = 16 on AVX-512), so the fused cell then runs in place on each row.
  // bench_mh_lstm, one thread, demo shape (B 64, N 50, C 96), forward: 8 units per head
  // 3.1 -> 2.2 ms, 16 units 3.0 -> 2.6 ms (docs/pruning.md).
  const index_t B = p.batch, d = p.d, G = 4 * d;
  if (d % width<A, T>() == 0) {  // whole vectors per row: the cell runs in place, no gather
    lstm_recurrence_forward_rows(A{}, p, gates, wt, cells, hid, ldh, hh, hs, cs);
    return;
  }
  T* pre = hh + B * G;
  const auto length = [&](index_t b) { return p.offset[b + 1] - p.offset[b]; };
  index_t active = 0;
  for (index_t b = 0; b < B; ++b) active += length(b) > 0;
  for (index_t k = 0; k < active * d; ++k) hs[k] = cs[k] = T(0);
  for (index_t t = 0; t < p.max_len && active > 0; ++t) {
    if (t > 0) {  // drop the sequences that ended at t (length t)
      index_t from = 0, to = 0;
      for (index_t b = 0; b < B; ++b) {
        const index_t len = length(b);
        if (len < t) continue;
        if (len > t) {
          if (to != from) {
            copy_add_row(A{}, hs + from * d, static_cast<const T*>(nullptr), hs + to * d, d);
            copy_add_row(A{}, cs + from * d, static_cast<const T*>(nullptr), cs + to * d, d);
          }
          ++to;
        }
        ++from;
      }
      active = to;
      if (active == 0) break;
      lstm_hh_product(A{}, hs, wt, hh, active, d, G);
    }
    const index_t n = active * d;
    index_t a = 0;
    for_each_running(p, t, [&](index_t, index_t r) {
      const T* g = gates + r * G;
      for (index_t q = 0; q < 4; ++q)
        copy_add_row(A{}, g + q * d, t > 0 ? hh + a * G + q * d : static_cast<const T*>(nullptr), pre + q * n + a * d, d);
      ++a;
    });
    lstm_cells_forward(A{}, pre, cs, cs, hs, n);
    a = 0;
    for_each_running(p, t, [&](index_t, index_t r) {
      T* g = gates + r * G;
      for (index_t q = 0; q < 4; ++q) copy_add_row(A{}, pre + q * n + a * d, static_cast<const T*>(nullptr), g + q * d, d);
      if (cells) copy_add_row(A{}, cs + a * d, static_cast<const T*>(nullptr), cells + r * d, d);
      copy_add_row(A{}, hs + a * d, static_cast<const T*>(nullptr), hid + r * ldh, d);
      ++a;
    });
  }
}

// lstm_recurrence_backward's path for d a multiple of the vector width (dh, dc: [B, d] in
// sequence order; the cell backward runs on each sequence's rows).
template <class A, class T>
void lstm_recurrence_backward_rows(A, const lstm_problem<T>& p, const T* gates, const T* cells, const T* dhid,
                                   index_t ldh, const T* whh, T* dg, T* dgs, T* dh, T* dc, const T* zeros) noexcept {
  const index_t B = p.batch, d = p.d, G = 4 * d;
  for (index_t k = 0; k < B * G; ++k) dgs[k] = T(0);
  for (index_t k = 0; k < B * d; ++k) dh[k] = dc[k] = T(0);
  for (index_t t = p.max_len - 1; t >= 0; --t) {
    for_each_running(p, t, [&](index_t b, index_t r) {
      T* dhb = dh + b * d;
      copy_add_row(A{}, static_cast<const T*>(dhb), dhid + r * ldh, dhb, d);
      const T* cp = t == 0 ? zeros : cells + (p.reverse ? r + 1 : r - 1) * d;
      lstm_cells_backward(A{}, gates + r * G, cp, cells + r * d, static_cast<const T*>(dhb), dc + b * d, dg + r * G, d);
      copy_add_row(A{}, static_cast<const T*>(dg + r * G), static_cast<const T*>(nullptr), dgs + b * G, G);
    });
    // dh_{t-1} = dgates_t W_hh; rows of sequences not yet started stay 0 (their dgs rows are 0).
    if (t > 0) lstm_hh_product(A{}, dgs, whh, dh, B, G, d);
  }
}

// BPTT of one head and direction. gates, cells: what the training forward kept; dhid: dL/dh_t
// of row r at dhid + r * ldh (from the layers above); whh [4d, d] = W_hh. dg [M, 4d] out:
// dL/d(pre-activations) per row. Scratch: dgs [3B, 4d], dh [B, d], dc [B, d], zeros [d].
//
// Batched across the running sequences like the forward (Note [batched LSTM cell]): walking
// back in time, a sequence joins at its last step, so dh and dc keep the running sequences
// in ascending order and make room (zero rows) for those that join.
template <class A, class T>
void lstm_recurrence_backward(A, const lstm_problem<T>& p, const T* gates, const T* cells, const T* dhid, index_t ldh,
                              const T* whh, T* dg, T* dgs, T* dh, T* dc, T* zeros) noexcept {
  const index_t B = p.batch, d = p.d, G = 4 * d;
  for (index_t k = 0; k < d; ++k) zeros[k] = T(0);
  if (d % width<A, T>() == 0) {
    lstm_recurrence_backward_rows(A{}, p, gates, cells, dhid, ldh, whh, dg, dgs, dh, dc, static_cast<const T*>(zeros));
    return;
  }
  T* pre = dgs + B * G;  // [4][A][d]: the activations in, dL/d(pre-activations) out
  T* cc = pre + B * G;   // [A][d]: c_t
  T* cp = cc + B * d;    // [A][d]: c_{t-1}
  const auto length = [&](index_t b) { return p.offset[b + 1] - p.offset[b]; };
  index_t active = 0;
  for (index_t t = p.max_len - 1; t >= 0; --t) {
    index_t now = 0;
    for (index_t b = 0; b < B; ++b) now += length(b) > t;
    if (now != active) {  // sequences of length t + 1 join with dh = dc = 0
      index_t to = now, from = active;
      for (index_t b = B - 1; b >= 0; --b) {
        const index_t len = length(b);
        if (len <= t) continue;
        --to;
        if (len > t + 1) {
          --from;
          if (to != from) {
            copy_add_row(A{}, static_cast<const T*>(dh + from * d), static_cast<const T*>(nullptr), dh + to * d, d);
            copy_add_row(A{}, static_cast<const T*>(dc + from * d), static_cast<const T*>(nullptr), dc + to * d, d);
          }
        } else {
          copy_add_row(A{}, static_cast<const T*>(zeros), static_cast<const T*>(nullptr), dh + to * d, d);
          copy_add_row(A{}, static_cast<const T*>(zeros), static_cast<const T*>(nullptr), dc + to * d, d);
        }
      }
      active = now;
    }
    if (active == 0) continue;
    const index_t n = active * d;
    index_t a = 0;
    for_each_running(p, t, [&](index_t, index_t r) {
      copy_add_row(A{}, static_cast<const T*>(dh + a * d), dhid + r * ldh, dh + a * d, d);
      for (index_t q = 0; q < 4; ++q)
        copy_add_row(A{}, gates + r * G + q * d, static_cast<const T*>(nullptr), pre + q * n + a * d, d);
      copy_add_row(A{}, cells + r * d, static_cast<const T*>(nullptr), cc + a * d, d);
      const T* prev = t == 0 ? zeros : cells + (p.reverse ? r + 1 : r - 1) * d;
      copy_add_row(A{}, prev, static_cast<const T*>(nullptr), cp + a * d, d);
      ++a;
    });
    lstm_cells_backward(A{}, static_cast<const T*>(pre), static_cast<const T*>(cp), static_cast<const T*>(cc),
                        static_cast<const T*>(dh), dc, pre, n);
    a = 0;
    for_each_running(p, t, [&](index_t, index_t r) {
      for (index_t q = 0; q < 4; ++q) {
        copy_add_row(A{}, static_cast<const T*>(pre + q * n + a * d), static_cast<const T*>(nullptr), dg + r * G + q * d, d);
        copy_add_row(A{}, static_cast<const T*>(pre + q * n + a * d), static_cast<const T*>(nullptr), dgs + a * G + q * d, d);
      }
      ++a;
    });
    if (t > 0) lstm_hh_product(A{}, static_cast<const T*>(dgs), whh, dh, active, G, d);
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
