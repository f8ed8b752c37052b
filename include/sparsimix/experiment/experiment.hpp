// The research pipeline end to end ("From Sparsity to Simplicity", METHOD.md 2, 6.10-6.11):
// teacher -> attention sparsity per layer -> for each student mixer kind, replace the
// sparsest group of layers, the densest group, and every contiguous group, each under the
// same step budget -> fine-tune -> evaluate -> does sparser mean cheaper to replace?
#pragma once
#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "../distill/distill.hpp"
#include "../distill/selection.hpp"
#include "statistics.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The students the experiment distils unless told: the multi-head LSTM and the
// bidirectional selective scan (Vim v2; ViT tokens have no causal order).
inline std::vector<mixer_spec> default_students() {
  return {spec_for<MultiHeadLSTM>(), spec_for<SelectiveScan>({.bidirectional = true})};
}

struct experiment_options {
  vit_config teacher;              // mixers are set to attention
  fit_options teacher_fit;
  distill_options distill;
  std::vector<mixer_spec> students;  // default: default_students()
  index_t group_size = 0;            // 0: default_group_size(depth)
  index_t calibration = 1000;        // validation images for the sparsity measurement
  sparsity_metric metric = sparsity_metric::k90;
  int latency_runs = 30;
  std::uint64_t seed = 0;
};

struct variant_result {
  std::string name, mixer, selection;
  std::vector<index_t> replaced;
  double mean_sparsity = 0, test_accuracy = 0, accuracy_drop = 0, latency_ms = 0, seconds = 0;
  double val_accuracy = 0;
  index_t params = 0;
};

struct claim_result {
  double sparsest_drop = 0, densest_drop = 0, spearman = 0;
  bool holds = false;  // replacing the sparsest group cost less accuracy than the densest
};

struct experiment_report {
  double teacher_test_accuracy = 0, teacher_val_accuracy = 0, teacher_latency_ms = 0, teacher_train_seconds = 0;
  index_t teacher_params = 0;
  sparsity_ranking sparsity;  // the teacher's, on the calibration images
  std::vector<variant_result> variants;
  std::map<std::string, claim_result> claims;
};

template <class T = float>
struct experiment_hooks {
  std::function<void(const std::string&)> log;                                  // one line of news
  std::function<void(const std::string& phase, const fit_progress&)> progress;  // training progress
  std::function<void(const HybridViT<T>&)> teacher_trained;                     // e.g. save it
};

