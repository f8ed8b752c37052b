// A flat reverse-mode tape (micrograd's engine.py, kept flat as STYLE.md section 6 asks):
// nodes in a std::vector in execution order, values and gradients in pools indexed by Var
// id, and one reverse loop in backward(). No shared_ptr graph, no recursion, no
// std::function per node: a node is a std::variant of small typed structs (one per op, in
// its family's header under autograd/ops/, beside the op's forward and backward) and backward
// is one std::visit.
//
//   Tape<float> tape;
//   Var x = tape.input(images);                       // copied, no gradient
//   Var w = tape.param(p.value, p.grad);              // bound: reads p.value, += into p.grad
//   Var y = tape.linear_gelu(x, w, b);
//   Var loss = tape.cross_entropy(y, labels, 0.1);
//   tape.backward(loss);                              // parameter grads accumulate
//   tape.clear();                                     // next step; keeps every buffer
//
// Ops by family: linear (linear, linear_gelu), elementwise (add with trailing broadcast,
// mul, scale, sum), layernorm, tokens (concat_tokens, slice_tokens, reshape, mask_tokens),
// mixer (mixer, mixer_pre_proj: any SeqMixer), losses (mse optionally token-masked,
// cosine_loss, cross_entropy with label smoothing, kl_div_logits with temperature,
// bernoulli_kl, external_loss). Each node keeps only what its backward reads (flashlight's
// withoutData idea). Gradient bookkeeping: detail/tape_core.hpp. Not thread-safe: one tape
// per thread.
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <span>
#include <type_traits>
#include <utility>
#include <variant>

#include "../concepts.hpp"
#include "../core/error.hpp"
#include "../core/param.hpp"
#include "../core/tensor.hpp"
#include "../core/token_mask.hpp"
#include "detail/tape_core.hpp"
#include "var.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Records the ops of one forward pass and runs them backwards: the training loop's autodiff engine.
template <class T>
class Tape : private detail::tape_core<T> {
  static_assert(std::is_floating_point_v<T>, "Tape<T>: T must be float or double");
  using core_type = detail::tape_core<T>;

 public:
  using scalar_type = T;  // T, for generic code that holds a tape

  Tape() = default;
  Tape(const Tape&) = delete;  // vars point into the pools; copying would alias them
  Tape& operator=(const Tape&) = delete;
  // Moves the pools and nodes; Vars stay valid on the new tape.
  Tape(Tape&&) noexcept = default;
  // Moves the pools and nodes; Vars stay valid on the new tape.
  Tape& operator=(Tape&&) noexcept = default;

  // Forgets every node and var; keeps all buffers (and mixer caches of the same type at the
  // same position), so a training loop stops allocating after its first step.
  void clear() noexcept {
    this->clear_core();
    grad_positions_.clear();
  }

  // With tracking on (off by default), where each parameter gradient a forward bound was
  // first read: (grad storage, node index). Nodes only read a parameter after it is bound, so
  // once backward() has run every node from the last down to that index, the gradient is final
  // (data-parallel training starts summing it across processes then, while backward goes on:
  // distill/data_parallel.hpp). A mixer's parameters are bound at its node.
  const std::vector<std::pair<const T*, index_t>>& grad_positions() const noexcept { return grad_positions_; }
  // Turns the recording of grad_positions() on or off (from the next binding on).
  void track_grad_positions(bool on) noexcept { track_positions_ = on; }

  // Values on the tape (inputs, parameters and op results), for tests and diagnostics.
  index_t num_vars() const noexcept { return core_type::num_vars(); }
  // Recorded ops, the steps backward() will run.
  index_t num_nodes() const noexcept { return static_cast<index_t>(this->nodes_.size()); }

  // ---- leaves -------------------------------------------------------------------------

  // A value copied onto the tape. With requires_grad, grad(v) holds dL/dx after backward.
  Var input(TensorView<const T> x, bool requires_grad = false);
  // A parameter bound to external storage: the tape reads `value` (never writes it) and
  // backward accumulates (+=) into `grad`. Both must outlive backward().
  Var param(TensorView<T> value, TensorView<T> grad);
  // Binds a Param's value and grad (see above).
  Var param(const Param<T>& p) { return param(p.value, p.grad); }
  // A parameter that is read but gets no gradient (a frozen teacher's weight, say).
  Var frozen(TensorView<const T> value) {
    // The tape never writes a value it did not allocate; the cast only fits the var record.
    return this->external_var(value.shape(), const_cast<T*>(value.data()), nullptr);
  }

