// The subcommands of the `sparsimix` program (docs/cli.md) as library calls: each takes a
// plain struct of options, checks them and the paths it was given before any work, reads and
// writes checkpoints and JSON, and prints what the command prints. cli/main.hpp maps command
// lines onto them with CLI11; a program that registers its own mixer (models/registry.hpp)
// and calls cli::main gets every subcommand for that mixer too.
//   support.hpp        shared checks, terminal output, data splits, report pieces
//   demo_commands.hpp  demo, demo --avit
//   file_commands.hpp  inspect, infer, grad, init
//   this file          train, sparsity, distill, prune, eval, retention
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../distill/prune.hpp"
#include "../distill/selection.hpp"
#include "../experiment/halting_report.hpp"
#include "../experiment/report.hpp"
#include "../io/checkpoint.hpp"
#include "demo_commands.hpp"
#include "file_commands.hpp"
#include "support.hpp"

namespace sparsimix::cli {
SPARSIMIX_ABI_BEGIN

// ---- train ----------------------------------------------------------------------------------

struct train_args {
  std::string data = data::fashion_mnist_default_dir, out = "teacher.safetensors", config, budget = "small";
  data_options data_opt;        // preprocessing of image folders and CIFAR
  std::optional<index_t> steps, batch;  // unset: the budget's
  std::optional<double> lr;              // unset: the budget's
  bool augment = false;
  std::uint64_t seed = 0;
  std::string init;              // start from this checkpoint's config and weights
  // A-ViT token halting (docs/halting.md). The A-ViT options given on the command line are
  // listed in `halting_options_given`: they need `halting`.
  bool halting = false;
  halting_spec gate;
  halting_loss_options halting_loss;
  std::vector<std::string> halting_options_given;
  // Resumable runs: the full training state goes to OUT.state every `checkpoint_every` steps
  // (and on SIGINT/SIGTERM); `resume` continues from it.
  index_t checkpoint_every = 0;
  bool resume = false;
};

// The A-ViT knobs a user sets, each checked with the option's name.
inline void check_halting_args(const train_args& a, index_t depth) {
  if (!a.halting && !a.halting_options_given.empty())
    throw config_error("train: " + a.halting_options_given.front() + " needs --halting (A-ViT token halting)");
  if (!a.halting) return;
  if (!std::isfinite(a.gate.gamma) || !(a.gate.gamma > 0))
    throw config_error(detail::concat("train: --gamma is ", a.gate.gamma, ", expected a finite value > 0"));
  if (!std::isfinite(a.gate.beta))
    throw config_error(detail::concat("train: --beta is ", a.gate.beta, ", expected a finite value"));
  if (!(a.gate.eps > 0 && a.gate.eps < 1))
    throw config_error(detail::concat("train: --eps is ", a.gate.eps, ", expected 0 < eps < 1"));
  if (!std::isfinite(a.halting_loss.ponder_weight) || a.halting_loss.ponder_weight < 0)
    throw config_error(detail::concat("train: --ponder-weight is ", a.halting_loss.ponder_weight,
                                      ", expected a finite value >= 0"));
  if (!std::isfinite(a.halting_loss.prior_weight) || a.halting_loss.prior_weight < 0)
    throw config_error(detail::concat("train: --prior-weight is ", a.halting_loss.prior_weight,
                                      ", expected a finite value >= 0"));
  if (a.halting_loss.target_depth < 0 || a.halting_loss.target_depth > depth)
    throw config_error(detail::concat("train: --target-depth is ", a.halting_loss.target_depth, ", expected 1..",
                                      depth, " (the model's depth; 0 for ceil(2 depth / 3))"));
}

// `train`: the checkpoint of best validation accuracy is kept in memory and written to --out
// (then OUT.json) only when training has finished: a failed or killed run leaves the file
// that was there untouched. With --checkpoint-every N the whole training state also goes to
// OUT.state every N steps (and when SIGINT/SIGTERM stops the run); --resume continues from
// it, giving the same final weights as an uninterrupted run (same machine and threads).
inline int run_train(const train_args& a) {
  const budget b = make_budget(a.budget);
  if (!a.init.empty() && !a.config.empty())
    throw config_error("train: give --config or --init, not both (--init takes the checkpoint's config)");
  checked_at_least("train", "--steps", a.steps, 1);
  checked_at_least("train", "--batch", a.batch, 1);
  checked_positive("train", "--lr", a.lr);
  checked_at_least("train", "--checkpoint-every", a.checkpoint_every, 0);
  io::require_output_file(a.out, "--out");
  const std::string state_file = a.out + ".state";
  std::optional<HybridViT<float>> init;
  if (!a.init.empty()) init.emplace(io::load_checkpoint<float>(a.init));
  vit_config cfg = init ? init->config()
                   : a.config.empty() ? b.teacher
                                      : io::vit_config_from_string(read_text_file(a.config, "config file"));
  check_halting_args(a, cfg.depth);
  if (a.halting) cfg.halting = a.gate;
  fit_options f = b.teacher_fit;
  if (a.steps) f.steps = *a.steps;
  if (a.batch) f.batch = *a.batch;
  if (a.lr) f.lr = *a.lr;
  if (a.augment) f.augment = true;
  f.seed = a.seed;
  f.halting = a.halting_loss;
  if (f.eval_every == 0) f.eval_every = std::max<index_t>(1, f.steps / 8);
  f.restore_best = true;
  if (a.checkpoint_every > 0 || a.resume) f.checkpoint = {state_file, a.checkpoint_every, a.resume};
  f.parallel = parallel_group();
  const auto d = load_splits(a.data, b, a.data_opt, cfg);
  check_model_fits_data("train", cfg, d.train);
  HybridViT<float> model(cfg);
  Rng rng(a.seed);
  model.init(rng);
  if (init) {
    // Halting adds no parameters: the initial model's tensors are all there is.
    named_tensors<float> src = init->state_dict();
    std::map<std::string, Tensor<float>*> by_name;
    for (auto& [name, t] : src) by_name[name] = &t;
    model.load_state_dict([&](const std::string& name) {
      const auto it = by_name.find(name);
      if (it == by_name.end()) throw format_error(a.init + ": has no tensor '" + name + "'");
      return *it->second;
    });
    const auto e = evaluate(model, d.val);
    log_line(detail::concat("train: from ", a.init, ": validation accuracy ", e.accuracy,
                            cfg.halting ? detail::concat(", mean retention ", e.mean_retention()) : std::string()));
  }
  log_line(detail::concat("train: ", model.num_parameters(), " parameters, ", f.steps, " steps of batch ", f.batch,
                          "; validation on ", d.val.size(), " held-out training images"));
  if (a.resume && std::filesystem::exists(state_file)) log_line("train: resuming from " + state_file);
  // fit() ends with the best validation run's weights (restore_best).
  const auto r = train_classifier(
      model, d.train, &d.val, f, 0.0, [](const fit_progress& p) { print_progress("train", p); },
      [&](index_t step, const eval_result& e) {
        log_line(detail::concat("  step ", step, ": validation accuracy ", e.accuracy, ", loss ", e.loss,
                                e.retention.empty() ? std::string() : detail::concat(", mean retention ", e.mean_retention())));
      });
  if (!is_writer()) return 0;  // process 0 of a data-parallel run tests and writes the results
  const double best = r.best_val_accuracy;
  const auto test = evaluate(model, d.test);
  io::save_checkpoint(model, a.out);
  nlohmann::ordered_json j{{"checkpoint", a.out},       {"best_val_accuracy", best}, {"best_step", r.best_step},
                           {"test_accuracy", test.accuracy}, {"train_seconds", r.seconds},
                           {"images_per_second", r.images_per_second}, {"fit", to_json(f)},
                           {"data", data_json(a.data, a.data_opt, cfg)}};
  if (d.train.streamed()) {
    // Decoding runs beside training: it keeps up when its rate exceeds the training rate.
    j["decode_images_per_second"] = r.decode_images_per_second;
    j["data_wait_seconds"] = r.data_wait_seconds;
  }
  add_parallel(j, r);
  if (cfg.halting)
    j["halting"] = {{"gamma", cfg.halting->gamma},
                    {"beta", cfg.halting->beta},
                    {"eps", cfg.halting->eps},
                    {"ponder_weight", f.halting.ponder_weight},
                    {"prior_weight", f.halting.prior_weight},
                    {"target_depth", f.halting.effective_target_depth(cfg.depth)}};
  add_retention(j, test);
  io::write_text_atomically(a.out + ".json", j.dump(2) + "\n");
  std::error_code ignored;
  std::filesystem::remove(state_file, ignored);  // the run is complete: nothing to resume
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// ---- sparsity -------------------------------------------------------------------------------

struct sparsity_args {
  std::string model, data = data::fashion_mnist_default_dir, out = "sparsity";
  data_options data_opt;
  index_t count = 1000;
  std::string metric = "k90";
};

inline int run_sparsity(const sparsity_args& a) {
  namespace fs = std::filesystem;
  checked_at_least("sparsity", "--count", a.count, 1);
  const auto metric = parse_sparsity_metric(a.metric);
  io::require_output_folder(a.out, "--out");
  const auto model = io::load_checkpoint<float>(a.model);
  // Calibrate on held-out training images, never test.
  auto [train, val] = data::load_train_val(a.data, preprocess_for(a.data, a.data_opt, model.config()), 5000);
  val.decode_threads = a.data_opt.decode_threads;
  check_model_fits_data("sparsity", model.config(), val);
  const auto ranking = rank_by_sparsity(model, val, a.count, metric);
  fs::create_directories(a.out);
  const auto j = to_json(ranking);
  io::write_text_atomically((fs::path(a.out) / "sparsity.json").string(), j.dump(2) + "\n");
  io::write_text_atomically((fs::path(a.out) / "sparsity_heatmap.svg").string(), sparsity_heatmap_svg(ranking));
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// ---- distill --------------------------------------------------------------------------------

struct distill_args {
  std::string teacher, data = data::fashion_mnist_default_dir, out = "student.safetensors";
  data_options data_opt;
  std::string mixer = "mh_lstm";       // KIND[:option=value,...]
  std::string layers;                  // "0,2"; or chosen by `select`
  std::string select;                  // sparsest | densest
  std::string target = "pre_proj", budget = "small";
  std::optional<index_t> k;            // with select; unset: default_group_size(depth)
  std::optional<index_t> stage1, stage2;  // unset: the budget's (stage2 0 skips it)
  bool teacher_forced = false;
  bool mask_guided = false;            // A-ViT teacher: the student follows its token masks
  std::optional<double> prune;         // then prune this fraction of the student's LSTM units
  std::uint64_t seed = 0;
  index_t checkpoint_every = 0;        // resumable phases: OUT.<phase>.state every N steps
  bool resume = false;
  std::optional<index_t> batch;        // unset: the budget's (both stages)
  bool layer_parallel = false;         // MPI: split stage 1's layers over the processes
};

inline int run_distill(const distill_args& a) {
  const budget b = make_budget(a.budget);
  const mixer_spec spec = student_spec(a.mixer);
  if (a.prune && !(*a.prune > 0 && *a.prune < 1))
    throw config_error(detail::concat("distill: --prune is ", *a.prune, ", expected a fraction in (0, 1)"));
  if (a.prune && spec.kind() != "mh_lstm")
    throw config_error("distill: --prune prunes mh_lstm units; the student mixer is " + spec.kind());
  if (!a.layers.empty() && !a.select.empty()) throw config_error("distill: give --layers or --select, not both");
  if (a.layers.empty() && a.select.empty()) throw config_error("distill: give --layers or --select sparsest|densest|all");
  if (a.k && a.select.empty()) throw config_error("distill: --k counts the layers --select picks; give --select");
  checked_at_least("distill", "--k", a.k, 1);
  checked_at_least("distill", "--stage1-steps", a.stage1, 1);
  checked_at_least("distill", "--stage2-steps", a.stage2, 0);
  checked_at_least("distill", "--batch", a.batch, 1);
  distill_options o = b.distill;
  if (a.batch) o.stage1.batch = o.stage2.batch = *a.batch;
  o.stage1.parallel = o.stage2.parallel = parallel_group();
  if (a.layer_parallel) {
    if (!a.teacher_forced)
      throw config_error("distill: --layer-parallel trains each layer on the teacher's block inputs: give --teacher-forced");
    if (!parallel_group())
      throw config_error("distill: --layer-parallel splits the layers over MPI processes: run sparsimix_mpi under mpirun "
                         "(docs/distributed.md)");
    o.stage1.parallel = nullptr;
    o.layer_parallel = parallel_group();
  }
  o.target = parse_distill_target(a.target);
  if (a.stage1) o.stage1.steps = *a.stage1;
  if (a.stage2) o.stage2.steps = *a.stage2;
  o.teacher_forced = a.teacher_forced;
  o.mask_guided = a.mask_guided;
  o.stage1.seed = a.seed + 1;
  o.stage2.seed = a.seed + 2;
  checked_at_least("distill", "--checkpoint-every", a.checkpoint_every, 0);
  io::require_output_file(a.out, "--out");
  resumable_phases phases("distill", a.out, a.checkpoint_every, a.resume);
  phases.attach(o.stage1, "stage1");
  phases.attach(o.stage2, "stage2");
  const auto teacher = io::load_checkpoint<float>(a.teacher);
  if (a.mask_guided && !teacher.config().halting)
    throw config_error("distill: --mask-guided needs an A-ViT teacher; " + a.teacher +
                       " has no halting (train one with `sparsimix train --halting`)");
  if (a.mask_guided && a.teacher_forced)
    throw config_error("distill: --mask-guided and --teacher-forced exclude each other");
  std::vector<index_t> layers;
  if (!a.layers.empty()) layers = parse_layer_list("distill", a.layers, teacher.depth());
  const auto d = load_splits(a.data, b, a.data_opt, teacher.config());
  check_model_fits_data("distill", teacher.config(), d.train);
  if (layers.empty()) {
    const auto ranking = rank_by_sparsity(teacher, d.val, b.calibration);
    const index_t k = a.k ? *a.k : std::min<index_t>(default_group_size(teacher.depth()),
                                                     static_cast<index_t>(ranking.order.size()));
    layers = select_layers(ranking.order, parse_layer_selection(a.select), k);
  }
  Rng rng(a.seed);
  auto student = make_student(teacher, layers, spec, rng);
  const auto r = distill(teacher, student, layers, d.train, nullptr, o,
                         [](int stage, const fit_progress& p) { print_progress(stage == 1 ? "stage 1" : "stage 2", p); });
  std::optional<prune_result> pruned;
  prune_options po;
  if (a.prune) {  // FAR's second half on the distilled student (docs/pruning.md)
    po.regularise = b.prune_regularise;
    po.finetune = b.prune_finetune;
    po.regularise.seed = a.seed + 3;
    po.finetune.seed = a.seed + 4;
    po.select = {*a.prune, 0};
    if (a.batch) po.regularise.batch = po.finetune.batch = *a.batch;
    po.regularise.parallel = po.finetune.parallel = parallel_group();
    phases.attach(po.regularise, "regularise");
    phases.attach(po.finetune, "finetune");
    pruned = prune(student, d.train, &d.val, po, [](const std::string& phase, const fit_progress& p) {
      print_progress(phase.c_str(), p);
    });
  }
  if (!is_writer()) return 0;  // process 0 of a data-parallel run writes the results
  io::save_checkpoint(student, a.out);
  const auto t_test = evaluate(teacher, d.test), s_test = evaluate(student, d.test);
  const double t_acc = t_test.accuracy, s_acc = s_test.accuracy;
  // Validation numbers too: choosing a distillation budget must not look at the test set.
  const double t_val = evaluate(teacher, d.val).accuracy, s_val = evaluate(student, d.val).accuracy;
  nlohmann::ordered_json j{{"student", a.out},          {"mixer", spec.kind()},    {"replaced", layers},
                           {"teacher_val_accuracy", t_val}, {"val_accuracy", s_val},
                           {"teacher_test_accuracy", t_acc}, {"test_accuracy", s_acc}, {"accuracy_drop", t_acc - s_acc},
                           {"stage1_seconds", r.stage1.seconds}, {"stage2_seconds", r.stage2.seconds},
                           {"data", data_json(a.data, a.data_opt, teacher.config())}};
  add_parallel(j, r.stage1);
  add_parameter_counts(j, student);
  if (pruned) {
    j["pruned"] = true;
    j["pruned_fraction"] = pruned->pruning.pruned_fraction();
    j["blocks"] = widths_json(pruned->pruning);
    j["prune"] = {{"regularise", to_json(po.regularise)}, {"hoyer_square", po.weight}, {"finetune", to_json(po.finetune)}};
  }
  if (teacher.config().halting) {
    j["mask_guided"] = a.mask_guided;
    j["teacher_mean_retention"] = t_test.mean_retention();
    add_retention(j, s_test);
  }
  io::write_text_atomically(a.out + ".json", j.dump(2) + "\n");
  phases.remove_states();
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// ---- prune ----------------------------------------------------------------------------------

struct prune_args {
  std::string model, data = data::fashion_mnist_default_dir, out = "pruned.safetensors", budget = "small";
  data_options data_opt;
  std::optional<index_t> batch;  // unset: the budget's (both phases)
  double weight = 5e-5;
  std::optional<double> fraction, threshold;         // neither given: fraction 0.5
  std::optional<index_t> steps, finetune_steps;      // unset: the budget's (0 skips the phase)
  std::optional<double> lr;                          // unset: the budget's (both phases scale with it)
  std::uint64_t seed = 0;
  index_t checkpoint_every = 0;                      // resumable phases: OUT.<phase>.state every N steps
  bool resume = false;
};

inline int run_prune(const prune_args& a) {
  const budget b = make_budget(a.budget);
  if (a.fraction && a.threshold) throw config_error("prune: give --fraction or --threshold, not both");
  if (a.fraction && !(*a.fraction > 0 && *a.fraction < 1))
    throw config_error(detail::concat("prune: --fraction is ", *a.fraction, ", expected a value in (0, 1)"));
  if (a.threshold && !(std::isfinite(*a.threshold) && *a.threshold >= 0))
    throw config_error(detail::concat("prune: --threshold is ", *a.threshold, ", expected a finite value >= 0"));
  if (!std::isfinite(a.weight) || a.weight < 0)
    throw config_error(detail::concat("prune: --weight is ", a.weight, ", expected a finite value >= 0"));
  checked_positive("prune", "--lr", a.lr);
  checked_at_least("prune", "--steps", a.steps, 0);
  checked_at_least("prune", "--finetune-steps", a.finetune_steps, 0);
  checked_at_least("prune", "--batch", a.batch, 1);
  io::require_output_file(a.out, "--out");
  prune_options o;
  o.weight = a.weight;
  o.regularise = b.prune_regularise;
  o.finetune = b.prune_finetune;
  if (a.batch) o.regularise.batch = o.finetune.batch = *a.batch;
  o.regularise.parallel = o.finetune.parallel = parallel_group();
  if (a.steps) o.regularise.steps = *a.steps;
  if (a.finetune_steps) o.finetune.steps = *a.finetune_steps;
  if (a.lr) {
    o.finetune.lr *= *a.lr / o.regularise.lr;
    o.regularise.lr = *a.lr;
  }
  o.regularise.seed = a.seed + 1;
  o.finetune.seed = a.seed + 2;
  o.select = a.threshold ? unit_selection{-1, *a.threshold} : unit_selection{a.fraction ? *a.fraction : 0.5, 0};
  checked_at_least("prune", "--checkpoint-every", a.checkpoint_every, 0);
  resumable_phases phases("prune", a.out, a.checkpoint_every, a.resume);
  phases.attach(o.regularise, "regularise");
  phases.attach(o.finetune, "finetune");
  auto model = io::load_checkpoint<float>(a.model);
  if (prunable_blocks(model).empty())
    throw config_error("prune: " + a.model + " has no mh_lstm block (distil one first: `sparsimix distill --mixer mh_lstm`)");
  const auto d = load_splits(a.data, b, a.data_opt, model.config());
  check_model_fits_data("prune", model.config(), d.train);
  const double val_before = evaluate(model, d.val).accuracy;
  const auto r = prune(model, d.train, &d.val, o, [](const std::string& phase, const fit_progress& p) {
    print_progress(phase.c_str(), p);
  });
  if (!is_writer()) return 0;  // process 0 of a data-parallel run writes the results
  io::save_checkpoint(model, a.out);
  const auto test = evaluate(model, d.test);
  nlohmann::ordered_json j{{"model", a.out},
                           {"from", a.model},
                           {"val_accuracy_before", val_before},
                           {"val_accuracy", evaluate(model, d.val).accuracy},
                           {"test_accuracy", test.accuracy},
                           {"pruned_fraction", r.pruning.pruned_fraction()},
                           {"units", r.pruning.units},
                           {"pruned_units", r.pruning.pruned_units},
                           {"hoyer_square_before", r.regulariser_before},
                           {"hoyer_square_after", r.regulariser_after},
                           {"params_before", r.before.params},
                           {"nonzero_params_before", r.before.nonzero_params}};
  add_parameter_counts(j, model);
  j["blocks"] = widths_json(r.pruning);
  j["regularise"] = to_json(o.regularise);
  j["regularise"]["hoyer_square"] = o.weight;
  j["finetune"] = to_json(o.finetune);
  if (o.select.fraction > 0) j["fraction"] = o.select.fraction;
  else j["threshold"] = o.select.threshold;
  io::write_text_atomically(a.out + ".json", j.dump(2) + "\n");
  phases.remove_states();
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// ---- eval -----------------------------------------------------------------------------------

struct eval_args {
  std::string model, data = data::fashion_mnist_default_dir;
  data_options data_opt;
  std::optional<index_t> limit;  // unset: the whole test split
};

inline int run_eval(const eval_args& a) {
  checked_at_least("eval", "--limit", a.limit, 1);
  auto model = io::load_checkpoint<float>(a.model);
  const auto test = load_split(a.data, "test", a.data_opt, model.config(), a.limit.value_or(0));
  check_model_fits_data("eval", model.config(), test);
  const auto r = evaluate(model, test);
  nlohmann::ordered_json j{{"model", a.model},
                           {"test_accuracy", r.accuracy},
                           {"test_loss", r.loss},
                           {"images", r.count},
                           {"data", data_json(a.data, a.data_opt, model.config())}};
  add_parameter_counts(j, model);
  if (const auto ps = summarize_pruning(model); ps.pruned_units > 0) {
    j["pruned_fraction"] = ps.pruned_fraction();
    j["blocks"] = widths_json(ps);
  }
  j["latency_ms"] = measure_latency_ms(model, test, 50);
  add_retention(j, r);
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// ---- speed --------------------------------------------------------------------------------

struct speed_args {
  std::vector<std::string> models;
  std::string data = data::fashion_mnist_default_dir;
  data_options data_opt;
  index_t batch = 64;
  int rounds = 9, latency_runs = 30;
};

// `speed`: batch-1 latency and images/s of checkpoints timed side by side in interleaved
// rounds (measure_speeds), each against the first: "is the hybrid faster than its teacher on
// this machine?", answered the way the demo's report answers it.
inline int run_speed(const speed_args& a) {
  checked_at_least("speed", "--batch", a.batch, 1);
  checked_at_least("speed", "--rounds", a.rounds, 1);
  checked_at_least("speed", "--latency-runs", a.latency_runs, 1);
  for (const auto& m : a.models) io::require_input_file(m, "checkpoint");  // every one before any work
  std::vector<HybridViT<float>> models;
  for (const auto& m : a.models) models.push_back(io::load_checkpoint<float>(m));
  const auto test = load_split(a.data, "test", a.data_opt, models.front().config(), a.batch);
  for (const auto& m : models) check_model_fits_data("speed", m.config(), test);  // one batch for all
  std::vector<const HybridViT<float>*> timed;
  for (const auto& m : models) timed.push_back(&m);
  const index_t batch = std::min(a.batch, test.size());
  const auto speeds = measure_speeds(timed, test, batch, a.rounds, a.latency_runs);
  nlohmann::ordered_json j{{"batch", batch}, {"rounds", a.rounds}, {"threads", max_threads()}};
  auto rows = nlohmann::ordered_json::array();
  for (std::size_t i = 0; i < models.size(); ++i) {
    nlohmann::ordered_json r{{"model", a.models[i]}};
    add_parameter_counts(r, models[i]);
    r["latency_ms"] = speeds[i].latency_ms;
    r["images_per_s"] = speeds[i].images_per_s;
    r["speedup"] = speeds[i].images_per_s / speeds[0].images_per_s;  // images/s over the first model's
    rows.push_back(std::move(r));
  }
  j["models"] = std::move(rows);
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// ---- retention ------------------------------------------------------------------------------

struct retention_args {
  std::string model, data = data::fashion_mnist_default_dir, out = "retention";
  data_options data_opt;
  index_t count = 1000, images = 8;
};

// `retention`: how an A-ViT model halts on test images: retention.json, retention.svg and
// halting_depth.svg (the first `images` test images, each patch coloured by its depth).
inline int run_retention(const retention_args& a) {
  namespace fs = std::filesystem;
  if (a.count < 1) throw config_error(detail::concat("retention: --count is ", a.count, ", expected >= 1"));
  if (a.images < 0 || a.images > 64)
    throw config_error(detail::concat("retention: --images is ", a.images, ", expected 0..64"));
  io::require_output_folder(a.out, "--out");
  const auto model = io::load_checkpoint<float>(a.model);
  if (!model.config().halting)
    throw config_error(a.model + ": the model has no halting (train one with `sparsimix train --halting`)");
  const auto test = load_split(a.data, "test", a.data_opt, model.config(), std::max(a.count, a.images));
  check_model_fits_data("retention", model.config(), test);
  const auto s = summarize_halting(model, test, a.count, a.images);
  fs::create_directories(a.out);
  nlohmann::ordered_json j{{"model", a.model}};
  j.update(to_json(s));
  io::write_text_atomically((fs::path(a.out) / "retention.json").string(), j.dump(2) + "\n");
  io::write_text_atomically((fs::path(a.out) / "retention.svg").string(),
                            retention_svg({{fs::path(a.model).filename().string(), s.retention}}));
  if (a.images > 0)
    io::write_text_atomically((fs::path(a.out) / "halting_depth.svg").string(),
                              halting_depth_svg(test, s.depth, model.config()));
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::cli
