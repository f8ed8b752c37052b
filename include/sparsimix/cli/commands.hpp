// The subcommands of the `sparsimix` program (FORMATS.md section 3) as library calls: each
// takes a plain struct of options, reads and writes checkpoints and JSON, and prints what
// the command prints. cli/main.hpp maps command lines onto them with CLI11; a program that
// registers its own mixer (models/registry.hpp) and calls cli::main gets every subcommand
// for that mixer too.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <nlohmann/json.hpp>

#include "../autograd/tape.hpp"
#include "../data/loader.hpp"
#include "../distill/prune.hpp"
#include "../distill/selection.hpp"
#include "../experiment/halting_report.hpp"
#include "../experiment/report.hpp"
#include "../io/checkpoint.hpp"

namespace sparsimix::cli {
SPARSIMIX_ABI_BEGIN

// ---- terminal output ----------------------------------------------------------------------

inline std::string clock_str(double s) {
  const long t = static_cast<long>(s + 0.5);
  char b[32];
  std::snprintf(b, sizeof b, "%02ld:%02ld", t / 60, t % 60);
  return b;
}

// One updating line on a terminal; a line every 10 s otherwise (logs stay readable).
inline void print_progress(const std::string& phase, const fit_progress& p) {
  static const bool tty = ::isatty(2) != 0;
  static auto last = std::chrono::steady_clock::now() - std::chrono::hours(1);
  const auto now = std::chrono::steady_clock::now();
  const bool done = p.step == p.steps;
  if (!tty && !done && std::chrono::duration<double>(now - last).count() < 10) return;
  last = now;
  std::fprintf(stderr, "%s[%s] step %td/%td epoch %td loss %.4f acc %.3f lr %.2e %.0f img/s ETA %s%s",
               tty ? "\r\033[K" : "", phase.c_str(), p.step, p.steps, p.epoch, p.loss, p.batch_accuracy, p.lr,
               p.images_per_second, clock_str(p.eta_seconds).c_str(), (done || !tty) ? "\n" : "");
}

inline void log_line(const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); }

inline std::string read_text_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw io_error("cannot open '" + path + "'");
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// ---- data -----------------------------------------------------------------------------------

struct data_splits {
  data::image_dataset train, val, test;
};

// Fashion-MNIST from `dir`, with the budget's validation images held out of the training split.
inline data_splits load_splits(const std::string& dir, const budget& b) {
  const auto all = data::load_fashion_mnist(dir, "train", b.train_limit > 0 ? b.train_limit + b.val_size : 0);
  auto [tr, va] = data::split_tail(all, b.val_size);
  return {std::move(tr), std::move(va), data::load_fashion_mnist(dir, "test", b.test_limit)};
}

// "mh_lstm" or "selective_scan:d_state=8,bidirectional=false": a registered kind, starting
// from the experiment's default student of that kind (default_students()) when it has one.
inline mixer_spec student_spec(const std::string& text) {
  const auto colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  mixer_registry::instance().at(kind, "--mixer");
  std::vector<mixer_option> opts;
  for (const auto& d : default_students())
    if (d.kind() == kind) opts = d.options();
  if (colon != std::string::npos) {
    for (const auto& item : parse_mixer_options(text.substr(colon + 1), "--mixer")) {
      auto it = std::find_if(opts.begin(), opts.end(), [&](const mixer_option& o) { return o.name == item.name; });
      if (it != opts.end()) it->value = item.value;
      else opts.push_back(item);
    }
  }
  return normalize_spec(mixer_spec(kind, std::move(opts)), "--mixer " + text);
}

// ---- demo -----------------------------------------------------------------------------------

struct demo_args {
  std::string data = data::fashion_mnist_default_dir, out = "runs/demo", budget = "small";
  std::uint64_t seed = 0;
  bool avit = false;  // the teacher-sparsity sweep instead of the layer-sparsity experiment
};

// The data of a demo run, announced; and the part of its config.json both demos share.
inline data_splits load_demo_data(const demo_args& a, const budget& b) {
  auto d = load_splits(a.data, b);
  log_line(detail::concat("data: Fashion-MNIST from ", a.data, ": ", d.train.size(), " train, ", d.val.size(),
                          " validation (held out of train), ", d.test.size(), " test images"));
  return d;
}
inline nlohmann::ordered_json demo_config(const std::string& command, const demo_args& a, const budget& b) {
  nlohmann::ordered_json config;
  config["command"] = command;
  config["budget"] = to_string(b.size);
  config["seed"] = a.seed;
  config["data"] = a.data;
  config["threads"] = max_threads();
  config["teacher"] = io::to_json(b.teacher);
  config["teacher_fit"] = to_json(b.teacher_fit);
  return config;
}

