// Tape losses, each a scalar: mse (optionally over alive tokens), cosine_loss, cross_entropy
// (label smoothing), kl_div_logits (temperature), bernoulli_kl (A-ViT halting distillation),
// and external_loss (a term computed outside the tape with its gradient given, e.g. the A-ViT
// ponder and prior losses of the halting controller). Node, forward and backward side by side.
#pragma once
#include <algorithm>
#include <cmath>
#include <span>

#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../core/token_mask.hpp"
#include "../var.hpp"

namespace sparsimix::detail {
SPARSIMIX_ABI_BEGIN

template <class T>
class tape_core;

// Mean of (a - b)^2 over `counted` elements: every element, or with a mask (saved at byte
// offset `mask`, -1 for none) the c channels of alive tokens only.
struct mse_node {
  Var a, b, y;
  index_t counted, c, mask;
};
// Per row r: dot, |a| and |b| (clamped to eps) in aux slot `stats` ([rows, 3]).
struct cosine_loss_node {
  Var a, b, y;
  index_t rows, c, stats;
  double eps;
};
// Labels at offset `labels` of the tape's label list; log-probabilities in aux slot `logp`.
struct cross_entropy_node {
  Var logits, y;
  index_t labels, k, logp;
  double smoothing;
};
// log p_s and log p_t in aux slots logp, logp + 1.
struct kl_div_logits_node {
  Var student, teacher, y;
  index_t batch, k, logp;
  double tau;
};
struct bernoulli_kl_node {
  Var p, q, y;
};
// dL/dx given (aux slot `grad`).
struct external_loss_node {
  Var x, y;
  index_t grad;
};

inline double clamp_prob(double x) noexcept { return std::min(std::max(x, 1e-6), 1.0 - 1e-6); }

// lp[r, :] = log_softmax(x[r, :] * s), stable (max subtracted), sums in double.
template <class T>
void log_softmax_rows(const T* x, T* lp, index_t rows, index_t k, T s) {
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x + r * k;
    T* o = lp + r * k;
    double mx = -INFINITY;
    for (index_t j = 0; j < k; ++j) mx = std::max(mx, static_cast<double>(xr[j] * s));
    double z = 0;
    for (index_t j = 0; j < k; ++j) z += std::exp(static_cast<double>(xr[j] * s) - mx);
    const double lse = mx + std::log(z);
    for (index_t j = 0; j < k; ++j) o[j] = static_cast<T>(static_cast<double>(xr[j] * s) - lse);
  }
}

template <class T>
Var mse(tape_core<T>& t, Var a, Var b, const TokenMask* mask) {
  t.check_same("Tape::mse", a, b);
  if (mask) {
    check_shape("Tape::mse", "a", t.shape(a), {-1, -1, -1});
    mask->check_fits("Tape::mse", t.shape(a));
  }
  const Var y = t.new_var(Shape{}, t.rg(a) || t.rg(b));
  const index_t n = t.numel(a);
  const index_t c = mask ? t.shape(a)[2] : n;  // elements per mask entry
  index_t counted = 0;
  double s = 0;
  const T* pa = t.ptr(a);
  const T* pb = t.ptr(b);
  for (index_t r = 0; r < n / std::max<index_t>(c, 1); ++r) {
    if (mask && !mask->tensor().data()[r]) continue;
    counted += c;
    for (index_t j = r * c; j < (r + 1) * c; ++j) {
      const double d = static_cast<double>(pa[j]) - static_cast<double>(pb[j]);
      s += d * d;
    }
  }
  t.ptr(y)[0] = counted > 0 ? static_cast<T>(s / static_cast<double>(counted)) : T(0);
  t.push(mse_node{a, b, y, counted, c, mask ? t.save_mask(*mask) : -1});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const mse_node& nd, const T* dy) {
  const index_t n = t.numel(nd.a), c = nd.c;
  if (nd.counted == 0) return;
  const T g = T(2) * dy[0] / static_cast<T>(nd.counted);
  T* ga = t.acc_grad(nd.a);
  T* gb = t.acc_grad(nd.b);
  const T* a = t.ptr(nd.a);
  const T* b = t.ptr(nd.b);
  for (index_t r = 0; r < n / c; ++r) {
    if (nd.mask >= 0 && !t.mask_byte(nd.mask + r)) continue;
    for (index_t j = r * c; j < (r + 1) * c; ++j) {
      const T d = g * (a[j] - b[j]);
      if (ga) ga[j] += d;
      if (gb) gb[j] -= d;
    }
  }
}

