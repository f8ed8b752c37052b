// DeiT/timm image preprocessing on decoded 8-bit images, in either of torchvision's two paths
// (resize_rounding): on PIL images, as timm's transforms run (PIL's resize: antialiased
// filters, fixed-point weights, 8-bit rounding and clipping after each pass), or on float
// tensors with antialias=True (the same filters without the rounding). The two differ by
// about one 8-bit level on smooth images and by far more at hard edges with bicubic, whose
// overshoot PIL clips between its two passes.
//   evaluation: resize the shorter side to floor(img_size / crop_pct), centre crop img_size,
//               normalise with a per-channel mean and std;
//   training:   RandomResizedCrop(img_size, scale, ratio) and a horizontal flip with p = 1/2,
//               then the same normalisation.
// tests/golden/gen_preprocess.py checks both against torchvision 0.14 on images of odd sizes.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/enum_names.hpp"
#include "../core/rng.hpp"
#include "image_decode.hpp"

namespace sparsimix::data {
SPARSIMIX_ABI_BEGIN

// Resampling filter of the resize (both antialiased when shrinking, as PIL's).
enum class interpolation { bilinear, bicubic };
// The names --interpolation and config.json use.
inline constexpr sparsimix::detail::enum_table<interpolation, 2> interpolation_names{
    {{interpolation::bilinear, "bilinear"}, {interpolation::bicubic, "bicubic"}}};
// The filter's name.
constexpr std::string_view to_string(interpolation i) noexcept {
  return sparsimix::detail::enum_to_string(interpolation_names, i);
}
// The filter named `s`; throws config_error naming the choices otherwise.
inline interpolation parse_interpolation(std::string_view s) {
  return sparsimix::detail::enum_parse(interpolation_names, s, "interpolation");
}

// Which of torchvision's resize paths preprocessing reproduces.
enum class resize_rounding { pil, tensor };
// The names --resize-rounding and config.json use.
inline constexpr sparsimix::detail::enum_table<resize_rounding, 2> resize_rounding_names{
    {{resize_rounding::pil, "pil"}, {resize_rounding::tensor, "tensor"}}};
// The path's name.
constexpr std::string_view to_string(resize_rounding r) noexcept {
  return sparsimix::detail::enum_to_string(resize_rounding_names, r);
}
// The path named `s`; throws config_error naming the choices otherwise.
inline resize_rounding parse_resize_rounding(std::string_view s) {
  return sparsimix::detail::enum_parse(resize_rounding_names, s, "resize rounding");
}

// ImageNet's per-channel mean (timm's IMAGENET_DEFAULT_MEAN).
inline constexpr float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
// ImageNet's per-channel standard deviation (timm's IMAGENET_DEFAULT_STD).
inline constexpr float imagenet_std[3] = {0.229f, 0.224f, 0.225f};

// How decoded images become model inputs [channels, img_size, img_size].
struct preprocess_options {
  index_t img_size = 224;           // the model's input side
  index_t channels = 3;             // the model's input channels: 1 (gray) or 3 (RGB)
  double crop_pct = 0.875;          // evaluation: shorter side resized to floor(img_size / crop_pct)
  interpolation interp = interpolation::bicubic;  // DeiT's
  resize_rounding rounding = resize_rounding::pil;  // timm's transforms run on PIL images
  std::vector<float> mean, std;     // per channel; empty: ImageNet's for RGB, 0.5 for gray
  double scale_min = 0.08, scale_max = 1.0;     // training crop: area fraction range
  double ratio_min = 3.0 / 4.0, ratio_max = 4.0 / 3.0;  // training crop: aspect ratio range

