// The layer-sparsity study (docs/study.md): the demo's claim ("replacing sparser layers costs
// less accuracy") measured so that it can be published or refuted. One teacher, trained once;
// for each student mixer every single layer and every group of layers the claim compares,
// distilled with several seeds (each seed changes the student's initialisation and the data
// order); accuracy after stage 1 and after stage 2 with paired-bootstrap intervals over the
// test images; the claim with an interval, a verdict, a permutation p-value and a depth
// control, under several sparsity metrics. Results go to the run folder as they are made
// (one JSON line per finished variant and seed) and a rerun resumes from them.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../distill/distill.hpp"
#include "../distill/selection.hpp"
#include "../io/atomic_file.hpp"
#include "../io/checkpoint.hpp"
#include "../io/json_lines.hpp"
#include "experiment.hpp"
#include "interaction.hpp"
#include "statistics.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The sparsity metrics the study evaluates its claims under: all-query k90, CLS-row k90,
// entropy and top-k mass (docs/sparsity.md defines each).
inline const std::vector<std::string>& study_metrics() {
  static const std::vector<std::string> names{"k90", "cls_k90", "entropy", "top_k_mass"};
  return names;
}

// A layer's sparsity under a study metric, larger meaning sparser; throws config_error naming
// the choices for an unknown metric.
inline double study_sparsity_score(const layer_sparsity& l, std::string_view metric) {
  if (metric == "k90") return 1.0 - l.all.k90;
  if (metric == "cls_k90") return 1.0 - l.cls.k90;
  if (metric == "entropy") return l.all.entropy;
  if (metric == "top_k_mass") return l.all.top_k_mass;
  throw config_error(detail::concat("study: unknown sparsity metric '", metric, "' (choices: ",
                                    detail::join(study_metrics(), ", "), ")"));
}

// Attention layers ordered from sparsest to densest under a study metric (stable for ties).
inline std::vector<index_t> study_order(const std::vector<layer_sparsity>& layers, std::string_view metric) {
  std::vector<index_t> order;
  for (const auto& l : layers)
    if (l.attention) order.push_back(l.layer);
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return study_sparsity_score(layers[static_cast<std::size_t>(a)], metric) >
           study_sparsity_score(layers[static_cast<std::size_t>(b)], metric);
  });
  return order;
}

// The study's settings.
struct study_options {
  vit_config teacher;                // the teacher (mixers are set to attention)
  fit_options teacher_fit;           // its training (once; its seed is the study's teacher seed)
  distill_options distill;           // every student's two stages (their seeds are set per seed)
  std::vector<mixer_spec> students;  // default: default_students()
  index_t group_size = 0;            // layers per group (0: default_group_size(depth))
  index_t calibration = 1000;        // validation images for the sparsity measurement
  std::string metric = "k90";        // the primary metric (the headline claim and the plots)
  int seeds = 3;                     // distillation seeds per variant
  int bootstrap_resamples = 2000;    // paired-bootstrap draws over the test images
  index_t mse_images = 1000;         // validation images for each layer's distillation error
  std::uint64_t seed = 0;            // the teacher's seed and the base of every student seed
  index_t checkpoint_every = 0;      // each training phase's state every N steps (0: never)
  // Token-interaction maps (interaction.hpp) of each mixer's best variant (highest mean
  // validation accuracy), per replaced layer, on this many validation images (0: none).
  index_t interaction_images = 64;
  // Memory for the teacher's stage-1 targets shared by the variants of one seed
  // (experiment_options::teacher_cache_bytes); 0 keeps none. The numbers do not change.
  std::size_t teacher_cache_bytes = std::size_t{4} << 30;
};

// One student the study distils: which mixer replaces which layers, and why it is in the study.
struct study_variant {
  std::string name;               // "mh_lstm/1-2": the mixer and the replaced layers
  std::string mixer;              // the student mixer's kind
  std::vector<index_t> replaced;  // ascending
  // Why: "single" (one layer: the depth control), "group" (a contiguous group), and
  // "sparsest:METRIC" / "densest:METRIC" (the group the claim compares under METRIC).
  std::vector<std::string> roles;
  // Whether `roles` holds `r`.
  bool has_role(std::string_view r) const { return std::find(roles.begin(), roles.end(), r) != roles.end(); }
};