template <class T>
Var cosine_loss(tape_core<T>& t, Var a, Var b, T eps) {
  t.check_same("Tape::cosine_loss", a, b);
  const Shape as = t.shape(a);
  if (as.rank() < 1) throw shape_error("Tape::cosine_loss: a is a scalar, expected [..., C]");
  const index_t c = as[as.rank() - 1], rows = as.numel() / std::max<index_t>(c, 1);
  const Var y = t.new_var(Shape{}, t.rg(a) || t.rg(b));
  const index_t stats = t.new_aux(Shape{rows, 3});
  T* st = t.aux_data(stats);
  double total = 0;
  for (index_t r = 0; r < rows; ++r) {
    const T* pa = t.ptr(a) + r * c;
    const T* pb = t.ptr(b) + r * c;
    double d = 0, na = 0, nb = 0;
    for (index_t j = 0; j < c; ++j) {
      d += static_cast<double>(pa[j]) * static_cast<double>(pb[j]);
      na += static_cast<double>(pa[j]) * static_cast<double>(pa[j]);
      nb += static_cast<double>(pb[j]) * static_cast<double>(pb[j]);
    }
    na = std::max(std::sqrt(na), static_cast<double>(eps));
    nb = std::max(std::sqrt(nb), static_cast<double>(eps));
    st[3 * r] = static_cast<T>(d);
    st[3 * r + 1] = static_cast<T>(na);
    st[3 * r + 2] = static_cast<T>(nb);
    total += 1.0 - d / (na * nb);
  }
  t.ptr(y)[0] = rows > 0 ? static_cast<T>(total / static_cast<double>(rows)) : T(0);
  t.push(cosine_loss_node{a, b, y, rows, c, stats, static_cast<double>(eps)});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const cosine_loss_node& nd, const T* dy) {
  const index_t rows = nd.rows, c = nd.c;
  const T* st = t.aux_data(nd.stats);
  const T eps = static_cast<T>(nd.eps);
  const T* a = t.ptr(nd.a);
  const T* b = t.ptr(nd.b);
  T* ga = t.acc_grad(nd.a);
  T* gb = t.acc_grad(nd.b);
  const T g = -dy[0] / static_cast<T>(rows);  // d(1 - cos)/dcos, averaged
  for (index_t r = 0; r < rows; ++r) {
    const T d = st[3 * r], na = st[3 * r + 1], nb = st[3 * r + 2];
    const T inv = T(1) / (na * nb);
    // d cos / da = b / (na nb) - cos * a / na^2, the second term only where |a| > eps.
    const T ca = na > eps ? d * inv / (na * na) : T(0);
    const T cb = nb > eps ? d * inv / (nb * nb) : T(0);
    for (index_t j = 0; j < c; ++j) {
      const T aj = a[r * c + j], bj = b[r * c + j];
      if (ga) ga[r * c + j] += g * (bj * inv - ca * aj);
      if (gb) gb[r * c + j] += g * (aj * inv - cb * bj);
    }
  }
}