// `demo --avit`: the A-ViT teacher-sparsity sweep (experiment/avit_sweep.hpp) into a run folder
// it can resume from: config.json, report.json, levels.csv, gap_vs_retention.svg, retention.svg,
// halting_depth.svg (the sparsest teacher), the teachers' checkpoints and students.jsonl.
inline int run_avit_demo(const demo_args& a) {
  namespace fs = std::filesystem;
  const budget b = make_budget(a.budget);
  const auto t0 = std::chrono::steady_clock::now();
  const auto d = load_demo_data(a, b);
  avit_sweep_options o;
  o.teacher = b.teacher;
  o.teacher_fit = b.teacher_fit;
  o.teacher_fit.seed = a.seed;
  o.avit_fit = b.avit_fit;
  o.avit_fit.seed = a.seed + 3;
  o.distill = b.avit_distill;
  o.levels = b.avit_levels;
  o.seeds = b.avit_seeds;
  o.calibration = b.calibration;
  o.latency_runs = b.latency_runs;
  o.seed = a.seed;
  fs::create_directories(a.out);
  nlohmann::ordered_json config = demo_config("demo --avit", a, b);
  config["avit_fit"] = to_json(b.avit_fit);
  nlohmann::ordered_json levels = nlohmann::ordered_json::array();
  for (const auto& l : o.levels)
    levels.push_back({{"name", l.name}, {"knob", l.knob}, {"gamma", l.gate.gamma}, {"beta", l.gate.beta},
                      {"eps", l.gate.eps}, {"ponder_weight", l.loss.ponder_weight},
                      {"prior_weight", l.loss.prior_weight}, {"target_depth", l.loss.target_depth}});
  config["avit_levels"] = levels;
  config["distill"] = to_json(b.avit_distill);
  config["seeds"] = o.seeds;
  config["rerun"] = detail::concat("sparsimix demo --avit --budget ", to_string(b.size), " --seed ", a.seed,
                                   " --data ", a.data, " --out ", a.out, " (resumes from the folder's files)");
  io::write_text_atomically((fs::path(a.out) / "config.json").string(), config.dump(2) + "\n");

  avit_sweep_hooks<float> hooks;
  hooks.log = log_line;
  hooks.progress = print_progress;
  const auto rep = run_avit_sweep(d.train, d.val, d.test, o, a.out, hooks);

  const auto p = [&](const char* f) { return (fs::path(a.out) / f).string(); };
  io::write_text_atomically(p("report.json"), to_json(rep, o.knob).dump(2) + "\n");
  std::ostringstream csv;
  csv << "level,knob,mean_retention,teacher_test_accuracy,latency_ms,images_per_s,mixer,seed,test_accuracy,gap\n";
  for (const auto& l : rep.levels)
    for (const auto& st : l.students)
      csv << l.name << "," << (l.halting ? detail::concat(l.knob) : std::string()) << "," << l.mean_retention << ","
          << l.teacher_test_accuracy << "," << l.latency_ms << "," << l.images_per_s << "," << st.mixer << "," << st.seed
          << "," << st.test_accuracy << "," << st.gap << "\n";
  io::write_text_atomically(p("levels.csv"), csv.str());
  io::write_text_atomically(p("gap_vs_retention.svg"), gap_vs_retention_svg(rep));
  std::vector<std::pair<std::string, std::vector<double>>> series;
  for (const auto& l : rep.levels) series.emplace_back(l.name, l.retention);
  io::write_text_atomically(p("retention.svg"), retention_svg(series));
  // The sparsest teacher's halting on the first test images.
  const auto sparsest = std::min_element(rep.levels.begin(), rep.levels.end(), [](const auto& x, const auto& y) {
    return x.mean_retention < y.mean_retention;
  });
  if (sparsest->halting) {
    const auto model = io::load_checkpoint<float>(p(("teacher_" + sparsest->name + ".safetensors").c_str()));
    const auto s = summarize_halting(model, d.test, 8, 8);
    io::write_text_atomically(p("halting_depth.svg"), halting_depth_svg(d.test, s.depth, model.config()));
  }

  std::printf("\n%-10s %-8s %-10s %-10s %-10s %-16s %-18s\n", "teacher", o.knob.c_str(), "retention", "test acc",
              "images/s", "mixer", "gap (mean +- sd)");
  for (const auto& l : rep.levels)
    for (const auto& spec : o.students.empty() ? default_students() : o.students) {
      std::vector<double> gaps;
      for (const auto& st : l.students)
        if (st.mixer == spec.kind()) gaps.push_back(st.gap);
      const auto [m, sd] = mean_sd(gaps);
      std::printf("%-10s %-8s %-10.3f %-10.4f %-10.0f %-16s %+.4f +- %.4f\n", l.name.c_str(),
                  l.halting ? detail::concat(l.knob).c_str() : "-", l.mean_retention, l.teacher_test_accuracy,
                  l.images_per_s, spec.kind().c_str(), m, sd);
    }
  for (const auto& [mixer, c] : rep.claims) std::printf("claim (%s): %s\n", mixer.c_str(), c.note.c_str());
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\nrun folder: %s; total %s\n", a.out.c_str(), clock_str(total).c_str());
  return 0;
}

