// One way to move any block mixer's weights in and out in PyTorch's layout, whatever its
// storage: MultiHeadLSTM keeps per-head blocks and converts (export_dense/import_dense);
// every other mixer's parameters() already are PyTorch's tensors.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "../concepts.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

template <class T>
using named_tensors = std::vector<std::pair<std::string, Tensor<T>>>;

namespace detail {
template <class M>
concept has_dense_layout = requires(M& m, const M& cm) {
  cm.export_dense();
  cm.export_dense_grads();
  M::dense_names();
};
}  // namespace detail

// PyTorch-layout tensors of mixer m (values or gradients), names relative to the mixer.
template <SeqMixer M>
named_tensors<typename M::scalar_type> mixer_state(M& m, bool grads = false) {
  if constexpr (detail::has_dense_layout<M>) {
    return grads ? m.export_dense_grads() : m.export_dense();
  } else {
    named_tensors<typename M::scalar_type> out;
    for (const auto& p : m.parameters()) {
      Tensor<typename M::scalar_type> t(p.value.shape());
      t.copy_from(grads ? TensorView<const typename M::scalar_type>(p.grad) : TensorView<const typename M::scalar_type>(p.value));
      out.emplace_back(p.name, std::move(t));
    }
    return out;
  }
}

// The names mixer_state writes, in order.
template <SeqMixer M>
std::vector<std::string> mixer_state_names(M& m) {
  if constexpr (detail::has_dense_layout<M>) {
    return M::dense_names();
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
  if constexpr (detail::has_dense_layout<M>) {
    m.import_dense(lookup);
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