// One seed of one variant: accuracy after each stage and each layer's distillation error.
struct study_seed_result {
  int seed = 0;  // the seed index (0, 1, ...)
  // Test and validation accuracy after stage 2 and after stage 1 (no end-to-end fine-tune).
  double test_accuracy = 0, val_accuracy = 0, stage1_test_accuracy = 0, stage1_val_accuracy = 0;
  // Per replaced layer (ascending): MSE between the student's and the teacher's mixer output on
  // held-out validation images at the end of stage 1, the student running on its own stream.
  std::vector<double> distill_mse;
  std::vector<std::uint8_t> correct, stage1_correct;  // per test image: 1 if classified right
  double seconds = 0;                                  // distillation and evaluation time
};

// Accuracy and drop statistics of one variant at one stage, over its seeds.
struct study_stage_stats {
  double accuracy_mean = 0, accuracy_sd = 0;  // test accuracy: mean and sample sd over seeds
  double drop_mean = 0, drop_sd = 0;          // teacher - student test accuracy, over seeds
  interval drop_ci95;  // paired bootstrap over test images of the seed-averaged drop
};

// A variant with its results.
struct study_variant_result : study_variant {
  std::map<std::string, double> sparsity;  // mean score of the replaced layers, per metric
  std::vector<study_seed_result> seeds;    // in seed order
  study_stage_stats stage1, stage2;        // over `seeds`
  // The stage's statistics ("stage1" or "stage2").
  const study_stage_stats& stage(std::string_view s) const { return s == "stage1" ? stage1 : stage2; }
};

// The claim for one mixer at one stage under one metric.
struct study_claim {
  std::vector<index_t> sparsest, densest;  // the compared groups
  double sparsest_drop = 0, densest_drop = 0;  // their seed-averaged drops
  double difference = 0;                       // sparsest_drop - densest_drop (< 0: the claim's direction)
  interval difference_ci95;                    // paired bootstrap
  // "holds" (the interval lies below 0), "fails" (above 0) or "cannot_tell" (it spans 0, or the
  // two groups are the same layers).
  std::string verdict = "cannot_tell";
  // Over the single-layer variants: Spearman(sparsity, drop), its two-sided permutation
  // p-value and the number of permutations, and the partial Spearman controlling for depth
  // (NaN, null in JSON, when depth orders the layers' sparsity or drops exactly).
  double spearman = 0, spearman_p = 1, partial_spearman_depth = 0;
  std::int64_t permutations = 0;  // orderings in the permutation test's null distribution
  double spearman_groups = 0;  // Spearman(sparsity, drop) over the variants of group size
  // Depth-matched comparisons: adjacent single layers whose sparsity and drop both differ, and
  // how many of them have the sparser layer cheaper to replace.
  index_t depth_pairs = 0, depth_pairs_agree = 0;
};

// The paired-bootstrap difference of two variants' drops at one stage.
struct study_difference {
  std::string a, b, stage;  // drop(a) - drop(b) at `stage`
  double difference = 0;    // point estimate
  interval ci95;            // paired bootstrap over test images
};

// Everything the study measured and concluded.
struct study_report {
  std::string metric = "k90";  // the primary metric
  int seeds = 0;               // seeds per variant
  int bootstrap_resamples = 0;      // paired-bootstrap draws behind every interval
  std::uint64_t bootstrap_seed = 0;  // the Rng seed of those draws
  // The teacher's test and validation accuracy and its per-test-image correctness.
  double teacher_test_accuracy = 0, teacher_val_accuracy = 0;
  std::vector<std::uint8_t> teacher_correct;  // per test image: 1 if the teacher classifies it right
  std::vector<layer_sparsity> sparsity;              // the teacher's, per layer
  std::map<std::string, std::vector<index_t>> order;  // per metric, sparsest first
  index_t group_size = 0;                      // layers per group
  std::vector<study_variant_result> variants;  // in plan order (plan_study)
  // claims[mixer][stage][metric], stage "stage1" or "stage2".
  std::map<std::string, std::map<std::string, std::map<std::string, study_claim>>> claims;
  std::vector<study_difference> differences;  // every pair of variants, both stages
  // Per mixer, its best variant's (by validation accuracy) token-interaction maps, one per
  // replaced layer, against the teacher's attention maps: {variant name, maps}.
  std::vector<std::pair<std::string, interaction_result>> interaction;
};

