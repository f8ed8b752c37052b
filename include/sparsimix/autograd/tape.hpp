// A flat reverse-mode tape (micrograd's engine.py, kept flat as STYLE.md section 6 asks):
// nodes in a std::vector in execution order, values and gradients in pools indexed by
// Var id, and one reverse loop in backward(). No shared_ptr graph, no recursion, no
// std::function per node: a node is a tagged struct and backward is a switch.
//
//   Tape<float> tape;
//   Var x = tape.input(images);                       // copied, no gradient
//   Var w = tape.param(p.value, p.grad);              // bound: reads p.value, += into p.grad
//   Var y = tape.gelu(tape.linear(x, w, b));
//   Var loss = tape.cross_entropy(y, labels, 0.1);
//   tape.backward(loss);                              // parameter grads accumulate
//   tape.clear();                                     // next step; keeps every buffer
//
// Gradient bookkeeping: an intermediate's gradient buffer is not zeroed up front. Its first
// writer in the reverse loop writes it (`=`), later writers add; a node whose output
// gradient was never written is skipped (its contribution is zero). Leaves (params and
// inputs that require grad) always accumulate (`+=`), like PyTorch's .grad.
//
// Ops: linear, linear_gelu, add (with trailing broadcast), sub, mul, scale, layernorm, gelu,
// softmax, concat_tokens, slice_tokens, reshape, mean_tokens, mask_tokens, sum, mean, and
// mixer (any SeqMixer). Losses: mse (optionally token-masked), cosine_loss, cross_entropy
// (label smoothing), soft_cross_entropy, kl_div_logits (temperature), bernoulli_kl.
// Each node keeps only what its backward reads (flashlight's withoutData idea): inputs'
// values are read in place, extras (LayerNorm mean/rstd, log-probabilities, a mixer's
// cache) live in pooled buffers. Not thread-safe: one tape per thread.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "../concepts.hpp"
#include "../core/error.hpp"
#include "../core/linalg.hpp"
#include "../core/param.hpp"
#include "../core/tensor.hpp"
#include "../core/token_mask.hpp"
#include "../kernels/activations.hpp"
#include "../kernels/bias_act.hpp"
#include "../kernels/layernorm.hpp"
#include "../kernels/softmax.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// A handle to one value on a Tape: an index, valid until the tape's next clear().
struct Var {
  index_t id = -1;
  bool valid() const noexcept { return id >= 0; }
};

namespace detail {

enum class tape_op : std::uint8_t {
  leaf,
  linear,
  linear_gelu,
  add,
  sub,
  mul,
  scale,
  layernorm,
  gelu,
  softmax,
  concat_tokens,
  slice_tokens,
  reshape,
  mean_tokens,
  mask_tokens,
  sum,
  mean,
  mixer,
  mse,
  cosine_loss,
  cross_entropy,
  soft_cross_entropy,
  kl_div_logits,
  bernoulli_kl,
};

// Type-erased SeqMixer call: the node keeps the mixer's cache_type until backward.
template <class T>
struct mixer_holder_base {
  virtual ~mixer_holder_base() = default;
  virtual void backward(ConstSeq<T> dy, Seq<T> dx) = 0;
  // With a gradient on the mixer's pre-projection output too (see Tape::mixer_pre_proj).
  virtual void backward(ConstSeq<T> dy, Seq<T> dx, ConstSeq<T> ds) = 0;
};

template <class M>
struct mixer_holder final : mixer_holder_base<typename M::scalar_type> {
  using T = typename M::scalar_type;
  M* mixer = nullptr;
  typename M::cache_type cache{};
  void backward(ConstSeq<T> dy, Seq<T> dx) override { mixer->backward(cache, dy, dx); }
  void backward(ConstSeq<T> dy, Seq<T> dx, ConstSeq<T> ds) override {
    if constexpr (HasPreProjOutput<M>)
      mixer->backward(cache, dy, dx, ds);
    else
      throw config_error("Tape: this mixer has no pre-projection output");
  }
};

}  // namespace detail

template <class T = float>
class Tape {
  static_assert(std::is_floating_point_v<T>, "Tape<T>: T must be float or double");

 public:
  using scalar_type = T;

  Tape() = default;
  Tape(const Tape&) = delete;  // vars point into the pools; copying would alias them
  Tape& operator=(const Tape&) = delete;
  Tape(Tape&&) noexcept = default;
  Tape& operator=(Tape&&) noexcept = default;

  // Forgets every node and var; keeps all buffers (and mixer caches of the same type at the
  // same position), so a training loop stops allocating after its first step.
  void clear() noexcept {
    vars_.clear();
    nodes_.clear();
    labels_.clear();
    bytes_.clear();
    nval_ = ngrad_ = naux_ = nmix_ = 0;
  }

  index_t num_vars() const noexcept { return static_cast<index_t>(vars_.size()); }
  index_t num_nodes() const noexcept { return static_cast<index_t>(nodes_.size()); }

  // ---- leaves -------------------------------------------------------------------------

