// `sparsimix demo` and `sparsimix demo --avit`: the multi-run commands, each writing a run
// folder. A run folder says which run it holds: the layer-sparsity demo builds the new run
// in OUT.partial and swaps it in only when its report is written (a killed run leaves the old
// folder as it was, and a rerun with the same settings continues from OUT.partial); the A-ViT
// sweep resumes from its folder, so it refuses a folder that holds a sweep with other settings
// instead of mixing the two.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../experiment/halting_report.hpp"
#include "../experiment/report.hpp"
#include "../io/checkpoint.hpp"
#include "support.hpp"

namespace sparsimix::cli {
SPARSIMIX_ABI_BEGIN

struct demo_args {
  std::string data = data::fashion_mnist_default_dir, out = "runs/demo", budget = "small";
  std::uint64_t seed = 0;
  bool avit = false;  // the teacher-sparsity sweep instead of the layer-sparsity experiment
  index_t checkpoint_every = 200;  // each training phase's state in the run folder every N steps
  bool keep_students = false;  // the layer-sparsity demo leaves student_NAME.safetensors in OUT
  index_t teacher_cache_mb = 4096;  // experiment_options::teacher_cache_bytes, in MiB
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

// "runs/demo/" -> "runs/demo": the run folder's own name (OUT.partial must sit beside it).
inline std::filesystem::path run_folder_path(const std::string& out) {
  std::filesystem::path p = std::filesystem::path(out).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  if (p.empty() || p == "." || p == "..")
    throw config_error("demo: --out '" + out + "' names no folder of its own (e.g. runs/demo)");
  return p;
}

// The first top-level key whose value differs between two run configs, ignoring the keys
// that do not change the numbers ("rerun", "threads"); empty when they agree.
inline std::string first_config_difference(const nlohmann::json& a, const nlohmann::json& b) {
  std::set<std::string> keys;
  for (const auto& j : {a, b})
    for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
  for (const auto& k : keys) {
    if (k == "rerun" || k == "threads") continue;
    if (!a.contains(k) || !b.contains(k) || a.at(k) != b.at(k)) return k;
  }
  return {};
}

// A resumable run folder may only be continued by a run of the same settings: throws
// config_error when `out`'s config.json (if any) is not JSON or differs from `config` in a key
// other than "rerun", "threads" and `free` (keys a rerun may change, e.g. more seeds).
inline void check_resumable_folder(const std::string& command, const std::string& what, const std::string& out,
                                   const nlohmann::ordered_json& config, const std::vector<std::string>& free = {}) {
  const std::filesystem::path path = std::filesystem::path(out) / "config.json";
  if (!std::filesystem::exists(path)) return;
  nlohmann::json old;
  try {
    old = nlohmann::json::parse(read_text_file(path.string(), "run config"));
  } catch (const nlohmann::json::exception&) {
    throw config_error(command + ": " + path.string() + " is not valid JSON; give another --out or remove the folder");
  }
  const auto mine = nlohmann::json::parse(config.dump());
  for (const auto& k : free)
    if (mine.contains(k)) old[k] = mine[k];
  if (const auto k = first_config_difference(old, mine); !k.empty())
    throw config_error(command + ": '" + out + "' holds " + what + " with other settings ('" + k +
                       "' differs in its config.json); give another --out or remove the folder");
}

// `demo --avit`: the A-ViT teacher-sparsity sweep (experiment/avit_sweep.hpp) into a run folder
// it can resume from: config.json, report.json, levels.csv, gap_vs_retention.svg, retention.svg,
// halting_depth.svg (the sparsest teacher), the teachers' checkpoints and students.jsonl.
inline int run_avit_demo(const demo_args& a) {
  namespace fs = std::filesystem;
  const budget b = make_budget(a.budget);
  const auto t0 = std::chrono::steady_clock::now();
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
  checked_at_least("demo", "--checkpoint-every", a.checkpoint_every, 0);
  o.checkpoint_every = a.checkpoint_every;  // not in config.json: it changes no number
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
  // Resuming reuses the folder's teachers and students: only a sweep with the same settings.
  const fs::path config_path = fs::path(a.out) / "config.json";
  check_resumable_folder("demo --avit", "a sweep", a.out, config);
  io::require_output_folder(a.out, "--out");
  const auto d = load_demo_data(a, b);
  fs::create_directories(a.out);
  // The report of a finished sweep stays only until this run rewrites it: the same settings.
  io::write_text_atomically(config_path.string(), config.dump(2) + "\n");

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
  const fs::path out = run_folder_path(a.out);
  const fs::path work = out.string() + ".partial", previous = out.string() + ".previous";
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw io_error("demo: --out '" + a.out + "' exists and is not a folder");
  checked_at_least("demo", "--checkpoint-every", a.checkpoint_every, 0);
  checked_at_least("demo", "--teacher-cache-mb", a.teacher_cache_mb, 0);
  io::require_output_folder(work.string(), "--out");
  const auto d = load_demo_data(a, b);
  nlohmann::ordered_json config = demo_config("demo", a, b);
  config["distill"] = to_json(b.distill);
  config["calibration_images"] = b.calibration;
  config["validation_images"] = b.val_size;
  config["test_images"] = d.test.size();  // what `sparsimix eval --limit` needs to measure a kept student again
  config["rerun"] = detail::concat("sparsimix demo --budget ", to_string(b.size), " --seed ", a.seed, " --data ", a.data);
  // A killed run's OUT.partial: continued when it holds a run of these settings (its finished
  // teacher and students are reused, the phase under way resumes from its state file),
  // cleared otherwise.
  bool resuming = fs::exists(work / "config.json", ec);
  if (resuming) {
    try {
      check_resumable_folder("demo", "a run", work.string(), config);
    } catch (const config_error&) {
      resuming = false;
    }
  }
  if (resuming) {
    log_line("demo: continuing the unfinished run in " + work.string());
  } else {
    fs::remove_all(work, ec);
    fs::create_directories(work);
    io::write_text_atomically((work / "config.json").string(), config.dump(2) + "\n");
  }

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
  eo.run_dir = work.string();  // teacher.safetensors stays; the students' files go before the swap
                              // unless --keep-students
  eo.checkpoint_every = a.checkpoint_every;
  eo.teacher_cache_bytes = static_cast<std::size_t>(a.teacher_cache_mb) << 20;  // not in config.json: no number changes
  experiment_hooks<float> hooks;
  hooks.log = log_line;
  hooks.progress = print_progress;
  const auto rep = run_experiment(d.train, d.val, d.test, eo, hooks);
  write_report(rep, work.string());
  for (const auto& entry : fs::directory_iterator(work)) {
    const std::string name = entry.path().filename().string();
    if (name == "pieces.jsonl" || (!a.keep_students && name.rfind("student_", 0) == 0)) fs::remove(entry.path(), ec);
  }
  if (a.keep_students) {
    // A variant that repeats an earlier one's layers (small depths) reused its student: one
    // file per variant all the same, so every name in report.json has its checkpoint.
    for (std::size_t i = 0; i < rep.variants.size(); ++i) {
      const auto& v = rep.variants[i];
      const fs::path file = work / detail::student_file(v.name);
      if (fs::exists(file, ec)) continue;
      for (std::size_t j = 0; j < i; ++j) {
        const auto& u = rep.variants[j];
        if (u.mixer != v.mixer || u.replaced != v.replaced || u.pruned != v.pruned) continue;
        fs::copy_file(work / detail::student_file(u.name), file, ec);
        if (ec) throw io_error(detail::concat("demo: cannot copy ", u.name, "'s student to '", file.string(), "': ", ec.message()));
        break;
      }
    }
  }
  // The complete run replaces the old folder (if any) by two renames.
  fs::remove_all(previous, ec);
  if (fs::exists(out, ec)) {
    fs::rename(out, previous, ec);
    if (ec) throw io_error("demo: cannot move the old run '" + out.string() + "' aside: " + ec.message());
  }
  fs::rename(work, out, ec);
  if (ec) throw io_error("demo: cannot rename '" + work.string() + "' to '" + out.string() + "': " + ec.message());
  fs::remove_all(previous, ec);

  // speed-up: allowed by the multiply-adds / measured in images/s (speedup_of).
  std::printf("\n%-34s %-12s %-9s %-10s %-9s %-9s %-9s %-9s %-9s\n", "model", "replaced", "sparsity", "test acc", "drop",
              "nonzero", "ms/image", "images/s", "speed-up");
  std::printf("%-34s %-12s %-9s %-10.4f %-9s %-9td %-9.3f %-9.0f %-9s\n", "teacher (attention)", "-", "-",
              rep.teacher_test_accuracy, "-", rep.teacher_nonzero_params, rep.teacher_latency_ms, rep.teacher_images_per_s,
              "1 / 1");
  for (const auto& v : rep.variants) {
    const std::string layers = detail::join(v.replaced, ",");
    const auto up = speedup_of(rep, v);
    std::printf("%-34s %-12s %-9.3f %-10.4f %+-9.4f %-9td %-9.3f %-9.0f %.2f / %.2f\n", v.name.c_str(), layers.c_str(),
                v.mean_sparsity, v.test_accuracy, v.accuracy_drop, v.nonzero_params, v.latency_ms, v.images_per_s, up.allowed,
                up.measured);
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

SPARSIMIX_ABI_END
}  // namespace sparsimix::cli
