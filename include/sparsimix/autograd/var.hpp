// Var: a handle to one value on a Tape (an index, valid until the tape's next clear()).
// Light on purpose: model headers name Var in declarations without pulling in the tape.
#pragma once
#include "../fwd.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// A handle to one value on a Tape: ops take and return Vars, the Tape owns the tensors.
struct Var {
  index_t id = -1;  // index into the tape's pools; -1 for "no var" (an omitted bias)
  // False for a default-constructed Var (an optional argument left out).
  bool valid() const noexcept { return id >= 0; }
};

template <class T>
class Tape;

SPARSIMIX_ABI_END
}  // namespace sparsimix
