// Selective scan kernels (Mamba-1; Gu & Dao 2023, arXiv:2312.00752, Alg. 2; reference
// semantics: `selective_scan_ref`, docs/method.md 4.2) and the adjoint recurrence for backward
// (docs/method.md 4.3). One sequence, one direction per call; the mixer parallelises over
// batch x direction. Scalar twins with the same signatures (minus Arch) in ref/scan.hpp.
//
// SIMD axis: channels. The state is [S, D_in] (state-major). For S = 16 (Mamba's d_state)
// the forward keeps a block of W channels' states in registers across all L steps; other S
// loop over steps outside and, per block of W channels, over the S states inside:
// y = C . h + D u is a vertical FMA chain (no horizontal sum per channel), the SiLU(z) gate
// and the 1/2 of the bidirectional merge are fused into the store. Backward reduces across
// lanes only for gB and gC (2S horizontal sums per step). The D_in % W tail runs the same
// code on zero-padded batches.
// Pointers only: no allocation, no STL containers (keeps per-arch TUs ODR-safe).
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include "detail/simd.hpp"
#include "ref/scan.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// Elements of the `acc` workspace scan_backward needs for S states: 2 S full-width vectors
// of the widest arch sparsimix compiles (64 bytes).
template <class T>
constexpr index_t scan_backward_acc_size(index_t state) noexcept {
  return 2 * state * static_cast<index_t>(64 / sizeof(T));
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels

namespace sparsimix::kernels::simd {
SPARSIMIX_ABI_BEGIN
namespace scan_detail {

// Loads/stores W lanes, or the first `rem` (< W) lanes with zero padding for the channel
// tail: the tail runs the body's instructions (Note [arch-keyed code] in detail/simd.hpp),
// and zero lanes add exactly 0 to the gB/gC lane sums (u = delta = gy = 0 there).
template <bool Tail, class A, class T>
vec<T, A> ld(const T* p, index_t rem) noexcept {
  if constexpr (Tail)
    return load_tail(A{}, p, rem, T(0));
  else
    return vec<T, A>::load_unaligned(p);
}
// The store twin of ld: all W lanes, or the first `rem` for the channel tail.
template <bool Tail, class A, class T>
void st(const vec<T, A>& v, T* p, index_t rem) noexcept {
  if constexpr (Tail)
    store_tail(A{}, v, p, rem);
  else
    v.store_unaligned(p);
}

// One time step of the forward scan for channels [d, d + rem).
template <bool Tail, class A, class T>
void forward_block(const scan_problem<T>& p, index_t d, index_t rem, const T* hp, T* hn, const T* bt, const T* ct,
                   const T* ut, const T* dt, T* ypt, T* yt, const T* gt, T scale) noexcept {
  using V = vec<T, A>;
  const index_t Dn = p.channels, S = p.state;
  const V dv = ld<Tail, A>(dt + d, rem), uv = ld<Tail, A>(ut + d, rem);
  const V du = dv * uv;
  V acc(T(0));
  for (index_t n = 0; n < S; ++n) {
    const index_t o = n * Dn + d;
    const V da = simd::fast_exp(dv * ld<Tail, A>(p.a + o, rem));
    const V hv = xsimd::fma(da, ld<Tail, A>(hp + o, rem), du * V(bt[n]));
    st<Tail, A>(hv, hn + o, rem);
    acc = xsimd::fma(hv, V(ct[n]), acc);
  }
  const V yp = xsimd::fma(ld<Tail, A>(p.d + d, rem), uv, acc);
  if (ypt) st<Tail, A>(yp, ypt + d, rem);
  V out = yp * V(scale);
  if (gt) out = out * ld<Tail, A>(gt + d, rem);
  st<Tail, A>(out, yt + d, rem);
}

// Channels [d, d + rem) over all L steps with the S (compile-time) states held in registers:
// the step-outer loop of scan_forward reloads and restores the [S, D_in] state every step.
// Same arithmetic, in the same order, as forward_block.
template <index_t S, bool Tail, class A, class T>
void forward_channels(const scan_problem<T>& p, index_t d, index_t rem, T* h, T* states, T* y_pre, T* y,
                      const T* gate, T scale) noexcept {
  using V = vec<T, A>;
  const index_t L = p.len, Dn = p.channels, SD = S * Dn;
  V hs[S];
#pragma GCC unroll 64
  for (index_t n = 0; n < S; ++n) hs[n] = V(T(0));
  for (index_t i = 0; i < L; ++i) {
    const index_t t = p.reverse ? L - 1 - i : i;
    const T* bt = p.bc + t * p.ldbc;
    const V dv = ld<Tail, A>(p.delta + t * Dn + d, rem), uv = ld<Tail, A>(p.u + t * Dn + d, rem);
    const V du = dv * uv;
    V acc(T(0));
#pragma GCC unroll 64
    for (index_t n = 0; n < S; ++n) {
      const V da = simd::fast_exp(dv * ld<Tail, A>(p.a + n * Dn + d, rem));
      hs[n] = xsimd::fma(da, hs[n], du * V(bt[n]));
      if (states) st<Tail, A>(hs[n], states + i * SD + n * Dn + d, rem);
      acc = xsimd::fma(hs[n], V(bt[S + n]), acc);
    }
    const V yp = xsimd::fma(ld<Tail, A>(p.d + d, rem), uv, acc);
    if (y_pre) st<Tail, A>(yp, y_pre + t * Dn + d, rem);
    V out = yp * V(scale);
    if (gate) out = out * ld<Tail, A>(gate + t * Dn + d, rem);
    st<Tail, A>(out, y + t * Dn + d, rem);
  }
  if (!states) {  // the contract: with a state store, h is left zero
#pragma GCC unroll 64
    for (index_t n = 0; n < S; ++n) st<Tail, A>(hs[n], h + n * Dn + d, rem);
  }
}

// One time step of the adjoint for channels [d, d + rem); gB/gC lane sums go to acc.
template <bool Tail, class A, class T>
void backward_block(const scan_problem<T>& p, index_t d, index_t rem, const T* hp, const T* hc, const T* bt,
                    const T* ct, const T* ut, const T* dt, const T* gyt, T* lam, T* acc_b, T* acc_c, T* gut,
                    T* gdt, T* ga, T* gd) noexcept {
  using V = vec<T, A>;
  constexpr index_t W = width<A, T>();
  const index_t Dn = p.channels, S = p.state;
  const V dv = ld<Tail, A>(dt + d, rem), uv = ld<Tail, A>(ut + d, rem), gv = ld<Tail, A>(gyt + d, rem);
  const V du = dv * uv;
  V gdl(T(0));
  V gux = ld<Tail, A>(p.d + d, rem) * gv;
  for (index_t n = 0; n < S; ++n) {
    const index_t o = n * Dn + d;
    const V av = ld<Tail, A>(p.a + o, rem);
    const V da = simd::fast_exp(dv * av);
    const V bn(bt[n]);
    const V l = xsimd::fma(V(ct[n]), gv, ld<Tail, A>(lam + o, rem));
    if (hp) {  // h_{-1} = 0: no A or decay term at the first step
      const V ldah = l * da * ld<Tail, A>(hp + o, rem);
      gdl = xsimd::fma(ldah, av, gdl);
      st<Tail, A>(xsimd::fma(ldah, dv, ld<Tail, A>(ga + o, rem)), ga + o, rem);
    }
    gdl = xsimd::fma(l, bn * uv, gdl);
    gux = xsimd::fma(l * dv, bn, gux);
    xsimd::fma(l, du, V::load_aligned(acc_b + n * W)).store_aligned(acc_b + n * W);
    xsimd::fma(gv, ld<Tail, A>(hc + o, rem), V::load_aligned(acc_c + n * W)).store_aligned(acc_c + n * W);
    st<Tail, A>(da * l, lam + o, rem);
  }
  st<Tail, A>(gux, gut + d, rem);
  st<Tail, A>(gdl, gdt + d, rem);
  st<Tail, A>(xsimd::fma(gv, uv, ld<Tail, A>(gd + d, rem)), gd + d, rem);
}

}  // namespace scan_detail

// See ref::scan_forward for the contract (h: [S, D_in] running state; states: optional
// [L, S, D_in] per-step store for backward; y_pre optional; gate optional).
template <class Arch, class T>
[[gnu::flatten]] void scan_forward(Arch, const scan_problem<T>& p, T* h, T* states, T* y_pre, T* y, const T* gate,
                                   T scale) noexcept {
  constexpr index_t W = width<Arch, T>();
  const index_t L = p.len, Dn = p.channels, S = p.state, SD = S * Dn;
  for (index_t k = 0; k < SD; ++k) h[k] = T(0);
  // Mamba's d_state: the states fit in registers (16 of AVX-512's 32 vector registers).
  if (S == 16) {
    index_t d = 0;
    for (; d + W <= Dn; d += W)
      scan_detail::forward_channels<16, false, Arch>(p, d, W, h, states, y_pre, y, gate, scale);
    if (d < Dn) scan_detail::forward_channels<16, true, Arch>(p, d, Dn - d, h, states, y_pre, y, gate, scale);
    return;
  }
  for (index_t i = 0; i < L; ++i) {
    const index_t t = p.reverse ? L - 1 - i : i;
    // With a state store the previous state is the previous row (no copy); h stays zero.
    const T* hp = states ? (i ? states + (i - 1) * SD : h) : h;
    T* hn = states ? states + i * SD : h;
    const T* bt = p.bc + t * p.ldbc;
    T* ypt = y_pre ? y_pre + t * Dn : nullptr;
    const T* gt = gate ? gate + t * Dn : nullptr;
    const T* ut = p.u + t * Dn;
    const T* dt = p.delta + t * Dn;
    index_t d = 0;
    for (; d + W <= Dn; d += W)
      scan_detail::forward_block<false, Arch>(p, d, W, hp, hn, bt, bt + S, ut, dt, ypt, y + t * Dn, gt, scale);
    if (d < Dn)
      scan_detail::forward_block<true, Arch>(p, d, Dn - d, hp, hn, bt, bt + S, ut, dt, ypt, y + t * Dn, gt, scale);
  }
}

// See ref::scan_backward. acc: scan_backward_acc_size<T>(S) elements, 64-byte aligned.
template <class Arch, class T>
[[gnu::flatten]] void scan_backward(Arch, const scan_problem<T>& p, const T* states, const T* gy, T* lam, T* acc,
                                    T* gu, T* gdelta, T* gbc, index_t ldgbc, T* ga, T* gd) noexcept {
  using V = vec<T, Arch>;
  constexpr index_t W = width<Arch, T>();
  static_assert(W * static_cast<index_t>(sizeof(T)) <= 64, "scan_backward_acc_size assumes <= 64-byte vectors");
  const index_t L = p.len, Dn = p.channels, S = p.state, SD = S * Dn;
  for (index_t k = 0; k < SD; ++k) lam[k] = T(0);
  T* acc_b = acc;          // [S, W]: lane partial sums of gB_t
  T* acc_c = acc + S * W;  // [S, W]: lane partial sums of gC_t
  for (index_t i = L - 1; i >= 0; --i) {
    const index_t t = p.reverse ? L - 1 - i : i;
    const T* hp = i ? states + (i - 1) * SD : nullptr;
    const T* hc = states + i * SD;
    const T* bt = p.bc + t * p.ldbc;
    const T* ut = p.u + t * Dn;
    const T* dt = p.delta + t * Dn;
    const T* gyt = gy + t * Dn;
    for (index_t k = 0; k < 2 * S * W; ++k) acc[k] = T(0);
    index_t d = 0;
    for (; d + W <= Dn; d += W)
      scan_detail::backward_block<false, Arch>(p, d, W, hp, hc, bt, bt + S, ut, dt, gyt, lam, acc_b, acc_c,
                                               gu + t * Dn, gdelta + t * Dn, ga, gd);
    if (d < Dn)
      scan_detail::backward_block<true, Arch>(p, d, Dn - d, hp, hc, bt, bt + S, ut, dt, gyt, lam, acc_b, acc_c,
                                              gu + t * Dn, gdelta + t * Dn, ga, gd);
    T* gbt = gbc + t * ldgbc;
    for (index_t n = 0; n < S; ++n) {
      gbt[n] = xsimd::hadd(V::load_aligned(acc_b + n * W));
      gbt[S + n] = xsimd::hadd(V::load_aligned(acc_c + n * W));
    }
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::simd

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// Public entry points: once per call (one sequence, one direction), STYLE.md section 5.
template <class T>
void scan_forward(const scan_problem<T>& p, T* h, T* states, T* y_pre, T* y, const T* gate, T scale) noexcept {
  SPARSIMIX_KERNELS_ENTRY(scan_forward, p, h, states, y_pre, y, gate, scale);
}
// The backward of scan_forward for one sequence and direction (see ref::scan_backward); acc
// holds scan_backward_acc_size<T>(S) elements, 64-byte aligned.
template <class T>
void scan_backward(const scan_problem<T>& p, const T* states, const T* gy, T* lam, T* acc, T* gu, T* gdelta,
                   T* gbc, index_t ldgbc, T* ga, T* gd) noexcept {
  SPARSIMIX_KERNELS_ENTRY(scan_backward, p, states, gy, lam, acc, gu, gdelta, gbc, ldgbc, ga, gd);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
