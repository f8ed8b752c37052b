// Var: a handle to one value on a Tape (an index, valid until the tape's next clear()).
// Light on purpose: model headers name Var in declarations without pulling in the tape.
#pragma once
#include "../fwd.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

struct Var {
  index_t id = -1;
  bool valid() const noexcept { return id >= 0; }
};

template <class T>
class Tape;

SPARSIMIX_ABI_END
}  // namespace sparsimix