template <class T>
Var cross_entropy(tape_core<T>& t, Var logits, std::span<const index_t> labels, T smoothing) {
  const Shape ls = t.shape(logits);
  check_shape("Tape::cross_entropy", "logits", ls, {-1, -1});
  const index_t batch = ls[0], k = ls[1];
  if (static_cast<index_t>(labels.size()) != batch)
    throw shape_error(concat("Tape::cross_entropy: labels has ", labels.size(), " entries, expected ", batch,
                             " to match logits ", ls.str()));
  if (!(smoothing >= T(0) && smoothing <= T(1)))
    throw config_error(concat("Tape::cross_entropy: label smoothing is ", smoothing, ", expected [0, 1]"));
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= k)
      throw numeric_error(concat("Tape::cross_entropy: label ", labels[i], " at index ", i, " is out of range [0, ", k,
                                 ")"));
  const Var y = t.new_var(Shape{}, t.rg(logits));
  const index_t logp = t.new_aux(ls);
  T* lp = t.aux_data(logp);
  log_softmax_rows(t.ptr(logits), lp, batch, k, T(1));
  const index_t off = t.save_labels(labels);
  const double e = static_cast<double>(smoothing);
  double total = 0;
  for (index_t i = 0; i < batch; ++i) {
    double all = 0;
    for (index_t j = 0; j < k; ++j) all += static_cast<double>(lp[i * k + j]);
    total -= (1 - e) * static_cast<double>(lp[i * k + labels[static_cast<std::size_t>(i)]]) + e / static_cast<double>(k) * all;
  }
  t.ptr(y)[0] = batch > 0 ? static_cast<T>(total / static_cast<double>(batch)) : T(0);
  t.push(cross_entropy_node{logits, y, off, k, logp, e});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const cross_entropy_node& nd, const T* dy) {
  T* gl = t.acc_grad(nd.logits);
  if (!gl) return;
  const index_t batch = t.shape(nd.logits)[0], k = nd.k;
  const T* lp = t.aux_data(nd.logp);
  const T e = static_cast<T>(nd.smoothing);
  const T g = dy[0] / static_cast<T>(batch);
  const T uniform = e / static_cast<T>(k);
  for (index_t i = 0; i < batch; ++i) {
    const index_t label = t.label(nd.labels + i);
    for (index_t j = 0; j < k; ++j) {
      const T target = (j == label ? T(1) - e : T(0)) + uniform;
      gl[i * k + j] += g * (std::exp(lp[i * k + j]) - target);
    }
  }
}

template <class T>
Var kl_div_logits(tape_core<T>& t, Var student, Var teacher, T temperature) {
  check_shape("Tape::kl_div_logits", "student", t.shape(student), {-1, -1});
  t.check_same("Tape::kl_div_logits", student, teacher);
  if (!(temperature > T(0)))
    throw config_error(concat("Tape::kl_div_logits: temperature is ", temperature, ", expected > 0"));
  const index_t batch = t.shape(student)[0], k = t.shape(student)[1];
  const Var y = t.new_var(Shape{}, t.rg(student) || t.rg(teacher));
  const index_t logp = t.new_aux(t.shape(student));  // log p_s
  t.new_aux(t.shape(student));                       // log p_t
  T* ls = t.aux_data(logp);
  T* lt = t.aux_data(logp + 1);
  const T inv_tau = T(1) / temperature;
  log_softmax_rows(t.ptr(student), ls, batch, k, inv_tau);
  log_softmax_rows(t.ptr(teacher), lt, batch, k, inv_tau);
  double total = 0;
  for (index_t i = 0; i < batch * k; ++i) {
    const double lpt = static_cast<double>(lt[i]);
    total += std::exp(lpt) * (lpt - static_cast<double>(ls[i]));
  }
  const double tau = static_cast<double>(temperature);
  t.ptr(y)[0] = batch > 0 ? static_cast<T>(tau * tau * total / static_cast<double>(batch)) : T(0);
  t.push(kl_div_logits_node{student, teacher, y, batch, k, logp, tau});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const kl_div_logits_node& nd, const T* dy) {
  const index_t batch = nd.batch, k = nd.k;
  const T* ls = t.aux_data(nd.logp);
  const T* lt = t.aux_data(nd.logp + 1);
  const T tau = static_cast<T>(nd.tau);
  // L = tau^2/B sum p_t (log p_t - log p_s), logits divided by tau:
  // dL/ds = tau/B (p_s - p_t); dL/dt = tau/B p_t (g - <p_t, g>), g = log p_t - log p_s.
  const T g = dy[0] * tau / static_cast<T>(batch);
  if (T* gs = t.acc_grad(nd.student))
    for (index_t i = 0; i < batch * k; ++i) gs[i] += g * (std::exp(ls[i]) - std::exp(lt[i]));
  if (T* gt = t.acc_grad(nd.teacher)) {
    for (index_t i = 0; i < batch; ++i) {
      T mean_g = 0;
      for (index_t j = 0; j < k; ++j) mean_g += std::exp(lt[i * k + j]) * (lt[i * k + j] - ls[i * k + j]);
      for (index_t j = 0; j < k; ++j) {
        const T pt = std::exp(lt[i * k + j]);
        gt[i * k + j] += g * pt * (lt[i * k + j] - ls[i * k + j] - mean_g);
      }
    }
  }
}

