// Explicit instantiations of the tape and optimizers for float and double; see docs/build-time.md.
#include "sparsimix/autograd/detail/tape_core.hpp"
#include "sparsimix/autograd/optim.hpp"
#include "sparsimix/autograd/tape.hpp"

namespace sparsimix::detail {
SPARSIMIX_ABI_BEGIN

template class tape_core<float>;
template class tape_core<double>;

SPARSIMIX_ABI_END
}  // namespace sparsimix::detail

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

template class detail::param_groups<float>;
template class detail::param_groups<double>;
template class Tape<float>;
template class Tape<double>;
template class AdamW<float>;
template class AdamW<double>;
template class SGD<float>;
template class SGD<double>;
template double clip_grad_norm<float>(const ParamList<float>&, double, bool);
template double clip_grad_norm<double>(const ParamList<double>&, double, bool);

SPARSIMIX_ABI_END
}  // namespace sparsimix