  // A value copied onto the tape. With requires_grad, grad(v) holds dL/dx after backward.
  Var input(TensorView<const T> x, bool requires_grad = false) {
    Var v = new_var(x.shape(), requires_grad);
    if (x.numel()) std::copy(x.begin(), x.end(), vars_[uidx(v)].value);
    if (requires_grad) make_leaf_grad(v);
    return v;
  }
  // A parameter bound to external storage: the tape reads `value` (never writes it) and
  // backward accumulates (+=) into `grad`. Both must outlive backward().
  Var param(TensorView<T> value, TensorView<T> grad) {
    if (!(value.shape() == grad.shape()))
      throw shape_error(detail::concat("Tape::param: grad is ", grad.shape().str(), ", expected ",
                                       value.shape().str(), " like value"));
    Var v{num_vars()};
    vars_.push_back({value.shape(), value.data(), grad.data(), true, true, true});
    return v;
  }
  Var param(const Param<T>& p) { return param(p.value, p.grad); }
  // A parameter that is read but gets no gradient (a frozen teacher's weight, say).
  Var frozen(TensorView<const T> value) {
    Var v{num_vars()};
    // The tape never writes a value it did not allocate; the cast only fits the var record.
    vars_.push_back({value.shape(), const_cast<T*>(value.data()), nullptr, false, false, true});
    return v;
  }

  // ---- access -------------------------------------------------------------------------

  const Shape& shape(Var v) const { return info(v).shape; }
  TensorView<const T> value(Var v) const { return {info(v).value, info(v).shape}; }
  // dL/dv after backward (empty view when v needs no gradient). For a param, its grad storage.
  TensorView<const T> grad(Var v) const {
    const auto& vi = info(v);
    if (!vi.grad) return {};
    return {vi.grad, vi.shape};
  }
  bool requires_grad(Var v) const { return info(v).requires_grad; }
  // The value of a one-element var (a loss).
  T item(Var v) const {
    const auto& vi = info(v);
    if (vi.shape.numel() != 1)
      throw shape_error(detail::concat("Tape::item: var is ", vi.shape.str(), ", expected one element"));
    return vi.value[0];
  }

  // ---- layers -------------------------------------------------------------------------

  // y[..., N] = x[..., K] w[N, K]^T + b[N]  (PyTorch Linear; b optional).
  Var linear(Var x, Var w, Var b = {}) {
    const Shape xs = shape(x), ws = shape(w);
    check_shape("Tape::linear", "w", ws, {-1, -1});
    const index_t n = ws[0], k = ws[1];
    if (xs.rank() < 1 || xs[xs.rank() - 1] != k)
      throw shape_error(detail::concat("Tape::linear: x is ", xs.str(), ", expected [..., ", k, "] to match w ", ws.str()));
    if (b.valid()) check_shape("Tape::linear", "b", shape(b), {n});
    const index_t m = xs.numel() / std::max<index_t>(k, 1);
    Var y = new_var(with_last(xs, n), rg(x) || rg(w) || (b.valid() && rg(b)));
    linear_forward(ptr(x), ptr(w), b.valid() ? ptr(b) : static_cast<const T*>(nullptr), ptr(y), m, k, n);
    push(detail::tape_op::linear, y, x, w, b, m, k, n);
    return y;
  }

  // gelu(x w^T + b) in one node (a ViT MLP's fc1): the bias and GELU run as one fused pass
  // over the GEMM output (kernels::bias_gelu), and only the pre-activation is kept.
  Var linear_gelu(Var x, Var w, Var b) {
    const Shape xs = shape(x), ws = shape(w);
    check_shape("Tape::linear_gelu", "w", ws, {-1, -1});
    const index_t n = ws[0], k = ws[1];
    if (xs.rank() < 1 || xs[xs.rank() - 1] != k)
      throw shape_error(detail::concat("Tape::linear_gelu: x is ", xs.str(), ", expected [..., ", k, "] to match w ",
                                       ws.str()));
    check_shape("Tape::linear_gelu", "b", shape(b), {n});
    const index_t m = xs.numel() / std::max<index_t>(k, 1);
    Var y = new_var(with_last(xs, n), rg(x) || rg(w) || rg(b));
    const index_t aux = new_aux(with_last(xs, n));  // pre-activation
    linear_forward(ptr(x), ptr(w), static_cast<const T*>(nullptr), ptr(y), m, k, n);
    kernels::bias_gelu(ptr(y), ptr(b), m, n, aux_data(aux));
    push(detail::tape_op::linear_gelu, y, x, w, b, m, k, aux);
    return y;
  }

