// The research pipeline end to end ("From Sparsity to Simplicity", docs/method.md 2, 6.10-6.11):
// teacher -> attention sparsity per layer -> for each student mixer kind, replace the
// sparsest group of layers, the densest group, and every contiguous group, each under the
// same step budget -> fine-tune -> evaluate -> does sparser mean cheaper to replace?
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <numeric>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "../core/hash.hpp"
#include "../distill/distill.hpp"
#include "../distill/prune.hpp"
#include "../distill/selection.hpp"
#include "../io/checkpoint.hpp"
#include "../io/json_lines.hpp"
#include "../models/cost.hpp"
#include "statistics.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The students the experiment distils unless told: the multi-head LSTM and the
// bidirectional selective scan (Vim v2; ViT tokens have no causal order) in FAR's lean
// setting, expand 1 with d_state 8, so it is not larger than the attention it replaces
// (C = 96: 35,904 parameters against attention's 37,248; expand 2, d_state 16 has 81,024;
// docs/mixers/selective_scan.md).
inline std::vector<mixer_spec> default_students() {
  return {spec_for<MultiHeadLSTM>(), spec_for<SelectiveScan>({.d_state = 8, .expand = 1.0, .bidirectional = true})};
}

// The whole experiment's settings: the teacher, the students, the layer groups, measurement.
struct experiment_options {
  vit_config teacher;              // mixers are set to attention
  fit_options teacher_fit;         // the teacher's training (when run_experiment trains it)
  distill_options distill;         // each student's two-stage distillation
  std::vector<mixer_spec> students;  // default: default_students()
  index_t group_size = 0;            // 0: default_group_size(depth)
  index_t calibration = 1000;        // validation images for the sparsity measurement
  sparsity_metric metric = sparsity_metric::k90;  // how layers are ranked by sparsity
  int latency_runs = 30;             // batch-1 forwards timed per model, spread over the timing rounds
  // Pruned mh_lstm variants (docs/pruning.md): the sparsest, the densest and the all-layer
  // mh_lstm students are also pruned by this fraction of their units (0: no pruned
  // variants), with `prune`'s regularised training and fine-tune. 0.75: validation accuracy
  // is flat from 0.5 to 0.9 (scripts/sweep_prune_fraction.sh, docs/pruning.md), and below
  // about 0.6 the pruned mixer is still larger than the attention it replaces.
  double prune_fraction = 0.75;
  prune_options prune;  // the pruned variants' regularised training and fine-tune
  // Also replace every attention layer with each student kind (selection "all"; its mh_lstm
  // student is pruned too): the most a hybrid can save, beside what it costs in accuracy.
  bool replace_all = true;
  // Timing: images/s at this batch and batch-1 latency, medians over rounds that go through the
  // teacher and every variant in turn (a noisy moment cannot single one model out).
  index_t throughput_batch = 64;
  int timing_rounds = 9;   // rounds over all models for the timing medians
  // The teacher's initialisation; a student's new mixers draw from seed ^ FNV-1a(its name).
  std::uint64_t seed = 0;
  // Resumable runs: with a run_dir, the trained teacher (teacher.safetensors), every finished
  // student (student_NAME.safetensors) and a line per finished piece (pieces.jsonl) are kept
  // there, and a rerun with the same options reuses them; with checkpoint_every > 0 the phase
  // under way also keeps its whole training state (FILE.state, fit_state.hpp) every N steps,
  // so a killed run continues mid-phase with the same numbers. "" keeps nothing.
  std::string run_dir;
  index_t checkpoint_every = 0;  // steps between training states (0: only finished pieces)
  // Memory for the teacher's stage-1 targets, which every variant's stage 1 reads on the same
  // batches (teacher_cache): every block's pre-projection output, 15 MB per batch of 128 at
  // C 96, N 50, so the small demo's 150 batches take 2.3 GB and the full demo's 600 9.1 GB.
  // Batches beyond it run the teacher for every variant; 0 keeps none. The numbers do not change.
  std::size_t teacher_cache_bytes = std::size_t{4} << 30;
};

