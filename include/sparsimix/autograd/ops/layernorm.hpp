// Tape op: LayerNorm over the last dimension. Node, forward and backward side by side.
#pragma once
#include <algorithm>
#include <vector>
#include "../../kernels/layernorm.hpp"
#include "../../core/parallel.hpp"
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
  const T* px = t.ptr(x);
  const T* pg = t.ptr(gamma);
  const T* pb = t.ptr(beta);
  T* py = t.ptr(y);
  T* mean = t.aux_data(stats);
  T* rstd = t.aux_data(stats + 1);
  parallel_rows(rows, c, [&](index_t, index_t r0, index_t r1) {
    kernels::layernorm_forward(px + r0 * c, pg, pb, py + r0 * c, mean + r0, rstd + r0, r1 - r0, c, eps);
  });
  t.push(layernorm_node{x, gamma, beta, y, rows, c, stats});
  return y;
}

// kernels::layernorm_backward over row chunks in parallel: chunk 0 adds into dg and dbe, the
// others into partial sums that are added after it in chunk order.
template <class T>
void layernorm_backward_rows(const T* x, const T* gamma, const T* mean, const T* rstd, const T* dy, T* dx, T* dg, T* dbe,
                             index_t rows, index_t c) {
  const index_t chunks = row_chunks(rows, c);
  std::vector<T> partial(static_cast<std::size_t>(2 * (chunks - 1) * c), T(0));
  parallel_for(chunks, [&](index_t k) {
    const index_t r0 = row_chunk_begin(rows, chunks, k), r1 = row_chunk_begin(rows, chunks, k + 1);
    T* pg = dg && k > 0 ? partial.data() + 2 * (k - 1) * c : dg;
    T* pb = dbe && k > 0 ? partial.data() + (2 * (k - 1) + 1) * c : dbe;
    kernels::layernorm_backward(x + r0 * c, gamma, mean + r0, rstd + r0, dy + r0 * c, dx + r0 * c, pg, pb, r1 - r0, c);
  });
  for (index_t k = 1; k < chunks; ++k)
    for (index_t j = 0; j < c; ++j) {
      if (dg) dg[j] += partial[static_cast<std::size_t>(2 * (k - 1) * c + j)];
      if (dbe) dbe[j] += partial[static_cast<std::size_t>((2 * (k - 1) + 1) * c + j)];
    }
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
    t.write_grad(nd.x, [&](T* dx) { layernorm_backward_rows(x, gamma, mean, rstd, dy, dx, dg, dbe, nd.rows, nd.c); });
  } else {
    t.scratch.resize(Shape{nd.rows * nd.c});
    layernorm_backward_rows(x, gamma, mean, rstd, dy, t.scratch.data(), dg, dbe, nd.rows, nd.c);
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::detail