template <class T>
Var bernoulli_kl(tape_core<T>& t, Var p, Var q) {
  t.check_same("Tape::bernoulli_kl", p, q);
  const Var y = t.new_var(Shape{}, t.rg(p) || t.rg(q));
  const index_t n = t.numel(p);
  double total = 0;
  const T* pp = t.ptr(p);
  const T* pq = t.ptr(q);
  for (index_t i = 0; i < n; ++i) {
    const double pc = clamp_prob(static_cast<double>(pp[i]));
    const double qc = clamp_prob(static_cast<double>(pq[i]));
    total += pc * std::log(pc / qc) + (1 - pc) * std::log((1 - pc) / (1 - qc));
  }
  t.ptr(y)[0] = n > 0 ? static_cast<T>(total / static_cast<double>(n)) : T(0);
  t.push(bernoulli_kl_node{p, q, y});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const bernoulli_kl_node& nd, const T* dy) {
  const index_t n = t.numel(nd.p);
  const double g = static_cast<double>(dy[0]) / static_cast<double>(n);
  const T* p = t.ptr(nd.p);
  const T* q = t.ptr(nd.q);
  T* gp = t.acc_grad(nd.p);
  T* gq = t.acc_grad(nd.q);
  constexpr double lo = 1e-6, hi = 1.0 - 1e-6;
  for (index_t i = 0; i < n; ++i) {
    const double pr = static_cast<double>(p[i]), qr = static_cast<double>(q[i]);
    const double pc = clamp_prob(pr), qc = clamp_prob(qr);
    if (gp && pr >= lo && pr <= hi) gp[i] += static_cast<T>(g * (std::log(pc / qc) - std::log((1 - pc) / (1 - qc))));
    if (gq && qr >= lo && qr <= hi) gq[i] += static_cast<T>(g * (-pc / qc + (1 - pc) / (1 - qc)));
  }
}

// A scalar term computed outside the tape from x's value (`value`), with its gradient
// dL/dx (x's shape, copied) supplied by whoever computed it.
template <class T>
Var external_loss(tape_core<T>& t, T value, Var x, TensorView<const T> dloss_dx) {
  if (!(dloss_dx.shape() == t.shape(x)))
    throw shape_error(concat("Tape::external_loss: dloss_dx is ", dloss_dx.shape().str(), ", expected ",
                             t.shape(x).str(), " like x"));
  const Var y = t.new_var(Shape{}, t.rg(x));
  t.ptr(y)[0] = value;
  const index_t grad = t.new_aux(dloss_dx.shape());
  std::copy(dloss_dx.begin(), dloss_dx.end(), t.aux_data(grad));
  t.push(external_loss_node{x, y, grad});
  return y;
}
template <class T>
void backward(tape_core<T>& t, const external_loss_node& nd, const T* dy) {
  const index_t n = t.numel(nd.x);
  const T* g = t.aux_data(nd.grad);
  if (T* gx = t.acc_grad(nd.x))
    for (index_t i = 0; i < n; ++i) gx[i] += dy[0] * g[i];
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::detail
