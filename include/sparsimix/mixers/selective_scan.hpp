// Selective scan (Mamba-1). Gu & Dao 2023, arXiv:2312.00752, Alg. 2 and Sec. 3.4; reference
// semantics: state-spaces/mamba e9594ce `mamba_simple.py` + `selective_scan_ref`
// (docs/method.md 4.1-4.3). Optional bidirectional branch: Vision Mamba (Zhu et al. 2024,
// arXiv:2401.09417) bimamba "v2" with if_devide_out (docs/method.md 4.4). x, y: [B, N, C].
//
//   [x | z] = X W_in^T                        in_proj, no bias          [B, N, 2 D_in]
//   u  = SiLU(causal depthwise conv(x) + b)    conv1d, K taps            [B, N, D_in]
//   [dt_low | B | C] = u W_x^T                 x_proj, no bias           [B, N, R + 2S]
//   delta = softplus(dt_low W_dt^T + b_dt)     dt_proj                   [B, N, D_in]
//   y_pre = scan(u, delta, A = -exp(A_log), B, C) + D u                  [B, N, D_in]
//   out = (y_pre * SiLU(z)) W_out^T            out_proj, no bias         [B, N, C]
// Bidirectional: a second branch (conv1d_b, x_proj_b, dt_proj_b, A_b_log, D_b) runs on the
// token-reversed [x | z] with its own SiLU(z) gate at the same positions, and
// out = out_proj((y_fwd + flip(y_bwd)) / 2). The reversed branch is computed in place:
// an anti-causal conv and a scan that walks t = L-1 .. 0, no flipped copies.
//
// Token masks: Note [token mask gather] (core/token_mask.hpp). Each sequence's alive tokens
// are gathered in order, the whole block (including the causal conv) runs on that shorter
// sequence, and the result is scattered back; dead positions output exactly 0.
//
// Backward: the adjoint recurrence (docs/method.md 4.3) over stored per-step states, [L, S, D_in]
// per sequence and direction (0.4 MB per sequence at N=197, C=192 in float): affordable
// at ViT lengths, so no chunked recomputation.
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "../concepts.hpp"
#include "../core/linalg.hpp"
#include "../core/parallel.hpp"
#include "../core/rng.hpp"
#include "../core/token_packing.hpp"
#include "../core/workspace_pool.hpp"
#include "../kernels/activations.hpp"
#include "../kernels/conv.hpp"
#include "../kernels/scan.hpp"
#include "traits.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Mamba-1's selective-scan block as a SeqMixer, optionally bidirectional (Vim v2); see the header.
template <class T = float>
class SelectiveScan {
 public:
  using scalar_type = T;  // T, for generic code over mixers

  // The block's sizes; validated by the constructor.
  struct config {
    index_t dim = 0;       // C
    index_t d_state = 16;  // S
    index_t d_conv = 4;    // K
    double expand = 2;     // D_in = floor(expand * C)
    index_t dt_rank = 0;   // R; 0 = ceil(C / 16)
    bool bidirectional = false;  // add the reversed branch (Vim v2)
  };

  // Activations backward reads, in gathered-token order (T_alive rows; all B*N without a mask).
  struct cache_type {
    // One direction's activations: conv output, u, dt_low, B|C, delta before and after softplus,
    // y_pre, A = -exp(A_log) transposed, and the per-step scan states.
    struct direction {
      // Its activations per gathered row (A: [S, D_in]; states: [L, S, D_in] per sequence).
      Tensor<T> xc, u, dtl, bc, dpre, delta, ypre, at, states;
    };
    token_packing pack;  // sequence b owns gathered rows [pack.offset(b), pack.offset(b + 1))
    // Gathered input, in_proj output [x | z], SiLU(z), the combined scan output, the reversed
    // branch's output, and the out_proj output before the scatter.
    Tensor<T> xg, xz, gate, ycomb, ytmp, outg;
    direction dir[2];  // forward and reversed branch
  };

  // Allocates the parameters (zero until init); throws config_error on an invalid config.
  explicit SelectiveScan(const config& cfg);

