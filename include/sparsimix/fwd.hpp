// sparsimix: forward declarations, version and the ABI namespace. Light: cstddef and cstdint only.
#pragma once
#include <cstddef>
#include <cstdint>

#include "version.hpp"

// An inline namespace keyed on the version (v0_2 for 0.2.x) keeps objects built against
// different sparsimix versions from silently linking together (nlohmann's JSON_ABI_TAGS idea).
#define SPARSIMIX_ABI_NAMESPACE_(major, minor) v##major##_##minor
// Expands the version macros before they are pasted into the namespace name.
#define SPARSIMIX_ABI_NAMESPACE_EXPAND_(major, minor) SPARSIMIX_ABI_NAMESPACE_(major, minor)
// The inline namespace's name for this version: v0_2 for 0.2.x.
#define SPARSIMIX_ABI_NAMESPACE SPARSIMIX_ABI_NAMESPACE_EXPAND_(SPARSIMIX_VERSION_MAJOR, SPARSIMIX_VERSION_MINOR)
// Opens the versioned inline namespace inside namespace sparsimix (every header's declarations).
#define SPARSIMIX_ABI_BEGIN inline namespace SPARSIMIX_ABI_NAMESPACE {
// Closes SPARSIMIX_ABI_BEGIN's namespace.
#define SPARSIMIX_ABI_END }

// Internal invariants only; user errors throw typed exceptions (core/error.hpp).
#ifndef SPARSIMIX_ASSERT
#include <cassert>
// Checks an internal invariant: assert, unless defined before sparsimix is included.
#define SPARSIMIX_ASSERT(x) assert(x)
#endif

// Explicit instantiation (docs/build-time.md): with SPARSIMIX_EXTERN_TEMPLATES defined (the
// sparsimix::compiled target sets it for its users), headers declare their float and double
// instantiations extern and programs link them from the compiled library instead of compiling
// them in every translation unit. Without it the library stays header-only.
#ifdef SPARSIMIX_EXTERN_TEMPLATES
// Declares an instantiation extern: programs link it from the sparsimix::compiled library.
#define SPARSIMIX_EXTERN_TEMPLATE(...) extern template __VA_ARGS__;
#else
// Header-only: nothing is declared extern, every translation unit instantiates what it uses.
#define SPARSIMIX_EXTERN_TEMPLATE(...)
#endif

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Signed sizes and indices everywhere (extents, element counts, offsets).
using index_t = std::ptrdiff_t;

class Shape;
template <class T> class Tensor;
template <class T> class TensorView;
class TokenMask;
template <class T> class Tape;

SPARSIMIX_ABI_END
}  // namespace sparsimix