  // ---- access -------------------------------------------------------------------------

  // The shape of v's value.
  const Shape& shape(Var v) const { return core_type::shape(v); }
  // v's value (for a param, its external storage).
  TensorView<const T> value(Var v) const { return {this->info(v).value, this->info(v).shape}; }
  // dL/dv after backward (empty view when v needs no gradient). For a param, its grad storage.
  TensorView<const T> grad(Var v) const {
    const auto& vi = this->info(v);
    if (!vi.grad) return {};
    return {vi.grad, vi.shape};
  }
  // Whether backward() computes dL/dv: v is a grad-requiring input, a param, or depends on one.
  bool requires_grad(Var v) const { return this->info(v).requires_grad; }
  // The value of a one-element var (a loss).
  T item(Var v) const;

  // ---- linear (ops/linear.hpp) --------------------------------------------------------

  // y[..., N] = x[..., K] w[N, K]^T + b[N]  (PyTorch Linear; b optional).
  Var linear(Var x, Var w, Var b = {});
  // gelu(x w^T + b) in one node (a ViT MLP's fc1).
  Var linear_gelu(Var x, Var w, Var b);

  // ---- elementwise (ops/elementwise.hpp) ----------------------------------------------

  // a + b. b has a's shape, or a's trailing shape (broadcast over leading dimensions:
  // a bias [C] onto [B, N, C], a position embedding [1, N, C] onto [B, N, C]).
  Var add(Var a, Var b);
  // Elementwise product of two vars of the same shape.
  Var mul(Var a, Var b);
  // a * s for a scalar s.
  Var scale(Var a, T s);
  // Sum of every element: a scalar.
  Var sum(Var x);

  // ---- layernorm (ops/layernorm.hpp) --------------------------------------------------

  // LayerNorm over the last dimension C: x [..., C], gamma and beta [C]. eps defaults to
  // timm's ViT value 1e-6 (PyTorch's nn.LayerNorm default is 1e-5).
  Var layernorm(Var x, Var gamma, Var beta, T eps = T(1e-6));

  // ---- tokens (ops/tokens.hpp) --------------------------------------------------------

  // Tokens of a [Ba, Na, C] and b [Bb, Nb, C] side by side: [B, Na + Nb, C]. A batch of 1
  // broadcasts (the class token [1, 1, C] in front of patch tokens [B, N, C]).
  Var concat_tokens(Var a, Var b);
  // Tokens [start, start + count) of x [B, N, C]: [B, count, C].
  Var slice_tokens(Var x, index_t start, index_t count);
  // Same values, another shape with the same element count (the value is shared, not copied).
  Var reshape(Var x, Shape s);
  // x [B, N, C] with the tokens the mask marks dead set to 0 (A-ViT zeroes halted tokens
  // before each block, docs/method.md 2.4); the gradient is masked the same way. The mask is
  // copied, so it may change before backward().
  Var mask_tokens(Var x, const TokenMask& mask);

  // ---- mixers (ops/mixer.hpp) ---------------------------------------------------------

  // One call of any SeqMixer on x [B, N, C]: forward with a cache now, backward later
  // (parameter gradients accumulate into the mixer's own storage). `m` and `mask` must
  // outlive backward().
  template <SeqMixer M>
    requires std::is_same_v<typename M::scalar_type, T>
  Var mixer(M& m, Var x, const TokenMask* mask = nullptr) {
    const Var y = detail::mixer(core(), m, x, mask);
    note_mixer_params(m);
    return y;
  }
  // Like mixer(), with the mixer's pre-projection output s [B, N, C] as a second output of
  // the same node, so a loss can read it: {y, s}. Backward feeds both gradients to the mixer
  // in one call. A mixer that does not provide one is a config_error.
  template <HasPreProjOutput M>
    requires std::is_same_v<typename M::scalar_type, T>
  std::pair<Var, Var> mixer_pre_proj(M& m, Var x, const TokenMask* mask = nullptr) {
    auto ys = detail::mixer_pre_proj(core(), m, x, mask);
    note_mixer_params(m);
    return ys;
  }

