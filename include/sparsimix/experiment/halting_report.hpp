// What an A-ViT model's halting looks like (docs/halting.md, docs/report.md): token retention
// per block for one or more models, and a grid of images with each patch coloured by the
// number of blocks that processed it (A-ViT's and FAR's figures).
#pragma once
#include <algorithm>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "../data/idx.hpp"
#include "../distill/train.hpp"
#include "svg.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The halting of a model on some images: retention per block and each token's depth.
struct halting_summary {
  std::vector<double> retention;  // [L] fraction of patch tokens block l processed
  double mean_retention = 1;      // mean of retention over blocks
  Tensor<std::int64_t> depth;     // [K, N] blocks that processed each token (first K images)
  std::vector<index_t> depth_histogram;  // [L + 1]: patch tokens of the evaluated images by depth (0 unused)
  index_t images = 0;                    // images evaluated
};

// Runs a halting model on the first `count` images of `ds` (retention and the depth
// histogram) and keeps the per-token depth of the first `keep_depth` of them.
template <class T>
halting_summary summarize_halting(const HybridViT<T>& model, const data::image_dataset& ds, index_t count,
                                  index_t keep_depth = 8, index_t batch = 250) {
  if (!model.config().halting)
    throw config_error("summarize_halting: the model has no halting (train one with `sparsimix train --halting`)");
  const index_t n = std::min(count, ds.size()), L = model.depth(), N = model.config().num_tokens();
  if (n < 1) throw config_error(detail::concat("summarize_halting: count is ", count, ", expected >= 1 image"));
  halting_summary s;
  s.images = n;
  s.retention.assign(static_cast<std::size_t>(L), 0.0);
  s.depth_histogram.assign(static_cast<std::size_t>(L + 1), 0);
  const index_t kept = std::min(keep_depth, n);
  s.depth = Tensor<std::int64_t>(Shape{kept, N});
  const Shape is = ds.image_shape();
  Tensor<T> images, logits;
  for (index_t start = 0; start < n; start += batch) {
    const index_t b = std::min(batch, n - start);
    images.resize(Shape{b, is[0], is[1], is[2]});
    ds.copy_images(start, b, images.data());
    logits.resize(Shape{b, model.config().num_classes});
    model.forward(images.view(), logits.view());
    const auto& h = model.halting();
    for (index_t l = 0; l < L; ++l) s.retention[static_cast<std::size_t>(l)] += h.keep_ratio(l) * static_cast<double>(b);
    const Tensor<std::int64_t> d = h.depth();
    for (index_t i = 0; i < b; ++i) {
      for (index_t t = 1; t < N; ++t) ++s.depth_histogram[static_cast<std::size_t>(d(i, t))];
      if (start + i < kept)
        for (index_t t = 0; t < N; ++t) s.depth(start + i, t) = d(i, t);
    }
  }
  s.mean_retention = 0;
  for (auto& r : s.retention) {
    r /= static_cast<double>(n);
    s.mean_retention += r / static_cast<double>(L);
  }
  return s;
}

// The summary for report.json: images, mean retention, retention per block, depth histogram.
inline nlohmann::ordered_json to_json(const halting_summary& s) {
  return {{"images", s.images},
          {"mean_retention", s.mean_retention},
          {"retention_per_layer", s.retention},
          {"depth_histogram", s.depth_histogram}};
}