// The variants of the study for the given teacher sparsity: per mixer, every single layer, every
// contiguous group of `k` layers, and the sparsest and densest `k` layers under every metric;
// the same layers chosen for several reasons are one variant with several roles.
inline std::vector<study_variant> plan_study(const std::vector<layer_sparsity>& sparsity, index_t k,
                                             const std::vector<mixer_spec>& students) {
  const auto depth = static_cast<index_t>(sparsity.size());
  if (k < 1 || k > depth) throw config_error(detail::concat("plan_study: group size ", k, " for depth ", depth));
  std::vector<std::pair<std::vector<index_t>, std::string>> picks;
  for (index_t l = 0; l < depth; ++l) picks.push_back({{l}, "single"});
  for (index_t s = 0; s + k <= depth; s += k) {
    std::vector<index_t> c(static_cast<std::size_t>(k));
    std::iota(c.begin(), c.end(), s);
    picks.push_back({c, "group"});
  }
  for (const auto& m : study_metrics()) {
    const auto order = study_order(sparsity, m);
    picks.push_back({select_layers(order, layer_selection::sparsest, k), "sparsest:" + m});
    picks.push_back({select_layers(order, layer_selection::densest, k), "densest:" + m});
  }
  std::vector<study_variant> out;
  for (const auto& spec : students) {
    const std::string kind = spec.kind();
    const std::size_t first = out.size();
    for (const auto& [layers, role] : picks) {
      auto it = std::find_if(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
                             [&](const study_variant& v) { return v.replaced == layers; });
      if (it == out.end()) {
        out.push_back({kind + "/" + detail::join(layers, "-"), kind, layers, {}});
        it = out.end() - 1;
      }
      if (!it->has_role(role)) it->roles.push_back(role);
    }
  }
  return out;
}

namespace detail {
// Per-example 0/1 flags as hex (two digits per 8 flags, first flag in the lowest bit).
inline std::string pack_flags(const std::vector<std::uint8_t>& flags) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < flags.size(); i += 8) {
    unsigned byte = 0;
    for (std::size_t b = 0; b < 8 && i + b < flags.size(); ++b) byte |= (flags[i + b] ? 1u : 0u) << b;
    s += digits[byte >> 4];
    s += digits[byte & 15];
  }
  return s;
}
// pack_flags reversed; throws config_error when `s` does not hold `n` flags.
inline std::vector<std::uint8_t> unpack_flags(const std::string& s, std::size_t n) {
  if (s.size() != 2 * ((n + 7) / 8))
    throw config_error(concat("study: a result holds ", s.size(), " hex digits of flags, expected ", 2 * ((n + 7) / 8)));
  auto digit = [](char c) -> unsigned {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    throw config_error(concat("study: '", c, "' is not a hex digit in a result's flags"));
  };
  std::vector<std::uint8_t> flags(n);
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned byte = digit(s[2 * (i / 8)]) << 4 | digit(s[2 * (i / 8) + 1]);
    flags[i] = static_cast<std::uint8_t>(byte >> (i % 8) & 1u);
  }
  return flags;
}
// The fraction of flags set (an accuracy from per-example flags).
inline double flag_mean(const std::vector<std::uint8_t>& flags) {
  if (flags.empty()) return 0.0;
  return static_cast<double>(std::count(flags.begin(), flags.end(), std::uint8_t{1})) / static_cast<double>(flags.size());
}
}  // namespace detail

