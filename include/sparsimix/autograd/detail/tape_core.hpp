// The tape's storage and bookkeeping, shared by every op in autograd/ops/ (internal: Tape
// derives from it privately and hands it to the ops). Values and gradients live in pools
// indexed by Var id; nodes are a std::variant of the ops' typed node structs, in execution
// order. clear() keeps every buffer, so a training loop stops allocating after one step.
//
// Gradient bookkeeping: an intermediate's gradient buffer is not zeroed up front. Its first
// writer in the reverse loop writes it (`=`), later writers add; a node whose output gradient
// was never written is skipped (its contribution is zero). Leaves (params and inputs that
// require grad) always accumulate (`+=`), like PyTorch's .grad.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <variant>
#include <vector>

#include "../../core/error.hpp"
#include "../../core/parallel.hpp"
#include "../../core/tensor.hpp"
#include "../../core/token_mask.hpp"
#include "../ops/elementwise.hpp"
#include "../ops/layernorm.hpp"
#include "../ops/linear.hpp"
#include "../ops/losses.hpp"
#include "../ops/mixer.hpp"
#include "../ops/tokens.hpp"
#include "../var.hpp"

namespace sparsimix::detail {
SPARSIMIX_ABI_BEGIN

// Every op's node; adding an op is one struct and two functions (forward, backward) in its
// family's header under autograd/ops/, one entry here and one Tape member.
using tape_node = std::variant<linear_node, linear_gelu_node, add_node, mul_node, scale_node, sum_node, layernorm_node,
                               concat_tokens_node, slice_tokens_node, reshape_node, mask_tokens_node, mixer_node,
                               mse_node, cosine_loss_node, cross_entropy_node, kl_div_logits_node, bernoulli_kl_node,
                               external_loss_node>;

template <class T>
class tape_core {
 public:
  struct var_info {
    Shape shape;
    T* value;
    T* grad;             // null when no gradient is needed
    bool requires_grad;
    bool grad_ready;     // grad holds a value (else the first writer overwrites it)
    bool leaf;           // external or input storage: accumulate, never reset
  };

  index_t num_vars() const noexcept { return static_cast<index_t>(vars_.size()); }
  var_info& info(Var v);
  const var_info& info(Var v) const { return const_cast<tape_core*>(this)->info(v); }
  const Shape& shape(Var v) const { return info(v).shape; }
  T* ptr(Var v) { return info(v).value; }
  bool rg(Var v) { return info(v).requires_grad; }
  index_t numel(Var v) { return info(v).shape.numel(); }

  // A fresh var of shape s from the value pool (and the gradient pool when it needs one).
  Var new_var(const Shape& s, bool requires_grad);
  // A var sharing x's value under shape s (its own gradient buffer).
  Var view_var(Var x, const Shape& s);
  // External storage: value read (never written), gradient (if any) accumulated.
  Var external_var(const Shape& s, T* value, T* grad);
  void make_leaf_grad(Var v);

  // Workspaces an op keeps for its backward, by slot index.
  index_t new_aux(const Shape& s);
  T* aux_data(index_t i) { return aux_pool_[static_cast<std::size_t>(i)].data(); }

  void push(tape_node n) { nodes_.push_back(n); }

  // Copies a mask's [B, N] bytes onto the tape (the caller's mask may change before backward).
  index_t save_mask(const TokenMask& m);
  bool mask_byte(index_t i) const { return bytes_[static_cast<std::size_t>(i)] != 0; }
  index_t save_labels(std::span<const index_t> labels);
  index_t label(index_t i) const { return labels_[static_cast<std::size_t>(i)]; }

  // The mixer holder at the next slot (reused across steps), then claimed for a node.
  std::unique_ptr<mixer_holder_base<T>>& mixer_slot();
  index_t take_mixer_slot() { return nmix_++; }
  mixer_holder_base<T>& mixer_at(index_t slot) { return *mixers_[static_cast<std::size_t>(slot)]; }

  // Gradient sinks. acc_grad: a buffer to add into (zeroed on first use), or null.
  T* acc_grad(Var v);
  // For kernels that write (`=`) their input gradient: f(dst) writes straight into v's
  // gradient on first use, else into scratch that is then added.
  template <class F>
  void write_grad(Var v, F&& f) {
    auto& vi = info(v);
    if (!vi.grad) return;
    const index_t n = vi.shape.numel();
    if (!vi.grad_ready) {
      f(vi.grad);
      vi.grad_ready = true;
      return;
    }
    scratch.resize(Shape{n});
    f(scratch.data());
    const T* s = scratch.data();
    T* g = vi.grad;
    parallel_rows(n, 1, [&](index_t, index_t i0, index_t i1) {
      for (index_t i = i0; i < i1; ++i) g[i] += s[i];
    });
  }
  // v's gradient += src (v's element count), a copy on first use (no zero fill); null v or a
  // v without gradient: nothing.
  void add_to_grad(Var v, const T* src);

  void check_same(const char* where, Var a, Var b);
  static Shape with_last(const Shape& s, index_t n);
  // b's extents equal a's trailing ones after dropping b's leading 1s.
  static bool broadcastable(const Shape& a, const Shape& b);

  Tensor<T> scratch;   // backward workspaces
  Tensor<T> scratch2;  // dx nobody reads, for two-output mixer nodes

 protected:
  void clear_core() noexcept;

  std::vector<var_info> vars_;
  std::vector<tape_node> nodes_;

 private:
  static T* alloc_from(std::vector<Tensor<T>>& pool, index_t& used, const Shape& s);

