// Model-level view of FAR's structured pruning (docs/method.md 1.9): the pruning units of every
// multi-head LSTM block of a HybridViT, the Hoyer-Square regulariser over all of them, the
// global choice of which units to prune, and honest parameter counts.
//
// The pipeline around it (regularised training, threshold, masked fine-tune) is in
// distill/prune.hpp; fit() (distill/train.hpp) calls add_hoyer_square_grad when its options
// ask for the regulariser and apply_pruning after every optimizer step, so every training
// path keeps pruned weights at exactly 0.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <variant>
#include <vector>

#include "../core/error.hpp"
#include "vit.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// params: trainable entries that can be non-zero (the compact storage: no structural zeros
// of block-diagonal layouts); nonzero_params: those that are not exactly 0 (after pruning,
// what a compact model needs); stored_params: what the checkpoint holds (PyTorch's dense
// layouts, masked zeros included).
struct parameter_counts {
  index_t params = 0, nonzero_params = 0, stored_params = 0;  // the three counts defined above
};

// The model's parameter_counts (its parameters and state_dict, as they are now).
template <class T>
parameter_counts count_parameters(HybridViT<T>& model) {
  parameter_counts c;
  for (const auto& p : model.parameters()) {
    c.params += p.value.numel();
    c.nonzero_params += static_cast<index_t>(std::count_if(p.value.begin(), p.value.end(), [](T v) { return v != T(0); }));
  }
  for (const auto& [name, t] : model.state_dict()) c.stored_params += t.numel();
  return c;
}

// The blocks whose mixer is a MultiHeadLSTM, in order.
template <class T>
std::vector<index_t> prunable_blocks(const HybridViT<T>& model) {
  std::vector<index_t> out;
  for (index_t l = 0; l < model.depth(); ++l)
    if (std::holds_alternative<MultiHeadLSTM<T>>(model.mixer(l))) out.push_back(l);
  return out;
}

// Adds weight * dR/dw of the Hoyer-Square regulariser (summed over every block, direction and
// head) to the LSTM gradients; returns R.
template <class T>
double add_hoyer_square_grad(HybridViT<T>& model, double weight) {
  double r = 0;
  for (const index_t l : prunable_blocks(model)) r += std::get<MultiHeadLSTM<T>>(model.mixer(l)).add_hoyer_square_grad(weight);
  return r;
}

// R alone (gradients untouched).
template <class T>
double hoyer_square(HybridViT<T>& model) {
  return add_hoyer_square_grad(model, 0.0);
}

// Re-zeroes every pruned unit's entries (a no-op for a model without pruned units).
template <class T>
void apply_pruning(HybridViT<T>& model) {
  for (const index_t l : prunable_blocks(model)) std::get<MultiHeadLSTM<T>>(model.mixer(l)).apply_pruning();
}

// Which units to prune, one global rule over every block, direction and head (so widths
// differ between layers): a fraction of all units by the smallest group norm, or a threshold
// (a unit is kept iff its group norm is above it). Units pruned before stay pruned and count
// towards the fraction.
struct unit_selection {
  double fraction = -1;   // in (0, 1): prune this fraction of all units; otherwise use threshold
  double threshold = 0;   // keep iff ||G|| > threshold
};

// How much of a model's LSTM is pruned, per block and in total.
struct pruning_summary {
  index_t units = 0, pruned_units = 0;  // LSTM units of every prunable block, and those pruned
  // Per prunable block: its index and kept units per (dir, head), dir * H + h.
  std::vector<std::pair<index_t, std::vector<index_t>>> widths;
  // pruned_units / units (0 without prunable units).
  double pruned_fraction() const { return units ? static_cast<double>(pruned_units) / static_cast<double>(units) : 0.0; }
};

// The pruning state of every prunable block of `model`.
template <class T>
pruning_summary summarize_pruning(const HybridViT<T>& model) {
  pruning_summary s;
  for (const index_t l : prunable_blocks(model)) {
    const auto& m = std::get<MultiHeadLSTM<T>>(model.mixer(l));
    const auto& keep = m.unit_keep();
    s.units += static_cast<index_t>(keep.size());
    s.pruned_units += static_cast<index_t>(std::count(keep.begin(), keep.end(), std::uint8_t{0}));
    s.widths.emplace_back(l, m.widths());
  }
  return s;
}

// Prunes the units `sel` picks across all mh_lstm blocks and returns the new state; throws
// config_error without an mh_lstm block or for a bad selection.
template <class T>
pruning_summary prune_units(HybridViT<T>& model, const unit_selection& sel) {
  const auto blocks = prunable_blocks(model);
  if (blocks.empty())
    throw config_error("prune_units: the model has no mh_lstm block (FAR prunes the LSTM units of replaced layers)");
  if (sel.fraction >= 0 && !(sel.fraction > 0 && sel.fraction < 1))
    throw config_error(detail::concat("prune_units: fraction is ", sel.fraction, ", expected a value in (0, 1)"));
  if (sel.fraction < 0 && !(sel.threshold >= 0))
    throw config_error(detail::concat("prune_units: threshold is ", sel.threshold, ", expected >= 0"));
  struct unit {
    double norm;
    std::size_t block, index;
  };
  std::vector<unit> all;
  std::vector<std::vector<std::uint8_t>> keep;
  for (std::size_t b = 0; b < blocks.size(); ++b) {
    const auto& m = std::get<MultiHeadLSTM<T>>(model.mixer(blocks[b]));
    const auto n = m.unit_group_norms();
    keep.push_back(m.unit_keep());
    // A pruned unit's norm is 0: it sorts first and counts towards the fraction.
    for (std::size_t u = 0; u < n.size(); ++u) all.push_back({keep[b][u] ? n[u] : 0.0, b, u});
  }
  if (sel.fraction > 0) {
    const auto k = static_cast<std::size_t>(std::llround(sel.fraction * static_cast<double>(all.size())));
    // Ties broken by position so the choice does not depend on the sort's implementation.
    std::stable_sort(all.begin(), all.end(), [](const unit& a, const unit& b) { return a.norm < b.norm; });
    for (std::size_t i = 0; i < k && i < all.size(); ++i) keep[all[i].block][all[i].index] = 0;
  } else {
    for (const auto& u : all)
      if (!(u.norm > sel.threshold)) keep[u.block][u.index] = 0;
  }
  for (std::size_t b = 0; b < blocks.size(); ++b) std::get<MultiHeadLSTM<T>>(model.mixer(blocks[b])).prune_units(keep[b]);
  return summarize_pruning(model);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
