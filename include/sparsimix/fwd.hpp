// sparsimix: forward declarations, version and the ABI namespace. Light: <cstddef> only.
#pragma once
#include <cstddef>
#include <cstdint>

#define SPARSIMIX_VERSION_MAJOR 0
#define SPARSIMIX_VERSION_MINOR 1
#define SPARSIMIX_VERSION_PATCH 0

// An inline namespace keyed on the version keeps objects built against different
// sparsimix versions from silently linking together (nlohmann's JSON_ABI_TAGS idea).
#define SPARSIMIX_ABI_BEGIN inline namespace v0_1 {
#define SPARSIMIX_ABI_END }

// Internal invariants only; user errors throw typed exceptions (core/error.hpp).
#ifndef SPARSIMIX_ASSERT
#include <cassert>
#define SPARSIMIX_ASSERT(x) assert(x)
#endif

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

using index_t = std::ptrdiff_t;

class Shape;
template <class T> class Tensor;
template <class T> class TensorView;
class TokenMask;

SPARSIMIX_ABI_END
}  // namespace sparsimix