  // C, the token width.
  index_t dim() const noexcept { return cfg_.dim; }
  // The configuration, dt_rank resolved.
  const config& cfg() const noexcept { return cfg_; }
  // True when the config asked for dt_rank "auto" (cfg().dt_rank then holds ceil(C / 16)).
  bool dt_rank_is_auto() const noexcept { return dt_rank_auto_; }
  // D_in = floor(expand * C), the inner width.
  index_t d_inner() const noexcept { return inner_of(cfg_); }
  // 2 when bidirectional, else 1.
  int directions() const noexcept { return cfg_.bidirectional ? 2 : 1; }
  // Multiply-adds of an inference forward over n tokens: in_proj 2 C D_in and out_proj D_in C
  // per token, and per direction the conv K D_in, x_proj D_in (R + 2 S), dt_proj R D_in and
  // the scan's 3 S D_in (decay, input, readout).
  index_t multiply_adds(index_t n) const noexcept {
    const index_t C = cfg_.dim, Di = d_inner(), R = cfg_.dt_rank, S = cfg_.d_state, K = cfg_.d_conv;
    return n * (3 * C * Di + directions() * Di * (K + R + 2 * S + R + 3 * S));
  }

  // Inference: no allocation per call after warm-up (workspaces keep their capacity).
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const;
  // Training: keeps activations and per-step scan states in `cache`.
  void forward(ConstSeq<T> x, Seq<T> y, cache_type& cache, const TokenMask* mask);
  // Accumulates every parameter gradient and writes dx (0 at dead positions).
  void backward(const cache_type& c, ConstSeq<T> dy, Seq<T> dx);

  // PyTorch names (docs/formats.md 2), dense layouts. A_log, D and biases: decay = false.
  ParamList<T> parameters();

  // docs/method.md 4.1: PyTorch defaults for in_proj, conv1d, x_proj, out_proj (U(+-1/sqrt(fan_in)));
  // dt_proj.weight ~ U(+-R^-1/2); dt_proj.bias = softplus^-1(dt), dt = exp(U(ln 1e-3, ln 0.1))
  // clamped >= 1e-4; A_log[d, n] = ln(n + 1) (S4D-real); D = 1. The backward branch gets the
  // same scheme (upstream Vim leaves dt_proj_b at nn.Linear defaults; we keep the timescale
  // prior of 4.1 in both directions). Gradients are zeroed.
  void init(Rng& rng);

  // Zeroes every parameter gradient.
  void zero_grad() noexcept;

 private:
  // The kernel's view of direction k's scan over the L gathered rows starting at r0: the same
  // for the forward and the adjoint scan.
  kernels::scan_problem<T> scan_problem_of(const cache_type& c, int k, index_t r0, index_t L) const;

  struct pair {
    Tensor<T> value, grad;
  };
  struct branch {
    pair conv_w, conv_b, x_proj, dt_w, dt_b, a_log, d;
  };
  // Backward-only workspaces (backward is non-const; reused across calls).
  struct grad_workspace {
    Tensor<T> gdy, gyc, gys, gtmp, gxz, gxg, gu, gdelta, gbc, gdtl, gxc, ga_part, gd_part, gcw_part, gcb_part, lam,
        acc, wt, h;  // wt: conv taps [dirs, K, D_in]; h: unused (the training scan keeps its states)
  };
  // One const forward's buffers: activations, scan states [B * dirs, S, D_in], conv taps
  // [dirs, K, D_in].
  struct infer_workspace {
    cache_type c;
    Tensor<T> h, wt;
  };

  static index_t inner_of(const config& c) { return static_cast<index_t>(std::floor(c.expand * double(c.dim))); }
  static pair param_pair(Shape s) { return {Tensor<T>(s), Tensor<T>(s)}; }

  static config validated(config c);

