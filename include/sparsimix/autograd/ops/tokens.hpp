// Tape ops on the token axis of [B, N, C]: concat_tokens, slice_tokens, reshape (a view),
// mask_tokens (the masking op: zeroes dead tokens, Note [token mask gather]). Node, forward
// and backward side by side.
#pragma once
#include <algorithm>

#include "../../core/token_packing.hpp"
#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../core/token_mask.hpp"
#include "../var.hpp"

namespace sparsimix::detail {
SPARSIMIX_ABI_BEGIN

template <class T>
class tape_core;

struct concat_tokens_node {
  Var a, b, y;
};
struct slice_tokens_node {
  Var x, y;
  index_t start, count;
};
struct reshape_node {
  Var x, y;
};
// The mask's [B, N] bytes were copied to the tape at byte offset `mask`.
struct mask_tokens_node {
  Var x, y;
  index_t rows, c, mask;
};

template <class T>
Var concat_tokens(tape_core<T>& t, Var a, Var b) {
  const Shape as = t.shape(a), bs = t.shape(b);
  check_shape("Tape::concat_tokens", "a", as, {-1, -1, -1});
  check_shape("Tape::concat_tokens", "b", bs, {-1, -1, as[2]});
  if (as[0] != bs[0] && as[0] != 1 && bs[0] != 1)
    throw shape_error(concat("Tape::concat_tokens: b is ", bs.str(), ", expected batch ", as[0], " (or 1) to match a ",
                             as.str()));
  const index_t batch = std::max(as[0], bs[0]), na = as[1], nb = bs[1], c = as[2];
  const Var y = t.new_var(Shape{batch, na + nb, c}, t.rg(a) || t.rg(b));
  for (index_t i = 0; i < batch; ++i) {
    T* dst = t.ptr(y) + i * (na + nb) * c;
    const T* sa = t.ptr(a) + (as[0] == 1 ? 0 : i) * na * c;
    const T* sb = t.ptr(b) + (bs[0] == 1 ? 0 : i) * nb * c;
    std::copy(sa, sa + na * c, dst);
    std::copy(sb, sb + nb * c, dst + na * c);
  }
  t.push(concat_tokens_node{a, b, y});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const concat_tokens_node& nd, const T* dy) {
  const Shape as = t.shape(nd.a), bs = t.shape(nd.b);
  const index_t batch = t.shape(nd.y)[0], na = as[1], nb = bs[1], c = as[2];
  T* ga = t.acc_grad(nd.a);
  T* gb = t.acc_grad(nd.b);
  for (index_t i = 0; i < batch; ++i) {
    const T* src = dy + i * (na + nb) * c;
    if (ga) {
      T* d = ga + (as[0] == 1 ? 0 : i) * na * c;
      for (index_t j = 0; j < na * c; ++j) d[j] += src[j];
    }
    if (gb) {
      T* d = gb + (bs[0] == 1 ? 0 : i) * nb * c;
      for (index_t j = 0; j < nb * c; ++j) d[j] += src[na * c + j];
    }
  }
}

template <class T>
Var slice_tokens(tape_core<T>& t, Var x, index_t start, index_t count) {
  const Shape xs = t.shape(x);
  check_shape("Tape::slice_tokens", "x", xs, {-1, -1, -1});
  if (start < 0 || count < 0 || start + count > xs[1])
    throw shape_error(concat("Tape::slice_tokens: tokens [", start, ", ", start + count, ") of x ", xs.str(),
                             " are out of range"));
  const index_t batch = xs[0], n = xs[1], c = xs[2];
  const Var y = t.new_var(Shape{batch, count, c}, t.rg(x));
  for (index_t i = 0; i < batch; ++i) {
    const T* src = t.ptr(x) + (i * n + start) * c;
    std::copy(src, src + count * c, t.ptr(y) + i * count * c);
  }
  t.push(slice_tokens_node{x, y, start, count});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const slice_tokens_node& nd, const T* dy) {
  T* gx = t.acc_grad(nd.x);
  if (!gx) return;
  const Shape xs = t.shape(nd.x);
  const index_t batch = xs[0], n = xs[1], c = xs[2];
  for (index_t i = 0; i < batch; ++i) {
    T* d = gx + (i * n + nd.start) * c;
    const T* src = dy + i * nd.count * c;
    for (index_t j = 0; j < nd.count * c; ++j) d[j] += src[j];
  }
}

// Same values, another shape with the same element count (the value is shared, not copied).
template <class T>
Var reshape(tape_core<T>& t, Var x, Shape s) {
  if (s.numel() != t.numel(x))
    throw shape_error(concat("Tape::reshape: cannot view ", t.shape(x).str(), " as ", s.str()));
  const Var y = t.view_var(x, s);
  t.push(reshape_node{x, y});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const reshape_node& nd, const T* dy) {
  const index_t n = t.numel(nd.y);
  if (T* gx = t.acc_grad(nd.x))
    for (index_t i = 0; i < n; ++i) gx[i] += dy[i];
}

template <class T>
Var mask_tokens(tape_core<T>& t, Var x, const TokenMask& mask) {
  const Shape xs = t.shape(x);
  check_shape("Tape::mask_tokens", "x", xs, {-1, -1, -1});
  mask.check_fits("Tape::mask_tokens", xs);
  const index_t rows = xs[0] * xs[1], c = xs[2];
  const Var y = t.new_var(xs, t.rg(x));
  const index_t off = t.save_mask(mask);
  std::copy(t.ptr(x), t.ptr(x) + rows * c, t.ptr(y));
  zero_dead_tokens(mask, t.ptr(y), c);
  t.push(mask_tokens_node{x, y, rows, c, off});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const mask_tokens_node& nd, const T* dy) {
  T* gx = t.acc_grad(nd.x);
  if (!gx) return;
  for (index_t r = 0; r < nd.rows; ++r)
    if (t.mask_byte(nd.mask + r))
      for (index_t j = r * nd.c; j < (r + 1) * nd.c; ++j) gx[j] += dy[j];
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::detail
