// Small helpers of the SVG plots the experiments write (numbers, escaping, a colour scale).
#pragma once
#include <algorithm>
#include <cstdio>
#include <string>

#include "../fwd.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

namespace detail {
inline std::string svg_number(double v, int prec = 4) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", prec, v);
  return b;
}
inline std::string svg_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else o += c;
  }
  return o;
}
// White (0) to dark blue (1).
inline std::string heat_colour(double t) {
  t = std::clamp(t, 0.0, 1.0);
  const int r = static_cast<int>(255 - 215 * t), g = static_cast<int>(255 - 165 * t), b = static_cast<int>(255 - 75 * t);
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
  return buf;
}
}  // namespace detail

SPARSIMIX_ABI_END
}  // namespace sparsimix