  // a + b. b has a's shape, or a's trailing shape (broadcast over leading dimensions:
  // a bias [C] onto [B, N, C], a position embedding [1, N, C] onto [B, N, C]).
  Var add(Var a, Var b) {
    const Shape as = shape(a), bs = shape(b);
    if (!broadcastable(as, bs))
      throw shape_error(detail::concat("Tape::add: b is ", bs.str(), ", expected ", as.str(),
                                       " or a trailing part of it"));
    Var y = new_var(as, rg(a) || rg(b));
    const T* pa = ptr(a);
    const T* pb = ptr(b);
    T* py = ptr(y);
    const index_t n = as.numel(), nb = bs.numel();
    for (index_t i = 0; i < n; i += nb)
      for (index_t j = 0; j < nb; ++j) py[i + j] = pa[i + j] + pb[j];
    push(detail::tape_op::add, y, a, b, {}, nb);
    return y;
  }
  Var sub(Var a, Var b) {
    return elementwise("Tape::sub", detail::tape_op::sub, a, b, [](T x, T y) { return x - y; });
  }
  // Elementwise product of two vars of the same shape.
  Var mul(Var a, Var b) {
    return elementwise("Tape::mul", detail::tape_op::mul, a, b, [](T x, T y) { return x * y; });
  }
  Var scale(Var a, T s) {
    Var y = new_var(shape(a), rg(a));
    const index_t n = numel(a);
    const T* pa = ptr(a);
    T* py = ptr(y);
    for (index_t i = 0; i < n; ++i) py[i] = s * pa[i];
    push(detail::tape_op::scale, y, a, {}, {}, 0, 0, 0, static_cast<double>(s));
    return y;
  }

  // LayerNorm over the last dimension C: x [..., C], gamma and beta [C]. eps defaults to
  // timm's ViT value 1e-6 (PyTorch's nn.LayerNorm default is 1e-5).
  Var layernorm(Var x, Var gamma, Var beta, T eps = T(1e-6)) {
    const Shape xs = shape(x);
    if (xs.rank() < 1) throw shape_error("Tape::layernorm: x is a scalar, expected [..., C]");
    const index_t c = xs[xs.rank() - 1], rows = xs.numel() / std::max<index_t>(c, 1);
    check_shape("Tape::layernorm", "gamma", shape(gamma), {c});
    check_shape("Tape::layernorm", "beta", shape(beta), {c});
    Var y = new_var(xs, rg(x) || rg(gamma) || rg(beta));
    const index_t aux = new_aux(Shape{rows});
    new_aux(Shape{rows});
    kernels::layernorm_forward(ptr(x), ptr(gamma), ptr(beta), ptr(y), aux_data(aux), aux_data(aux + 1), rows, c, eps);
    push(detail::tape_op::layernorm, y, x, gamma, beta, rows, c, aux);
    return y;
  }

  // Exact (erf) GELU, PyTorch's default.
  Var gelu(Var x) {
    Var y = new_var(shape(x), rg(x));
    kernels::gelu(ptr(x), ptr(y), numel(x));
    push(detail::tape_op::gelu, y, x);
    return y;
  }

  // Softmax over the last dimension.
  Var softmax(Var x) {
    const Shape xs = shape(x);
    if (xs.rank() < 1) throw shape_error("Tape::softmax: x is a scalar, expected [..., K]");
    const index_t k = xs[xs.rank() - 1], rows = xs.numel() / std::max<index_t>(k, 1);
    Var y = new_var(xs, rg(x));
    kernels::softmax_rows(ptr(x), ptr(y), rows, k);
    push(detail::tape_op::softmax, y, x, {}, {}, rows, k);
    return y;
  }

  // Tokens of a [Ba, Na, C] and b [Bb, Nb, C] side by side: [B, Na + Nb, C]. A batch of 1
  // broadcasts (the class token [1, 1, C] in front of patch tokens [B, N, C]).
  Var concat_tokens(Var a, Var b) {
    const Shape as = shape(a), bs = shape(b);
    check_shape("Tape::concat_tokens", "a", as, {-1, -1, -1});
    check_shape("Tape::concat_tokens", "b", bs, {-1, -1, as[2]});
    if (as[0] != bs[0] && as[0] != 1 && bs[0] != 1)
      throw shape_error(detail::concat("Tape::concat_tokens: b is ", bs.str(), ", expected batch ", as[0],
                                       " (or 1) to match a ", as.str()));
    const index_t batch = std::max(as[0], bs[0]), na = as[1], nb = bs[1], c = as[2];
    Var y = new_var(Shape{batch, na + nb, c}, rg(a) || rg(b));
    for (index_t i = 0; i < batch; ++i) {
      T* dst = ptr(y) + i * (na + nb) * c;
      const T* sa = ptr(a) + (as[0] == 1 ? 0 : i) * na * c;
      const T* sb = ptr(b) + (bs[0] == 1 ? 0 : i) * nb * c;
      std::copy(sa, sa + na * c, dst);
      std::copy(sb, sb + nb * c, dst + na * c);
    }
    push(detail::tape_op::concat_tokens, y, a, b);
    return y;
  }

