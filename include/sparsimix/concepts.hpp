// The SeqMixer concept: every token mixer maps [B, N, C] to [B, N, C], optionally under a
// TokenMask, and knows its own backward. Built from small named concepts so a compiler
// error names the missing piece.
#pragma once
#include <concepts>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/param.hpp"
#include "core/rng.hpp"
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

// ---- optional capabilities: detected by these concepts and nothing else ------------------

// Has its own initialisation from an Rng (HybridViT::init calls it).
template <class M>
concept Initializable = requires(M& m, Rng& rng) { m.init(rng); };

// FAR's distillation target (docs/method.md 1.7): the training cache keeps the mixer's output
// before its last projection, [B, N, C], and backward takes a gradient on it too.
template <class M>
concept HasPreProjOutput = SeqMixer<M> && requires(M& m, const M& cm, const typename M::cache_type& c,
                                                   ConstSeq<typename M::scalar_type> dy,
                                                   Seq<typename M::scalar_type> dx) {
  { cm.pre_proj_output(c) } -> std::convertible_to<ConstSeq<typename M::scalar_type>>;
  m.backward(c, dy, dx, dy);
};

// Whether m has a pre-projection output: a type that models HasPreProjOutput does, and a
// type-erased holder (AnyMixer) answers for the mixer it holds.
template <class M>
bool provides_pre_proj_output(const M& m) {
  if constexpr (requires { { m.provides_pre_proj_output() } -> std::convertible_to<bool>; })
    return m.provides_pre_proj_output();
  else
    return HasPreProjOutput<M>;
}

// Knows the multiply-adds of its inference forward over one sequence of n tokens, counted
// from its shapes (docs/pruning.md "What a mixer costs"; exponentials and other
// nonlinearities not counted). Reports compare models by it (models/cost.hpp).
template <class M>
concept CountsMultiplyAdds = requires(const M& m, index_t n) {
  { m.multiply_adds(n) } -> std::convertible_to<index_t>;
};

// The multiply-adds of m over n tokens, or nothing when m does not count them; a type-erased
// holder (AnyMixer) answers for the mixer it holds.
template <class M>
std::optional<index_t> mixer_multiply_adds(const M& m, index_t n) {
  if constexpr (requires { { m.multiply_adds(n) } -> std::same_as<std::optional<index_t>>; })
    return m.multiply_adds(n);
  else if constexpr (CountsMultiplyAdds<M>)
    return static_cast<index_t>(m.multiply_adds(n));
  else
    return std::nullopt;
}

// Stores its weights in another layout than PyTorch's (MultiHeadLSTM keeps per-head blocks):
// checkpoints go through these instead of parameters().
template <class M>
concept HasDenseLayout = SeqMixer<M> && requires(M& m, const M& cm,
                                                 const std::function<Tensor<typename M::scalar_type>(const std::string&)>& lookup) {
  { cm.export_dense() } -> std::same_as<named_tensors<typename M::scalar_type>>;
  { cm.export_dense_grads() } -> std::same_as<named_tensors<typename M::scalar_type>>;
  { cm.dense_names() } -> std::same_as<std::vector<std::string>>;
  m.import_dense(lookup);
};

// Starts (partly) from the attention layer it replaces: init_from_teacher reads the teacher
// mixer's PyTorch tensors (names relative to the mixer, e.g. "proj.weight") and returns the
// names of its own parameters it copied; teacher_initialised() names the parameters it takes
// from the teacher, which stage 1 of distillation keeps frozen (FAR, docs/method.md 1.3).
template <class M>
concept InitsFromTeacher = SeqMixer<M> && requires(M& m, const M& cm,
                                                   const named_tensors<typename M::scalar_type>& teacher) {
  { m.init_from_teacher(teacher) } -> std::same_as<std::vector<std::string>>;
  { cm.teacher_initialised() } -> std::same_as<std::vector<std::string>>;
};

SPARSIMIX_ABI_END
}  // namespace sparsimix