  std::vector<index_t> labels_;
  std::vector<std::uint8_t> bytes_;  // saved token masks
  std::vector<Tensor<T>> val_pool_, grad_pool_, aux_pool_;
  index_t nval_ = 0, ngrad_ = 0, naux_ = 0;
  std::vector<std::unique_ptr<mixer_holder_base<T>>> mixers_;
  index_t nmix_ = 0;
};

// ---- out-of-class members (extern-instantiable: docs/build-time.md) -------------------------

template <class T>
typename tape_core<T>::var_info& tape_core<T>::info(Var v) {
  if (v.id < 0 || v.id >= num_vars())
    throw config_error(concat("Tape: var ", v.id, " is not on this tape (", num_vars(),
                              " vars; a Var is valid until clear())"));
  return vars_[static_cast<std::size_t>(v.id)];
}

template <class T>
Var tape_core<T>::new_var(const Shape& s, bool requires_grad) {
  Var v{num_vars()};
  T* val = alloc_from(val_pool_, nval_, s);
  vars_.push_back({s, val, requires_grad ? alloc_from(grad_pool_, ngrad_, s) : nullptr, requires_grad, false, false});
  return v;
}

template <class T>
Var tape_core<T>::view_var(Var x, const Shape& s) {
  Var v{num_vars()};
  const bool g = rg(x);
  vars_.push_back({s, ptr(x), g ? alloc_from(grad_pool_, ngrad_, s) : nullptr, g, false, false});
  return v;
}

template <class T>
Var tape_core<T>::external_var(const Shape& s, T* value, T* grad) {
  Var v{num_vars()};
  vars_.push_back({s, value, grad, grad != nullptr, grad != nullptr, true});
  return v;
}

template <class T>
void tape_core<T>::make_leaf_grad(Var v) {
  auto& vi = info(v);
  std::fill(vi.grad, vi.grad + vi.shape.numel(), T(0));
  vi.grad_ready = true;
  vi.leaf = true;
}

template <class T>
index_t tape_core<T>::new_aux(const Shape& s) {
  alloc_from(aux_pool_, naux_, s);
  return naux_ - 1;
}

template <class T>
index_t tape_core<T>::save_mask(const TokenMask& m) {
  const index_t off = static_cast<index_t>(bytes_.size());
  const auto& t = m.tensor();
  bytes_.insert(bytes_.end(), t.data(), t.data() + t.numel());
  return off;
}

template <class T>
index_t tape_core<T>::save_labels(std::span<const index_t> labels) {
  const index_t off = static_cast<index_t>(labels_.size());
  labels_.insert(labels_.end(), labels.begin(), labels.end());
  return off;
}

template <class T>
std::unique_ptr<mixer_holder_base<T>>& tape_core<T>::mixer_slot() {
  if (nmix_ == static_cast<index_t>(mixers_.size())) mixers_.push_back(nullptr);
  return mixers_[static_cast<std::size_t>(nmix_)];
}

template <class T>
T* tape_core<T>::acc_grad(Var v) {
  if (!v.valid()) return nullptr;
  auto& vi = info(v);
  if (!vi.grad) return nullptr;
  if (!vi.grad_ready) {
    std::fill(vi.grad, vi.grad + vi.shape.numel(), T(0));
    vi.grad_ready = true;
  }
  return vi.grad;
}

template <class T>
void tape_core<T>::add_to_grad(Var v, const T* src) {
  if (!v.valid()) return;
  auto& vi = info(v);
  if (!vi.grad) return;
  T* g = vi.grad;
  const bool copy = !vi.grad_ready;
  vi.grad_ready = true;
  parallel_rows(vi.shape.numel(), 1, [&](index_t, index_t i0, index_t i1) {
    if (copy)
      std::copy(src + i0, src + i1, g + i0);
    else
      for (index_t i = i0; i < i1; ++i) g[i] += src[i];
  });
}

template <class T>
void tape_core<T>::check_same(const char* where, Var a, Var b) {
  if (!(shape(a) == shape(b)))
    throw shape_error(concat(where, ": b is ", shape(b).str(), ", expected ", shape(a).str(), " like a"));
}

template <class T>
Shape tape_core<T>::with_last(const Shape& s, index_t n) {
  switch (s.rank()) {
    case 1: return Shape{n};
    case 2: return Shape{s[0], n};
    case 3: return Shape{s[0], s[1], n};
    default: return Shape{s[0], s[1], s[2], n};
  }
}

template <class T>
bool tape_core<T>::broadcastable(const Shape& a, const Shape& b) {
  int lead = 0;
  while (lead < b.rank() && b[lead] == 1) ++lead;
  const int nb = b.rank() - lead;
  if (nb > a.rank()) return false;
  for (int i = 0; i < nb; ++i)
    if (b[lead + i] != a[a.rank() - nb + i]) return false;
  return true;
}

template <class T>
void tape_core<T>::clear_core() noexcept {
  vars_.clear();
  nodes_.clear();
  labels_.clear();
  bytes_.clear();
  nval_ = ngrad_ = naux_ = nmix_ = 0;
}

template <class T>
T* tape_core<T>::alloc_from(std::vector<Tensor<T>>& pool, index_t& used, const Shape& s) {
  if (used == static_cast<index_t>(pool.size())) pool.emplace_back();
  auto& t = pool[static_cast<std::size_t>(used++)];
  t.resize(s);
  return t.data();
}

SPARSIMIX_EXTERN_TEMPLATE(class tape_core<float>)
SPARSIMIX_EXTERN_TEMPLATE(class tape_core<double>)

SPARSIMIX_ABI_END
}  // namespace sparsimix::detail