  void check_io(const char* where, ConstSeq<T> x, TensorView<const T> y, const TokenMask* mask) const {
    check_shape(where, "x", x.shape(), {-1, -1, cfg_.dim});
    if (!(y.shape() == x.shape()))
      throw shape_error(detail::concat(where, ": y is ", y.shape().str(), ", expected ", x.shape().str(), " (as x)"));
    if (mask) mask->check_fits(where, x.shape());
  }

  // wt receives the conv taps; h the scan states (inference only).
  void run_forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask, cache_type& c, bool training, Tensor<T>& wt,
                   Tensor<T>& h) const;

  config cfg_;
  bool dt_rank_auto_ = false;
  pair in_proj_, out_proj_;
  branch br_[2];
  workspace_pool<infer_workspace> pool_;
  grad_workspace gw_;
};

template <class T>
SelectiveScan<T>::SelectiveScan(const config& cfg) : cfg_(validated(cfg)), dt_rank_auto_(cfg.dt_rank == 0) {
  const index_t C = cfg_.dim, Di = d_inner(), R = cfg_.dt_rank, S = cfg_.d_state, K = cfg_.d_conv;
  in_proj_ = param_pair({2 * Di, C});
  out_proj_ = param_pair({C, Di});
  for (int k = 0; k < directions(); ++k) {
    auto& br = br_[k];
    br.conv_w = param_pair({Di, 1, K});
    br.conv_b = param_pair({Di});
    br.x_proj = param_pair({R + 2 * S, Di});
    br.dt_w = param_pair({Di, R});
    br.dt_b = param_pair({Di});
    br.a_log = param_pair({Di, S});
    br.d = param_pair({Di});
  }
  Rng rng(0);
  init(rng);
}

template <class T>
void SelectiveScan<T>::forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const {
  check_io("SelectiveScan::forward", x, y, mask);
  const auto w = pool_.acquire();
  run_forward(x, y, mask, w->c, /*training=*/false, w->wt, w->h);
}

template <class T>
void SelectiveScan<T>::forward(ConstSeq<T> x, Seq<T> y, cache_type& cache, const TokenMask* mask) {
  check_io("SelectiveScan::forward", x, y, mask);
  run_forward(x, y, mask, cache, /*training=*/true, gw_.wt, gw_.h);
}

template <class T>
ParamList<T> SelectiveScan<T>::parameters() {
  ParamList<T> ps;
  auto add = [&](const char* name, pair& p, bool decay) { ps.push_back({name, p.value.view(), p.grad.view(), decay}); };
  add("in_proj.weight", in_proj_, true);
  add("conv1d.weight", br_[0].conv_w, true);
  add("conv1d.bias", br_[0].conv_b, false);
  add("x_proj.weight", br_[0].x_proj, true);
  add("dt_proj.weight", br_[0].dt_w, true);
  add("dt_proj.bias", br_[0].dt_b, false);
  add("A_log", br_[0].a_log, false);
  add("D", br_[0].d, false);
  add("out_proj.weight", out_proj_, true);
  if (cfg_.bidirectional) {
    add("A_b_log", br_[1].a_log, false);
    add("conv1d_b.weight", br_[1].conv_w, true);
    add("conv1d_b.bias", br_[1].conv_b, false);
    add("x_proj_b.weight", br_[1].x_proj, true);
    add("dt_proj_b.weight", br_[1].dt_w, true);
    add("dt_proj_b.bias", br_[1].dt_b, false);
    add("D_b", br_[1].d, false);
  }
  return ps;
}

