// The built-in mixers, as one type list: everything that needs "all the mixers" (the block
// mixer variant, the registry, config JSON, the command line's --mixer choices) derives from
// it. Adding a built-in mixer: write its header with a mixer_traits block, add it here.
#pragma once
#include "attention.hpp"
#include "mh_lstm.hpp"
#include "selective_scan.hpp"
#include "traits.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The mixers every registry knows from the start: attention, mh_lstm, selective_scan.
using builtin_mixers = mixer_list<Attention, MultiHeadLSTM, SelectiveScan>;

SPARSIMIX_ABI_END
}  // namespace sparsimix
