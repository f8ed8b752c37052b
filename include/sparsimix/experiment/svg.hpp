// Small helpers of the SVG plots the experiments write (numbers, escaping, a colour scale).
#pragma once
#include <algorithm>
#include <cstdio>
#include <sstream>
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

// The frame of a W x H scatter plot with margins L, R, T, B around the data rectangle: both
// axes, five labelled ticks on each (x with xprec decimals, y with yprec) and the axis titles.
struct scatter_frame {
  int W, H, L, R, T, B;
  double xmin, xmax, ymin, ymax;
  double px(double x) const { return L + (x - xmin) / (xmax - xmin) * (W - L - R); }
  double py(double y) const { return H - B - (y - ymin) / (ymax - ymin) * (H - T - B); }
  void draw(std::ostringstream& s, const std::string& xlabel, const std::string& ylabel, int xprec, int yprec) const {
    s << "<line x1='" << L << "' y1='" << H - B << "' x2='" << W - R << "' y2='" << H - B << "' stroke='black'/>";
    s << "<line x1='" << L << "' y1='" << T << "' x2='" << L << "' y2='" << H - B << "' stroke='black'/>\n";
    for (int i = 0; i <= 4; ++i) {
      const double xv = xmin + (xmax - xmin) * i / 4, yv = ymin + (ymax - ymin) * i / 4;
      s << "<text x='" << px(xv) << "' y='" << H - B + 16 << "' text-anchor='middle'>" << svg_number(xv, xprec) << "</text>";
      s << "<text x='" << L - 6 << "' y='" << py(yv) + 4 << "' text-anchor='end'>" << svg_number(yv, yprec) << "</text>\n";
    }
    s << "<text x='" << (L + W - R) / 2 << "' y='" << H - 12 << "' text-anchor='middle'>" << svg_escape(xlabel) << "</text>";
    s << "<text x='16' y='" << (T + H - B) / 2 << "' transform='rotate(-90 16 " << (T + H - B) / 2
      << ")' text-anchor='middle'>" << svg_escape(ylabel) << "</text>\n";
  }
};
}  // namespace detail

SPARSIMIX_ABI_END
}  // namespace sparsimix
