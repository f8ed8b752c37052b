// The library's version: the one place it is written. CMake's project() version, the package
// config (find_package(sparsimix 0.2)), pkg-config and the ABI namespace (fwd.hpp) read these
// three lines; CHANGELOG.md says what each version changed. Light: no includes.
#pragma once

// Major version: a change breaks the API or ABI.
#define SPARSIMIX_VERSION_MAJOR 0
// Minor version: part of the ABI namespace (v0_2), since 0.x minors may break the ABI.
#define SPARSIMIX_VERSION_MINOR 2
// Patch version: fixes only, same ABI.
#define SPARSIMIX_VERSION_PATCH 0

// Joins three numbers into one string literal: "0.2.0" for 0, 2, 0.
#define SPARSIMIX_VERSION_STRING_(a, b, c) #a "." #b "." #c
// Expands the version macros before they are stringized.
#define SPARSIMIX_VERSION_STRING_EXPAND_(a, b, c) SPARSIMIX_VERSION_STRING_(a, b, c)
// The version as a string literal, "0.2.0".
#define SPARSIMIX_VERSION_STRING \
  SPARSIMIX_VERSION_STRING_EXPAND_(SPARSIMIX_VERSION_MAJOR, SPARSIMIX_VERSION_MINOR, SPARSIMIX_VERSION_PATCH)

namespace sparsimix {

// The version of the headers a program was compiled against, e.g. "0.2.0".
inline constexpr const char* version_string = SPARSIMIX_VERSION_STRING;
// SPARSIMIX_VERSION_MAJOR of the headers the program was compiled against.
inline constexpr int version_major = SPARSIMIX_VERSION_MAJOR;
// SPARSIMIX_VERSION_MINOR of the headers the program was compiled against.
inline constexpr int version_minor = SPARSIMIX_VERSION_MINOR;
// SPARSIMIX_VERSION_PATCH of the headers the program was compiled against.
inline constexpr int version_patch = SPARSIMIX_VERSION_PATCH;

}  // namespace sparsimix