  // Tokens [start, start + count) of x [B, N, C]: [B, count, C].
  Var slice_tokens(Var x, index_t start, index_t count) {
    const Shape xs = shape(x);
    check_shape("Tape::slice_tokens", "x", xs, {-1, -1, -1});
    if (start < 0 || count < 0 || start + count > xs[1])
      throw shape_error(detail::concat("Tape::slice_tokens: tokens [", start, ", ", start + count, ") of x ",
                                       xs.str(), " are out of range"));
    const index_t batch = xs[0], n = xs[1], c = xs[2];
    Var y = new_var(Shape{batch, count, c}, rg(x));
    for (index_t i = 0; i < batch; ++i) {
      const T* src = ptr(x) + (i * n + start) * c;
      std::copy(src, src + count * c, ptr(y) + i * count * c);
    }
    push(detail::tape_op::slice_tokens, y, x, {}, {}, start, count);
    return y;
  }

  // Same values, another shape with the same element count (the value is shared, not copied).
  Var reshape(Var x, Shape s) {
    if (s.numel() != numel(x))
      throw shape_error(detail::concat("Tape::reshape: cannot view ", shape(x).str(), " as ", s.str()));
    Var y{num_vars()};
    const bool g = rg(x);
    vars_.push_back({s, ptr(x), g ? alloc_grad(s) : nullptr, g, false, false});
    push(detail::tape_op::reshape, y, x);
    return y;
  }

  // Mean over the token axis: [B, N, C] -> [B, C] (mean pooling).
  Var mean_tokens(Var x) {
    const Shape xs = shape(x);
    check_shape("Tape::mean_tokens", "x", xs, {-1, -1, -1});
    const index_t batch = xs[0], n = xs[1], c = xs[2];
    Var y = new_var(Shape{batch, c}, rg(x));
    const T inv = n > 0 ? T(1) / static_cast<T>(n) : T(0);
    for (index_t i = 0; i < batch; ++i) {
      T* dst = ptr(y) + i * c;
      std::fill(dst, dst + c, T(0));
      for (index_t t = 0; t < n; ++t) {
        const T* src = ptr(x) + (i * n + t) * c;
        for (index_t j = 0; j < c; ++j) dst[j] += src[j];
      }
      for (index_t j = 0; j < c; ++j) dst[j] *= inv;
    }
    push(detail::tape_op::mean_tokens, y, x);
    return y;
  }

  // x [B, N, C] with the tokens the mask marks dead set to 0 (A-ViT zeroes halted tokens
  // before each block, METHOD.md 2.4); the gradient is masked the same way. The mask is
  // copied, so it may change before backward().
  Var mask_tokens(Var x, const TokenMask& mask) {
    const Shape xs = shape(x);
    check_shape("Tape::mask_tokens", "x", xs, {-1, -1, -1});
    mask.check_fits("Tape::mask_tokens", xs);
    const index_t rows = xs[0] * xs[1], c = xs[2];
    Var y = new_var(xs, rg(x));
    const index_t off = save_mask(mask);
    const T* px = ptr(x);
    T* py = ptr(y);
    for (index_t r = 0; r < rows; ++r) {
      if (bytes_[static_cast<std::size_t>(off + r)])
        std::copy(px + r * c, px + (r + 1) * c, py + r * c);
      else
        std::fill(py + r * c, py + (r + 1) * c, T(0));
    }
    push(detail::tape_op::mask_tokens, y, x, {}, {}, rows, c, off);
    return y;
  }

  // Sum / mean of every element: a scalar.
  Var sum(Var x) { return reduce_all(x, detail::tape_op::sum, T(1)); }
  Var mean(Var x) {
    const index_t n = numel(x);
    return reduce_all(x, detail::tape_op::mean, n > 0 ? T(1) / static_cast<T>(n) : T(0));
  }

  // One call of any SeqMixer on x [B, N, C]: forward with a cache now, backward later
  // (parameter gradients accumulate into the mixer's own storage). `m` and `mask` must
  // outlive backward().
  template <SeqMixer M>
    requires std::is_same_v<typename M::scalar_type, T>
  Var mixer(M& m, Var x, const TokenMask* mask = nullptr) {
    const Shape xs = shape(x);
    check_shape("Tape::mixer", "x", xs, {-1, -1, m.dim()});
    if (mask) mask->check_fits("Tape::mixer", xs);
    // Reuse the holder (and the cache's buffers) left at this slot by the previous step.
    if (nmix_ == static_cast<index_t>(mixers_.size())) mixers_.push_back(nullptr);
    auto& slot = mixers_[static_cast<std::size_t>(nmix_)];
    auto* h = dynamic_cast<detail::mixer_holder<M>*>(slot.get());
    if (!h) {
      auto fresh = std::make_unique<detail::mixer_holder<M>>();
      h = fresh.get();
      slot = std::move(fresh);
    }
    h->mixer = &m;
    // The mixer's parameters may need gradients whatever x needs.
    Var y = new_var(xs, true);
    m.forward(ConstSeq<T>(ptr(x), xs), Seq<T>(ptr(y), xs), h->cache, mask);
    push(detail::tape_op::mixer, y, x, {}, {}, nmix_);
    ++nmix_;
    return y;
  }

