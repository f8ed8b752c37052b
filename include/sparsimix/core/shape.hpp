// Shape: up to 4 extents, row-major, printable as "[2, 197, 96]".
#pragma once
#include <array>
#include <initializer_list>
#include <ostream>
#include <string>

#include "error.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The extents of a tensor: rank 0 to 4, outermost first, each >= 0.
class Shape {
 public:
  static constexpr int max_rank = 4;  // the most dimensions a tensor has ([B, H, N, N] attention maps)

  constexpr Shape() = default;
  // Extents outermost first, as {2, 197, 96}; throws shape_error on rank > 4 or a negative extent.
  Shape(std::initializer_list<index_t> dims) {
    if (dims.size() > max_rank)
      throw shape_error(detail::concat("Shape: rank ", dims.size(), " exceeds ", max_rank));
    for (index_t d : dims) {
      if (d < 0) throw shape_error(detail::concat("Shape: negative extent ", d));
      dims_[static_cast<std::size_t>(rank_++)] = d;
    }
  }

  // Number of dimensions, 0 to 4.
  constexpr int rank() const noexcept { return rank_; }
  // Extent of dimension `i`, 0 <= i < rank().
  index_t operator[](int i) const noexcept {
    SPARSIMIX_ASSERT(i >= 0 && i < rank_);
    return dims_[static_cast<std::size_t>(i)];
  }
  // Element count: the product of the extents (1 for rank 0).
  index_t numel() const noexcept {
    index_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[static_cast<std::size_t>(i)];
    return n;
  }
  // Same rank and the same extents.
  friend bool operator==(const Shape& a, const Shape& b) noexcept {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a[i] != b[i]) return false;
    return true;
  }

  // Printable form for error messages: "[2, 197, 96]".
  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[static_cast<std::size_t>(i)]);
    }
    return s + "]";
  }
  // Writes str().
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.str(); }

 private:
  std::array<index_t, max_rank> dims_{};
  int rank_ = 0;
};

// Any extent -1 in `expected` matches anything and prints as '*'.
inline bool shape_matches(const Shape& actual, std::initializer_list<index_t> expected) noexcept {
  if (actual.rank() != static_cast<int>(expected.size())) return false;
  int i = 0;
  for (index_t e : expected) {
    if (e >= 0 && actual[i] != e) return false;
    ++i;
  }
  return true;
}

// A check_shape pattern as text: "[*, 197, 96]" (-1 prints as '*').
inline std::string pattern_str(std::initializer_list<index_t> expected) {
  std::string s = "[";
  bool first = true;
  for (index_t e : expected) {
    if (!first) s += ", ";
    first = false;
    s += e < 0 ? std::string("*") : std::to_string(e);
  }
  return s + "]";
}

// Throws shape_error "<where>: <name> is [..], expected [..]" unless `actual` matches.
inline void check_shape(const char* where, const char* name, const Shape& actual,
                        std::initializer_list<index_t> expected) {
  if (!shape_matches(actual, expected))
    throw shape_error(detail::concat(where, ": ", name, " is ", actual.str(), ", expected ",
                                     pattern_str(expected)));
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