inline int run_demo(const demo_args& a) {
  if (a.avit) return run_avit_demo(a);
  namespace fs = std::filesystem;
  budget b = make_budget(a.budget);
  b.teacher_fit.seed = a.seed;
  b.distill.stage1.seed = a.seed + 1;
  b.distill.stage2.seed = a.seed + 2;
  const auto t0 = std::chrono::steady_clock::now();
  const auto d = load_demo_data(a, b);
  fs::create_directories(a.out);
  nlohmann::ordered_json config = demo_config("demo", a, b);
  config["distill"] = to_json(b.distill);
  config["calibration_images"] = b.calibration;
  config["validation_images"] = b.val_size;
  config["rerun"] = detail::concat("sparsimix demo --budget ", to_string(b.size), " --seed ", a.seed, " --data ", a.data);
  io::write_text_atomically((fs::path(a.out) / "config.json").string(), config.dump(2) + "\n");

  experiment_options eo;
  eo.teacher = b.teacher;
  eo.teacher_fit = b.teacher_fit;
  eo.distill = b.distill;
  eo.calibration = b.calibration;
  eo.latency_runs = b.latency_runs;
  eo.prune.regularise = b.prune_regularise;
  eo.prune.finetune = b.prune_finetune;
  eo.prune.regularise.seed = a.seed + 3;
  eo.prune.finetune.seed = a.seed + 4;
  eo.seed = a.seed;
  experiment_hooks<float> hooks;
  hooks.log = log_line;
  hooks.progress = print_progress;
  hooks.teacher_trained = [&](const HybridViT<float>& t) {
    HybridViT<float> copy = t;
    io::save_checkpoint(copy, (fs::path(a.out) / "teacher.safetensors").string());
  };
  const auto rep = run_experiment(d.train, d.val, d.test, eo, hooks);
  write_report(rep, a.out);

  std::printf("\n%-34s %-10s %-9s %-10s %-9s %-9s %-9s %-9s\n", "model", "replaced", "sparsity", "test acc", "drop",
              "nonzero", "ms/image", "images/s");
  std::printf("%-34s %-10s %-9s %-10.4f %-9s %-9td %-9.3f %-9.0f\n", "teacher (attention)", "-", "-",
              rep.teacher_test_accuracy, "-", rep.teacher_nonzero_params, rep.teacher_latency_ms, rep.teacher_images_per_s);
  for (const auto& v : rep.variants) {
    const std::string layers = detail::join(v.replaced, ",");
    std::printf("%-34s %-10s %-9.3f %-10.4f %+-9.4f %-9td %-9.3f %-9.0f\n", v.name.c_str(), layers.c_str(),
                v.mean_sparsity, v.test_accuracy, v.accuracy_drop, v.nonzero_params, v.latency_ms, v.images_per_s);
  }
  std::printf("\nsparsity ranking (%s, sparsest first):", std::string(to_string(rep.sparsity.metric)).c_str());
  for (index_t l : rep.sparsity.order) std::printf(" %td", l);
  std::printf("\n");
  for (const auto& [mixer, c] : rep.claims)
    std::printf("claim (%s): replacing the sparsest layers cost %.4f, the densest %.4f -> %s; Spearman(sparsity, drop) = %+.3f\n",
                mixer.c_str(), c.sparsest_drop, c.densest_drop, c.holds ? "holds" : "does not hold", c.spearman);
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\nrun folder: %s (report.json, config.json, CSV, SVG, teacher.safetensors); total %s\n", a.out.c_str(),
              clock_str(total).c_str());
  return 0;
}

