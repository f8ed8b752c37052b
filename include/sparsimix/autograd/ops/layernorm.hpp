// Tape op: LayerNorm over the last dimension. Node, forward and backward side by side.
#pragma once
#include <algorithm>
#include "../../kernels/layernorm.hpp"
#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../core/token_mask.hpp"
#include "../var.hpp"

namespace sparsimix::detail {
SPARSIMIX_ABI_BEGIN

template <class T>
class tape_core;

// y = (x - mean) * rstd * gamma + beta; mean and rstd per row kept in aux slots stats, stats + 1.
struct layernorm_node {
  Var x, gamma, beta, y;
  index_t rows, c, stats;
};

template <class T>
Var layernorm(tape_core<T>& t, Var x, Var gamma, Var beta, T eps) {
  const Shape xs = t.shape(x);
  if (xs.rank() < 1) throw shape_error("Tape::layernorm: x is a scalar, expected [..., C]");
  const index_t c = xs[xs.rank() - 1], rows = xs.numel() / std::max<index_t>(c, 1);
  check_shape("Tape::layernorm", "gamma", t.shape(gamma), {c});
  check_shape("Tape::layernorm", "beta", t.shape(beta), {c});
  const Var y = t.new_var(xs, t.rg(x) || t.rg(gamma) || t.rg(beta));
  const index_t stats = t.new_aux(Shape{rows});
  t.new_aux(Shape{rows});
  kernels::layernorm_forward(t.ptr(x), t.ptr(gamma), t.ptr(beta), t.ptr(y), t.aux_data(stats), t.aux_data(stats + 1),
                             rows, c, eps);
  t.push(layernorm_node{x, gamma, beta, y, rows, c, stats});
  return y;
}

template <class T>
void backward(tape_core<T>& t, const layernorm_node& nd, const T* dy) {
  T* dg = t.acc_grad(nd.gamma);  // the kernel adds into these; nullptr skips them
  T* dbe = t.acc_grad(nd.beta);
  const T* x = t.ptr(nd.x);
  const T* gamma = t.ptr(nd.gamma);
  const T* mean = t.aux_data(nd.stats);
  const T* rstd = t.aux_data(nd.stats + 1);
  if (t.info(nd.x).grad) {
    t.write_grad(nd.x, [&](T* dx) { kernels::layernorm_backward(x, gamma, mean, rstd, dy, dx, dg, dbe, nd.rows, nd.c); });
  } else {
    t.scratch.resize(Shape{nd.rows * nd.c});
    kernels::layernorm_backward(x, gamma, mean, rstd, dy, t.scratch.data(), dg, dbe, nd.rows, nd.c);
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::detail
