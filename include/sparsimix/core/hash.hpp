// FNV-1a, the library's one non-cryptographic hash: the same value on every platform (seeds
// derived from names, keys of cached batches).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../fwd.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

namespace detail {
// FNV-1a over `bytes` bytes at `data`, continuing from `h` (the offset basis by default).
inline std::uint64_t fnv1a(const void* data, std::size_t bytes, std::uint64_t h = 0xcbf29ce484222325ULL) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 0x100000001b3ULL;
  return h;
}
// FNV-1a over the characters of `s`.
inline std::uint64_t fnv1a(std::string_view s) noexcept { return fnv1a(s.data(), s.size()); }
}  // namespace detail

SPARSIMIX_ABI_END
}  // namespace sparsimix
