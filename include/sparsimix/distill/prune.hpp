// FAR's global structural pruning as one pipeline step (docs/method.md 1.9):
//   1. regularised training: cross-entropy + weight x Hoyer-Square over the LSTM unit groups,
//      every parameter trainable;
//   2. one global rule over all blocks, directions and heads picks the units to prune (a
//      fraction of all units by the smallest group norm, or a norm threshold); each pruned
//      unit's group, gate biases and head_proj column are zeroed, so its output is exactly 0;
//   3. a masked fine-tune (cross-entropy; fit() re-zeroes pruned weights after every step).
// Units are scored by the group norm ||G_j||; FAR's code scores by the signed sum of the
// group's entries, which can be near 0 for a large group and is read as a bug (docs/method.md 1.9).
#pragma once
#include <functional>
#include <string>

#include "../models/pruning.hpp"
#include "train.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The three steps of prune(): regularised training, the global unit selection, the fine-tune.
struct prune_options {
  fit_options regularise;         // step 1 (steps 0: skip, prune the weights as they are)
  double weight = 5e-5;           // the Hoyer-Square weight of step 1 (FAR's HEAD: 5e-5)
  unit_selection select{0.5, 0};  // step 2: half of all units by default
  fit_options finetune;           // step 3 (steps 0: skip)
};

// What prune() did: model sizes before and after, the pruned units, the regulariser, both runs.
struct prune_result {
  parameter_counts before, after;                        // parameter counts before step 1 and after step 3
  pruning_summary pruning;                               // which units step 2 pruned, per block
  double regulariser_before = 0, regulariser_after = 0;  // Hoyer-Square R before and after step 1
  fit_result regularise, finetune;                       // the step-1 and step-3 fit() runs
};

// Prunes `model` in place. progress(phase, p) with phase "regularise" or "fine-tune".
template <class T>
prune_result prune(HybridViT<T>& model, const data::image_dataset& train, const data::image_dataset* val,
                   const prune_options& opt,
                   const std::function<void(const std::string&, const fit_progress&)>& progress = {}) {
  if (prunable_blocks(model).empty())
    throw config_error("prune: the model has no mh_lstm block (FAR prunes the LSTM units of replaced layers)");
  if (!(opt.weight >= 0)) throw config_error(detail::concat("prune: weight is ", opt.weight, ", expected >= 0"));
  if (opt.select.fraction >= 0 && !(opt.select.fraction > 0 && opt.select.fraction < 1))
    throw config_error(detail::concat("prune: fraction is ", opt.select.fraction, ", expected a value in (0, 1)"));
  if (opt.regularise.steps < 0 || opt.finetune.steps < 0)
    throw config_error(detail::concat("prune: steps are ", opt.regularise.steps, " and ", opt.finetune.steps,
                                      ", expected >= 0"));
  auto on = [&](const char* phase) {
    return [&progress, phase](const fit_progress& p) {
      if (progress) progress(phase, p);
    };
  };
  prune_result r;
  r.before = count_parameters(model);
  r.regulariser_before = hoyer_square(model);
  if (opt.regularise.steps > 0) {
    fit_options f = opt.regularise;
    f.hoyer_square = opt.weight;
    r.regularise = train_classifier(model, train, val, f, 0.0, on("regularise"));
  }
  r.regulariser_after = hoyer_square(model);
  prune_units(model, opt.select);
  if (opt.finetune.steps > 0) {
    fit_options f = opt.finetune;
    f.hoyer_square = 0;
    r.finetune = train_classifier(model, train, val, f, 0.0, on("fine-tune"));
  }
  r.pruning = summarize_pruning(model);
  r.after = count_parameters(model);
  return r;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
