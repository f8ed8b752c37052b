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

// Explicit instantiation (docs/build-time.md): with SPARSIMIX_EXTERN_TEMPLATES defined (the
// sparsimix::compiled target sets it for its users), headers declare their float and double
// instantiations extern and programs link them from the compiled library instead of compiling
// them in every translation unit. Without it the library stays header-only.
#ifdef SPARSIMIX_EXTERN_TEMPLATES
#define SPARSIMIX_EXTERN_TEMPLATE(...) extern template __VA_ARGS__;
#else
#define SPARSIMIX_EXTERN_TEMPLATE(...)
#endif

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

using index_t = std::ptrdiff_t;

class Shape;
template <class T> class Tensor;
template <class T> class TensorView;
class TokenMask;
template <class T> class Tape;

SPARSIMIX_ABI_END
}  // namespace sparsimix