  // ---- losses, each a scalar (ops/losses.hpp) -----------------------------------------

  // Mean squared error over every element. With a mask (a, b [B, N, C]), the mean runs over
  // alive tokens only (docs/method.md 6.12: halted tokens are excluded); no alive token gives 0.
  // The mask is copied.
  Var mse(Var a, Var b, const TokenMask* mask = nullptr);
  // 1 - cos(a_r, b_r) averaged over rows r, cosine over the last (channel) dimension, as
  // PyTorch's 1 - cosine_similarity(a, b, dim=-1, eps).mean(); each norm is clamped to at
  // least eps (the clamp passes no gradient). docs/method.md 6.1: channels, not tokens.
  Var cosine_loss(Var a, Var b, T eps = T(1e-8));
  // Cross-entropy of logits [B, K] against integer labels (B of them) with label smoothing
  // eps, as PyTorch's F.cross_entropy(logits, y, label_smoothing=eps) (mean over the batch):
  //   L_b = (1 - eps) * (-log p_b[y_b]) + eps / K * sum_k (-log p_b[k]).
  Var cross_entropy(Var logits, std::span<const index_t> labels, T smoothing = T(0));
  // Logit distillation (Hinton et al. 2015) with temperature tau, defined exactly as
  //   tau^2 * KLDivLoss(reduction="batchmean")(log_softmax(s / tau), softmax(t / tau))
  // = tau^2 / B * sum_b sum_k p_t log(p_t / p_s) for student s and teacher t logits [B, K].
  Var kl_div_logits(Var student, Var teacher, T temperature = T(1));
  // A-ViT halting distillation (docs/method.md 2.4): mean over elements of
  //   p log(p / q) + (1 - p) log((1 - p) / (1 - q)),
  // p (teacher) and q (student) clamped to [1e-6, 1 - 1e-6] first; the clamp passes no
  // gradient outside that range (as torch.clamp).
  Var bernoulli_kl(Var p, Var q);
  // A scalar term computed outside the tape from x's value, with its gradient dL/dx (x's
  // shape, copied) computed there too: the A-ViT ponder and prior losses of the halting
  // controller enter training this way (HybridViT::halting_loss).
  Var external_loss(T value, Var x, TensorView<const T> dloss_dx);

  // ---- backward -----------------------------------------------------------------------

  // dL/d(every var) for the one-element `loss`, in one reverse loop over the nodes.
  // Parameter and leaf-input gradients accumulate; call once per forward. `node_done(i)`, when
  // given, runs after node i's backward (i falls from num_nodes() - 1 to 0).
  void backward(Var loss, const std::function<void(index_t)>& node_done = {});

 private:
  core_type& core() noexcept { return *this; }

  template <class M>
  void note_mixer_params(M& m) {
    if (!track_positions_) return;
    const index_t at = num_nodes() - 1;
    for (const auto& p : m.parameters()) grad_positions_.emplace_back(p.grad.data(), at);
  }

  std::vector<std::pair<const T*, index_t>> grad_positions_;
  bool track_positions_ = false;

  // Whether a gradient reached the node's output (mixer nodes: either of their outputs).
  template <class Node>
  static bool receives(core_type& c, const Node& nd) {
    if constexpr (std::is_same_v<Node, detail::mixer_node>) {
      return detail::receives_gradient(c, nd);
    } else {
      const auto& out = c.info(nd.y);
      return out.grad && out.grad_ready;
    }
  }
};

// ---- out-of-class members (extern-instantiable: docs/build-time.md) -------------------------

template <class T>
Var Tape<T>::input(TensorView<const T> x, bool requires_grad) {
  const Var v = this->new_var(x.shape(), requires_grad);
  if (x.numel()) std::copy(x.begin(), x.end(), this->ptr(v));
  if (requires_grad) this->make_leaf_grad(v);
  return v;
}

template <class T>
Var Tape<T>::param(TensorView<T> value, TensorView<T> grad) {
  if (!(value.shape() == grad.shape()))
    throw shape_error(detail::concat("Tape::param: grad is ", grad.shape().str(), ", expected ",
                                     value.shape().str(), " like value"));
  if (track_positions_) grad_positions_.emplace_back(grad.data(), num_nodes());
  return this->external_var(value.shape(), value.data(), grad.data());
}

