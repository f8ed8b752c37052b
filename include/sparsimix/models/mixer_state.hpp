// One way to move any block mixer's weights in and out in PyTorch's layout, whatever its
// storage: a mixer with HasDenseLayout (MultiHeadLSTM keeps per-head blocks; AnyMixer
// forwards to the mixer it holds) converts; every other mixer's parameters() already are
// PyTorch's tensors.
#pragma once
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "../concepts.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// PyTorch-layout tensors of mixer m (values or gradients), names relative to the mixer.
template <SeqMixer M>
named_tensors<typename M::scalar_type> mixer_state(M& m, bool grads = false) {
  using T = typename M::scalar_type;
  if constexpr (HasDenseLayout<M>) {
    return grads ? m.export_dense_grads() : m.export_dense();
  } else {
    named_tensors<T> out;
    for (const auto& p : m.parameters()) {
      Tensor<T> t(p.value.shape());
      t.copy_from(grads ? TensorView<const T>(p.grad) : TensorView<const T>(p.value));
      out.emplace_back(p.name, std::move(t));
    }
    return out;
  }
}

// The names mixer_state writes, in order.
template <SeqMixer M>
std::vector<std::string> mixer_state_names(M& m) {
  if constexpr (HasDenseLayout<M>) {
    return m.dense_names();
  } else {
    std::vector<std::string> n;
    for (const auto& p : m.parameters()) n.push_back(p.name);
    return n;
  }
}

// Loads mixer m from lookup(name) -> Tensor<T> (PyTorch layout). Checks every shape before
// writing anything, so a bad tensor leaves the mixer unchanged.
template <SeqMixer M, class Lookup>
void load_mixer_state(M& m, Lookup&& lookup, const std::string& where) {
  using T = typename M::scalar_type;
  if constexpr (HasDenseLayout<M>) {
    m.import_dense(std::function<Tensor<T>(const std::string&)>(lookup));
  } else {
    auto ps = m.parameters();
    std::vector<Tensor<T>> staged;
    staged.reserve(ps.size());
    for (const auto& p : ps) {
      staged.push_back(lookup(p.name));
      if (!(staged.back().shape() == p.value.shape()))
        throw shape_error(detail::concat(where, ": ", p.name, " is ", staged.back().shape().str(), ", expected ",
                                         p.value.shape().str()));
    }
    for (std::size_t i = 0; i < ps.size(); ++i) std::copy(staged[i].begin(), staged[i].end(), ps[i].value.begin());
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
