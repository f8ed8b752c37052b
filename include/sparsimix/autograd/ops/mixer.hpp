// Tape op: one call of any SeqMixer on x [B, N, C] (forward with a cache now, backward later;
// parameter gradients accumulate into the mixer's own storage), optionally with its
// pre-projection output as a second output (HasPreProjOutput: FAR's distillation target).
// Node, forward and backward side by side.
#pragma once
#include <algorithm>
#include <memory>
#include <type_traits>
#include <utility>

#include "../../concepts.hpp"
#include "../../core/error.hpp"
#include "../../core/tensor.hpp"
#include "../../core/token_mask.hpp"
#include "../var.hpp"

namespace sparsimix::detail {
SPARSIMIX_ABI_BEGIN

template <class T>
class tape_core;

// Type-erased SeqMixer call: keeps the mixer's cache_type until backward.
template <class T>
struct mixer_holder_base {
  virtual ~mixer_holder_base() = default;
  virtual void backward(ConstSeq<T> dy, Seq<T> dx) = 0;
  // With a gradient on the pre-projection output too.
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

// y = mixer(x); s (valid only for mixer_pre_proj) = its pre-projection output. `slot` is the
// holder (mixer pointer and cache) in the tape's mixer list.
struct mixer_node {
  Var x, y, s;
  index_t slot;
};

// Runs the training forward into the holder at the next slot (reusing its cache's buffers
// when the previous step left the same mixer type there); returns y and the holder.
template <class T, class M>
std::pair<Var, mixer_holder<M>*> mixer_forward(tape_core<T>& t, M& m, Var x, const TokenMask* mask, const char* where) {
  const Shape xs = t.shape(x);
  check_shape(where, "x", xs, {-1, -1, m.dim()});
  if (mask) mask->check_fits(where, xs);
  auto& slot = t.mixer_slot();
  auto* h = dynamic_cast<mixer_holder<M>*>(slot.get());
  if (!h) {
    auto fresh = std::make_unique<mixer_holder<M>>();
    h = fresh.get();
    slot = std::move(fresh);
  }
  h->mixer = &m;
  // The mixer's parameters may need gradients whatever x needs.
  const Var y = t.new_var(xs, true);
  m.forward(ConstSeq<T>(t.ptr(x), xs), Seq<T>(t.ptr(y), xs), h->cache, mask);
  return {y, h};
}

template <class T, class M>
Var mixer(tape_core<T>& t, M& m, Var x, const TokenMask* mask) {
  const Var y = mixer_forward(t, m, x, mask, "Tape::mixer").first;
  t.push(mixer_node{x, y, Var{}, t.take_mixer_slot()});
  return y;
}

template <class T, class M>
std::pair<Var, Var> mixer_pre_proj(tape_core<T>& t, M& m, Var x, const TokenMask* mask) {
  if (!provides_pre_proj_output(m))
    throw config_error("Tape::mixer_pre_proj: the mixer has no pre-projection output (HasPreProjOutput)");
  const auto [y, h] = mixer_forward(t, m, x, mask, "Tape::mixer_pre_proj");
  const ConstSeq<T> sv = m.pre_proj_output(h->cache);
  if (!(sv.shape() == t.shape(y)))
    throw shape_error(concat("Tape::mixer_pre_proj: the pre-projection output is ", sv.shape().str(), ", expected ",
                             t.shape(y).str()));
  const Var s = t.new_var(t.shape(y), true);
  std::copy(sv.begin(), sv.end(), t.ptr(s));
  t.push(mixer_node{x, y, s, t.take_mixer_slot()});
  return {y, s};
}

// Gradient flows into a mixer node through y or, when it has one, through s.
template <class T>
bool receives_gradient(tape_core<T>& t, const mixer_node& nd) {
  const auto& out = t.info(nd.y);
  return out.grad && (out.grad_ready || (nd.s.valid() && t.info(nd.s).grad_ready));
}

template <class T>
void backward(tape_core<T>& t, const mixer_node& nd, const T* dy) {
  auto& h = t.mixer_at(nd.slot);
  const Shape xs = t.shape(nd.x);
  const bool need_dx = t.info(nd.x).grad != nullptr;
  if (nd.s.valid() && t.info(nd.s).grad_ready) {
    // Two outputs: y's gradient may never have been written (a loss on s alone).
    const ConstSeq<T> dys(t.acc_grad(nd.y), xs), dss(t.info(nd.s).grad, xs);
    if (need_dx) {
      t.write_grad(nd.x, [&](T* dx) { h.backward(dys, Seq<T>(dx, xs), dss); });
    } else {
      t.scratch2.resize(xs);
      h.backward(dys, t.scratch2.view(), dss);
    }
    return;
  }
  const ConstSeq<T> dys(dy, xs);
  if (need_dx) {
    t.write_grad(nd.x, [&](T* dx) { h.backward(dys, Seq<T>(dx, xs)); });
  } else {
    t.scratch.resize(xs);
    h.backward(dys, t.scratch.view());
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::detail
