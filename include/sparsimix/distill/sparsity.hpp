// Attention sparsity per layer and head (docs/method.md 6.10; the papers' own definitions are
// not available, so these are sparsimix's, documented in docs/sparsity.md). For one
// attention row a (a distribution over the n alive keys):
//   entropy     1 - H(a) / ln n            (0 uniform, 1 one-hot; 1 when n == 1)
//   top_k_mass  sum of the ceil(0.1 n) largest entries
//   k90         smallest fraction of keys whose mass reaches 0.9 (lower = sparser)
//   threshold   fraction of entries below 0.1 / n
// Rows are averaged over batch and queries (alive queries only), or over CLS rows only.
#pragma once
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "../core/enum_names.hpp"
#include "../core/tensor.hpp"
#include "../core/token_mask.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// How sparse attention rows are, by each of the four statistics (defined in the header comment).
struct sparsity_stats {
  // The header comment's four statistics (entropy, top_k_mass, k90, threshold), averaged over
  // attention rows.
  double entropy = 0, top_k_mass = 0, k90 = 0, threshold = 0;
};

// Which statistic ranks layers by sparsity (defined in the header comment).
enum class sparsity_metric { k90, entropy, top_k_mass, threshold };

// The names configs, the command line and reports use for each metric.
inline constexpr detail::enum_table<sparsity_metric, 4> sparsity_metric_names{
    {{sparsity_metric::k90, "k90"},
     {sparsity_metric::entropy, "entropy"},
     {sparsity_metric::top_k_mass, "top_k_mass"},
     {sparsity_metric::threshold, "threshold"}}};
// The metric's name in configs and reports.
constexpr std::string_view to_string(sparsity_metric m) noexcept { return detail::enum_to_string(sparsity_metric_names, m); }
// The metric named `s`; throws config_error naming the choices otherwise.
inline sparsity_metric parse_sparsity_metric(std::string_view s) {
  return detail::enum_parse(sparsity_metric_names, s, "sparsity metric");
}

// A single number where larger means sparser, for ranking layers.
inline double sparsity_score(const sparsity_stats& s, sparsity_metric m) noexcept {
  switch (m) {
    case sparsity_metric::k90: return 1.0 - s.k90;
    case sparsity_metric::entropy: return s.entropy;
    case sparsity_metric::top_k_mass: return s.top_k_mass;
    case sparsity_metric::threshold: return s.threshold;
  }
  return 0;
}

namespace detail {
// The four statistics of one row of n probabilities; `scratch` holds n values.
template <class T>
sparsity_stats row_sparsity(const T* a, index_t n, double* scratch) {
  sparsity_stats s;
  if (n <= 0) return s;
  double h = 0;
  index_t below = 0;
  const double thr = 0.1 / static_cast<double>(n);
  for (index_t j = 0; j < n; ++j) {
    const double p = static_cast<double>(a[j]);
    scratch[j] = p;
    if (p > 0) h -= p * std::log(p);
    below += p < thr;
  }
  s.entropy = n > 1 ? 1.0 - h / std::log(static_cast<double>(n)) : 1.0;
  s.threshold = static_cast<double>(below) / static_cast<double>(n);
  std::sort(scratch, scratch + n, std::greater<double>());
  const index_t k = static_cast<index_t>(std::ceil(0.1 * static_cast<double>(n)));
  double mass = 0;
  for (index_t j = 0; j < k; ++j) mass += scratch[j];
  s.top_k_mass = mass;
  double cum = 0;
  index_t need = n;
  for (index_t j = 0; j < n; ++j) {
    cum += scratch[j];
    if (cum >= 0.9 - 1e-12) { need = j + 1; break; }
  }
  s.k90 = static_cast<double>(need) / static_cast<double>(n);
  return s;
}
}  // namespace detail