template <class T>
void SelectiveScan<T>::init(Rng& rng) {
  const index_t C = cfg_.dim, Di = d_inner(), R = cfg_.dt_rank, S = cfg_.d_state, K = cfg_.d_conv;
  auto uni = [&](pair& p, double bound) { fill_uniform(rng, p.value.data(), p.value.numel(), -bound, bound); };
  uni(in_proj_, 1.0 / std::sqrt(double(C)));
  for (int k = 0; k < directions(); ++k) {
    auto& br = br_[k];
    uni(br.conv_w, 1.0 / std::sqrt(double(K)));
    uni(br.conv_b, 1.0 / std::sqrt(double(K)));
    uni(br.x_proj, 1.0 / std::sqrt(double(Di)));
    uni(br.dt_w, 1.0 / std::sqrt(double(R)));
    const double lo = std::log(1e-3), hi = std::log(0.1);
    for (index_t d = 0; d < Di; ++d) {
      const double dt = std::max(std::exp(rng.uniform(lo, hi)), 1e-4);
      br.dt_b.value.data()[d] = static_cast<T>(dt + std::log(-std::expm1(-dt)));
    }
    for (index_t d = 0; d < Di; ++d)
      for (index_t n = 0; n < S; ++n) br.a_log.value(d, n) = static_cast<T>(std::log(double(n + 1)));
    br.d.value.fill(T(1));
  }
  uni(out_proj_, 1.0 / std::sqrt(double(Di)));
  zero_grad();
}

template <class T>
void SelectiveScan<T>::zero_grad() noexcept {
  in_proj_.grad.zero();
  out_proj_.grad.zero();
  for (int k = 0; k < directions(); ++k)
    for (pair* p : {&br_[k].conv_w, &br_[k].conv_b, &br_[k].x_proj, &br_[k].dt_w, &br_[k].dt_b, &br_[k].a_log,
                     &br_[k].d})
      p->grad.zero();
}

template <class T>
kernels::scan_problem<T> SelectiveScan<T>::scan_problem_of(const cache_type& c, int k, index_t r0, index_t L) const {
  const index_t Di = d_inner(), S = cfg_.d_state;
  const auto& dc = c.dir[k];
  kernels::scan_problem<T> p;
  p.len = L;
  p.channels = Di;
  p.state = S;
  p.reverse = k == 1;
  p.u = dc.u.data() + r0 * Di;
  p.delta = dc.delta.data() + r0 * Di;
  p.bc = dc.bc.data() + r0 * 2 * S;
  p.ldbc = 2 * S;
  p.a = dc.at.data();
  p.d = br_[k].d.value.data();
  return p;
}

template <class T>
typename SelectiveScan<T>::config SelectiveScan<T>::validated(config c) {
  auto bad = [](const char* field, auto v, const char* want) {
    throw config_error(detail::concat("SelectiveScan: ", field, " is ", v, ", expected ", want));
  };
  if (c.dim < 1) bad("dim", c.dim, ">= 1");
  if (c.d_state < 1) bad("d_state", c.d_state, ">= 1");
  if (c.d_conv < 1) bad("d_conv", c.d_conv, ">= 1");
  if (!(std::isfinite(c.expand) && c.expand > 0)) bad("expand", c.expand, "a finite number > 0");
  if (c.dt_rank < 0) bad("dt_rank", c.dt_rank, ">= 0 (0 = ceil(dim / 16))");
  if (inner_of(c) < 1)
    throw config_error(detail::concat("SelectiveScan: floor(expand * dim) = floor(", c.expand, " * ", c.dim,
                                      ") is 0, expected >= 1"));
  if (c.dt_rank == 0) c.dt_rank = (c.dim + 15) / 16;
  return c;
}

