// Which layers to replace: rank a model's attention layers by sparsity on held-out images,
// then pick the sparsest or densest k, or contiguous groups (docs/method.md 6.10-6.11).
#pragma once
#include <algorithm>
#include <numeric>
#include <string_view>
#include <vector>

#include "../core/enum_names.hpp"
#include "analysis.hpp"
#include "sparsity.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Which layers to replace: the k sparsest, the k densest, a contiguous group, or every
// attention layer.
enum class layer_selection { sparsest, densest, group, all };

// The names configs, the command line and reports use for each selection.
inline constexpr detail::enum_table<layer_selection, 4> layer_selection_names{{{layer_selection::sparsest, "sparsest"},
                                                                               {layer_selection::densest, "densest"},
                                                                               {layer_selection::group, "group"},
                                                                               {layer_selection::all, "all"}}};
// The selection's name in configs and reports.
constexpr std::string_view to_string(layer_selection s) noexcept {
  return detail::enum_to_string(layer_selection_names, s);
}
// The selection named `s`; throws config_error naming the choices otherwise.
inline layer_selection parse_layer_selection(std::string_view s) {
  return detail::enum_parse(layer_selection_names, s, "layer selection");
}

// How many layers a group replaces unless told: a third of the depth (at least 1).
constexpr index_t default_group_size(index_t depth) noexcept { return std::max<index_t>(1, depth / 3); }

// The attention layers' sparsity and their order from sparsest to densest under `metric`.
struct sparsity_ranking {
  sparsity_metric metric = sparsity_metric::k90;  // the metric `order` ranks by
  std::vector<layer_sparsity> layers;  // per layer (attention == false: no maps, score 0)
  std::vector<index_t> order;          // sparsest first

  // The ranking score of `layer` (larger is sparser); throws std::out_of_range for a bad layer.
  double score(index_t layer) const { return sparsity_score(layers.at(static_cast<std::size_t>(layer)).all, metric); }
};

// Measures every attention layer of `model` on the first `count` images of `calibration`
// (held-out training images, never test) and ranks the layers.
template <class T>
sparsity_ranking rank_by_sparsity(const HybridViT<T>& model, const data::image_dataset& calibration, index_t count,
                                  sparsity_metric metric = sparsity_metric::k90) {
  if (count < 1) throw config_error(detail::concat("rank_by_sparsity: count is ", count, ", expected >= 1 images"));
  if (calibration.size() < 1) throw config_error("rank_by_sparsity: the calibration set is empty");
  if (std::none_of(model.config().mixers.begin(), model.config().mixers.end(),
                   [](const mixer_spec& m) { return m.kind() == "attention"; }))
    throw config_error("rank_by_sparsity: the model has no attention layer (nothing to measure or replace)");
  sparsity_ranking r;
  r.metric = metric;
  r.layers = measure_sparsity(model, calibration, count);
  // Only attention layers have maps to rank; the others (already replaced) are not candidates.
  std::vector<sparsity_stats> stats;
  std::vector<index_t> attention_layers;
  for (const auto& l : r.layers)
    if (l.attention) {
      stats.push_back(l.all);
      attention_layers.push_back(l.layer);
    }
  if (stats.empty())
    throw config_error("rank_by_sparsity: the model has no attention layer (nothing to measure or replace)");
  for (const index_t i : rank_layers(stats, metric)) r.order.push_back(attention_layers[static_cast<std::size_t>(i)]);
  return r;
}

// A set of layers the experiment replaces together, and how it was chosen.
struct layer_group {
  layer_selection selection = layer_selection::group;  // sparsest, densest, a contiguous group or all
  std::vector<index_t> layers;  // ascending
};

// The k sparsest or densest layers of `order` (sparsest first), ascending; `all`: every layer of `order`.
inline std::vector<index_t> select_layers(const std::vector<index_t>& order, layer_selection selection, index_t k) {
  const auto n = static_cast<index_t>(order.size());
  if (k < 1 || k > n)
    throw config_error(detail::concat("select_layers: k is ", k, ", expected 1..", n, " (the ranked attention layers)"));
  if (selection == layer_selection::group)
    throw config_error("select_layers: 'group' is not a ranking selection (use sparsest, densest or all)");
  if (selection == layer_selection::all) {
    std::vector<index_t> every = order;
    std::sort(every.begin(), every.end());
    return every;
  }
  std::vector<index_t> out = selection == layer_selection::sparsest ? std::vector<index_t>(order.begin(), order.begin() + k)
                                                                    : std::vector<index_t>(order.end() - k, order.end());
  std::sort(out.begin(), out.end());
  return out;
}

// The groups of `k` layers the experiment replaces: sparsest-k and densest-k by `order`
// (sparsest first), then every contiguous group [0, k), [k, 2k), ..., and with `with_all`
// last every layer of `order`.
inline std::vector<layer_group> replacement_groups(const std::vector<index_t>& order, index_t depth, index_t k,
                                                   bool with_all = false) {
  if (k < 1 || k > depth) throw config_error(detail::concat("replacement_groups: group size ", k, " for depth ", depth));
  std::vector<layer_group> g;
  g.push_back({layer_selection::sparsest, select_layers(order, layer_selection::sparsest, k)});
  g.push_back({layer_selection::densest, select_layers(order, layer_selection::densest, k)});
  for (index_t s = 0; s + k <= depth; s += k) {
    std::vector<index_t> c(static_cast<std::size_t>(k));
    std::iota(c.begin(), c.end(), s);
    g.push_back({layer_selection::group, c});
  }
  if (with_all) g.push_back({layer_selection::all, select_layers(order, layer_selection::all, k)});
  return g;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
