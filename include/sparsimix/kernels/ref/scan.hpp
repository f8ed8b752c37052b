// Scalar reference twin of kernels/scan.hpp: the selective scan (Mamba-1,
// `selective_scan_ref` of state-spaces/mamba e9594ce, docs/method.md 4.2) and its adjoint
// (docs/method.md 4.3). Tests compare every SIMD path against these loops; they are also the
// semantics of the SIMD kernels' scalar tails.
#pragma once
#include <cmath>

#include "../../fwd.hpp"

namespace sparsimix::kernels {
SPARSIMIX_ABI_BEGIN

// One sequence of one scan direction. Channel-last rows so the channel axis is the SIMD
// axis: y_t = C_t . h_t needs no horizontal sum, and only the B/C gradients (S values per
// step, S << D_in) reduce across lanes. The state h is [S, D_in] (state-major) for the same
// reason; the mixer keeps A_log in PyTorch's [D_in, S] and hands the kernel A transposed.
template <class T>
struct scan_problem {
  index_t len = 0;       // L: tokens in this sequence (alive tokens under a mask)
  index_t channels = 0;  // D_in
  index_t state = 0;     // S (d_state)
  bool reverse = false;  // scan t = L-1 .. 0 (Vim's backward branch, no copy of the inputs)
  const T* u = nullptr;      // [L, D_in] scan input (SiLU of the conv output)
  const T* delta = nullptr;  // [L, D_in] step size, softplus already applied
  const T* bc = nullptr;     // [L, *] rows: B at bc[t*ldbc + n], C at bc[t*ldbc + S + n]
  index_t ldbc = 0;          // row stride of bc (>= 2S)
  const T* a = nullptr;      // [S, D_in] A = -exp(A_log), transposed
  const T* d = nullptr;      // [D_in] skip
};

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels

// Same namespace layout as every other ref/ header (kernels::ref::v0_2, the ABI namespace), so that
// kernels::ref names one namespace in a TU that includes several of them.
namespace sparsimix::kernels::ref {
SPARSIMIX_ABI_BEGIN

// h_t = exp(delta_t A) * h_{t-1} + delta_t u_t B_t,  y_pre_t = C_t . h_t + D u_t,
// y_t = scale * y_pre_t * gate_t  (gate may be null: 1). Time t runs backwards when
// p.reverse; step i (t = i or L-1-i) stores h after it in states[i] ([L, S, D_in]) when
// states != null, else keeps the running state in h ([S, D_in]). y_pre may be null.
template <class T>
void scan_forward(const scan_problem<T>& p, T* h, T* states, T* y_pre, T* y, const T* gate, T scale) noexcept {
  const index_t L = p.len, Dn = p.channels, S = p.state, SD = S * Dn;
  for (index_t k = 0; k < SD; ++k) h[k] = T(0);
  for (index_t i = 0; i < L; ++i) {
    const index_t t = p.reverse ? L - 1 - i : i;
    const T* hp = states ? (i ? states + (i - 1) * SD : h) : h;  // h is all zero at i = 0
    T* hn = states ? states + i * SD : h;
    const T* bt = p.bc + t * p.ldbc;
    for (index_t d = 0; d < Dn; ++d) {
      const T dl = p.delta[t * Dn + d], u = p.u[t * Dn + d];
      T acc = T(0);
      for (index_t n = 0; n < S; ++n) {
        const T da = std::exp(dl * p.a[n * Dn + d]);
        const T hv = da * hp[n * Dn + d] + dl * u * bt[n];
        hn[n * Dn + d] = hv;
        acc += hv * bt[S + n];
      }
      const T yp = acc + p.d[d] * u;
      if (y_pre) y_pre[t * Dn + d] = yp;
      y[t * Dn + d] = scale * yp * (gate ? gate[t * Dn + d] : T(1));
    }
  }
}

// The adjoint recurrence (docs/method.md 4.3), lambda_t = C_t gy_t + exp(delta_{t+1} A) lambda_{t+1}:
// given states from scan_forward and gy = dLoss/dy_pre ([L, D_in]), writes gu and gdelta
// ([L, D_in]) and gB | gC into gbc (same row layout as p.bc), and adds into gA ([S, D_in],
// w.r.t. A, transposed) and gD ([D_in]). lam: [S, D_in] workspace.
template <class T>
void scan_backward(const scan_problem<T>& p, const T* states, const T* gy, T* lam, T* gu, T* gdelta, T* gbc,
                   index_t ldgbc, T* ga, T* gd) noexcept {
  const index_t L = p.len, Dn = p.channels, S = p.state, SD = S * Dn;
  for (index_t k = 0; k < SD; ++k) lam[k] = T(0);
  for (index_t i = L - 1; i >= 0; --i) {
    const index_t t = p.reverse ? L - 1 - i : i;
    const T* hp = i ? states + (i - 1) * SD : nullptr;
    const T* hc = states + i * SD;
    const T* bt = p.bc + t * p.ldbc;
    T* gbt = gbc + t * ldgbc;
    for (index_t n = 0; n < 2 * S; ++n) gbt[n] = T(0);
    for (index_t d = 0; d < Dn; ++d) {
      const T dl = p.delta[t * Dn + d], u = p.u[t * Dn + d], g = gy[t * Dn + d];
      T gdl = T(0), gux = p.d[d] * g;
      for (index_t n = 0; n < S; ++n) {
        const T a = p.a[n * Dn + d];
        const T da = std::exp(dl * a);
        const T l = lam[n * Dn + d] + bt[S + n] * g;
        const T hpv = hp ? hp[n * Dn + d] : T(0);
        gdl += l * (da * a * hpv + bt[n] * u);
        ga[n * Dn + d] += l * da * dl * hpv;
        gbt[n] += l * dl * u;
        gux += l * dl * bt[n];
        gbt[S + n] += g * hc[n * Dn + d];
        lam[n * Dn + d] = da * l;
      }
      gu[t * Dn + d] = gux;
      gdelta[t * Dn + d] = gdl;
      gd[d] += g * u;
    }
  }
}

// The same with the SIMD kernel's workspace argument (unused here), so both share one entry.
template <class T>
void scan_backward(const scan_problem<T>& p, const T* states, const T* gy, T* lam, T* /*acc*/, T* gu, T* gdelta,
                   T* gbc, index_t ldgbc, T* ga, T* gd) noexcept {
  scan_backward(p, states, gy, lam, gu, gdelta, gbc, ldgbc, ga, gd);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::kernels::ref