// ---- train ----------------------------------------------------------------------------------

struct train_args {
  std::string data = data::fashion_mnist_default_dir, out = "teacher.safetensors", config, budget = "small";
  index_t steps = 0, batch = 0;  // 0: the budget's
  double lr = 0;                 // 0: the budget's
  bool augment = false;
  std::uint64_t seed = 0;
  std::string init;              // start from this checkpoint's config and weights
  // A-ViT token halting (docs/halting.md). The A-ViT options given on the command line are
  // listed in `halting_options_given`: they need `halting`.
  bool halting = false;
  halting_spec gate;
  halting_loss_options halting_loss;
  std::vector<std::string> halting_options_given;
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

// params, nonzero_params, stored_params (models/pruning.hpp, docs/report.md).
inline void add_parameter_counts(nlohmann::ordered_json& j, HybridViT<float>& model) {
  const auto c = count_parameters(model);
  j["params"] = c.params;
  j["nonzero_params"] = c.nonzero_params;
  j["stored_params"] = c.stored_params;
}

// {block, widths: [[fwd per head], [bwd per head]]} per mh_lstm block (docs/pruning.md).
inline nlohmann::ordered_json widths_json(const pruning_summary& s) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& [block, w] : s.widths) {
    const std::size_t H = w.size() / 2;
    std::vector<index_t> fwd(w.begin(), w.begin() + static_cast<std::ptrdiff_t>(H)),
        bwd(w.begin() + static_cast<std::ptrdiff_t>(H), w.end());
    out.push_back({{"block", block}, {"widths", {fwd, bwd}}});
  }
  return out;
}

// Retention keys of a halting model's evaluation (docs/report.md); nothing without halting.
inline void add_retention(nlohmann::ordered_json& j, const eval_result& e) {
  if (e.retention.empty()) return;
  j["mean_retention"] = e.mean_retention();
  j["retention_per_layer"] = e.retention;
}