  // Like mixer(), and also the mixer's pre-projection output s [B, N, C] as a var (its
  // value copied from the cache), so a loss can read it: {y, s}. Backward feeds both
  // gradients to the mixer in one call.
  // A mixer that does not provide one (provides_pre_proj_output(m) false) is a config_error.
  template <HasPreProjOutput M>
    requires std::is_same_v<typename M::scalar_type, T>
  std::pair<Var, Var> mixer_pre_proj(M& m, Var x, const TokenMask* mask = nullptr) {
    if (!provides_pre_proj_output(m))
      throw config_error("Tape::mixer_pre_proj: the mixer has no pre-projection output (HasPreProjOutput)");
    const Var y = mixer(m, x, mask);
    auto& h = static_cast<detail::mixer_holder<M>&>(*mixers_[static_cast<std::size_t>(nmix_ - 1)]);
    const ConstSeq<T> sv = m.pre_proj_output(h.cache);
    if (!(sv.shape() == shape(y)))
      throw shape_error(detail::concat("Tape::mixer_pre_proj: the pre-projection output is ", sv.shape().str(),
                                       ", expected ", shape(y).str()));
    const Var s = new_var(shape(y), true);
    std::copy(sv.begin(), sv.end(), ptr(s));
    nodes_.back().b = s;  // the mixer node now has two outputs: y (out) and s (b)
    return {y, s};
  }

  // ---- losses (each a scalar) ---------------------------------------------------------

  // Mean squared error over every element. With a mask (a, b [B, N, C]), the mean runs over
  // alive tokens only (METHOD.md 6.12: halted tokens are excluded); no alive token gives 0.
  // The mask is copied.
  Var mse(Var a, Var b, const TokenMask* mask = nullptr) {
    check_same("Tape::mse", a, b);
    if (mask) {
      check_shape("Tape::mse", "a", shape(a), {-1, -1, -1});
      mask->check_fits("Tape::mse", shape(a));
    }
    Var y = new_var(Shape{}, rg(a) || rg(b));
    const index_t n = numel(a);
    const index_t c = mask ? shape(a)[2] : n;  // elements per mask entry
    index_t counted = 0;
    double s = 0;
    const T* pa = ptr(a);
    const T* pb = ptr(b);
    for (index_t r = 0; r < n / std::max<index_t>(c, 1); ++r) {
      if (mask && !mask->tensor().data()[r]) continue;
      counted += c;
      for (index_t j = r * c; j < (r + 1) * c; ++j) {
        const double d = static_cast<double>(pa[j]) - static_cast<double>(pb[j]);
        s += d * d;
      }
    }
    ptr(y)[0] = counted > 0 ? static_cast<T>(s / static_cast<double>(counted)) : T(0);
    push(detail::tape_op::mse, y, a, b, {}, counted, c, mask ? save_mask(*mask) : -1);
    return y;
  }