  // The mean and std in use (the defaults filled in).
  std::vector<float> effective_mean() const {
    if (!mean.empty()) return mean;
    return channels == 3 ? std::vector<float>(imagenet_mean, imagenet_mean + 3) : std::vector<float>{0.5f};
  }
  // The std in use (see effective_mean).
  std::vector<float> effective_std() const {
    if (!std.empty()) return std;
    return channels == 3 ? std::vector<float>(imagenet_std, imagenet_std + 3) : std::vector<float>{0.5f};
  }
  // The evaluation resize target of the shorter side.
  index_t resize_size() const { return static_cast<index_t>(std::floor(static_cast<double>(img_size) / crop_pct)); }
  // Throws config_error naming the field for values no transform can use.
  void check() const {
    using sparsimix::detail::concat;
    if (img_size < 1) throw config_error(concat("preprocess: img_size is ", img_size, ", expected >= 1"));
    if (channels != 1 && channels != 3) throw config_error(concat("preprocess: channels is ", channels, ", expected 1 or 3"));
    if (!(crop_pct > 0 && crop_pct <= 1)) throw config_error(concat("preprocess: crop_pct is ", crop_pct, ", expected 0 < crop_pct <= 1"));
    const auto m = effective_mean(), s = effective_std();
    if (static_cast<index_t>(m.size()) != channels || static_cast<index_t>(s.size()) != channels)
      throw config_error(concat("preprocess: mean has ", m.size(), " and std ", s.size(), " values, expected ", channels,
                                " (one per channel)"));
    for (float v : s)
      if (!(v > 0) || !std::isfinite(v)) throw config_error(concat("preprocess: std value ", v, ", expected > 0"));
    for (float v : m)
      if (!std::isfinite(v)) throw config_error(concat("preprocess: mean value ", v, ", expected a finite value"));
    if (!(scale_min > 0 && scale_min <= scale_max && scale_max <= 1))
      throw config_error(concat("preprocess: crop scale ", scale_min, "..", scale_max, ", expected 0 < min <= max <= 1"));
    if (!(ratio_min > 0 && ratio_min <= ratio_max))
      throw config_error(concat("preprocess: crop ratio ", ratio_min, "..", ratio_max, ", expected 0 < min <= max"));
  }
};

// A rectangle of an image: rows top..top+height, columns left..left+width.
struct crop_box {
  index_t top = 0;     // first row
  index_t left = 0;    // first column
  index_t height = 0;  // rows
  index_t width = 0;   // columns
};

namespace detail {

// PIL's (and torch's antialiased) filters: support 1 (triangle) and 2 (cubic with a = -0.5).
inline double filter_weight(interpolation f, double x) {
  x = std::abs(x);
  if (f == interpolation::bilinear) return x < 1 ? 1 - x : 0;
  constexpr double a = -0.5;
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

// For each output index: the first input index and the normalised weights of the inputs it
// reads (PIL's precompute_coeffs: support widened by the scale when shrinking).
struct resample_taps {
  std::vector<index_t> first, count;
  std::vector<double> weights;  // out_size * max_taps
  index_t max_taps = 0;
};

inline resample_taps make_taps(interpolation f, index_t in_size, index_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0), inv_filterscale = 1.0 / filterscale;
  const double support = (f == interpolation::bilinear ? 1.0 : 2.0) * filterscale;
  resample_taps t;
  t.max_taps = static_cast<index_t>(std::ceil(support)) * 2 + 1;
  t.first.resize(static_cast<std::size_t>(out_size));
  t.count.resize(static_cast<std::size_t>(out_size));
  t.weights.assign(static_cast<std::size_t>(out_size * t.max_taps), 0.0);
  for (index_t i = 0; i < out_size; ++i) {
    const double center = (static_cast<double>(i) + 0.5) * scale;
    const index_t lo = std::max<index_t>(static_cast<index_t>(center - support + 0.5), 0);
    const index_t hi = std::min<index_t>(static_cast<index_t>(center + support + 0.5), in_size);
    const index_t n = std::min(hi - lo, t.max_taps);
    double* w = t.weights.data() + i * t.max_taps;
    double total = 0;
    for (index_t k = 0; k < n; ++k) total += w[k] = filter_weight(f, (static_cast<double>(k + lo) - center + 0.5) * inv_filterscale);
    if (total != 0)
      for (index_t k = 0; k < n; ++k) w[k] /= total;
    t.first[static_cast<std::size_t>(i)] = lo;
    t.count[static_cast<std::size_t>(i)] = n;
  }
  return t;
}

// Python's round() of x / 2 for an integer x (halves go to the even neighbour), as
// torchvision's center_crop computes its offsets.
inline index_t round_half_even_half(index_t x) {
  const index_t q = x / 2;
  if (x % 2 == 0) return q;
  return q % 2 == 0 ? q : q + 1;
}

// PIL's 8-bit resampling arithmetic: weights in 22-bit fixed point, a rounding offset, and
// each pass's result clipped to 0..255.
inline constexpr int pil_precision_bits = 32 - 8 - 2;

inline std::vector<std::int32_t> pil_fixed_weights(const resample_taps& t) {
  std::vector<std::int32_t> k(t.weights.size());
  for (std::size_t i = 0; i < k.size(); ++i) {
    const double w = t.weights[i] * static_cast<double>(1 << pil_precision_bits);
    k[i] = static_cast<std::int32_t>(w < 0 ? w - 0.5 : w + 0.5);
  }
  return k;
}

inline std::uint8_t pil_clip8(std::int64_t acc) {
  const std::int64_t v = acc >> pil_precision_bits;
  return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

}  // namespace detail

// Resamples `box` of `img` to [channels, out_h, out_w] floats in [0, 1], flipping
// horizontally if asked, with `rounding`'s arithmetic (see the top of this file; the tensor
// path's bicubic may leave [0, 1] slightly, as torch's does). A box equal to the output size
// copies pixels unchanged.
inline void resample(const decoded_image& img, const crop_box& box, index_t out_h, index_t out_w, interpolation f,
                     bool flip, float* out, resize_rounding rounding = resize_rounding::tensor) {
  const index_t ch = img.channels;
  const auto th = detail::make_taps(f, box.height, out_h), tw = detail::make_taps(f, box.width, out_w);
  const std::size_t row_values = static_cast<std::size_t>(out_w * ch);
  if (rounding == resize_rounding::pil) {
    // Horizontal pass (over the box's rows) first, then vertical: PIL's order.
    const auto kw = detail::pil_fixed_weights(tw), kh = detail::pil_fixed_weights(th);
    constexpr std::int64_t half = std::int64_t{1} << (detail::pil_precision_bits - 1);
    const bool same_w = box.width == out_w, same_h = box.height == out_h;  // PIL skips an identity pass
    std::vector<std::uint8_t> rows(static_cast<std::size_t>(box.height) * row_values);
    for (index_t y = 0; y < box.height; ++y) {
      const std::uint8_t* src = img.pixels.data() + ((box.top + y) * img.width + box.left) * ch;
      std::uint8_t* dst = rows.data() + static_cast<std::size_t>(y) * row_values;
      for (index_t x = 0; x < out_w; ++x) {
        const index_t x0 = tw.first[static_cast<std::size_t>(x)], n = tw.count[static_cast<std::size_t>(x)];
        const std::int32_t* k = kw.data() + x * tw.max_taps;
        for (index_t c = 0; c < ch; ++c) {
          if (same_w) {
            dst[x * ch + c] = src[x * ch + c];
            continue;
          }
          std::int64_t acc = half;
          for (index_t i = 0; i < n; ++i) acc += static_cast<std::int64_t>(k[i]) * src[(x0 + i) * ch + c];
          dst[x * ch + c] = detail::pil_clip8(acc);
        }
      }
    }
    for (index_t y = 0; y < out_h; ++y) {
      const index_t y0 = th.first[static_cast<std::size_t>(y)], n = th.count[static_cast<std::size_t>(y)];
      const std::int32_t* k = kh.data() + y * th.max_taps;
      for (index_t x = 0; x < out_w; ++x) {
        const index_t ox = flip ? out_w - 1 - x : x;
        for (index_t c = 0; c < ch; ++c) {
          std::uint8_t v;
          if (same_h) {
            v = rows[static_cast<std::size_t>(y) * row_values + static_cast<std::size_t>(x * ch + c)];
          } else {
            std::int64_t acc = half;
            for (index_t i = 0; i < n; ++i)
              acc += static_cast<std::int64_t>(k[i]) * rows[static_cast<std::size_t>(y0 + i) * row_values + static_cast<std::size_t>(x * ch + c)];
            v = detail::pil_clip8(acc);
          }
          out[(c * out_h + y) * out_w + ox] = static_cast<float>(v) / 255.0f;
        }
      }
    }
    return;
  }
  std::vector<double> rows(static_cast<std::size_t>(box.height) * row_values);
  for (index_t y = 0; y < box.height; ++y) {
    const std::uint8_t* src = img.pixels.data() + ((box.top + y) * img.width + box.left) * ch;
    double* dst = rows.data() + static_cast<std::size_t>(y) * row_values;
    for (index_t x = 0; x < out_w; ++x) {
      const index_t x0 = tw.first[static_cast<std::size_t>(x)], n = tw.count[static_cast<std::size_t>(x)];
      const double* w = tw.weights.data() + x * tw.max_taps;
      for (index_t c = 0; c < ch; ++c) {
        double s = 0;
        for (index_t k = 0; k < n; ++k) s += w[k] * src[(x0 + k) * ch + c];
        dst[x * ch + c] = s;
      }
    }
  }
  for (index_t y = 0; y < out_h; ++y) {
    const index_t y0 = th.first[static_cast<std::size_t>(y)], n = th.count[static_cast<std::size_t>(y)];
    const double* w = th.weights.data() + y * th.max_taps;
    for (index_t x = 0; x < out_w; ++x) {
      const index_t ox = flip ? out_w - 1 - x : x;
      for (index_t c = 0; c < ch; ++c) {
        double s = 0;
        for (index_t k = 0; k < n; ++k) s += w[k] * rows[static_cast<std::size_t>(y0 + k) * row_values + static_cast<std::size_t>(x * ch + c)];
        out[(c * out_h + y) * out_w + ox] = static_cast<float>(s / 255.0);
      }
    }
  }
}

// (x - mean[c]) / std[c] over [channels, pixels] in place.
inline void normalize(float* data, index_t channels, index_t pixels, const std::vector<float>& mean,
                      const std::vector<float>& std) {
  for (index_t c = 0; c < channels; ++c) {
    const float m = mean[static_cast<std::size_t>(c)], s = std[static_cast<std::size_t>(c)];
    float* p = data + c * pixels;
    for (index_t i = 0; i < pixels; ++i) p[i] = (p[i] - m) / s;  // torchvision's sub_ then div_
  }
}

// torchvision's Resize(s) output size: the shorter side becomes s, the longer side
// int(s * long / short).
inline std::pair<index_t, index_t> resized_size(index_t h, index_t w, index_t s) {
  if (w <= h) return {static_cast<index_t>(static_cast<double>(s) * static_cast<double>(h) / static_cast<double>(w)), s};
  return {s, static_cast<index_t>(static_cast<double>(s) * static_cast<double>(w) / static_cast<double>(h))};
}

// The evaluation transform: resize, centre crop, normalise, into [channels, img_size, img_size].
inline void preprocess_eval(const decoded_image& img, const preprocess_options& o, float* out) {
  const auto [rh, rw] = resized_size(img.height, img.width, o.resize_size());
  if (rh < o.img_size || rw < o.img_size)
    throw config_error(sparsimix::detail::concat("preprocess: crop_pct ", o.crop_pct, " resizes to ", rh, "x", rw,
                                                 ", smaller than the crop ", o.img_size));
  const index_t top = detail::round_half_even_half(rh - o.img_size), left = detail::round_half_even_half(rw - o.img_size);
  // Resample to the full resized image, then keep the crop: the taps of a resize depend on
  // the whole input extent, so the crop cannot be folded into the source box exactly.
  std::vector<float> full(static_cast<std::size_t>(img.channels * rh * rw));
  resample(img, crop_box{0, 0, img.height, img.width}, rh, rw, o.interp, false, full.data(), o.rounding);
  for (index_t c = 0; c < img.channels; ++c)
    for (index_t y = 0; y < o.img_size; ++y)
      std::copy_n(full.data() + (c * rh + top + y) * rw + left, o.img_size, out + (c * o.img_size + y) * o.img_size);
  normalize(out, img.channels, o.img_size * o.img_size, o.effective_mean(), o.effective_std());
}

// torchvision's RandomResizedCrop.get_params with this library's Rng: ten tries at a box of
// random area fraction and log-uniform aspect ratio, then the central crop of the clamped ratio.
inline crop_box random_resized_crop_box(Rng& rng, index_t height, index_t width, const preprocess_options& o) {
  const double area = static_cast<double>(height * width);
  const double log_lo = std::log(o.ratio_min), log_hi = std::log(o.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform(o.scale_min, o.scale_max);
    const double ratio = std::exp(rng.uniform(log_lo, log_hi));
    const auto w = static_cast<index_t>(std::nearbyint(std::sqrt(target * ratio)));
    const auto h = static_cast<index_t>(std::nearbyint(std::sqrt(target / ratio)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const auto top = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(height - h + 1)));
      const auto left = static_cast<index_t>(rng.below(static_cast<std::uint64_t>(width - w + 1)));
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  index_t w = width, h = height;
  if (in_ratio < o.ratio_min)
    h = static_cast<index_t>(std::nearbyint(static_cast<double>(w) / o.ratio_min));
  else if (in_ratio > o.ratio_max)
    w = static_cast<index_t>(std::nearbyint(static_cast<double>(h) * o.ratio_max));
  return {(height - h) / 2, (width - w) / 2, h, w};
}

// The training transform: a random resized crop, a flip with probability 1/2, normalisation.
inline void preprocess_train(const decoded_image& img, const preprocess_options& o, Rng& rng, float* out) {
  const crop_box box = random_resized_crop_box(rng, img.height, img.width, o);
  const bool flip = rng.below(2) == 1;
  resample(img, box, o.img_size, o.img_size, o.interp, flip, out, o.rounding);
  normalize(out, img.channels, o.img_size * o.img_size, o.effective_mean(), o.effective_std());
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::data