template <class T>
void SelectiveScan<T>::run_forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask, cache_type& c,
                                   bool training, Tensor<T>& taps, Tensor<T>& hstates) const {
  const index_t B = x.size(0), N = x.size(1), C = cfg_.dim, Di = d_inner(), R = cfg_.dt_rank, S = cfg_.d_state,
                K = cfg_.d_conv;
  const int ndir = directions();
  const index_t rows = c.pack.plan(mask, B, N);

  // Gather (Note [token mask gather]); without a mask inference reads x in place.
  const T* xg = x.data();
  if (mask || training) {
    c.xg.resize({rows, C});
    c.pack.gather(x.data(), c.xg.data(), C);
    xg = c.xg.data();
  }

  c.xz.resize({rows, 2 * Di});
  c.gate.resize({rows, Di});
  c.ycomb.resize({rows, Di});
  if (rows > 0) {
    linear_forward(xg, in_proj_.value.data(), static_cast<const T*>(nullptr), c.xz.data(), rows, C, 2 * Di);
    for (index_t r = 0; r < rows; ++r) kernels::silu(c.xz.data() + r * 2 * Di + Di, c.gate.data() + r * Di, Di);
  }

  taps.resize({ndir, K, Di});
  for (int k = 0; k < ndir; ++k) {
    const branch& br = br_[k];
    auto& dc = c.dir[k];
    dc.at.resize({S, Di});
    for (index_t d = 0; d < Di; ++d)
      for (index_t n = 0; n < S; ++n) dc.at(n, d) = -std::exp(br.a_log.value(d, n));
    T* wt = taps.data() + k * K * Di;
    for (index_t d = 0; d < Di; ++d)
      for (index_t j = 0; j < K; ++j) wt[j * Di + d] = br.conv_w.value.data()[d * K + j];
    dc.xc.resize({rows, Di});
    dc.u.resize({rows, Di});
    dc.dtl.resize({rows, R});
    dc.bc.resize({rows, 2 * S});
    dc.dpre.resize({rows, Di});
    dc.delta.resize({rows, Di});
    if (rows == 0) continue;
    const bool rev = k == 1;
    parallel_for(B, [&](index_t b) {
      const index_t r0 = c.pack.offset(b), L = c.pack.length(b);
      kernels::conv1d_depthwise_forward(c.xz.data() + r0 * 2 * Di, 2 * Di, wt, br.conv_b.value.data(), dc.xc.data() + r0 * Di, L, Di, K,
                   rev);
    });
    kernels::silu(dc.xc.data(), dc.u.data(), rows * Di);
    const T* wx = br.x_proj.value.data();
    linear_forward(dc.u.data(), wx, static_cast<const T*>(nullptr), dc.dtl.data(), rows, Di, R);
    linear_forward(dc.u.data(), wx + R * Di, static_cast<const T*>(nullptr), dc.bc.data(), rows, Di, 2 * S);
    linear_forward(dc.dtl.data(), br.dt_w.value.data(), br.dt_b.value.data(), dc.dpre.data(), rows, R, Di);
    kernels::softplus(dc.dpre.data(), dc.delta.data(), rows * Di);
    if (training) {
      dc.ypre.resize({rows, Di});
      dc.states.resize({rows, S, Di});
    }
  }
  if (!training) hstates.resize({B * ndir, S, Di});
  if (ndir == 2) c.ytmp.resize({rows, Di});

  // The scan: one task per (sequence, direction). Uni: the kernel writes the gated output
  // directly. Bi: each direction writes its gated half (scale 1/2) into its own buffer.
  const T scale = ndir == 2 ? T(0.5) : T(1);
  if (rows > 0) {
    parallel_for(B * ndir, [&](index_t j) {
      const index_t b = j / ndir;
      const int k = static_cast<int>(j % ndir);
      const index_t r0 = c.pack.offset(b), L = c.pack.length(b);
      if (L == 0) return;
      auto& dc = c.dir[k];
      const kernels::scan_problem<T> p = scan_problem_of(c, k, r0, L);
      T* h = training ? dc.states.data() + r0 * S * Di : hstates.data() + j * S * Di;
      T* states = training ? dc.states.data() + r0 * S * Di : nullptr;
      // With states, the kernel zeroes h (= states[0]) first and then overwrites it: fine.
      T* y_pre = training ? dc.ypre.data() + r0 * Di : nullptr;
      T* yo = (k == 0 ? c.ycomb.data() : c.ytmp.data()) + r0 * Di;
      kernels::scan_forward(p, h, states, y_pre, yo, c.gate.data() + r0 * Di, scale);
    });
    if (ndir == 2) {
      T* yc = c.ycomb.data();
      const T* yb = c.ytmp.data();
      for (index_t i = 0; i < rows * Di; ++i) yc[i] += yb[i];
    }
  }

  // out_proj, then scatter (dead positions exactly 0).
  if (!mask) {
    if (rows > 0)
      linear_forward(c.ycomb.data(), out_proj_.value.data(), static_cast<const T*>(nullptr), y.data(), rows, Di, C);
    return;
  }
  c.outg.resize({rows, C});
  if (rows > 0)
    linear_forward(c.ycomb.data(), out_proj_.value.data(), static_cast<const T*>(nullptr), c.outg.data(), rows, Di,
                   C);
  c.pack.scatter(c.outg.data(), y.data(), C);
}