// One seed's result as JSON (a line of the run folder's results.jsonl).
inline nlohmann::ordered_json to_json(const study_seed_result& r) {
  return {{"seed", r.seed},
          {"test_accuracy", r.test_accuracy},
          {"val_accuracy", r.val_accuracy},
          {"stage1_test_accuracy", r.stage1_test_accuracy},
          {"stage1_val_accuracy", r.stage1_val_accuracy},
          {"distill_mse", r.distill_mse},
          {"seconds", r.seconds},
          {"correct", detail::pack_flags(r.correct)},
          {"stage1_correct", detail::pack_flags(r.stage1_correct)}};
}
// to_json reversed, for `n` test images; throws on a malformed record.
inline study_seed_result study_seed_from_json(const nlohmann::json& j, std::size_t n) {
  study_seed_result r;
  r.seed = j.at("seed").get<int>();
  r.test_accuracy = j.at("test_accuracy").get<double>();
  r.val_accuracy = j.at("val_accuracy").get<double>();
  r.stage1_test_accuracy = j.at("stage1_test_accuracy").get<double>();
  r.stage1_val_accuracy = j.at("stage1_val_accuracy").get<double>();
  r.distill_mse = j.at("distill_mse").get<std::vector<double>>();
  r.seconds = j.at("seconds").get<double>();
  r.correct = detail::unpack_flags(j.at("correct").get<std::string>(), n);
  r.stage1_correct = detail::unpack_flags(j.at("stage1_correct").get<std::string>(), n);
  return r;
}