template <class T>
T Tape<T>::item(Var v) const {
  const auto& vi = this->info(v);
  if (vi.shape.numel() != 1)
    throw shape_error(detail::concat("Tape::item: var is ", vi.shape.str(), ", expected one element"));
  return vi.value[0];
}

template <class T>
Var Tape<T>::linear(Var x, Var w, Var b) { return detail::linear(core(), x, w, b); }

template <class T>
Var Tape<T>::linear_gelu(Var x, Var w, Var b) { return detail::linear_gelu(core(), x, w, b); }

template <class T>
Var Tape<T>::add(Var a, Var b) { return detail::add(core(), a, b); }

template <class T>
Var Tape<T>::mul(Var a, Var b) { return detail::mul(core(), a, b); }

template <class T>
Var Tape<T>::scale(Var a, T s) { return detail::scale(core(), a, s); }

template <class T>
Var Tape<T>::sum(Var x) { return detail::sum(core(), x); }

template <class T>
Var Tape<T>::layernorm(Var x, Var gamma, Var beta, T eps) {
  return detail::layernorm(core(), x, gamma, beta, eps);
}

template <class T>
Var Tape<T>::concat_tokens(Var a, Var b) { return detail::concat_tokens(core(), a, b); }

template <class T>
Var Tape<T>::slice_tokens(Var x, index_t start, index_t count) {
  return detail::slice_tokens(core(), x, start, count);
}

template <class T>
Var Tape<T>::reshape(Var x, Shape s) { return detail::reshape(core(), x, s); }

template <class T>
Var Tape<T>::mask_tokens(Var x, const TokenMask& mask) { return detail::mask_tokens(core(), x, mask); }

template <class T>
Var Tape<T>::mse(Var a, Var b, const TokenMask* mask) { return detail::mse(core(), a, b, mask); }

template <class T>
Var Tape<T>::cosine_loss(Var a, Var b, T eps) { return detail::cosine_loss(core(), a, b, eps); }

template <class T>
Var Tape<T>::cross_entropy(Var logits, std::span<const index_t> labels, T smoothing) {
  return detail::cross_entropy(core(), logits, labels, smoothing);
}

template <class T>
Var Tape<T>::kl_div_logits(Var student, Var teacher, T temperature) {
  return detail::kl_div_logits(core(), student, teacher, temperature);
}

template <class T>
Var Tape<T>::bernoulli_kl(Var p, Var q) { return detail::bernoulli_kl(core(), p, q); }

template <class T>
Var Tape<T>::external_loss(T value, Var x, TensorView<const T> dloss_dx) {
  return detail::external_loss(core(), value, x, dloss_dx);
}

template <class T>
void Tape<T>::backward(Var loss, const std::function<void(index_t)>& node_done) {
  auto& lv = this->info(loss);
  if (lv.shape.numel() != 1)
    throw shape_error(detail::concat("Tape::backward: loss is ", lv.shape.str(), ", expected one element"));
  if (!lv.requires_grad)
    throw config_error("Tape::backward: the loss depends on no parameter or input that requires grad");
  for (auto& v : this->vars_)
    if (!v.leaf) v.grad_ready = false;
  if (lv.leaf) {
    lv.grad[0] += T(1);
    return;
  }
  lv.grad[0] = T(1);
  lv.grad_ready = true;
  auto& c = core();
  for (auto it = this->nodes_.rbegin(); it != this->nodes_.rend(); ++it) {
    std::visit(
        [&](const auto& nd) {
          if (!receives(c, nd)) return;  // nothing flows through this node
          detail::backward(c, nd, static_cast<const T*>(c.info(nd.y).grad));
        },
        *it);
    if (node_done) node_done(static_cast<index_t>(this->nodes_.rend() - it) - 1);
  }
}

SPARSIMIX_EXTERN_TEMPLATE(class Tape<float>)
SPARSIMIX_EXTERN_TEMPLATE(class Tape<double>)

// Free-function spelling of Tape::mixer, for generic code.
template <SeqMixer M>
Var mixer(Tape<typename M::scalar_type>& tape, M& m, Var x, const TokenMask* mask = nullptr) {
  return tape.mixer(m, x, mask);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
