// Selective scan kernels (Mamba-1; Gu & Dao 2023, arXiv:2312.00752, Alg. 2; reference
// semantics: `selective_scan_ref`, METHOD.md 4.2) and the adjoint recurrence for backward
// (METHOD.md 4.3). One sequence, one direction per call; the mixer parallelises over
// batch x direction. Scalar twins with the same signatures (minus Arch) in ref/scan.hpp.
//
// SIMD axis: channels. The state is [S, D_in] (state-major), so for each step and each
// block of W channels the kernel loops over the S states with everything in registers:
// y = C . h + D u is a vertical FMA chain (no horizontal sum per channel), the SiLU(z) gate
// and the 1/2 of the bidirectional merge are fused into the store. Backward reduces across
// lanes only for gB and gC (2S horizontal sums per step). Scalar tail for D_in % W.
// Pointers only: no allocation, no STL containers (keeps per-arch TUs ODR-safe).
#pragma once
#if defined(__GNUC__) && !defined(__clang__)  // Note [GCC 12 AVX-512 warnings] in detail/simd.hpp
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cmath>

#include <xsimd/xsimd.hpp>

#include "ref/scan.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// Elements of the `acc` workspace scan_backward needs for S states: 2 S full-width vectors
// of the widest arch sparsimix compiles (64 bytes).
template <class T>
constexpr index_t scan_backward_acc_size(index_t state) noexcept {
  return 2 * state * static_cast<index_t>(64 / sizeof(T));
}

// See ref::scan_forward for the contract (h: [S, D_in] running state; states: optional
// [L, S, D_in] per-step store for backward; y_pre optional; gate optional).
template <class Arch, class T>
void scan_forward(Arch, const scan_problem<T>& p, T* h, T* states, T* y_pre, T* y, const T* gate,
                  T scale) noexcept {
  using V = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(V::size);
  const index_t L = p.len, Dn = p.channels, S = p.state, SD = S * Dn;
  for (index_t k = 0; k < SD; ++k) h[k] = T(0);
  const V vscale(scale);
  for (index_t i = 0; i < L; ++i) {
    const index_t t = p.reverse ? L - 1 - i : i;
    // With a state store the previous state is the previous row (no copy); h stays zero.
    const T* hp = states ? (i ? states + (i - 1) * SD : h) : h;
    T* hn = states ? states + i * SD : h;
    const T* bt = p.bc + t * p.ldbc;
    const T* ct = bt + S;
    const T* ut = p.u + t * Dn;
    const T* dt = p.delta + t * Dn;
    T* yt = y + t * Dn;
    T* ypt = y_pre ? y_pre + t * Dn : nullptr;
    const T* gt = gate ? gate + t * Dn : nullptr;
    index_t d = 0;
    for (; d + W <= Dn; d += W) {
      const V dv = V::load_unaligned(dt + d), uv = V::load_unaligned(ut + d);
      const V du = dv * uv;
      V acc(T(0));
      for (index_t n = 0; n < S; ++n) {
        const index_t o = n * Dn + d;
        const V da = xsimd::exp(dv * V::load_unaligned(p.a + o));
        const V hv = xsimd::fma(da, V::load_unaligned(hp + o), du * V(bt[n]));
        hv.store_unaligned(hn + o);
        acc = xsimd::fma(hv, V(ct[n]), acc);
      }
      const V yp = xsimd::fma(V::load_unaligned(p.d + d), uv, acc);
      if (ypt) yp.store_unaligned(ypt + d);
      V out = yp * vscale;
      if (gt) out = out * V::load_unaligned(gt + d);
      out.store_unaligned(yt + d);
    }
    for (; d < Dn; ++d) {  // tail: the reference semantics
      const T dl = dt[d], u = ut[d];
      T acc = T(0);
      for (index_t n = 0; n < S; ++n) {
        const index_t o = n * Dn + d;
        const T hv = std::exp(dl * p.a[o]) * hp[o] + dl * u * bt[n];
        hn[o] = hv;
        acc += hv * ct[n];
      }
      const T yp = acc + p.d[d] * u;
      if (ypt) ypt[d] = yp;
      yt[d] = scale * yp * (gt ? gt[d] : T(1));
    }
  }
}