  // 1 - cos(a_r, b_r) averaged over rows r, cosine over the last (channel) dimension, as
  // PyTorch's 1 - cosine_similarity(a, b, dim=-1, eps).mean(); each norm is clamped to at
  // least eps (the clamp passes no gradient). METHOD.md 6.1: channels, not tokens.
  Var cosine_loss(Var a, Var b, T eps = T(1e-8)) {
    check_same("Tape::cosine_loss", a, b);
    const Shape as = shape(a);
    if (as.rank() < 1) throw shape_error("Tape::cosine_loss: a is a scalar, expected [..., C]");
    const index_t c = as[as.rank() - 1], rows = as.numel() / std::max<index_t>(c, 1);
    Var y = new_var(Shape{}, rg(a) || rg(b));
    const index_t aux = new_aux(Shape{rows, 3});  // per row: dot, |a| (clamped), |b| (clamped)
    T* st = aux_data(aux);
    double total = 0;
    for (index_t r = 0; r < rows; ++r) {
      const T* pa = ptr(a) + r * c;
      const T* pb = ptr(b) + r * c;
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
    ptr(y)[0] = rows > 0 ? static_cast<T>(total / static_cast<double>(rows)) : T(0);
    push(detail::tape_op::cosine_loss, y, a, b, {}, rows, c, aux, static_cast<double>(eps));
    return y;
  }

  // Cross-entropy of logits [B, K] against integer labels (B of them) with label smoothing
  // eps, as PyTorch's F.cross_entropy(logits, y, label_smoothing=eps) (mean over the batch):
  //   L_b = (1 - eps) * (-log p_b[y_b]) + eps / K * sum_k (-log p_b[k]).
  Var cross_entropy(Var logits, std::span<const index_t> labels, T smoothing = T(0)) {
    const Shape ls = shape(logits);
    check_shape("Tape::cross_entropy", "logits", ls, {-1, -1});
    const index_t batch = ls[0], k = ls[1];
    if (static_cast<index_t>(labels.size()) != batch)
      throw shape_error(detail::concat("Tape::cross_entropy: labels has ", labels.size(), " entries, expected ",
                                       batch, " to match logits ", ls.str()));
    if (!(smoothing >= T(0) && smoothing <= T(1)))
      throw config_error(detail::concat("Tape::cross_entropy: label smoothing is ", smoothing, ", expected [0, 1]"));
    for (std::size_t i = 0; i < labels.size(); ++i)
      if (labels[i] < 0 || labels[i] >= k)
        throw numeric_error(detail::concat("Tape::cross_entropy: label ", labels[i], " at index ", i,
                                           " is out of range [0, ", k, ")"));
    Var y = new_var(Shape{}, rg(logits));
    const index_t aux = new_aux(ls);  // log-probabilities
    T* lp = aux_data(aux);
    log_softmax_rows(ptr(logits), lp, batch, k, T(1));
    const index_t off = static_cast<index_t>(labels_.size());
    labels_.insert(labels_.end(), labels.begin(), labels.end());
    const double e = static_cast<double>(smoothing);
    double total = 0;
    for (index_t i = 0; i < batch; ++i) {
      double all = 0;
      for (index_t j = 0; j < k; ++j) all += static_cast<double>(lp[i * k + j]);
      total -= (1 - e) * static_cast<double>(lp[i * k + labels[static_cast<std::size_t>(i)]]) +
               e / static_cast<double>(k) * all;
    }
    ptr(y)[0] = batch > 0 ? static_cast<T>(total / static_cast<double>(batch)) : T(0);
    push(detail::tape_op::cross_entropy, y, logits, {}, {}, off, k, aux, e);
    return y;
  }

  // Cross-entropy against soft targets [B, K] (mixup/cutmix labels): -mean_b sum_k t log p.
  Var soft_cross_entropy(Var logits, Var targets) {
    check_shape("Tape::soft_cross_entropy", "logits", shape(logits), {-1, -1});
    check_same("Tape::soft_cross_entropy", logits, targets);
    const index_t batch = shape(logits)[0], k = shape(logits)[1];
    Var y = new_var(Shape{}, rg(logits) || rg(targets));
    const index_t aux = new_aux(shape(logits));
    T* lp = aux_data(aux);
    log_softmax_rows(ptr(logits), lp, batch, k, T(1));
    double total = 0;
    const T* pt = ptr(targets);
    for (index_t i = 0; i < batch * k; ++i) total -= static_cast<double>(pt[i]) * static_cast<double>(lp[i]);
    ptr(y)[0] = batch > 0 ? static_cast<T>(total / static_cast<double>(batch)) : T(0);
    push(detail::tape_op::soft_cross_entropy, y, logits, targets, {}, batch, k, aux);
    return y;
  }

  // Logit distillation (Hinton et al. 2015) with temperature tau, defined exactly as
  //   tau^2 * KLDivLoss(reduction="batchmean")(log_softmax(s / tau), softmax(t / tau))
  // = tau^2 / B * sum_b sum_k p_t log(p_t / p_s) for student s and teacher t logits [B, K].
  // The tau^2 keeps gradient magnitudes independent of tau (DeiT's hard/soft distillation
  // code uses the same form with reduction "sum" / numel; we follow PyTorch's batchmean).
  Var kl_div_logits(Var student, Var teacher, T temperature = T(1)) {
    check_shape("Tape::kl_div_logits", "student", shape(student), {-1, -1});
    check_same("Tape::kl_div_logits", student, teacher);
    if (!(temperature > T(0)))
      throw config_error(detail::concat("Tape::kl_div_logits: temperature is ", temperature, ", expected > 0"));
    const index_t batch = shape(student)[0], k = shape(student)[1];
    Var y = new_var(Shape{}, rg(student) || rg(teacher));
    const index_t aux = new_aux(shape(student));  // log p_s
    new_aux(shape(student));                      // log p_t
    T* ls = aux_data(aux);
    T* lt = aux_data(aux + 1);
    const T inv_tau = T(1) / temperature;
    log_softmax_rows(ptr(student), ls, batch, k, inv_tau);
    log_softmax_rows(ptr(teacher), lt, batch, k, inv_tau);
    double total = 0;
    for (index_t i = 0; i < batch * k; ++i) {
      const double lpt = static_cast<double>(lt[i]);
      total += std::exp(lpt) * (lpt - static_cast<double>(ls[i]));
    }
    const double tau = static_cast<double>(temperature);
    ptr(y)[0] = batch > 0 ? static_cast<T>(tau * tau * total / static_cast<double>(batch)) : T(0);
    push(detail::tape_op::kl_div_logits, y, student, teacher, {}, batch, k, aux, tau);
    return y;
  }

  // A-ViT halting distillation (METHOD.md 2.4): mean over elements of
  //   p log(p / q) + (1 - p) log((1 - p) / (1 - q)),
  // p (teacher) and q (student) clamped to [1e-6, 1 - 1e-6] first; the clamp passes no
  // gradient outside that range (as torch.clamp).
  Var bernoulli_kl(Var p, Var q) {
    check_same("Tape::bernoulli_kl", p, q);
    Var y = new_var(Shape{}, rg(p) || rg(q));
    const index_t n = numel(p);
    double total = 0;
    const T* pp = ptr(p);
    const T* pq = ptr(q);
    for (index_t i = 0; i < n; ++i) {
      const double pc = clamp_prob(static_cast<double>(pp[i]));
      const double qc = clamp_prob(static_cast<double>(pq[i]));
      total += pc * std::log(pc / qc) + (1 - pc) * std::log((1 - pc) / (1 - qc));
    }
    ptr(y)[0] = n > 0 ? static_cast<T>(total / static_cast<double>(n)) : T(0);
    push(detail::tape_op::bernoulli_kl, y, p, q);
    return y;
  }

  // ---- backward -----------------------------------------------------------------------

  // dL/d(every var) for the one-element `loss`, in one reverse loop over the nodes.
  // Parameter and leaf-input gradients accumulate; call once per forward.
  void backward(Var loss) {
    auto& lv = info(loss);
    if (lv.shape.numel() != 1)
      throw shape_error(detail::concat("Tape::backward: loss is ", lv.shape.str(), ", expected one element"));
    if (!lv.requires_grad)
      throw config_error("Tape::backward: the loss depends on no parameter or input that requires grad");
    for (auto& v : vars_)
      if (!v.leaf) v.grad_ready = false;
    if (lv.leaf) {
      lv.grad[0] += T(1);
      return;
    }
    lv.grad[0] = T(1);
    lv.grad_ready = true;
    for (index_t i = static_cast<index_t>(nodes_.size()) - 1; i >= 0; --i) {
      const node& nd = nodes_[static_cast<std::size_t>(i)];
      const auto& out = vars_[uidx(nd.out)];
      const bool second = nd.op == detail::tape_op::mixer && nd.b.valid() && vars_[uidx(nd.b)].grad_ready;
      if (!out.grad || (!out.grad_ready && !second)) continue;  // nothing flows through this node
      run_backward(nd, out.grad);
    }
  }

 private:
  struct var_info {
    Shape shape;
    T* value;
    T* grad;             // null when no gradient is needed
    bool requires_grad;
    bool grad_ready;     // grad holds a value (else the first writer overwrites it)
    bool leaf;           // external or input storage: accumulate, never reset
  };
  struct node {
    detail::tape_op op;
    Var out, a, b, c;
    index_t i0, i1, i2;
    double f0;
  };

  // Backward of y = x w^T + b (nodes linear and linear_gelu) given dL/d(x w^T + b): x's
  // gradient is written on first use and accumulated after.
  void linear_node_backward(const node& nd, const T* dz, index_t m, index_t k, index_t n) {
    T* dw = acc_grad(nd.b);
    T* db = acc_grad(nd.c);
    T* dx = nullptr;
    accumulate acc = accumulate::no;
    auto& xi = vars_[uidx(nd.a)];
    if (xi.grad) {
      dx = xi.grad;
      acc = xi.grad_ready ? accumulate::yes : accumulate::no;
      xi.grad_ready = true;
    }
    linear_backward(ptr(nd.a), ptr(nd.b), dz, dx, dw, db, m, k, n, acc);
  }

  // y = f(a, b) elementwise for two vars of one shape, recorded as `op`.
  template <class F>
  Var elementwise(const char* where, detail::tape_op op, Var a, Var b, F f) {
    check_same(where, a, b);
    Var y = new_var(shape(a), rg(a) || rg(b));
    const index_t n = numel(a);
    const T* pa = ptr(a);
    const T* pb = ptr(b);
    T* py = ptr(y);
    for (index_t i = 0; i < n; ++i) py[i] = f(pa[i], pb[i]);
    push(op, y, a, b);
    return y;
  }

  static double clamp_prob(double x) noexcept { return std::min(std::max(x, 1e-6), 1.0 - 1e-6); }

  static std::size_t uidx(Var v) noexcept { return static_cast<std::size_t>(v.id); }
  var_info& info(Var v) {
    if (v.id < 0 || v.id >= num_vars())
      throw config_error(detail::concat("Tape: var ", v.id, " is not on this tape (", num_vars(),
                                        " vars; a Var is valid until clear())"));
    return vars_[uidx(v)];
  }
  const var_info& info(Var v) const { return const_cast<Tape*>(this)->info(v); }
  T* ptr(Var v) { return info(v).value; }
  bool rg(Var v) { return info(v).requires_grad; }
  index_t numel(Var v) { return info(v).shape.numel(); }

  static Shape with_last(const Shape& s, index_t n) {
    switch (s.rank()) {
      case 1: return Shape{n};
      case 2: return Shape{s[0], n};
      case 3: return Shape{s[0], s[1], n};
      default: return Shape{s[0], s[1], s[2], n};
    }
  }
  // b's extents equal a's trailing ones after dropping b's leading 1s.
  static bool broadcastable(const Shape& a, const Shape& b) {
    int lead = 0;
    while (lead < b.rank() && b[lead] == 1) ++lead;
    const int nb = b.rank() - lead;
    if (nb > a.rank()) return false;
    for (int i = 0; i < nb; ++i)
      if (b[lead + i] != a[a.rank() - nb + i]) return false;
    return true;
  }
  void check_same(const char* where, Var a, Var b) {
    if (!(shape(a) == shape(b)))
      throw shape_error(detail::concat(where, ": b is ", shape(b).str(), ", expected ", shape(a).str(), " like a"));
  }

  T* alloc_from(std::vector<Tensor<T>>& pool, index_t& used, const Shape& s) {
    if (used == static_cast<index_t>(pool.size())) pool.emplace_back();
    auto& t = pool[static_cast<std::size_t>(used++)];
    t.resize(s);
    return t.data();
  }
  T* alloc_grad(const Shape& s) { return alloc_from(grad_pool_, ngrad_, s); }
  Var new_var(const Shape& s, bool requires_grad) {
    Var v{num_vars()};
    T* val = alloc_from(val_pool_, nval_, s);
    vars_.push_back({s, val, requires_grad ? alloc_grad(s) : nullptr, requires_grad, false, false});
    return v;
  }
  void make_leaf_grad(Var v) {
    auto& vi = vars_[uidx(v)];
    std::fill(vi.grad, vi.grad + vi.shape.numel(), T(0));
    vi.grad_ready = true;
    vi.leaf = true;
  }
  index_t new_aux(const Shape& s) {
    alloc_from(aux_pool_, naux_, s);
    return naux_ - 1;
  }
  T* aux_data(index_t i) { return aux_pool_[static_cast<std::size_t>(i)].data(); }

  void push(detail::tape_op op, Var out, Var a = {}, Var b = {}, Var c = {}, index_t i0 = 0, index_t i1 = 0,
            index_t i2 = 0, double f0 = 0) {
    nodes_.push_back({op, out, a, b, c, i0, i1, i2, f0});
  }
  // Copies a mask's [B, N] bytes onto the tape (the caller's mask may change before backward).
  index_t save_mask(const TokenMask& m) {
    const index_t off = static_cast<index_t>(bytes_.size());
    const auto& t = m.tensor();
    bytes_.insert(bytes_.end(), t.data(), t.data() + t.numel());
    return off;
  }

  Var reduce_all(Var x, detail::tape_op op, T factor) {
    Var y = new_var(Shape{}, rg(x));
    double s = 0;
    const index_t n = numel(x);
    const T* px = ptr(x);
    for (index_t i = 0; i < n; ++i) s += static_cast<double>(px[i]);
    ptr(y)[0] = static_cast<T>(s * static_cast<double>(factor));
    push(op, y, x, {}, {}, 0, 0, 0, static_cast<double>(factor));
    return y;
  }

  // lp[r, :] = log_softmax(x[r, :] * s), stable (max subtracted), sums in double.
  static void log_softmax_rows(const T* x, T* lp, index_t rows, index_t k, T s) {
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

  // Gradient sinks. acc_grad: a buffer to add into (zeroed on first use), or null.
  T* acc_grad(Var v) {
    if (!v.valid()) return nullptr;
    auto& vi = vars_[uidx(v)];
    if (!vi.grad) return nullptr;
    if (!vi.grad_ready) {
      std::fill(vi.grad, vi.grad + vi.shape.numel(), T(0));
      vi.grad_ready = true;
    }
    return vi.grad;
  }
  // For kernels that write (`=`) their input gradient: f(dst) writes straight into v's
  // gradient on first use, else into scratch that is then added.
  template <class F>
  void write_grad(Var v, F&& f) {
    auto& vi = vars_[uidx(v)];
    if (!vi.grad) return;
    const index_t n = vi.shape.numel();
    if (!vi.grad_ready) {
      f(vi.grad);
      vi.grad_ready = true;
      return;
    }
    scratch_.resize(Shape{n});
    f(scratch_.data());
    const T* s = scratch_.data();
    for (index_t i = 0; i < n; ++i) vi.grad[i] += s[i];
  }

  // One node's reverse rule: a switch over the ops, in detail/tape_backward.hpp.
  void run_backward(const node& nd, const T* dy);

  std::vector<var_info> vars_;
  std::vector<node> nodes_;
  std::vector<index_t> labels_;
  std::vector<std::uint8_t> bytes_;  // saved token masks
  std::vector<Tensor<T>> val_pool_, grad_pool_, aux_pool_;
  index_t nval_ = 0, ngrad_ = 0, naux_ = 0;
  std::vector<std::unique_ptr<detail::mixer_holder_base<T>>> mixers_;
  index_t nmix_ = 0;
  Tensor<T> scratch_;
  Tensor<T> scratch2_;  // dx nobody reads, for two-output mixer nodes
};

// Free-function spelling of Tape::mixer, for generic code.
template <SeqMixer M>
Var mixer(Tape<typename M::scalar_type>& tape, M& m, Var x, const TokenMask* mask = nullptr) {
  return tape.mixer(m, x, mask);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix

#include "detail/tape_backward.hpp"