// Streams attention maps [B, H, N, N] of one layer and averages the row statistics per head.
// With a mask, dead queries are skipped and dead keys removed from each row (they are 0).
class sparsity_accumulator {
 public:
  // Averages `heads` heads (0: as many as the first maps have), over all query rows or the CLS row.
  explicit sparsity_accumulator(index_t heads = 0, bool cls_only = false) : cls_only_(cls_only) { reset(heads); }
  // Forgets every row seen and sets the number of heads.
  void reset(index_t heads) {
    sums_.assign(static_cast<std::size_t>(heads), {});
    rows_ = 0;
  }
  // Whether only the CLS query row (row 0) is measured.
  bool cls_only() const noexcept { return cls_only_; }

  // Adds the rows of attention maps [B, H, N, N] (probabilities); with a mask, alive tokens only.
  template <class T>
  void add(TensorView<const T> maps, const TokenMask* mask = nullptr) {
    check_shape("sparsity_accumulator::add", "maps", maps.shape(), {-1, -1, -1, -1});
    const index_t B = maps.size(0), H = maps.size(1), N = maps.size(2);
    check_shape("sparsity_accumulator::add", "maps", maps.shape(), {B, H, N, N});
    if (sums_.empty()) reset(H);
    if (static_cast<index_t>(sums_.size()) != H)
      throw shape_error(detail::concat("sparsity_accumulator::add: maps have ", H, " heads, expected ", sums_.size()));
    if (mask) mask->check_fits("sparsity_accumulator::add", Shape{B, N, 1});
    std::vector<double> row(static_cast<std::size_t>(N)), scratch(static_cast<std::size_t>(N));
    const index_t nq = cls_only_ ? 1 : N;
    for (index_t b = 0; b < B; ++b) {
      for (index_t q = 0; q < nq; ++q) {
        if (mask && !mask->alive(b, q)) continue;
        for (index_t h = 0; h < H; ++h) {
          const T* a = maps.data() + ((b * H + h) * N + q) * N;
          index_t n = 0;
          for (index_t k = 0; k < N; ++k)
            if (!mask || mask->alive(b, k)) row[static_cast<std::size_t>(n++)] = static_cast<double>(a[k]);
          const auto s = detail::row_sparsity(row.data(), n, scratch.data());
          auto& acc = sums_[static_cast<std::size_t>(h)];
          acc.entropy += s.entropy;
          acc.top_k_mass += s.top_k_mass;
          acc.k90 += s.k90;
          acc.threshold += s.threshold;
        }
        ++rows_;
      }
    }
  }

  // Mean statistics of head h over every row seen.
  sparsity_stats head(index_t h) const {
    sparsity_stats s = sums_.at(static_cast<std::size_t>(h));
    const double n = rows_ ? static_cast<double>(rows_) : 1.0;
    s.entropy /= n;
    s.top_k_mass /= n;
    s.k90 /= n;
    s.threshold /= n;
    return s;
  }
  // Number of heads measured.
  index_t heads() const noexcept { return static_cast<index_t>(sums_.size()); }
  // Mean over heads.
  sparsity_stats layer() const {
    sparsity_stats m;
    for (index_t h = 0; h < heads(); ++h) {
      const auto s = head(h);
      m.entropy += s.entropy;
      m.top_k_mass += s.top_k_mass;
      m.k90 += s.k90;
      m.threshold += s.threshold;
    }
    const double n = heads() ? static_cast<double>(heads()) : 1.0;
    m.entropy /= n;
    m.top_k_mass /= n;
    m.k90 /= n;
    m.threshold /= n;
    return m;
  }

 private:
  std::vector<sparsity_stats> sums_;
  index_t rows_ = 0;
  bool cls_only_ = false;
};

// Layer indices ordered from sparsest to densest under `metric` (stable for ties).
inline std::vector<index_t> rank_layers(const std::vector<sparsity_stats>& layers, sparsity_metric metric) {
  std::vector<index_t> order(layers.size());
  std::iota(order.begin(), order.end(), index_t{0});
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return sparsity_score(layers[static_cast<std::size_t>(a)], metric) >
           sparsity_score(layers[static_cast<std::size_t>(b)], metric);
  });
  return order;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