// Runs the whole experiment. `teacher`: a trained teacher to reuse (nullptr: train one).
// A template (T = float by default) so that including this header compiles nothing until
// a program calls it: as a plain inline function it instantiated the whole pipeline in every
// translation unit (7 s of compile time per TU on the 2-core machine).
template <class T = float>
experiment_report run_experiment(const data::image_dataset& train, const data::image_dataset& val,
                                        const data::image_dataset& test, experiment_options opt,
                                 const experiment_hooks<T>& hooks = {}, const HybridViT<T>* teacher_in = nullptr) {
  auto log = [&](const std::string& s) {
    if (hooks.log) hooks.log(s);
  };
  experiment_report rep;
  Rng rng(opt.seed);

  // ---- teacher -------------------------------------------------------------------------
  opt.teacher.mixers.assign(static_cast<std::size_t>(opt.teacher.depth), mixer_spec{});
  HybridViT<T> teacher = teacher_in ? *teacher_in : HybridViT<T>(opt.teacher);
  if (!teacher_in) {
    teacher.init(rng);
    log(detail::concat("teacher: training ", opt.teacher_fit.steps, " steps of batch ", opt.teacher_fit.batch));
    const auto fr = train_classifier(teacher, train, &val, opt.teacher_fit, 0.0,
                                     [&](const fit_progress& p) { if (hooks.progress) hooks.progress("teacher", p); });
    rep.teacher_train_seconds = fr.seconds;
  }
  if (hooks.teacher_trained) hooks.teacher_trained(teacher);
  rep.teacher_val_accuracy = evaluate(teacher, val).accuracy;
  rep.teacher_test_accuracy = evaluate(teacher, test).accuracy;
  rep.teacher_params = teacher.num_parameters();
  rep.teacher_latency_ms = measure_latency_ms(teacher, test, opt.latency_runs);
  log(detail::concat("teacher: test accuracy ", rep.teacher_test_accuracy, ", ", rep.teacher_params, " parameters, ",
                     rep.teacher_latency_ms, " ms per image"));

  // ---- sparsity --------------------------------------------------------------------------
  rep.sparsity = rank_by_sparsity(teacher, val, opt.calibration, opt.metric);
  const sparsity_ranking& ranking = rep.sparsity;

  // ---- variants ----------------------------------------------------------------------------
  const index_t k = opt.group_size > 0 ? opt.group_size : default_group_size(teacher.depth());
  const auto groups = replacement_groups(ranking.order, teacher.depth(), k);
  if (opt.students.empty()) opt.students = default_students();
  for (const auto& spec : opt.students) {
    const std::string kind = spec.kind();
    std::map<std::vector<index_t>, variant_result> done;  // the same layers twice: reuse
    for (const auto& g : groups) {
      variant_result v;
      v.mixer = kind;
      v.selection = std::string(to_string(g.selection));
      v.replaced = g.layers;
      v.name = kind + "/" + v.selection + (g.selection == layer_selection::group ? "/" + detail::join(g.layers, "-") : "");
      for (index_t l : g.layers) v.mean_sparsity += ranking.score(l) / static_cast<double>(g.layers.size());
      if (auto it = done.find(g.layers); it != done.end()) {
        const auto& d = it->second;
        v.test_accuracy = d.test_accuracy;
        v.val_accuracy = d.val_accuracy;
        v.params = d.params;
        v.latency_ms = d.latency_ms;
        v.seconds = 0;
        log(detail::concat(v.name, ": same layers as ", d.name, ", reusing its result"));
      } else {
        // "[2, 5]", not the name's "2-5", which would read as a range.
        log(detail::concat(v.name, ": replacing layers [", detail::join(g.layers, ", "), "]"));
        HybridViT<T> student = make_student(teacher, g.layers, spec, rng);
        const auto t0 = std::chrono::steady_clock::now();
        distill(teacher, student, g.layers, train, nullptr, opt.distill, [&](int stage, const fit_progress& p) {
          if (hooks.progress) hooks.progress(v.name + (stage == 1 ? " stage 1" : " stage 2"), p);
        });
        v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        v.val_accuracy = evaluate(student, val).accuracy;
        v.test_accuracy = evaluate(student, test).accuracy;
        v.params = student.num_parameters();
        v.latency_ms = measure_latency_ms(student, test, opt.latency_runs);
        log(detail::concat(v.name, ": test accuracy ", v.test_accuracy, " (teacher ", rep.teacher_test_accuracy, ")"));
        done[g.layers] = v;
      }
      v.accuracy_drop = rep.teacher_test_accuracy - v.test_accuracy;
      rep.variants.push_back(v);
    }
    claim_result c;
    std::vector<double> xs, ys;
    std::set<std::vector<index_t>> seen;
    for (const auto& v : rep.variants) {
      if (v.mixer != kind) continue;
      if (v.selection == "sparsest") c.sparsest_drop = v.accuracy_drop;
      if (v.selection == "densest") c.densest_drop = v.accuracy_drop;
      if (seen.insert(v.replaced).second) {
        xs.push_back(v.mean_sparsity);
        ys.push_back(v.accuracy_drop);
      }
    }
    c.holds = c.sparsest_drop < c.densest_drop;
    c.spearman = spearman(xs, ys);
    rep.claims[kind] = c;
  }
  return rep;
}

// Compiled in sparsimix::compiled (docs/build-time.md).
SPARSIMIX_EXTERN_TEMPLATE(experiment_report run_experiment<float>(const data::image_dataset&, const data::image_dataset&, const data::image_dataset&, experiment_options, const experiment_hooks<float>&, const HybridViT<float>*))

SPARSIMIX_ABI_END
}  // namespace sparsimix