template <class T>
void SelectiveScan<T>::backward(const cache_type& c, ConstSeq<T> dy, Seq<T> dx) {
  const char* where = "SelectiveScan::backward";
  const index_t B = c.pack.batch(), N = c.pack.tokens(), C = cfg_.dim, Di = d_inner(), R = cfg_.dt_rank, S = cfg_.d_state,
                K = cfg_.d_conv;
  const int ndir = directions();
  if (!c.pack.planned() || c.dir[0].states.numel() != c.xz.size(0) * S * Di)
    throw shape_error(detail::concat(where, ": cache does not come from a training forward of this mixer"));
  check_shape(where, "dy", dy.shape(), {B, N, C});
  check_shape(where, "dx", dx.shape(), {B, N, C});
  const index_t rows = c.pack.rows();
  auto& w = gw_;

  // Gather dy.
  const T* gdy = dy.data();
  if (c.pack.masked()) {
    w.gdy.resize({rows, C});
    c.pack.gather(dy.data(), w.gdy.data(), C);
    gdy = w.gdy.data();
  }
  if (rows == 0) {
    std::fill(dx.data(), dx.data() + dx.numel(), T(0));
    return;
  }

  // out_proj: gyc = d(loss)/d(ycomb).
  w.gyc.resize({rows, Di});
  linear_backward(c.ycomb.data(), out_proj_.value.data(), gdy, w.gyc.data(), out_proj_.grad.data(),
                  static_cast<T*>(nullptr), rows, Di, C);

  // Gate: ycomb = scale * (sum_k ypre_k) * SiLU(z). gys = d/d(ypre_k) (same for both
  // directions); gz = gyc * scale * sum_k ypre_k * SiLU'(z) into the z half of gxz.
  const T scale = ndir == 2 ? T(0.5) : T(1);
  w.gys.resize({rows, Di});
  w.gtmp.resize({rows, Di});
  w.gxz.resize({rows, 2 * Di});
  for (index_t i = 0; i < rows * Di; ++i) {
    const T ys = ndir == 2 ? c.dir[0].ypre.data()[i] + c.dir[1].ypre.data()[i] : c.dir[0].ypre.data()[i];
    w.gys.data()[i] = w.gyc.data()[i] * scale * c.gate.data()[i];
    w.gtmp.data()[i] = w.gyc.data()[i] * scale * ys;
  }
  for (index_t r = 0; r < rows; ++r) {
    T* gx = w.gxz.data() + r * 2 * Di;
    std::fill(gx, gx + Di, T(0));
    kernels::silu_backward(c.xz.data() + r * 2 * Di + Di, w.gtmp.data() + r * Di, gx + Di, Di);
  }

  w.gu.resize({ndir, rows, Di});
  w.gdelta.resize({ndir, rows, Di});
  w.gbc.resize({ndir, rows, 2 * S});
  w.ga_part.resize({B * ndir, S, Di});
  w.gd_part.resize({B * ndir, Di});
  w.lam.resize({B * ndir, S, Di});
  const index_t acc_n = kernels::scan_backward_acc_size<T>(S);
  w.acc.resize({B * ndir, acc_n});
  w.ga_part.zero();
  w.gd_part.zero();

  // The adjoint scans, one task per (sequence, direction), with private gA/gD partials.
  parallel_for(B * ndir, [&](index_t j) {
    const index_t b = j / ndir;
    const int k = static_cast<int>(j % ndir);
    const index_t r0 = c.pack.offset(b), L = c.pack.length(b);
    if (L == 0) return;
    const auto& dc = c.dir[k];
    const kernels::scan_problem<T> p = scan_problem_of(c, k, r0, L);
    const index_t base = k * rows * Di + r0 * Di;
    kernels::scan_backward(p, dc.states.data() + r0 * S * Di, w.gys.data() + r0 * Di, w.lam.data() + j * S * Di,
                           w.acc.data() + j * acc_n, w.gu.data() + base, w.gdelta.data() + base,
                           w.gbc.data() + k * rows * 2 * S + r0 * 2 * S, 2 * S, w.ga_part.data() + j * S * Di,
                           w.gd_part.data() + j * Di);
  });

  w.gdtl.resize({rows, R});
  w.gxc.resize({rows, Di});
  w.gcw_part.resize({B, K, Di});
  w.gcb_part.resize({B, Di});
  for (int k = 0; k < ndir; ++k) {
    branch& br = br_[k];
    const auto& dc = c.dir[k];
    T* gu = w.gu.data() + k * rows * Di;
    T* gdelta = w.gdelta.data() + k * rows * Di;
    T* gbc = w.gbc.data() + k * rows * 2 * S;
    // softplus' = sigmoid(dpre)
    kernels::sigmoid(dc.dpre.data(), w.gxc.data(), rows * Di);
    for (index_t i = 0; i < rows * Di; ++i) gdelta[i] *= w.gxc.data()[i];
    linear_backward(dc.dtl.data(), br.dt_w.value.data(), gdelta, w.gdtl.data(), br.dt_w.grad.data(),
                    br.dt_b.grad.data(), rows, R, Di);
    const T* wx = br.x_proj.value.data();
    T* gwx = br.x_proj.grad.data();
    linear_backward(dc.u.data(), wx, w.gdtl.data(), gu, gwx, static_cast<T*>(nullptr), rows, Di, R, accumulate::yes);
    linear_backward(dc.u.data(), wx + R * Di, gbc, gu, gwx + R * Di, static_cast<T*>(nullptr), rows, Di, 2 * S,
                    accumulate::yes);
    kernels::silu_backward(dc.xc.data(), gu, w.gxc.data(), rows * Di);

    // Conv backward per sequence into the x half of gxz, with per-sequence tap partials.
    w.wt.resize({ndir, K, Di});
    T* wt = w.wt.data() + k * K * Di;
    for (index_t d = 0; d < Di; ++d)  // the taps as of this cache's forward == current values
      for (index_t j = 0; j < K; ++j) wt[j * Di + d] = br.conv_w.value.data()[d * K + j];
    w.gcw_part.zero();
    w.gcb_part.zero();
    parallel_for(B, [&](index_t b) {
      const index_t r0 = c.pack.offset(b), L = c.pack.length(b);
      kernels::conv1d_depthwise_backward(c.xz.data() + r0 * 2 * Di, 2 * Di, wt, w.gxc.data() + r0 * Di, w.gxz.data() + r0 * 2 * Di,
                    w.gcw_part.data() + b * K * Di, w.gcb_part.data() + b * Di, L, Di, K, k == 1);
    });
    for (index_t b = 0; b < B; ++b) {
      for (index_t d = 0; d < Di; ++d) {
        br.conv_b.grad.data()[d] += w.gcb_part.data()[b * Di + d];
        for (index_t j = 0; j < K; ++j) br.conv_w.grad.data()[d * K + j] += w.gcw_part.data()[(b * K + j) * Di + d];
      }
    }
    // dA_log = dA * A (A = -exp(A_log)); the kernel's gA is [S, D_in].
    for (index_t b = 0; b < B; ++b) {
      const index_t j = b * ndir + k;
      const T* ga = w.ga_part.data() + j * S * Di;
      const T* gd = w.gd_part.data() + j * Di;
      for (index_t d = 0; d < Di; ++d) {
        br.d.grad.data()[d] += gd[d];
        for (index_t n = 0; n < S; ++n) br.a_log.grad(d, n) += ga[n * Di + d] * dc.at(n, d);
      }
    }
  }

  // in_proj, then scatter dx (0 at dead positions).
  if (!c.pack.masked()) {
    linear_backward(c.xg.data(), in_proj_.value.data(), w.gxz.data(), dx.data(), in_proj_.grad.data(),
                    static_cast<T*>(nullptr), rows, C, 2 * Di);
    return;
  }
  w.gxg.resize({rows, C});
  linear_backward(c.xg.data(), in_proj_.value.data(), w.gxz.data(), w.gxg.data(), in_proj_.grad.data(),
                  static_cast<T*>(nullptr), rows, C, 2 * Di);
  c.pack.scatter(w.gxg.data(), dx.data(), C);
}