// Retention per block, one line per model (name, retention per block).
inline std::string retention_svg(const std::vector<std::pair<std::string, std::vector<double>>>& series) {
  const int W = 560, H = 360, L = 60, R = 160, T = 40, B = 50;
  std::size_t layers = 1;
  for (const auto& [name, r] : series) layers = std::max(layers, r.size());
  auto px = [&](double l) { return L + (layers > 1 ? l / static_cast<double>(layers - 1) : 0.5) * (W - L - R); };
  auto py = [&](double r) { return H - B - r * (H - T - B); };
  const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n";
  s << "<text x='10' y='22' font-size='15'>Token retention per block (fraction of patch tokens processed)</text>\n";
  s << "<line x1='" << L << "' y1='" << py(0) << "' x2='" << W - R << "' y2='" << py(0) << "' stroke='black'/>";
  s << "<line x1='" << L << "' y1='" << py(0) << "' x2='" << L << "' y2='" << py(1) << "' stroke='black'/>\n";
  for (int k = 0; k <= 4; ++k) {
    const double v = k / 4.0;
    s << "<text x='" << L - 6 << "' y='" << py(v) + 4 << "' text-anchor='end'>" << detail::svg_number(v, 2) << "</text>";
  }
  for (std::size_t l = 0; l < layers; ++l)
    s << "<text x='" << px(static_cast<double>(l)) << "' y='" << H - B + 16 << "' text-anchor='middle'>" << l
      << "</text>";
  s << "<text x='" << (L + W - R) / 2 << "' y='" << H - 12 << "' text-anchor='middle'>block</text>\n";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const auto& [name, r] = series[i];
    const char* col = colours[i % 6];
    s << "<polyline fill='none' stroke='" << col << "' stroke-width='2' points='";
    for (std::size_t l = 0; l < r.size(); ++l) s << px(static_cast<double>(l)) << "," << py(r[l]) << " ";
    s << "'/>";
    for (std::size_t l = 0; l < r.size(); ++l)
      s << "<circle cx='" << px(static_cast<double>(l)) << "' cy='" << py(r[l]) << "' r='3' fill='" << col
        << "'><title>" << detail::svg_escape(name) << " block " << l << ": " << detail::svg_number(r[l], 3)
        << "</title></circle>";
    s << "<text x='" << W - R + 10 << "' y='" << T + 16 * static_cast<int>(i) + 10 << "' fill='" << col << "'>"
      << detail::svg_escape(name) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// The first K images of `ds` in grey, each patch overlaid with its halting depth (1..L; light
// = halted early, dark red = processed by every block) and the depth printed on it.
inline std::string halting_depth_svg(const data::image_dataset& ds, const Tensor<std::int64_t>& depth,
                                     const vit_config& c) {
  const index_t K = depth.size(0), g = c.grid(), P = c.patch_size, L = c.depth;
  if (depth.rank() != 2 || depth.size(1) != c.num_tokens() || K > ds.size())
    throw shape_error(detail::concat("halting_depth_svg: depth is ", depth.shape().str(), ", expected [K <= ",
                                     ds.size(), ", ", c.num_tokens(), "]"));
  const int px = std::max(2, static_cast<int>(112 / c.img_size)), side = static_cast<int>(c.img_size) * px;
  const int cols = static_cast<int>(std::min<index_t>(K, 4)), rows = static_cast<int>((K + 3) / 4);
  const int W = 20 + cols * (side + 16), H = 70 + rows * (side + 16);
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='10'>\n";
  s << "<text x='10' y='20' font-size='14'>Halting depth per patch (blocks that processed it, of " << L
    << ")</text>\n";
  s << "<text x='10' y='38' font-size='11'>light = halted early, dark red = all " << L << " blocks</text>\n";
  for (index_t k = 0; k < K; ++k) {
    const int x0 = 10 + static_cast<int>(k % 4) * (side + 16), y0 = 50 + static_cast<int>(k / 4) * (side + 16);
    // The image (first channel), min-max scaled to grey.
    std::vector<float> img(static_cast<std::size_t>(ds.image_numel()));
    ds.copy_images(k, 1, img.data());
    const auto pixel = [&](index_t y, index_t x) { return img[static_cast<std::size_t>(y * c.img_size + x)]; };
    float lo = 1e30f, hi = -1e30f;
    for (index_t y = 0; y < c.img_size; ++y)
      for (index_t x = 0; x < c.img_size; ++x) {
        lo = std::min(lo, pixel(y, x));
        hi = std::max(hi, pixel(y, x));
      }
    for (index_t y = 0; y < c.img_size; ++y)
      for (index_t x = 0; x < c.img_size; ++x) {
        const float v = hi > lo ? (pixel(y, x) - lo) / (hi - lo) : 0.f;
        const int grey = static_cast<int>(255 * v);
        s << "<rect x='" << x0 + x * px << "' y='" << y0 + y * px << "' width='" << px << "' height='" << px
          << "' fill='rgb(" << grey << "," << grey << "," << grey << ")'/>";
      }
    s << "\n";
    for (index_t p = 0; p < c.num_patches(); ++p) {
      const auto d = depth(k, p + 1);
      const double t = L > 1 ? static_cast<double>(d - 1) / static_cast<double>(L - 1) : 1.0;
      const int r = 255 - static_cast<int>(75 * t), gb = 235 - static_cast<int>(235 * t);
      const auto bx = x0 + static_cast<int>((p % g) * P) * px, by = y0 + static_cast<int>((p / g) * P) * px;
      const int ps = static_cast<int>(P) * px;
      s << "<rect x='" << bx << "' y='" << by << "' width='" << ps << "' height='" << ps << "' fill='rgb(" << r << ","
        << gb << "," << gb << ")' fill-opacity='0.55' stroke='white' stroke-width='0.5'/>";
      if (ps >= 12)
        s << "<text x='" << bx + ps / 2 << "' y='" << by + ps / 2 + 3 << "' text-anchor='middle'>" << d << "</text>";
    }
    s << "\n";
  }
  s << "</svg>\n";
  return s.str();
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
