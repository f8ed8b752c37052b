// Explicit instantiations of the model templates for float and double; see docs/build-time.md.
#include "sparsimix/autograd/tape.hpp"
#include "sparsimix/models/halting.hpp"
#include "sparsimix/models/vit.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

#define SPARSIMIX_INSTANTIATE_MODELS(T)                                                                 \
  template class HaltingController<T>;                                                                 \
  template T bernoulli_kl<T>(TensorView<const T>, TensorView<const T>, TensorView<T>);                  \
  template class HybridViT<T>;                                                                          \
  template Var HybridViT<T>::forward<Tape<T>>(Tape<T>&, TensorView<const T>, vit_trace*);               \
  template Var HybridViT<T>::halting_loss<Tape<T>>(Tape<T>&, const vit_trace&, double, double, index_t);

SPARSIMIX_INSTANTIATE_MODELS(float)
SPARSIMIX_INSTANTIATE_MODELS(double)
#undef SPARSIMIX_INSTANTIATE_MODELS

SPARSIMIX_ABI_END
}  // namespace sparsimix