// ---- registry traits (mixers/traits.hpp) --------------------------------------------------
// The per-block options of docs/formats.md section 1 (the width comes from the model), in the
// order the config JSON writes them.
struct selective_scan_options {
  index_t d_state = 16;  // S, the state size per channel
  index_t d_conv = 4;    // K, the depthwise conv taps
  double expand = 2.0;   // D_in = floor(expand * C)
  auto_index dt_rank{};  // auto: ceil(C / 16)
  bool bidirectional = false;  // add the reversed branch (Vim v2)

  // Lists the fields in config JSON order (d_state, d_conv, expand, dt_rank, bidirectional).
  template <class F>
  void fields(F&& f) {
    f("d_state", d_state);
    f("d_conv", d_conv);
    f("expand", expand);
    f("dt_rank", dt_rank);
    f("bidirectional", bidirectional);
  }
  // Throws config_error naming `where` and the field for an out-of-range value.
  void validate(std::string_view where) const {
    auto bad = [&](const char* field, auto v, const char* want) {
      throw config_error(detail::concat(where, ": ", field, " is ", v, ", expected ", want));
    };
    // Upper bounds far above Mamba's settings (d_state 16, d_conv 4, expand 2) keep a config
    // file from asking for terabytes.
    if (d_state < 1 || d_state > 4096) bad("d_state", d_state, "1..4096");
    if (d_conv < 1 || d_conv > 1024) bad("d_conv", d_conv, "1..1024");
    if (!(std::isfinite(expand) && expand > 0 && expand <= 64)) bad("expand", expand, "a number in (0, 64]");
    if (dt_rank.value < 0 || dt_rank.value > 65536) bad("dt_rank", dt_rank.value, "1..65536 or \"auto\"");
  }
  // Same values, "auto" included.
  friend bool operator==(const selective_scan_options&, const selective_scan_options&) = default;
};

