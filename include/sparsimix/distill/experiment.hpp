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

#include "analysis.hpp"
#include "distill.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Spearman rank correlation (average ranks for ties); 0 when either side is constant.
inline double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) return 0.0;
  auto ranks = [](const std::vector<double>& v) {
    std::vector<std::size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    std::stable_sort(idx.begin(), idx.end(), [&](std::size_t i, std::size_t j) { return v[i] < v[j]; });
    std::vector<double> r(v.size());
    for (std::size_t i = 0; i < idx.size();) {
      std::size_t j = i;
      while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
      for (std::size_t k = i; k <= j; ++k) r[idx[k]] = 0.5 * static_cast<double>(i + j) + 1.0;
      i = j + 1;
    }
    return r;
  };
  const auto ra = ranks(a), rb = ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

struct layer_group {
  std::string selection;  // "sparsest", "densest" or "group"
  std::vector<index_t> layers;
};

// The groups of `k` layers the experiment replaces: sparsest-k and densest-k by `ranking`
// (sparsest first), then every contiguous group [0, k), [k, 2k), ...
inline std::vector<layer_group> replacement_groups(const std::vector<index_t>& ranking, index_t depth, index_t k) {
  if (k < 1 || k > depth) throw config_error(detail::concat("replacement_groups: group size ", k, " for depth ", depth));
  std::vector<layer_group> g;
  std::vector<index_t> sparse(ranking.begin(), ranking.begin() + k), dense(ranking.end() - k, ranking.end());
  std::sort(sparse.begin(), sparse.end());
  std::sort(dense.begin(), dense.end());
  g.push_back({"sparsest", sparse});
  g.push_back({"densest", dense});
  for (index_t s = 0; s + k <= depth; s += k) {
    std::vector<index_t> c(static_cast<std::size_t>(k));
    std::iota(c.begin(), c.end(), s);
    g.push_back({"group", c});
  }
  return g;
}

struct experiment_options {
  vit_config teacher;              // mixers are set to attention
  fit_options teacher_fit;
  distill_options distill;
  std::vector<mixer_spec> students;  // default: mh_lstm and selective_scan
  index_t group_size = 0;            // 0: depth / 3 (at least 1)
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
  sparsity_metric metric = sparsity_metric::k90;
  std::vector<layer_sparsity> sparsity;
  std::vector<index_t> ranking;  // sparsest first
  std::vector<variant_result> variants;
  std::map<std::string, claim_result> claims;
};

struct experiment_hooks {
  std::function<void(const std::string&)> log;                                  // one line of news
  std::function<void(const std::string& phase, const fit_progress&)> progress;  // training progress
  std::function<void(const HybridViT<float>&)> teacher_trained;                 // e.g. save it
};

// Runs the whole experiment. `teacher`: a trained teacher to reuse (nullptr: train one).
inline experiment_report run_experiment(const io::image_dataset& train, const io::image_dataset& val,
                                        const io::image_dataset& test, experiment_options opt,
                                        const experiment_hooks& hooks = {},
                                        const HybridViT<float>* teacher_in = nullptr) {
  auto log = [&](const std::string& s) {
    if (hooks.log) hooks.log(s);
  };
  experiment_report rep;
  rep.metric = opt.metric;
  Rng rng(opt.seed);

  // ---- teacher -------------------------------------------------------------------------
  opt.teacher.mixers.assign(static_cast<std::size_t>(opt.teacher.depth), mixer_spec{});
  HybridViT<float> teacher = teacher_in ? *teacher_in : HybridViT<float>(opt.teacher);
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
  rep.sparsity = measure_sparsity(teacher, val, opt.calibration);
  std::vector<sparsity_stats> stats;
  for (const auto& l : rep.sparsity) stats.push_back(l.all);
  rep.ranking = rank_layers(stats, opt.metric);
  auto score = [&](index_t l) { return sparsity_score(stats[static_cast<std::size_t>(l)], opt.metric); };

  // ---- variants ----------------------------------------------------------------------------
  const index_t k = opt.group_size > 0 ? opt.group_size : std::max<index_t>(1, teacher.depth() / 3);
  const auto groups = replacement_groups(rep.ranking, teacher.depth(), k);
  if (opt.students.empty()) {
    mixer_spec lstm, scan;
    lstm.kind = mixer_kind::mh_lstm;
    scan.kind = mixer_kind::selective_scan;
    scan.bidirectional = true;
    opt.students = {lstm, scan};
  }
  for (const auto& spec : opt.students) {
    const std::string kind = mixer_kind_name(spec.kind);
    std::map<std::vector<index_t>, variant_result> done;  // the same layers twice: reuse
    for (const auto& g : groups) {
      variant_result v;
      v.mixer = kind;
      v.selection = g.selection;
      v.replaced = g.layers;
      v.name = kind + "/" + g.selection + (g.selection == "group" ? "/" + detail::join(g.layers, "-") : "");
      for (index_t l : g.layers) v.mean_sparsity += score(l) / static_cast<double>(g.layers.size());
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
        HybridViT<float> student = make_student(teacher, g.layers, spec, rng);
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

SPARSIMIX_ABI_END
}  // namespace sparsimix