// One distilled (or pruned) student of the experiment: what it replaced and how it scores.
struct variant_result {
  // Its name ("mh_lstm/sparsest", "selective_scan/group/0-1"), student kind, and layer selection.
  std::string name, mixer, selection;
  std::vector<index_t> replaced;  // the replaced layers, ascending
  // Mean sparsity score of the replaced layers, test accuracy, the drop from the teacher's,
  // batch-1 latency (ms) and distillation time (s).
  double mean_sparsity = 0, test_accuracy = 0, accuracy_drop = 0, latency_ms = 0, seconds = 0;
  double val_accuracy = 0;                                    // reported only, never used to select
  index_t params = 0, nonzero_params = 0, stored_params = 0;  // all, non-zero, stored (models/pruning.hpp)
  double images_per_s = 0;                                    // at experiment_options::throughput_batch
  bool pruned = false;                                        // a pruned variant of a distilled mh_lstm
  double pruned_fraction = 0;                                 // share of its LSTM units pruned
  index_t multiply_adds = 0;  // per image, inference (models/cost.hpp); 0 when a mixer does not count
};

// Per student kind, the experiment's claim: is replacing the sparsest layers cheaper?
struct claim_result {
  // Test accuracy drops of the sparsest and the densest group, and Spearman's rho between
  // sparsity and drop over the groups.
  double sparsest_drop = 0, densest_drop = 0, spearman = 0;
  bool holds = false;  // replacing the sparsest group cost less accuracy than the densest
};

// Everything run_experiment measured, written out as report.json, CSV tables and plots.
struct experiment_report {
  // The teacher's test and validation accuracy, batch-1 latency (ms) and training time (s).
  double teacher_test_accuracy = 0, teacher_val_accuracy = 0, teacher_latency_ms = 0, teacher_train_seconds = 0;
  double teacher_images_per_s = 0;  // at experiment_options::throughput_batch
  index_t teacher_multiply_adds = 0;  // per image, inference (models/cost.hpp)
  // The teacher's parameter counts: all, non-zero, stored (models/pruning.hpp).
  index_t teacher_params = 0, teacher_nonzero_params = 0, teacher_stored_params = 0;
  sparsity_ranking sparsity;  // the teacher's, on the calibration images
  std::vector<variant_result> variants;  // every student, pruned variants included
  std::map<std::string, claim_result> claims;  // per student kind
};

// A variant against the teacher: the speed-up its multiply-adds allow and the one its
// images/s show (teacher over variant and variant over teacher; 0 when a count is missing).
struct speedup {
  double allowed = 0, measured = 0;  // the two ratios defined above
};

// The variant's speedup over the report's teacher.
inline speedup speedup_of(const experiment_report& r, const variant_result& v) {
  auto ratio = [](double num, double den) { return num > 0 && den > 0 ? num / den : 0.0; };
  return {ratio(static_cast<double>(r.teacher_multiply_adds), static_cast<double>(v.multiply_adds)),
          ratio(v.images_per_s, r.teacher_images_per_s)};
}

// Callbacks run_experiment makes along the way (each may be empty).
template <class T = float>
struct experiment_hooks {
  std::function<void(const std::string&)> log;                                  // one line of news
  std::function<void(const std::string& phase, const fit_progress&)> progress;  // training progress
  std::function<void(const HybridViT<T>&)> teacher_trained;                     // e.g. save it
};