// The statistics of a study whose teacher, sparsity, variants and seeds are filled in:
// per-variant statistics, the claims per mixer, stage and metric, and every pairwise
// difference. The bootstrap draws `resamples` times from Rng(seed); every quantity uses the
// same draws (paired).
inline void analyse_study(study_report& r, int resamples, std::uint64_t seed) {
  const std::size_t n = r.teacher_correct.size();
  if (n == 0) throw config_error("analyse_study: no test images");
  r.bootstrap_resamples = resamples;
  r.bootstrap_seed = seed;
  const double teacher_acc = r.teacher_test_accuracy;
  // Columns: the teacher, then per variant and seed the stage-1 and the stage-2 flags.
  std::vector<std::vector<double>> columns{std::vector<double>(r.teacher_correct.begin(), r.teacher_correct.end())};
  for (const auto& v : r.variants)
    for (const auto& s : v.seeds) {
      if (s.correct.size() != n || s.stage1_correct.size() != n)
        throw shape_error(detail::concat("analyse_study: ", v.name, " seed ", s.seed, " has ", s.correct.size(),
                                         " test results, the teacher ", n));
      columns.emplace_back(s.stage1_correct.begin(), s.stage1_correct.end());
      columns.emplace_back(s.correct.begin(), s.correct.end());
    }
  const auto means = bootstrap_means(columns, static_cast<index_t>(n), resamples, seed);
  // drops[stage][variant][draw]: the teacher's resampled accuracy minus the seeds' mean.
  const std::size_t V = r.variants.size(), R = static_cast<std::size_t>(resamples);
  std::map<std::string, std::vector<std::vector<double>>> drops;
  for (const std::string stage : {"stage1", "stage2"}) drops[stage].assign(V, std::vector<double>(R, 0.0));
  std::size_t col = 1;
  for (std::size_t v = 0; v < V; ++v) {
    auto& var = r.variants[v];
    const double k = static_cast<double>(std::max<std::size_t>(1, var.seeds.size()));
    for (std::size_t s = 0; s < var.seeds.size(); ++s, col += 2)
      for (std::size_t d = 0; d < R; ++d) {
        drops["stage1"][v][d] -= means[col][d] / k;
        drops["stage2"][v][d] -= means[col + 1][d] / k;
      }
    for (auto& [stage, dv] : drops)
      for (std::size_t d = 0; d < R; ++d) dv[v][d] += var.seeds.empty() ? 0.0 : means[0][d];
    std::vector<double> acc1, acc2, drop1, drop2;
    for (const auto& s : var.seeds) {
      acc1.push_back(s.stage1_test_accuracy);
      acc2.push_back(s.test_accuracy);
      drop1.push_back(teacher_acc - s.stage1_test_accuracy);
      drop2.push_back(teacher_acc - s.test_accuracy);
    }
    auto fill = [&](study_stage_stats& st, const std::vector<double>& acc, const std::vector<double>& drop,
                    const std::vector<double>& boot) {
      std::tie(st.accuracy_mean, st.accuracy_sd) = mean_sd(acc);
      std::tie(st.drop_mean, st.drop_sd) = mean_sd(drop);
      st.drop_ci95 = var.seeds.empty() ? interval{} : percentile_interval(boot);
    };
    fill(var.stage1, acc1, drop1, drops["stage1"][v]);
    fill(var.stage2, acc2, drop2, drops["stage2"][v]);
  }
  auto find = [&](const std::string& mixer, const std::vector<index_t>& layers) -> std::ptrdiff_t {
    for (std::size_t v = 0; v < V; ++v)
      if (r.variants[v].mixer == mixer && r.variants[v].replaced == layers && !r.variants[v].seeds.empty())
        return static_cast<std::ptrdiff_t>(v);
    return -1;
  };
  auto diff_ci = [&](const std::string& stage, std::size_t a, std::size_t b) {
    std::vector<double> d(R);
    for (std::size_t i = 0; i < R; ++i) d[i] = drops[stage][a][i] - drops[stage][b][i];
    return percentile_interval(d);
  };
  // ---- claims ------------------------------------------------------------------------------
  r.claims.clear();
  std::set<std::string> mixers;
  for (const auto& v : r.variants) mixers.insert(v.mixer);
  const auto k = r.group_size;
  for (const auto& mixer : mixers)
    for (const std::string stage : {"stage1", "stage2"})
      for (const auto& metric : study_metrics()) {
        study_claim c;
        const auto& order = r.order.at(metric);
        c.sparsest = select_layers(order, layer_selection::sparsest, k);
        c.densest = select_layers(order, layer_selection::densest, k);
        const auto a = find(mixer, c.sparsest), b = find(mixer, c.densest);
        if (a >= 0 && b >= 0) {
          c.sparsest_drop = r.variants[static_cast<std::size_t>(a)].stage(stage).drop_mean;
          c.densest_drop = r.variants[static_cast<std::size_t>(b)].stage(stage).drop_mean;
          c.difference = c.sparsest_drop - c.densest_drop;
          if (a != b) {
            c.difference_ci95 = diff_ci(stage, static_cast<std::size_t>(a), static_cast<std::size_t>(b));
            c.verdict = c.difference_ci95.hi < 0 ? "holds" : c.difference_ci95.lo > 0 ? "fails" : "cannot_tell";
          }
        }
        std::vector<double> xs, ys, depth, gx, gy;
        for (const auto& v : r.variants) {
          if (v.mixer != mixer || v.seeds.empty()) continue;
          if (v.has_role("single")) {
            xs.push_back(v.sparsity.at(metric));
            ys.push_back(v.stage(stage).drop_mean);
            depth.push_back(static_cast<double>(v.replaced.front()));
          }
          if (static_cast<index_t>(v.replaced.size()) == k) {
            gx.push_back(v.sparsity.at(metric));
            gy.push_back(v.stage(stage).drop_mean);
          }
        }
        const auto p = spearman_permutation_test(xs, ys, 40320, 9999, seed);
        c.spearman = p.statistic;
        c.spearman_p = p.p_value;
        c.permutations = p.permutations;
        c.partial_spearman_depth = partial_spearman(xs, ys, depth);
        c.spearman_groups = spearman(gx, gy);
        for (std::size_t i = 0; i + 1 < xs.size(); ++i) {
          // Singles come in layer order, so neighbours are adjacent depths.
          if (depth[i + 1] - depth[i] != 1 || xs[i] == xs[i + 1] || ys[i] == ys[i + 1]) continue;
          ++c.depth_pairs;
          c.depth_pairs_agree += (xs[i] - xs[i + 1]) * (ys[i] - ys[i + 1]) < 0;
        }
        r.claims[mixer][stage][metric] = c;
      }
  // ---- every pairwise difference ---------------------------------------------------------
  r.differences.clear();
  for (const std::string stage : {"stage1", "stage2"})
    for (std::size_t a = 0; a < V; ++a)
      for (std::size_t b = a + 1; b < V; ++b) {
        if (r.variants[a].seeds.empty() || r.variants[b].seeds.empty()) continue;
        r.differences.push_back({r.variants[a].name, r.variants[b].name, stage,
                                 r.variants[a].stage(stage).drop_mean - r.variants[b].stage(stage).drop_mean,
                                 diff_ci(stage, a, b)});
      }
}