// Registers SelectiveScan as "selective_scan" with selective_scan_options.
template <class T>
struct mixer_traits<SelectiveScan<T>> {
  static constexpr std::string_view kind = "selective_scan";  // the registry and config name
  using options = selective_scan_options;                     // the per-block options
  // Builds the mixer for the model's width (heads are unused) and initialises it from `rng`.
  static SelectiveScan<T> make(const options& o, const mixer_dims& d, Rng& rng) {
    typename SelectiveScan<T>::config c;
    c.dim = d.dim;
    c.d_state = o.d_state;
    c.d_conv = o.d_conv;
    c.expand = o.expand;
    c.dt_rank = o.dt_rank.value;
    c.bidirectional = o.bidirectional;
    SelectiveScan<T> m(c);
    m.init(rng);
    return m;
  }
  // The options a checkpoint records, dt_rank "auto" if it was asked for.
  static options options_of(const SelectiveScan<T>& m) {
    const auto& c = m.cfg();
    return {c.d_state, c.d_conv, c.expand, auto_index{m.dt_rank_is_auto() ? 0 : c.dt_rank}, c.bidirectional};
  }
};

// Compiled in src/compiled/mixers.cpp when SPARSIMIX_EXTERN_TEMPLATES is set (fwd.hpp).
SPARSIMIX_EXTERN_TEMPLATE(class SelectiveScan<float>)
SPARSIMIX_EXTERN_TEMPLATE(class SelectiveScan<double>)

SPARSIMIX_ABI_END
}  // namespace sparsimix