namespace detail {
// The checkpoint of a variant in a resumable run's folder: "mh_lstm/group/0-1" ->
// "student_mh_lstm_group_0-1.safetensors".
inline std::string student_file(std::string name) {
  std::replace(name.begin(), name.end(), '/', '_');
  return "student_" + name + ".safetensors";
}
// What a resumed run cannot recompute from a variant's checkpoint without its data: the
// accuracies (exact: JSON keeps a double's 17 digits), the training time, the pruned share.
inline nlohmann::json numbers_of(const variant_result& v) {
  return {{"val_accuracy", v.val_accuracy}, {"test_accuracy", v.test_accuracy}, {"seconds", v.seconds},
          {"pruned_fraction", v.pruned_fraction}};
}
inline void read_numbers(variant_result& v, const nlohmann::json& j) {
  v.val_accuracy = j.at("val_accuracy").get<double>();
  v.test_accuracy = j.at("test_accuracy").get<double>();
  v.seconds = j.at("seconds").get<double>();
  v.pruned_fraction = j.at("pruned_fraction").get<double>();
}
}  // namespace detail

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
  namespace fs = std::filesystem;
  experiment_report rep;

  // ---- what a previous run into run_dir finished -----------------------------------------
  const bool keep = !opt.run_dir.empty();
  if (keep) fs::create_directories(opt.run_dir);
  const auto path = [&](const std::string& f) { return (fs::path(opt.run_dir) / f).string(); };
  const auto resumable = [&](fit_options& f, const std::string& file) {
    if (keep && opt.checkpoint_every > 0) f.checkpoint = {path(file + ".state"), opt.checkpoint_every, true};
  };
  const auto resume_note = [](const fit_options& f) {
    return !f.checkpoint.path.empty() && fs::exists(f.checkpoint.path) ? " (resuming from " + f.checkpoint.path + ")"
                                                                         : std::string();
  };
  const auto remove_state = [](const fit_options& f) {
    std::error_code ignored;
    if (!f.checkpoint.path.empty()) fs::remove(f.checkpoint.path, ignored);
  };
  std::map<std::string, nlohmann::json> finished;  // piece ("teacher" or a variant's name) -> its numbers
  const std::string pieces = keep ? path("pieces.jsonl") : std::string();
  if (keep)
    io::read_json_lines(pieces, [&](const nlohmann::json& j) { finished[j.at("key").get<std::string>()] = j.at("result"); });
  // A finished piece: its model was saved before its line was written, so the line implies the file.
  const auto reusable = [&](const std::string& key, const std::string& file) {
    return keep && finished.count(key) && fs::exists(path(file));
  };
  const auto finish = [&](const std::string& key, HybridViT<T>& model, const std::string& file,
                          const nlohmann::json& numbers) {
    if (!keep) return;
    io::save_checkpoint(model, path(file));
    io::append_json_line(pieces, {{"key", key}, {"result", numbers}});
  };

  // ---- teacher -------------------------------------------------------------------------
  opt.teacher.mixers.assign(static_cast<std::size_t>(opt.teacher.depth), mixer_spec{});
  HybridViT<T> teacher = teacher_in ? *teacher_in : HybridViT<T>(opt.teacher);
  if (!teacher_in && reusable("teacher", "teacher.safetensors")) {
    teacher = io::load_checkpoint<T>(path("teacher.safetensors"));
    if (io::to_json(teacher.config()) != io::to_json(opt.teacher))
      throw config_error("run_experiment: " + path("teacher.safetensors") +
                         " holds another model than the options' teacher; use another run_dir");
    rep.teacher_train_seconds = finished.at("teacher").at("seconds").get<double>();
    log("teacher: reusing " + path("teacher.safetensors"));
  } else if (!teacher_in) {
    Rng rng(opt.seed);
    teacher.init(rng);
    fit_options fit = opt.teacher_fit;
    resumable(fit, "teacher.safetensors");
    log(detail::concat("teacher: training ", fit.steps, " steps of batch ", fit.batch, resume_note(fit)));
    const auto fr = train_classifier(teacher, train, &val, fit, 0.0,
                                     [&](const fit_progress& p) { if (hooks.progress) hooks.progress("teacher", p); });
    rep.teacher_train_seconds = fr.seconds;
    finish("teacher", teacher, "teacher.safetensors", {{"seconds", fr.seconds}});
    remove_state(fit);
  }
  if (hooks.teacher_trained) hooks.teacher_trained(teacher);
  rep.teacher_val_accuracy = evaluate(teacher, val).accuracy;
  rep.teacher_test_accuracy = evaluate(teacher, test).accuracy;
  {
    const auto c = count_parameters(teacher);
    rep.teacher_params = c.params;
    rep.teacher_nonzero_params = c.nonzero_params;
    rep.teacher_stored_params = c.stored_params;
    rep.teacher_multiply_adds = count_multiply_adds(teacher).value_or(0);
  }
  log(detail::concat("teacher: test accuracy ", rep.teacher_test_accuracy, ", ", rep.teacher_params, " parameters"));

  // ---- sparsity --------------------------------------------------------------------------
  rep.sparsity = rank_by_sparsity(teacher, val, opt.calibration, opt.metric);
  const sparsity_ranking& ranking = rep.sparsity;

  // ---- variants ----------------------------------------------------------------------------
  const index_t k = opt.group_size > 0 ? opt.group_size : default_group_size(teacher.depth());
  const auto groups = replacement_groups(ranking.order, teacher.depth(), k, opt.replace_all);
  if (opt.students.empty()) opt.students = default_students();
  // Every distinct model, for the timing at the end; timed_index[i] is variant i's.
  std::vector<HybridViT<T>> models;
  // Each stage of every variant sees the same batches: the teacher's outputs are shared.
  teacher_cache<T> cache(std::size_t{1} << 30, opt.teacher_cache_bytes);
  std::vector<std::size_t> timed_index;
  auto sizes = [](variant_result& v, HybridViT<T>& m) {
    const auto c = count_parameters(m);
    v.params = c.params;
    v.nonzero_params = c.nonzero_params;
    v.stored_params = c.stored_params;
    v.multiply_adds = count_multiply_adds(m).value_or(0);
  };
  for (const auto& spec : opt.students) {
    const std::string kind = spec.kind();
    std::map<std::vector<index_t>, variant_result> done;  // the same layers twice: reuse
    std::map<std::vector<index_t>, std::size_t> done_model;
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
        v.nonzero_params = d.nonzero_params;
        v.stored_params = d.stored_params;
        v.multiply_adds = d.multiply_adds;
        v.seconds = 0;
        timed_index.push_back(done_model.at(g.layers));
        log(detail::concat(v.name, ": same layers as ", d.name, ", reusing its result"));
      } else {
        const std::string file = detail::student_file(v.name);
        HybridViT<T> student = teacher;
        if (reusable(v.name, file)) {
          student = io::load_checkpoint<T>(path(file));
          detail::read_numbers(v, finished.at(v.name));
          log(detail::concat(v.name, ": reusing ", path(file), ", test accuracy ", v.test_accuracy));
        } else {
          distill_options d = opt.distill;
          resumable(d.stage1, file + ".stage1");
          resumable(d.stage2, file + ".stage2");
          // "[2, 5]", not the name's "2-5", which would read as a range.
          log(detail::concat(v.name, ": replacing layers [", detail::join(g.layers, ", "), "]",
                             resume_note(d.stage2).empty() ? resume_note(d.stage1) : resume_note(d.stage2)));
          // Seeded from the name: no result depends on the order the variants run in (or on
          // which of them a resumed run skips).
          Rng rng(opt.seed ^ detail::fnv1a(v.name));
          student = make_student(teacher, g.layers, spec, rng);
          const auto t0 = std::chrono::steady_clock::now();
          distill(
              teacher, student, g.layers, train, nullptr, d,
              [&](int stage, const fit_progress& p) {
                if (hooks.progress) hooks.progress(v.name + (stage == 1 ? " stage 1" : " stage 2"), p);
              },
              &cache);
          v.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          v.val_accuracy = evaluate(student, val).accuracy;
          v.test_accuracy = evaluate(student, test).accuracy;
          finish(v.name, student, file, detail::numbers_of(v));
          remove_state(d.stage1);
          remove_state(d.stage2);
          log(detail::concat(v.name, ": test accuracy ", v.test_accuracy, " (teacher ", rep.teacher_test_accuracy, ")"));
        }
        sizes(v, student);
        done[g.layers] = v;
        done_model[g.layers] = models.size();
        timed_index.push_back(models.size());
        models.push_back(std::move(student));
      }
      v.accuracy_drop = rep.teacher_test_accuracy - v.test_accuracy;
      rep.variants.push_back(v);
      // FAR's second half on the sparsest, densest and all-layer mh_lstm students (docs/pruning.md).
      const bool prunable = kind == "mh_lstm" && opt.prune_fraction > 0 && g.selection != layer_selection::group;
      if (!prunable) continue;
      variant_result pv = v;
      pv.name += "/pruned";
      pv.pruned = true;
      HybridViT<T> pruned = models[done_model.at(g.layers)];
      const std::string file = detail::student_file(pv.name);
      if (reusable(pv.name, file)) {
        pruned = io::load_checkpoint<T>(path(file));  // the dense layout's zero units read back as pruned
        detail::read_numbers(pv, finished.at(pv.name));
        log(detail::concat(pv.name, ": reusing ", path(file), ", test accuracy ", pv.test_accuracy));
      } else {
        prune_options po = opt.prune;
        po.select = {opt.prune_fraction, 0};
        resumable(po.regularise, file + ".regularise");
        resumable(po.finetune, file + ".finetune");
        log(detail::concat(pv.name, ": pruning ", opt.prune_fraction, " of the LSTM units",
                           resume_note(po.finetune).empty() ? resume_note(po.regularise) : resume_note(po.finetune)));
        const auto t0 = std::chrono::steady_clock::now();
        const auto pr = prune(pruned, train, nullptr, po, [&](const std::string& phase, const fit_progress& p) {
          if (hooks.progress) hooks.progress(pv.name + " " + phase, p);
        });
        pv.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        pv.pruned_fraction = pr.pruning.pruned_fraction();
        pv.val_accuracy = evaluate(pruned, val).accuracy;
        pv.test_accuracy = evaluate(pruned, test).accuracy;
        finish(pv.name, pruned, file, detail::numbers_of(pv));
        remove_state(po.regularise);
        remove_state(po.finetune);
      }
      pv.accuracy_drop = rep.teacher_test_accuracy - pv.test_accuracy;
      sizes(pv, pruned);
      log(detail::concat(pv.name, ": ", pv.pruned_fraction, " of the LSTM units pruned, test accuracy ",
                         pv.test_accuracy, ", ", pv.nonzero_params, " non-zero parameters"));
      timed_index.push_back(models.size());
      models.push_back(std::move(pruned));
      rep.variants.push_back(pv);
    }
    claim_result c;
    std::vector<double> xs, ys;
    std::set<std::vector<index_t>> seen;
    for (const auto& v : rep.variants) {
      // The claims compare unpruned replacements of depth/3-layer groups.
      if (v.mixer != kind || v.pruned || v.selection == "all") continue;
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

  if (cache.hits() > 0)
    log(detail::concat("teacher cache: stage 1 ", cache.target_hits(), " of ",
                       cache.target_hits() + cache.target_misses(), ", stage 2 ", cache.logit_hits(), " of ",
                       cache.logit_hits() + cache.logit_misses(), " teacher forwards answered"));

  // ---- timing: interleaved rounds over the teacher and every model, medians ----------------
  const int rounds = std::max(1, opt.timing_rounds);
  std::vector<const HybridViT<T>*> timed{&teacher};
  for (const auto& m : models) timed.push_back(&m);
  const auto speeds = measure_speeds(timed, test, opt.throughput_batch, rounds, opt.latency_runs);
  rep.teacher_latency_ms = speeds[0].latency_ms;
  rep.teacher_images_per_s = speeds[0].images_per_s;
  for (std::size_t v = 0; v < rep.variants.size(); ++v) {
    rep.variants[v].latency_ms = speeds[timed_index[v] + 1].latency_ms;
    rep.variants[v].images_per_s = speeds[timed_index[v] + 1].images_per_s;
  }
  log(detail::concat("timing: ", rounds, " interleaved rounds over ", models.size() + 1, " models; teacher ",
                     rep.teacher_latency_ms, " ms per image at batch 1, ", rep.teacher_images_per_s, " images/s at batch ",
                     opt.throughput_batch));
  return rep;
}

// Compiled in sparsimix::compiled (docs/build-time.md).
SPARSIMIX_EXTERN_TEMPLATE(experiment_report run_experiment<float>(const data::image_dataset&, const data::image_dataset&, const data::image_dataset&, experiment_options, const experiment_hooks<float>&, const HybridViT<float>*))

SPARSIMIX_ABI_END
}  // namespace sparsimix