// Callbacks the study makes along the way (each may be empty).
struct study_hooks {
  std::function<void(const std::string&)> log;                                  // one line of news
  std::function<void(const std::string& phase, const fit_progress&)> progress;  // training progress
};

// Per test image of `ds`: 1 if `model` classifies it right.
template <class T>
std::vector<std::uint8_t> correct_per_image(const HybridViT<T>& model, const data::image_dataset& ds) {
  std::vector<std::uint8_t> out;
  evaluate(model, ds, default_eval_batch, 0, &out);
  return out;
}

// Per layer of `layers`: the MSE between the student's and the teacher's mixer outputs on the
// first `count` images of `ds`, each model running on its own residual stream.
template <class T>
std::vector<double> mixer_output_mse(const HybridViT<T>& teacher, const HybridViT<T>& student,
                                     const std::vector<index_t>& layers, const data::image_dataset& ds, index_t count,
                                     index_t batch = 250) {
  const index_t n = std::min(count, ds.size()), classes = teacher.config().num_classes;
  const Shape is = ds.image_shape();
  std::vector<double> sums(layers.size(), 0.0);
  std::vector<double> elems(layers.size(), 0.0);
  Tensor<T> images, logits;
  vit_capture<T> ct, cs;
  ct.mixers = cs.mixers = true;
  for (index_t start = 0; start < n; start += batch) {
    const index_t b = std::min(batch, n - start);
    images.resize(Shape{b, is[0], is[1], is[2]});
    ds.copy_images(start, b, images.data());
    logits.resize(Shape{b, classes});
    teacher.forward(images.view(), logits.view(), &ct);
    student.forward(images.view(), logits.view(), &cs);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      const auto& t = ct.mixer_out.at(static_cast<std::size_t>(layers[i]));
      const auto& s = cs.mixer_out.at(static_cast<std::size_t>(layers[i]));
      for (index_t e = 0; e < t.numel(); ++e) {
        const double d = static_cast<double>(s.data()[e]) - static_cast<double>(t.data()[e]);
        sums[i] += d * d;
      }
      elems[i] += static_cast<double>(t.numel());
    }
  }
  for (std::size_t i = 0; i < sums.size(); ++i) sums[i] = elems[i] > 0 ? sums[i] / elems[i] : 0.0;
  return sums;
}

// The file of a variant's seed-0 student in the run folder ("mh_lstm/1-2" ->
// "student_mh_lstm_1-2_seed0.safetensors").
inline std::string student_file(const study_variant& v) {
  std::string f = "student_" + v.name + "_seed0.safetensors";
  std::replace(f.begin(), f.end(), '/', '_');
  return f;
}

