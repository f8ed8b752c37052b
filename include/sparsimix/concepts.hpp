// The SeqMixer concept: every token mixer maps [B, N, C] to [B, N, C], optionally under a
// TokenMask, and knows its own backward. Built from small named concepts so a compiler
// error names the missing piece.
#pragma once
#include <concepts>

#include "core/param.hpp"
#include "core/tensor.hpp"
#include "core/token_mask.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Has a scalar type, a cache type for training, and a channel count C.
template <class M>
concept HasDim = requires(const M& m) {
  typename M::scalar_type;
  typename M::cache_type;
  { m.dim() } -> std::convertible_to<index_t>;
};

// y = mixer(x) without keeping activations; no allocation per call after warm-up.
template <class M>
concept InferenceForward = HasDim<M> && requires(const M& m, ConstSeq<typename M::scalar_type> x,
                                                 Seq<typename M::scalar_type> y, const TokenMask* mask) {
  m.forward(x, y, mask);
};

// Training forward keeps what backward needs in the cache; backward accumulates parameter
// gradients and writes dx.
template <class M>
concept TrainingStep = HasDim<M> && requires(M& m, ConstSeq<typename M::scalar_type> x,
                                             Seq<typename M::scalar_type> y, typename M::cache_type& cache,
                                             const typename M::cache_type& ccache,
                                             ConstSeq<typename M::scalar_type> dy,
                                             Seq<typename M::scalar_type> dx, const TokenMask* mask) {
  m.forward(x, y, cache, mask);
  m.backward(ccache, dy, dx);
};

// Parameters by PyTorch name, as (value, grad) views into the mixer's storage.
template <class M>
concept NamedParameters = HasDim<M> && requires(M& m) {
  { m.parameters() } -> std::same_as<ParamList<typename M::scalar_type>>;
};

template <class M>
concept SeqMixer = HasDim<M> && InferenceForward<M> && TrainingStep<M> && NamedParameters<M>;

SPARSIMIX_ABI_END
}  // namespace sparsimix