// See ref::scan_backward. acc: scan_backward_acc_size<T>(S) elements of workspace.
template <class Arch, class T>
void scan_backward(Arch, const scan_problem<T>& p, const T* states, const T* gy, T* lam, T* acc, T* gu,
                   T* gdelta, T* gbc, index_t ldgbc, T* ga, T* gd) noexcept {
  using V = xsimd::batch<T, Arch>;
  constexpr index_t W = static_cast<index_t>(V::size);
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
    const T* ct = bt + S;
    const T* ut = p.u + t * Dn;
    const T* dt = p.delta + t * Dn;
    const T* gyt = gy + t * Dn;
    T* gbt = gbc + t * ldgbc;
    for (index_t k = 0; k < 2 * S * W; ++k) acc[k] = T(0);
    index_t d = 0;
    for (; d + W <= Dn; d += W) {
      const V dv = V::load_unaligned(dt + d), uv = V::load_unaligned(ut + d), gv = V::load_unaligned(gyt + d);
      const V du = dv * uv;
      V gdl(T(0));
      V gux = V::load_unaligned(p.d + d) * gv;
      for (index_t n = 0; n < S; ++n) {
        const index_t o = n * Dn + d;
        const V av = V::load_unaligned(p.a + o);
        const V da = xsimd::exp(dv * av);
        const V bn(bt[n]);
        const V l = xsimd::fma(V(ct[n]), gv, V::load_unaligned(lam + o));
        if (hp) {
          const V hpv = V::load_unaligned(hp + o);
          const V ldah = l * da * hpv;
          gdl = xsimd::fma(ldah, av, gdl);
          xsimd::fma(ldah, dv, V::load_unaligned(ga + o)).store_unaligned(ga + o);
        }
        gdl = xsimd::fma(l, bn * uv, gdl);
        gux = xsimd::fma(l * dv, bn, gux);
        xsimd::fma(l, du, V::load_unaligned(acc_b + n * W)).store_unaligned(acc_b + n * W);
        xsimd::fma(gv, V::load_unaligned(hc + o), V::load_unaligned(acc_c + n * W)).store_unaligned(acc_c + n * W);
        (da * l).store_unaligned(lam + o);
      }
      gux.store_unaligned(gu + t * Dn + d);
      gdl.store_unaligned(gdelta + t * Dn + d);
      xsimd::fma(gv, uv, V::load_unaligned(gd + d)).store_unaligned(gd + d);
    }
    for (index_t n = 0; n < S; ++n) {
      gbt[n] = xsimd::hadd(V::load_unaligned(acc_b + n * W));
      gbt[S + n] = xsimd::hadd(V::load_unaligned(acc_c + n * W));
    }
    for (; d < Dn; ++d) {  // tail: the reference semantics
      const T dl = dt[d], u = ut[d], g = gyt[d];
      T gdl = T(0), gux = p.d[d] * g;
      for (index_t n = 0; n < S; ++n) {
        const index_t o = n * Dn + d;
        const T a = p.a[o];
        const T da = std::exp(dl * a);
        const T l = lam[o] + ct[n] * g;
        const T hpv = hp ? hp[o] : T(0);
        gdl += l * (da * a * hpv + bt[n] * u);
        ga[o] += l * da * dl * hpv;
        gbt[n] += l * dl * u;
        gux += l * dl * bt[n];
        gbt[S + n] += g * hc[o];
        lam[o] = da * l;
      }
      gu[t * Dn + d] = gux;
      gdelta[t * Dn + d] = gdl;
      gd[d] += g * u;
    }
  }
}

// Compile-time arch (the consumer's flags), as STYLE.md 5's default.
template <class T>
void scan_forward(const scan_problem<T>& p, T* h, T* states, T* y_pre, T* y, const T* gate, T scale) noexcept {
  scan_forward(xsimd::default_arch{}, p, h, states, y_pre, y, gate, scale);
}
template <class T>
void scan_backward(const scan_problem<T>& p, const T* states, const T* gy, T* lam, T* acc, T* gu, T* gdelta,
                   T* gbc, index_t ldgbc, T* ga, T* gd) noexcept {
  scan_backward(xsimd::default_arch{}, p, states, gy, lam, acc, gu, gdelta, gbc, ldgbc, ga, gd);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