// Runs the study into `run_dir`: the teacher (teacher.safetensors, reused when present), the
// sparsity, then every variant and seed (results.jsonl, one line each, reused when present),
// seed by seed so that a stopped study holds complete seeds; returns the analysed report.
template <class T = float>
study_report run_study(const data::image_dataset& train, const data::image_dataset& val,
                       const data::image_dataset& test, study_options opt, const std::string& run_dir,
                       const study_hooks& hooks = {}) {
  namespace fs = std::filesystem;
  auto log = [&](const std::string& s) {
    if (hooks.log) hooks.log(s);
  };
  if (opt.seeds < 1) throw config_error(detail::concat("run_study: seeds is ", opt.seeds, ", expected >= 1"));
  (void)study_sparsity_score(layer_sparsity{}, opt.metric);  // an unknown metric fails before any work
  if (opt.students.empty()) opt.students = default_students();
  fs::create_directories(run_dir);
  const auto path = [&](const std::string& f) { return (fs::path(run_dir) / f).string(); };
  const auto resumable = [&](fit_options& f, const std::string& file) {
    if (opt.checkpoint_every > 0) f.checkpoint = {path(file + ".state"), opt.checkpoint_every, true};
  };
  const auto remove_state = [](const fit_options& f) {
    std::error_code ignored;
    if (!f.checkpoint.path.empty()) fs::remove(f.checkpoint.path, ignored);
  };
  study_report rep;
  rep.metric = opt.metric;
  rep.seeds = opt.seeds;

  // ---- the teacher, trained once ---------------------------------------------------------
  opt.teacher.mixers.assign(static_cast<std::size_t>(opt.teacher.depth), mixer_spec{});
  opt.teacher.halting.reset();
  HybridViT<T> teacher = [&] {
    const std::string file = path("teacher.safetensors");
    if (fs::exists(file)) {
      auto m = io::load_checkpoint<T>(file);
      if (io::to_json(m.config()) == io::to_json(opt.teacher)) {
        log("teacher: reusing " + file);
        return m;
      }
      throw config_error("run_study: " + file + " holds another model than the study's teacher");
    }
    HybridViT<T> m(opt.teacher);
    Rng rng(opt.seed);
    m.init(rng);
    fit_options f = opt.teacher_fit;
    resumable(f, "teacher.safetensors");
    log(detail::concat("teacher: training ", f.steps, " steps of batch ", f.batch));
    train_classifier(m, train, &val, f, 0.0, [&](const fit_progress& p) {
      if (hooks.progress) hooks.progress("teacher", p);
    });
    io::save_checkpoint(m, file);
    remove_state(f);
    return m;
  }();
  rep.teacher_correct = correct_per_image(teacher, test);
  rep.teacher_test_accuracy = detail::flag_mean(rep.teacher_correct);
  rep.teacher_val_accuracy = evaluate(teacher, val).accuracy;
  log(detail::concat("teacher: test accuracy ", rep.teacher_test_accuracy));

  // ---- sparsity and the plan ---------------------------------------------------------------
  rep.sparsity = rank_by_sparsity(teacher, val, opt.calibration).layers;
  for (const auto& m : study_metrics()) rep.order[m] = study_order(rep.sparsity, m);
  rep.group_size = opt.group_size > 0 ? opt.group_size : default_group_size(teacher.depth());
  const auto plan = plan_study(rep.sparsity, rep.group_size, opt.students);
  for (const auto& p : plan) {
    study_variant_result v;
    static_cast<study_variant&>(v) = p;
    for (const auto& m : study_metrics()) {
      double s = 0;
      for (const index_t l : p.replaced) s += study_sparsity_score(rep.sparsity[static_cast<std::size_t>(l)], m);
      v.sparsity[m] = s / static_cast<double>(p.replaced.size());
    }
    rep.variants.push_back(v);
  }
  log(detail::concat("study: ", rep.variants.size(), " variants x ", opt.seeds, " seeds; sparsest first by ", opt.metric,
                     ": [", detail::join(rep.order.at(opt.metric), ", "), "]"));

  // ---- variants, resumable: one JSON line per finished variant and seed --------------------
  std::map<std::string, study_seed_result> done;
  const std::string done_file = path("results.jsonl");
  io::read_json_lines(done_file, [&](const nlohmann::json& j) {
    done[j.at("key").get<std::string>()] = study_seed_from_json(j.at("result"), rep.teacher_correct.size());
  });
  std::size_t finished = 0;
  const std::size_t total = rep.variants.size() * static_cast<std::size_t>(opt.seeds);
  // The variants of one seed see the same batches in each stage: the teacher's outputs are shared.
  teacher_cache<T> cache(std::size_t{1} << 30, opt.teacher_cache_bytes);
  for (int s = 0; s < opt.seeds; ++s) {
    cache.clear();  // the next seed's batches differ
    for (auto& v : rep.variants) {
      const std::string key = detail::concat(v.name, "/seed", s);
      ++finished;
      if (auto it = done.find(key); it != done.end()) {
        v.seeds.push_back(it->second);
        continue;
      }
      const auto t0 = std::chrono::steady_clock::now();
      // The data order depends on the seed only (every variant of one seed sees the same
      // batches: common random numbers); the initialisation on the seed and the variant.
      const std::uint64_t base = opt.seed + 1000 * static_cast<std::uint64_t>(s + 1);
      distill_options d = opt.distill;
      d.stage1.seed = base + 1;
      d.stage2.seed = base + 2;
      std::string file = key;
      std::replace(file.begin(), file.end(), '/', '_');
      resumable(d.stage1, "student_" + file + ".stage1");
      resumable(d.stage2, "student_" + file + ".stage2");
      const auto spec = std::find_if(opt.students.begin(), opt.students.end(),
                                     [&](const mixer_spec& m) { return m.kind() == v.mixer; });
      Rng rng(base ^ detail::fnv1a(v.name));
      HybridViT<T> student = make_student(teacher, v.replaced, *spec, rng);
      auto progress = [&](int stage, const fit_progress& p) {
        if (hooks.progress) hooks.progress(key + (stage == 1 ? " stage 1" : " stage 2"), p);
      };
      distill_options only1 = d;
      only1.stage2.steps = 0;
      distill(teacher, student, v.replaced, train, nullptr, only1, progress, &cache);
      study_seed_result r;
      r.seed = s;
      r.stage1_correct = correct_per_image(student, test);
      r.stage1_test_accuracy = detail::flag_mean(r.stage1_correct);
      r.stage1_val_accuracy = evaluate(student, val).accuracy;
      r.distill_mse = mixer_output_mse(teacher, student, v.replaced, val, opt.mse_images);
      if (d.stage2.steps > 0) {
        distill_options only2 = d;
        only2.stage1.steps = 0;
        distill(teacher, student, v.replaced, train, nullptr, only2, progress, &cache);
        r.correct = correct_per_image(student, test);
        r.test_accuracy = detail::flag_mean(r.correct);
        r.val_accuracy = evaluate(student, val).accuracy;
      } else {
        r.correct = r.stage1_correct;
        r.test_accuracy = r.stage1_test_accuracy;
        r.val_accuracy = r.stage1_val_accuracy;
      }
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      log(detail::concat(key, " (", finished, "/", total, "): test accuracy ", r.test_accuracy, " after stage 2, ",
                         r.stage1_test_accuracy, " after stage 1 (teacher ", rep.teacher_test_accuracy, ")"));
      io::append_json_line(done_file, {{"key", key}, {"result", to_json(r)}});
      remove_state(d.stage1);
      remove_state(d.stage2);
      v.seeds.push_back(std::move(r));
      // Seed 0's students are kept for the interaction maps.
      if (s == 0) io::save_checkpoint(student, path(student_file(v)));
    }
  }
  analyse_study(rep, opt.bootstrap_resamples, opt.seed);

  // ---- token-interaction maps of each mixer's best variant (chosen on validation) ----------
  if (opt.interaction_images > 0)
    for (const auto& spec : opt.students) {
      const study_variant_result* best = nullptr;
      double best_val = -1;
      for (const auto& v : rep.variants) {
        if (v.mixer != spec.kind() || v.seeds.empty()) continue;
        double mean_val = 0;
        for (const auto& sr : v.seeds) mean_val += sr.val_accuracy / static_cast<double>(v.seeds.size());
        if (mean_val > best_val) best = &v, best_val = mean_val;
      }
      if (!best) continue;
      if (!fs::exists(path(student_file(*best)))) {
        log(detail::concat("interaction: ", path(student_file(*best)), " is missing; no maps for ", best->name));
        continue;
      }
      const auto student = io::load_checkpoint<T>(path(student_file(*best)));
      for (const index_t l : best->replaced) {
        rep.interaction.emplace_back(best->name, token_interaction(student, &teacher, l, val, opt.interaction_images));
        const auto& m = rep.interaction.back().second;
        log(detail::concat("interaction: ", best->name, " (best by validation accuracy) layer ", l, ": Spearman ",
                           m.mean.spearman, ", top-k overlap ", m.mean.top_k_overlap, " against the teacher's attention"));
      }
    }
  return rep;
}

// Compiled in sparsimix::compiled (docs/build-time.md).
SPARSIMIX_EXTERN_TEMPLATE(study_report run_study<float>(const data::image_dataset&, const data::image_dataset&, const data::image_dataset&, study_options, const std::string&, const study_hooks&))

SPARSIMIX_ABI_END
}  // namespace sparsimix