inline int run_train(const train_args& a) {
  const budget b = make_budget(a.budget);
  if (!a.init.empty() && !a.config.empty())
    throw config_error("train: give --config or --init, not both (--init takes the checkpoint's config)");
  std::optional<HybridViT<float>> init;
  if (!a.init.empty()) init.emplace(io::load_checkpoint<float>(a.init));
  vit_config cfg = init ? init->config()
                   : a.config.empty() ? b.teacher
                                      : io::vit_config_from_string(read_text_file(a.config));
  check_halting_args(a, cfg.depth);
  if (a.halting) cfg.halting = a.gate;
  fit_options f = b.teacher_fit;
  if (a.steps > 0) f.steps = a.steps;
  if (a.batch > 0) f.batch = a.batch;
  if (a.lr > 0) f.lr = a.lr;
  if (a.augment) f.augment = true;
  f.seed = a.seed;
  f.halting = a.halting_loss;
  if (f.eval_every == 0) f.eval_every = std::max<index_t>(1, f.steps / 8);
  const auto d = load_splits(a.data, b);
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
  double best = -1;
  const auto r = train_classifier(
      model, d.train, &d.val, f, 0.0, [](const fit_progress& p) { print_progress("train", p); },
      [&](index_t step, const eval_result& e) {
        log_line(detail::concat("  step ", step, ": validation accuracy ", e.accuracy, ", loss ", e.loss,
                                e.retention.empty() ? std::string() : detail::concat(", mean retention ", e.mean_retention())));
        if (e.accuracy > best) {  // best-checkpoint saving, atomically
          best = e.accuracy;
          io::save_checkpoint(model, a.out);
        }
      });
  auto best_model = io::load_checkpoint<float>(a.out);
  const auto test = evaluate(best_model, d.test);
  nlohmann::ordered_json j{{"checkpoint", a.out},       {"best_val_accuracy", best}, {"best_step", r.best_step},
                           {"test_accuracy", test.accuracy}, {"train_seconds", r.seconds},
                           {"images_per_second", r.images_per_second}, {"fit", to_json(f)}};
  if (cfg.halting)
    j["halting"] = {{"gamma", cfg.halting->gamma},
                    {"beta", cfg.halting->beta},
                    {"eps", cfg.halting->eps},
                    {"ponder_weight", f.halting.ponder_weight},
                    {"prior_weight", f.halting.prior_weight},
                    {"target_depth", f.halting.effective_target_depth(cfg.depth)}};
  add_retention(j, test);
  io::write_text_atomically(a.out + ".json", j.dump(2) + "\n");
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// ---- sparsity -------------------------------------------------------------------------------

struct sparsity_args {
  std::string model, data = data::fashion_mnist_default_dir, out = "sparsity";
  index_t count = 1000;
  std::string metric = "k90";
};

inline int run_sparsity(const sparsity_args& a) {
  namespace fs = std::filesystem;
  const auto model = io::load_checkpoint<float>(a.model);
  const auto ds = data::load_fashion_mnist(a.data, "train");
  const auto [train, val] = data::split_tail(ds, 5000);  // calibrate on held-out training images, never test
  const auto ranking = rank_by_sparsity(model, val, a.count, parse_sparsity_metric(a.metric));
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
  std::string mixer = "mh_lstm";       // KIND[:option=value,...]
  std::vector<index_t> layers;         // or chosen by `select`
  std::string select;                  // sparsest | densest
  std::string target = "pre_proj", budget = "small";
  index_t k = 0;                       // 0: default_group_size(depth)
  index_t stage1 = 0, stage2 = -1;     // 0 / -1: the budget's
  bool teacher_forced = false;
  bool mask_guided = false;            // A-ViT teacher: the student follows its token masks
  double prune = 0;                    // > 0: then prune this fraction of the student's LSTM units
  std::uint64_t seed = 0;
};

inline int run_distill(const distill_args& a) {
  const budget b = make_budget(a.budget);
  const mixer_spec spec = student_spec(a.mixer);
  if (a.prune != 0 && !(a.prune > 0 && a.prune < 1))
    throw config_error(detail::concat("distill: --prune is ", a.prune, ", expected a fraction in (0, 1)"));
  if (a.prune > 0 && spec.kind() != "mh_lstm")
    throw config_error("distill: --prune prunes mh_lstm units; the student mixer is " + spec.kind());
  distill_options o = b.distill;
  o.target = parse_distill_target(a.target);
  if (a.stage1 > 0) o.stage1.steps = a.stage1;
  if (a.stage2 >= 0) o.stage2.steps = a.stage2;
  o.teacher_forced = a.teacher_forced;
  o.mask_guided = a.mask_guided;
  o.stage1.seed = a.seed + 1;
  o.stage2.seed = a.seed + 2;
  const auto teacher = io::load_checkpoint<float>(a.teacher);
  if (a.mask_guided && !teacher.config().halting)
    throw config_error("distill: --mask-guided needs an A-ViT teacher; " + a.teacher +
                       " has no halting (train one with `sparsimix train --halting`)");
  if (a.mask_guided && a.teacher_forced)
    throw config_error("distill: --mask-guided and --teacher-forced exclude each other");
  const auto d = load_splits(a.data, b);
  std::vector<index_t> layers = a.layers;
  if (layers.empty()) {
    if (a.select.empty()) throw config_error("distill: give --layers or --select sparsest|densest");
    const auto ranking = rank_by_sparsity(teacher, d.val, b.calibration);
    const index_t k = a.k > 0 ? a.k : default_group_size(teacher.depth());
    layers = select_layers(ranking.order, parse_layer_selection(a.select), k);
  }
  Rng rng(a.seed);
  auto student = make_student(teacher, layers, spec, rng);
  const auto r = distill(teacher, student, layers, d.train, nullptr, o,
                         [](int stage, const fit_progress& p) { print_progress(stage == 1 ? "stage 1" : "stage 2", p); });
  std::optional<prune_result> pruned;
  prune_options po;
  if (a.prune > 0) {  // FAR's second half on the distilled student (docs/pruning.md)
    po.regularise = b.prune_regularise;
    po.finetune = b.prune_finetune;
    po.regularise.seed = a.seed + 3;
    po.finetune.seed = a.seed + 4;
    po.select = {a.prune, 0};
    pruned = prune(student, d.train, &d.val, po, [](const std::string& phase, const fit_progress& p) {
      print_progress(phase.c_str(), p);
    });
  }
  io::save_checkpoint(student, a.out);
  const auto t_test = evaluate(teacher, d.test), s_test = evaluate(student, d.test);
  const double t_acc = t_test.accuracy, s_acc = s_test.accuracy;
  // Validation numbers too: choosing a distillation budget must not look at the test set.
  const double t_val = evaluate(teacher, d.val).accuracy, s_val = evaluate(student, d.val).accuracy;
  nlohmann::ordered_json j{{"student", a.out},          {"mixer", spec.kind()},    {"replaced", layers},
                           {"teacher_val_accuracy", t_val}, {"val_accuracy", s_val},
                           {"teacher_test_accuracy", t_acc}, {"test_accuracy", s_acc}, {"accuracy_drop", t_acc - s_acc},
                           {"stage1_seconds", r.stage1.seconds}, {"stage2_seconds", r.stage2.seconds}};
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
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// ---- prune ----------------------------------------------------------------------------------

struct prune_args {
  std::string model, data = data::fashion_mnist_default_dir, out = "pruned.safetensors", budget = "small";
  double weight = 5e-5;
  double fraction = -1, threshold = -1;  // neither given: fraction 0.5
  index_t steps = -1, finetune_steps = -1;  // -1: the budget's
  double lr = 0;                            // 0: the budget's (both phases scale with it)
  std::uint64_t seed = 0;
};

inline int run_prune(const prune_args& a) {
  const budget b = make_budget(a.budget);
  if (a.fraction >= 0 && a.threshold >= 0) throw config_error("prune: give --fraction or --threshold, not both");
  if (a.fraction >= 0 && !(a.fraction > 0 && a.fraction < 1))
    throw config_error(detail::concat("prune: --fraction is ", a.fraction, ", expected a value in (0, 1)"));
  if (!std::isfinite(a.weight) || a.weight < 0)
    throw config_error(detail::concat("prune: --weight is ", a.weight, ", expected a finite value >= 0"));
  if (!std::isfinite(a.lr) || a.lr < 0) throw config_error(detail::concat("prune: --lr is ", a.lr, ", expected > 0"));
  prune_options o;
  o.weight = a.weight;
  o.regularise = b.prune_regularise;
  o.finetune = b.prune_finetune;
  if (a.steps >= 0) o.regularise.steps = a.steps;
  if (a.finetune_steps >= 0) o.finetune.steps = a.finetune_steps;
  if (a.lr > 0) {
    o.finetune.lr *= a.lr / o.regularise.lr;
    o.regularise.lr = a.lr;
  }
  o.regularise.seed = a.seed + 1;
  o.finetune.seed = a.seed + 2;
  o.select = a.threshold >= 0 ? unit_selection{-1, a.threshold} : unit_selection{a.fraction >= 0 ? a.fraction : 0.5, 0};
  auto model = io::load_checkpoint<float>(a.model);
  if (prunable_blocks(model).empty())
    throw config_error("prune: " + a.model + " has no mh_lstm block (distil one first: `sparsimix distill --mixer mh_lstm`)");
  const auto d = load_splits(a.data, b);
  const double val_before = evaluate(model, d.val).accuracy;
  const auto r = prune(model, d.train, &d.val, o, [](const std::string& phase, const fit_progress& p) {
    print_progress(phase.c_str(), p);
  });
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
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

// ---- eval -----------------------------------------------------------------------------------

struct eval_args {
  std::string model, data = data::fashion_mnist_default_dir;
  index_t limit = 0;
};

inline int run_eval(const eval_args& a) {
  auto model = io::load_checkpoint<float>(a.model);
  const auto test = data::load_fashion_mnist(a.data, "test", a.limit);
  const auto r = evaluate(model, test);
  nlohmann::ordered_json j{{"model", a.model},
                           {"test_accuracy", r.accuracy},
                           {"test_loss", r.loss},
                           {"images", r.count}};
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

// ---- retention ------------------------------------------------------------------------------

struct retention_args {
  std::string model, data = data::fashion_mnist_default_dir, out = "retention";
  index_t count = 1000, images = 8;
};

// `retention`: how an A-ViT model halts on test images: retention.json, retention.svg and
// halting_depth.svg (the first `images` test images, each patch coloured by its depth).
inline int run_retention(const retention_args& a) {
  namespace fs = std::filesystem;
  if (a.count < 1) throw config_error(detail::concat("retention: --count is ", a.count, ", expected >= 1"));
  if (a.images < 0 || a.images > 64)
    throw config_error(detail::concat("retention: --images is ", a.images, ", expected 0..64"));
  const auto model = io::load_checkpoint<float>(a.model);
  if (!model.config().halting)
    throw config_error(a.model + ": the model has no halting (train one with `sparsimix train --halting`)");
  const auto test = data::load_fashion_mnist(a.data, "test", std::max(a.count, a.images));
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

// ---- inspect, infer, grad, init -----------------------------------------------------------

// `inspect`: what a safetensors file holds (names, dtypes, shapes, metadata).
inline int run_inspect(const std::string& path) {
  const auto f = io::safetensors_file::load(path);
  for (const auto& [k, v] : f.metadata()) std::printf("metadata %s = %s\n", k.c_str(), v.c_str());
  for (const auto& r : f.records())
    std::printf("%-48s %-5s %s\n", r.name.c_str(), io::dtype_name(r.type), r.shape.str().c_str());
  return 0;
}

// The F32 tensor `images` [B, in_chans, img, img] of an input file, finite.
inline Tensor<float> read_images(const io::safetensors_file& in, const vit_config& c, const std::string& path) {
  auto images = in.get<float>("images", {-1, c.in_chans, c.img_size, c.img_size});
  check_finite<float>(path.c_str(), "images", images.view());
  return images;
}

struct infer_args {
  std::string model, input, out;
  bool capture = false;
  io::load_options load;
};

// `infer`: logits (and with capture, block outputs and attention maps) of a checkpoint.
inline int run_infer(const infer_args& a) {
  auto model = io::load_checkpoint<float>(a.model, a.load);
  const auto in = io::safetensors_file::load(a.input);
  const auto& c = model.config();
  const auto images = read_images(in, c, a.input);
  Tensor<float> logits(Shape{images.size(0), c.num_classes});
  vit_capture<float> cap;
  cap.blocks = cap.maps = a.capture;
  model.forward(images.view(), logits.view(), a.capture ? &cap : nullptr);
  io::safetensors_writer w;
  w.add("logits", logits);
  if (a.capture) {
    for (index_t i = 0; i < model.depth(); ++i) {
      const auto k = static_cast<std::size_t>(i);
      w.add("blocks." + std::to_string(i) + ".out", cap.block_out[k]);
      if (cap.attn_map[k].numel()) w.add("blocks." + std::to_string(i) + ".attn_map", cap.attn_map[k]);
    }
    if (c.halting) w.add("halting.depth", model.halting().depth(), io::dtype::i64);
  }
  w.write(a.out);
  return 0;
}

struct grad_args {
  std::string model, input, out;
  io::load_options load;
};

// `grad`: mean cross-entropy of the logits and d loss / d parameter, in PyTorch's layout.
inline int run_grad(const grad_args& a) {
  auto model = io::load_checkpoint<float>(a.model, a.load);
  const auto in = io::safetensors_file::load(a.input);
  const auto& c = model.config();
  const auto images = read_images(in, c, a.input);
  const auto labels = in.get<std::int64_t>("labels", {images.size(0)});
  std::vector<index_t> y(static_cast<std::size_t>(labels.numel()));
  for (index_t i = 0; i < labels.numel(); ++i) {
    if (labels.data()[i] < 0 || labels.data()[i] >= c.num_classes)
      throw format_error(detail::concat(a.input, ": labels[", i, "] is ", labels.data()[i], ", expected 0..",
                                        c.num_classes - 1));
    y[static_cast<std::size_t>(i)] = static_cast<index_t>(labels.data()[i]);
  }
  model.zero_grad();
  Tape<float> tape;
  const Var loss = tape.cross_entropy(model.forward(tape, images.view()), y);
  tape.backward(loss);
  io::safetensors_writer w;
  w.add("loss", Tensor<float>(Shape{1}, tape.item(loss)));
  for (const auto& [name, g] : model.state_dict(/*grads=*/true)) w.add("grad." + name, g);
  w.write(a.out);
  return 0;
}

struct init_args {
  std::string config, out;
  std::uint64_t seed = 0;
};

// `init`: a randomly initialised model from a config JSON file, written as a checkpoint.
inline int run_init(const init_args& a) {
  HybridViT<float> model(io::vit_config_from_string(read_text_file(a.config)));
  Rng rng(a.seed);
  model.init(rng);
  io::save_checkpoint(model, a.out);
  std::printf("%s: %td parameters\n", a.out.c_str(), model.num_parameters());
  return 0;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::cli
