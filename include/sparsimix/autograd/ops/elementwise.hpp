// Tape ops of the elementwise family: add (with trailing broadcast), mul, scale, and the
// reduction sum. Node, forward and backward side by side (STYLE.md section 11).
#pragma once
#include <algorithm>
#include <vector>
#include "../../core/error.hpp"
#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"
#include "../../core/token_mask.hpp"
#include "../var.hpp"

namespace sparsimix::detail {
SPARSIMIX_ABI_BEGIN

template <class T>
class tape_core;

// y = a + b, b broadcast over a's leading dimensions (nb = b's element count).
struct add_node {
  Var a, b, y;
  index_t nb;
};
struct mul_node {
  Var a, b, y;
};
struct scale_node {
  Var a, y;
  double s;
};
struct sum_node {
  Var x, y;
};

template <class T>
Var add(tape_core<T>& t, Var a, Var b) {
  const Shape as = t.shape(a), bs = t.shape(b);
  if (!tape_core<T>::broadcastable(as, bs))
    throw shape_error(concat("Tape::add: b is ", bs.str(), ", expected ", as.str(), " or a trailing part of it"));
  const Var y = t.new_var(as, t.rg(a) || t.rg(b));
  const T* pa = t.ptr(a);
  const T* pb = t.ptr(b);
  T* py = t.ptr(y);
  const index_t n = as.numel(), nb = bs.numel();
  if (nb == n)  // residual adds: one flat pass
    parallel_rows(n, 1, [&](index_t, index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) py[i] = pa[i] + pb[i];
    });
  else if (nb > 0)
    parallel_rows(n / nb, nb, [&](index_t, index_t r0, index_t r1) {
      for (index_t i = r0 * nb; i < r1 * nb; i += nb)
        for (index_t j = 0; j < nb; ++j) py[i + j] = pa[i + j] + pb[j];
    });
  t.push(add_node{a, b, y, nb});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const add_node& nd, const T* dy) {
  const index_t n = t.numel(nd.y), nb = nd.nb;
  t.add_to_grad(nd.a, dy);
  if (nb == n) {
    t.add_to_grad(nd.b, dy);
    return;
  }
  T* gb = t.acc_grad(nd.b);
  if (!gb || nb == 0) return;
  // The broadcast b's gradient sums over rows: chunk 0 adds into gb, the others into partials
  // added after it in chunk order.
  const index_t rows = n / nb, chunks = row_chunks(rows, nb);
  std::vector<T> partial(static_cast<std::size_t>((chunks - 1) * nb), T(0));
  parallel_for(chunks, [&](index_t c) {
    T* g = c == 0 ? gb : partial.data() + (c - 1) * nb;
    for (index_t r = row_chunk_begin(rows, chunks, c); r < row_chunk_begin(rows, chunks, c + 1); ++r)
      for (index_t j = 0; j < nb; ++j) g[j] += dy[r * nb + j];
  });
  for (index_t c = 1; c < chunks; ++c)
    for (index_t j = 0; j < nb; ++j) gb[j] += partial[static_cast<std::size_t>((c - 1) * nb + j)];
}

template <class T>
Var mul(tape_core<T>& t, Var a, Var b) {
  t.check_same("Tape::mul", a, b);
  const Var y = t.new_var(t.shape(a), t.rg(a) || t.rg(b));
  const index_t n = t.numel(a);
  const T* pa = t.ptr(a);
  const T* pb = t.ptr(b);
  T* py = t.ptr(y);
  for (index_t i = 0; i < n; ++i) py[i] = pa[i] * pb[i];
  t.push(mul_node{a, b, y});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const mul_node& nd, const T* dy) {
  const index_t n = t.numel(nd.y);
  const T* a = t.ptr(nd.a);
  const T* b = t.ptr(nd.b);
  if (T* ga = t.acc_grad(nd.a))
    for (index_t i = 0; i < n; ++i) ga[i] += dy[i] * b[i];
  if (T* gb = t.acc_grad(nd.b))
    for (index_t i = 0; i < n; ++i) gb[i] += dy[i] * a[i];
}

template <class T>
Var scale(tape_core<T>& t, Var a, T s) {
  const Var y = t.new_var(t.shape(a), t.rg(a));
  const index_t n = t.numel(a);
  const T* pa = t.ptr(a);
  T* py = t.ptr(y);
  for (index_t i = 0; i < n; ++i) py[i] = s * pa[i];
  t.push(scale_node{a, y, static_cast<double>(s)});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const scale_node& nd, const T* dy) {
  const index_t n = t.numel(nd.y);
  const T s = static_cast<T>(nd.s);
  if (T* ga = t.acc_grad(nd.a))
    for (index_t i = 0; i < n; ++i) ga[i] += s * dy[i];
}

// Sum of every element (in double): a scalar.
template <class T>
Var sum(tape_core<T>& t, Var x) {
  const Var y = t.new_var(Shape{}, t.rg(x));
  double s = 0;
  const index_t n = t.numel(x);
  const T* px = t.ptr(x);
  for (index_t i = 0; i < n; ++i) s += static_cast<double>(px[i]);
  t.ptr(y)[0] = static_cast<T>(s);
  t.push(sum_node{x, y});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const sum_node& nd, const T* dy) {
  const index_t n = t.numel(nd.x);
  if (T* gx = t.acc_grad(nd.x))
    for (index_t i = 0; i < n; ++i) gx[i] += dy[0];
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::detail
