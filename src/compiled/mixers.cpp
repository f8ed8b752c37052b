// Explicit instantiations of the built-in mixers for float and double; see docs/build-time.md.
#include "sparsimix/mixers/attention.hpp"
#include "sparsimix/mixers/mh_lstm.hpp"
#include "sparsimix/mixers/selective_scan.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

template class Attention<float>;
template class Attention<double>;
template class MultiHeadLSTM<float>;
template class MultiHeadLSTM<double>;
template class SelectiveScan<float>;
template class SelectiveScan<double>;

SPARSIMIX_ABI_END
}  // namespace sparsimix
