// Tape ops of the linear family: y = x w^T + b (PyTorch Linear) and the fused
// gelu(x w^T + b) of a ViT MLP's fc1. Each op: its node (what backward reads), its forward
// and its backward, side by side (STYLE.md section 11).
#pragma once
#include <algorithm>
#include "../../core/linalg.hpp"
#include "../../kernels/activations.hpp"
#include "../../kernels/bias_act.hpp"
#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../core/token_mask.hpp"
#include "../var.hpp"

namespace sparsimix::detail {
SPARSIMIX_ABI_BEGIN

template <class T>
class tape_core;

// y[m, n] = x[m, k] w[n, k]^T + b[n]; b optional.
struct linear_node {
  Var x, w, b, y;
  index_t m, k, n;
};
// y = gelu(z), z = x w^T + b kept in aux slot `pre`.
struct linear_gelu_node {
  Var x, w, b, y;
  index_t m, k, n, pre;
};

template <class T>
void check_linear(const char* where, tape_core<T>& t, Var x, Var w, index_t& m, index_t& k, index_t& n) {
  const Shape xs = t.shape(x), ws = t.shape(w);
  check_shape(where, "w", ws, {-1, -1});
  n = ws[0], k = ws[1];
  if (xs.rank() < 1 || xs[xs.rank() - 1] != k)
    throw shape_error(concat(where, ": x is ", xs.str(), ", expected [..., ", k, "] to match w ", ws.str()));
  m = xs.numel() / std::max<index_t>(k, 1);
}

template <class T>
Var linear(tape_core<T>& t, Var x, Var w, Var b) {
  index_t m, k, n;
  check_linear("Tape::linear", t, x, w, m, k, n);
  if (b.valid()) check_shape("Tape::linear", "b", t.shape(b), {n});
  const Var y = t.new_var(tape_core<T>::with_last(t.shape(x), n), t.rg(x) || t.rg(w) || (b.valid() && t.rg(b)));
  linear_forward(t.ptr(x), t.ptr(w), b.valid() ? t.ptr(b) : static_cast<const T*>(nullptr), t.ptr(y), m, k, n);
  t.push(linear_node{x, w, b, y, m, k, n});
  return y;
}

// Backward of z = x w^T + b given dL/dz: x's gradient is written on first use and added after.
template <class T>
void linear_backward_into(tape_core<T>& t, Var x, Var w, Var b, const T* dz, index_t m, index_t k, index_t n) {
  T* dw = t.acc_grad(w);
  T* db = t.acc_grad(b);
  T* dx = nullptr;
  accumulate acc = accumulate::no;
  auto& xi = t.info(x);
  if (xi.grad) {
    dx = xi.grad;
    acc = xi.grad_ready ? accumulate::yes : accumulate::no;
    xi.grad_ready = true;
  }
  linear_backward(t.ptr(x), t.ptr(w), dz, dx, dw, db, m, k, n, acc);
}

template <class T>
void backward(tape_core<T>& t, const linear_node& nd, const T* dy) {
  linear_backward_into(t, nd.x, nd.w, nd.b, dy, nd.m, nd.k, nd.n);
}

// The bias and GELU run as one fused pass over the GEMM output (kernels::bias_gelu); only
// the pre-activation is kept.
template <class T>
Var linear_gelu(tape_core<T>& t, Var x, Var w, Var b) {
  index_t m, k, n;
  check_linear("Tape::linear_gelu", t, x, w, m, k, n);
  check_shape("Tape::linear_gelu", "b", t.shape(b), {n});
  const Var y = t.new_var(tape_core<T>::with_last(t.shape(x), n), t.rg(x) || t.rg(w) || t.rg(b));
  const index_t pre = t.new_aux(tape_core<T>::with_last(t.shape(x), n));
  linear_forward(t.ptr(x), t.ptr(w), static_cast<const T*>(nullptr), t.ptr(y), m, k, n);
  T* py = t.ptr(y);
  const T* pb = t.ptr(b);
  T* ppre = t.aux_data(pre);
  parallel_rows(m, n, [&](index_t, index_t r0, index_t r1) { kernels::bias_gelu(py + r0 * n, pb, r1 - r0, n, ppre + r0 * n); });
  t.push(linear_gelu_node{x, w, b, y, m, k, n, pre});
  return y;
}

template <class T>
void backward(tape_core<T>& t, const linear_gelu_node& nd, const T* dy) {
  t.scratch.resize(Shape{nd.m * nd.n});  // d(pre-activation)
  const T* pre = t.aux_data(nd.pre);
  T* dpre = t.scratch.data();
  const index_t n = nd.n;
  parallel_rows(nd.m, n, [&](index_t, index_t r0, index_t r1) {
    kernels::gelu_backward(pre + r0 * n, dy + r0 * n, dpre + r0 * n, (r1 - r0) * n);
  });
  linear_backward_into(t, nd.x, nd.w, nd.b, t.scratch.data(), nd.m, nd.k, nd.n);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::detail
