// The teacher-sparsity sweep of "From Sparsity to Simplicity" (2026; docs/method.md 2.4): a dense
// teacher, A-ViT teachers of increasing sparsity fine-tuned from it, and for each teacher the
// same layers distilled into each student mixer (mask-guided for A-ViT teachers) with several
// seeds. The claim under test: the student-teacher gap falls as teacher sparsity grows.
// Replaced layers stay fixed across teachers, so only the teacher's sparsity changes.
// Results go to `run_dir` as they are made (teachers as checkpoints, students as JSON lines),
// and a rerun into the same folder resumes from them.
#pragma once
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../distill/distill.hpp"
#include "../distill/selection.hpp"
#include "../io/atomic_file.hpp"
#include "../io/checkpoint.hpp"
#include "../io/json_lines.hpp"
#include "experiment.hpp"
#include "statistics.hpp"
#include "svg.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// One A-ViT teacher of the sweep: its gate and training losses; `knob` is the value of the
// knob that orders the levels (reported; docs/halting.md says which way is sparser).
struct avit_level_spec {
  std::string name;           // the level's label in reports and file names ("beta30")
  double knob = 0;            // the knob's value at this level
  halting_spec gate;          // the A-ViT gate of the teacher's halting
  halting_loss_options loss;  // the ponder and prior loss weights of its fine-tune
};

// The teacher-sparsity sweep's settings: teachers, levels, students, replaced layers, timing.
struct avit_sweep_options {
  vit_config teacher;               // the dense teacher (mixers set to attention)
  fit_options teacher_fit;          // its training
  fit_options avit_fit;             // each A-ViT teacher's fine-tune from the dense one
  distill_options distill;          // per student (mask_guided is set for A-ViT teachers)
  std::string knob = "beta";        // what avit_level_spec::knob means
  std::vector<avit_level_spec> levels;  // the A-ViT teachers, in knob order
  std::vector<mixer_spec> students;  // default: default_students()
  std::vector<index_t> replaced;     // empty: the dense teacher's sparsest depth/3 layers
  index_t calibration = 1000;        // validation images for the sparsity ranking
  int seeds = 2;                     // distillation seeds per (teacher, mixer)
  int latency_runs = 30;             // batch-1 forwards timed per teacher
  index_t throughput_batch = 64;     // batch of the throughput measurement
  std::uint64_t seed = 0;            // the dense teacher's initialisation and the students' seeds
  // Every training phase (a teacher, a student's stage) keeps its whole state in the run folder
  // every this many steps (0: never), so a killed sweep continues mid-phase, bit for bit; a
  // finished phase's state file is removed. It changes no number, so no result depends on it.
  index_t checkpoint_every = 0;
};

// One distilled student of the sweep (also one JSON line in the run folder).
struct avit_student_result {
  std::string mixer;                                      // the student mixer's kind
  std::vector<index_t> replaced;                          // the replaced layers, ascending
  std::uint64_t seed = 0;                                 // its distillation seed
  double test_accuracy = 0, val_accuracy = 0, gap = 0;    // accuracies; gap = teacher - student (test)
  double mean_retention = 1;                              // the student's own, after stage 2
};

// One teacher of the sweep (the dense one or an A-ViT level) and its students.
struct avit_level_result {
  std::string name;               // "dense" or the level's name
  bool halting = false;           // false for the dense teacher
  double knob = 0;                // the level's knob (NaN for the dense teacher)
  double mean_retention = 1;      // mean of `retention` over blocks
  std::vector<double> retention;  // per block (all 1 for the dense teacher)
  // The teacher's test and validation accuracy, batch-1 latency (ms) and batched images/s.
  double teacher_test_accuracy = 0, teacher_val_accuracy = 0, latency_ms = 0, images_per_s = 0;
  std::vector<avit_student_result> students;  // every seed of every student mixer
};

// Per student mixer, the sweep's claim: does the gap fall as the teacher gets sparser?
struct avit_claim {
  double spearman = 0;        // Spearman(teacher sparsity = 1 - mean retention, mean gap) over levels
  std::optional<bool> holds;  // empty: cannot tell (the seeds' spread exceeds the trend)
  std::string note;           // the verdict in words, with the numbers behind it
};

// Everything the sweep measured: the layers replaced, each level with its students, the claims.
struct avit_report {
  std::vector<index_t> replaced;             // the same layers for every teacher
  std::vector<avit_level_result> levels;     // the dense teacher first, then the A-ViT levels
  std::map<std::string, avit_claim> claims;  // per student kind
};

// Callbacks the sweep makes along the way (each may be empty).
template <class T = float>
struct avit_sweep_hooks {
  std::function<void(const std::string&)> log;                                  // one line of news
  std::function<void(const std::string& phase, const fit_progress&)> progress;  // training progress
};

// The claim for one mixer: the gap should fall as the teacher gets sparser. "Cannot tell"
// when the change of the mean gap from the densest to the sparsest teacher is within the
// largest standard deviation over seeds of any level.
inline avit_claim teacher_sparsity_claim(const std::vector<avit_level_result>& levels, const std::string& mixer) {
  avit_claim c;
  std::vector<double> xs, ys;
  double spread = 0;
  for (const auto& l : levels) {
    std::vector<double> gaps;
    for (const auto& s : l.students)
      if (s.mixer == mixer) gaps.push_back(s.gap);
    if (gaps.empty()) continue;
    const auto [m, sd] = mean_sd(gaps);
    xs.push_back(1.0 - l.mean_retention);
    ys.push_back(m);
    spread = std::max(spread, sd);
  }
  if (xs.size() < 2) {
    c.note = "fewer than two teachers with students: nothing to compare";
    return c;
  }
  c.spearman = spearman(xs, ys);
  const auto lo = std::min_element(xs.begin(), xs.end()) - xs.begin();
  const auto hi = std::max_element(xs.begin(), xs.end()) - xs.begin();
  const double trend = ys[static_cast<std::size_t>(hi)] - ys[static_cast<std::size_t>(lo)];
  if (std::abs(trend) <= spread) {
    c.note = detail::concat("cannot tell: the gap moves by ", trend, " from the densest to the sparsest teacher, ",
                            "within the seeds' largest standard deviation ", spread);
    return c;
  }
  c.holds = c.spearman < 0 && trend < 0;
  c.note = detail::concat(*c.holds ? "holds" : "fails", ": the gap moves by ", trend,
                          " from the densest to the sparsest teacher (seeds' largest standard deviation ", spread,
                          "), Spearman ", c.spearman, " over ", xs.size(), " teachers");
  return c;
}

// One student result as a JSON line of the run folder.
inline nlohmann::ordered_json to_json(const avit_student_result& s) {
  return {{"mixer", s.mixer},       {"replaced", s.replaced},     {"seed", s.seed},
          {"test_accuracy", s.test_accuracy}, {"val_accuracy", s.val_accuracy}, {"gap", s.gap},
          {"mean_retention", s.mean_retention}};
}
// Reads a student result back from its JSON line (the sweep's resume).
inline avit_student_result avit_student_from_json(const nlohmann::json& j) {
  avit_student_result s;
  s.mixer = j.at("mixer").get<std::string>();
  s.replaced = j.at("replaced").get<std::vector<index_t>>();
  s.seed = j.at("seed").get<std::uint64_t>();
  s.test_accuracy = j.at("test_accuracy").get<double>();
  s.val_accuracy = j.at("val_accuracy").get<double>();
  s.gap = j.at("gap").get<double>();
  s.mean_retention = j.at("mean_retention").get<double>();
  return s;
}

// Runs the sweep; teachers and finished students in `run_dir` are reused.
template <class T = float>
avit_report run_avit_sweep(const data::image_dataset& train, const data::image_dataset& val,
                           const data::image_dataset& test, avit_sweep_options opt, const std::string& run_dir,
                           const avit_sweep_hooks<T>& hooks = {}) {
  namespace fs = std::filesystem;
  auto log = [&](const std::string& s) {
    if (hooks.log) hooks.log(s);
  };
  auto progress = [&](const std::string& phase) {
    return [&hooks, phase](const fit_progress& p) {
      if (hooks.progress) hooks.progress(phase, p);
    };
  };
  if (opt.levels.empty()) throw config_error("run_avit_sweep: no A-ViT level to train");
  if (opt.seeds < 1) throw config_error(detail::concat("run_avit_sweep: seeds is ", opt.seeds, ", expected >= 1"));
  if (opt.students.empty()) opt.students = default_students();
  fs::create_directories(run_dir);
  const auto path = [&](const std::string& f) { return (fs::path(run_dir) / f).string(); };
  avit_report rep;
  // The state file of a phase writing `file` (fit_state.hpp), when the sweep keeps states.
  const auto resumable = [&](fit_options& f, const std::string& file) {
    if (opt.checkpoint_every > 0) f.checkpoint = {path(file + ".state"), opt.checkpoint_every, true};
  };
  const auto remove_state = [](const fit_options& f) {
    std::error_code ignored;
    if (!f.checkpoint.path.empty()) fs::remove(f.checkpoint.path, ignored);
  };

  // ---- the dense teacher ---------------------------------------------------------------
  opt.teacher.mixers.assign(static_cast<std::size_t>(opt.teacher.depth), mixer_spec{});
  opt.teacher.halting.reset();
  auto trained = [&](const std::string& file, const vit_config& cfg, fit_options fit, const HybridViT<T>* from,
                     const std::string& phase) {
    if (fs::exists(path(file))) {
      auto m = io::load_checkpoint<T>(path(file));
      if (io::to_json(m.config()) == io::to_json(cfg)) {
        log(detail::concat(phase, ": reusing ", path(file)));
        return m;
      }
      log(detail::concat(phase, ": ", path(file), " holds another model; training anew"));
    }
    HybridViT<T> m(cfg);
    Rng rng(opt.seed);
    m.init(rng);
    if (from) {  // halting adds no parameters: every weight comes from the dense teacher
      HybridViT<T> source = *from;  // state_dict() is not const
      named_tensors<T> src = source.state_dict();
      std::map<std::string, const Tensor<T>*> by_name;
      for (const auto& [name, t] : src) by_name[name] = &t;
      m.load_state_dict([&](const std::string& name) { return *by_name.at(name); });
    }
    resumable(fit, file);
    const bool resuming = !fit.checkpoint.path.empty() && fs::exists(fit.checkpoint.path);
    log(detail::concat(phase, ": training ", fit.steps, " steps of batch ", fit.batch,
                       resuming ? " (resuming from " + fit.checkpoint.path + ")" : std::string()));
    train_classifier(m, train, &val, fit, 0.0, progress(phase));
    io::save_checkpoint(m, path(file));
    remove_state(fit);
    return m;
  };
  const HybridViT<T> dense = trained("teacher_dense.safetensors", opt.teacher, opt.teacher_fit, nullptr, "dense teacher");

  // ---- the replaced layers, fixed for every teacher ------------------------------------
  rep.replaced = opt.replaced;
  if (rep.replaced.empty()) {
    const auto ranking = rank_by_sparsity(dense, val, opt.calibration);
    rep.replaced = select_layers(ranking.order, layer_selection::sparsest, default_group_size(dense.depth()));
    std::sort(rep.replaced.begin(), rep.replaced.end());
  }
  log(detail::concat("replacing layers [", detail::join(rep.replaced, ", "), "] of every teacher"));

  // ---- students, resumable: one JSON line per finished student ---------------------------
  std::map<std::string, avit_student_result> done;
  const std::string done_file = path("students.jsonl");
  io::read_json_lines(done_file, [&](const nlohmann::json& j) {
    done[j.at("key").get<std::string>()] = avit_student_from_json(j.at("result"));
  });
  auto run_level = [&](const HybridViT<T>& teacher, avit_level_result& lv) {
    const auto te = evaluate(teacher, test), ve = evaluate(teacher, val);
    lv.teacher_test_accuracy = te.accuracy;
    lv.teacher_val_accuracy = ve.accuracy;
    lv.halting = teacher.config().halting.has_value();
    lv.retention = te.retention.empty() ? std::vector<double>(static_cast<std::size_t>(teacher.depth()), 1.0) : te.retention;
    lv.mean_retention = te.mean_retention();
    lv.latency_ms = measure_latency_ms(teacher, test, opt.latency_runs);
    lv.images_per_s = measure_throughput(teacher, test, opt.throughput_batch);
    log(detail::concat(lv.name, ": teacher test accuracy ", lv.teacher_test_accuracy, ", mean retention ",
                       lv.mean_retention, ", ", lv.images_per_s, " images/s at batch ", opt.throughput_batch));
    for (const auto& spec : opt.students)
      for (int s = 0; s < opt.seeds; ++s) {
        const std::string key = detail::concat(lv.name, "/", spec.kind(), "/", s);
        if (auto it = done.find(key); it != done.end()) {
          log(detail::concat(key, ": reusing its result"));
          lv.students.push_back(it->second);
          continue;
        }
        distill_options d = opt.distill;
        d.mask_guided = lv.halting;
        const auto seed = opt.seed + 1000 * static_cast<std::uint64_t>(s + 1);
        d.stage1.seed = seed + 1;
        d.stage2.seed = seed + 2;
        std::string file = key;  // "beta5/mh_lstm/0" -> "student_beta5_mh_lstm_0"
        std::replace(file.begin(), file.end(), '/', '_');
        resumable(d.stage1, "student_" + file + ".stage1");
        resumable(d.stage2, "student_" + file + ".stage2");
        Rng rng(seed);
        HybridViT<T> student = make_student(teacher, rep.replaced, spec, rng);
        distill(teacher, student, rep.replaced, train, nullptr, d, [&](int stage, const fit_progress& p) {
          if (hooks.progress) hooks.progress(key + (stage == 1 ? " stage 1" : " stage 2"), p);
        });
        avit_student_result r;
        r.mixer = spec.kind();
        r.replaced = rep.replaced;
        r.seed = static_cast<std::uint64_t>(s);
        const auto se = evaluate(student, test);
        r.test_accuracy = se.accuracy;
        r.val_accuracy = evaluate(student, val).accuracy;
        r.gap = lv.teacher_test_accuracy - r.test_accuracy;
        r.mean_retention = se.mean_retention();
        log(detail::concat(key, ": test accuracy ", r.test_accuracy, ", gap ", r.gap));
        lv.students.push_back(r);
        done[key] = r;
        io::append_json_line(done_file, {{"key", key}, {"result", to_json(r)}});
        remove_state(d.stage1);
        remove_state(d.stage2);
      }
  };

  avit_level_result dense_level;
  dense_level.name = "dense";
  dense_level.knob = std::nan("");
  run_level(dense, dense_level);
  rep.levels.push_back(dense_level);
  for (std::size_t i = 0; i < opt.levels.size(); ++i) {
    const auto& spec = opt.levels[i];
    vit_config cfg = opt.teacher;
    cfg.halting = spec.gate;
    fit_options f = opt.avit_fit;
    f.halting = spec.loss;
    const HybridViT<T> teacher = trained("teacher_" + spec.name + ".safetensors", cfg, f, &dense, spec.name + " teacher");
    avit_level_result lv;
    lv.name = spec.name;
    lv.knob = spec.knob;
    run_level(teacher, lv);
    rep.levels.push_back(lv);
  }
  for (const auto& spec : opt.students) rep.claims[spec.kind()] = teacher_sparsity_claim(rep.levels, spec.kind());
  return rep;
}

// The sweep's part of report.json: the levels with their students, and the claims.
inline nlohmann::ordered_json to_json(const avit_report& r, const std::string& knob) {
  nlohmann::ordered_json levels = nlohmann::ordered_json::array();
  for (const auto& l : r.levels) {
    nlohmann::ordered_json students = nlohmann::ordered_json::array();
    for (const auto& s : l.students) students.push_back(to_json(s));
    levels.push_back({{"name", l.name},
                      {"knob", l.halting ? nlohmann::ordered_json(l.knob) : nlohmann::ordered_json(nullptr)},
                      {"mean_retention", l.mean_retention},
                      {"retention_per_layer", l.retention},
                      {"teacher_test_accuracy", l.teacher_test_accuracy},
                      {"teacher_val_accuracy", l.teacher_val_accuracy},
                      {"latency_ms", l.latency_ms},
                      {"images_per_s", l.images_per_s},
                      {"students", students}});
  }
  nlohmann::ordered_json claims;
  for (const auto& [mixer, c] : r.claims)
    claims[mixer] = {{"spearman", c.spearman},
                     {"holds", c.holds ? nlohmann::ordered_json(*c.holds) : nlohmann::ordered_json(nullptr)},
                     {"note", c.note}};
  return {{"avit", {{"knob", knob}, {"replaced", r.replaced}, {"levels", levels}}},
          {"claims", {{"teacher_sparsity_vs_gap", claims}}}};
}

// Gap (teacher - student test accuracy) against the teacher's mean retention, one series per
// mixer: the mean over seeds with a bar of one standard deviation.
inline std::string gap_vs_retention_svg(const avit_report& r) {
  const int W = 640, H = 380, L = 70, R = 210, T = 40, B = 50;  // R: room for the legend
  std::vector<std::string> mixers;
  for (const auto& [m, c] : r.claims) mixers.push_back(m);
  struct point { double x, y, sd; };
  std::map<std::string, std::vector<point>> pts;
  double ymin = 0, ymax = 0, xmin = 1, xmax = 1;
  for (const auto& l : r.levels)
    for (const auto& m : mixers) {
      std::vector<double> gaps;
      for (const auto& s : l.students)
        if (s.mixer == m) gaps.push_back(s.gap);
      if (gaps.empty()) continue;
      const auto [mean, sd] = mean_sd(gaps);
      pts[m].push_back({l.mean_retention, mean, sd});
      ymin = std::min(ymin, mean - sd), ymax = std::max(ymax, mean + sd);
      xmin = std::min(xmin, l.mean_retention), xmax = std::max(xmax, l.mean_retention);
    }
  const double xpad = std::max(0.02, (xmax - xmin) * 0.08), ypad = std::max(1e-3, (ymax - ymin) * 0.1);
  xmin -= xpad, xmax += xpad, ymin -= ypad, ymax += ypad;
  const detail::scatter_frame f{W, H, L, R, T, B, xmin, xmax, ymin, ymax};
  auto px = [&](double x) { return f.px(x); };
  auto py = [&](double y) { return f.py(y); };
  const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n";
  s << "<text x='10' y='22' font-size='15'>Student-teacher gap against teacher retention (mean, +-1 sd over seeds)</text>\n";
  f.draw(s, "teacher mean retention (1 = dense)", "gap (teacher - student test accuracy)", 2, 3);
  s << "<line x1='" << L << "' y1='" << py(0) << "' x2='" << W - R << "' y2='" << py(0)
    << "' stroke='#999' stroke-dasharray='4 3'/>\n";
  int series = 0;
  for (const auto& m : mixers) {
    const char* col = colours[series % 4];
    auto& p = pts[m];
    std::sort(p.begin(), p.end(), [](const point& a, const point& b) { return a.x < b.x; });
    s << "<polyline fill='none' stroke='" << col << "' stroke-width='1.5' points='";
    for (const auto& q : p) s << px(q.x) << "," << py(q.y) << " ";
    s << "'/>";
    for (const auto& q : p)
      s << "<line x1='" << px(q.x) << "' y1='" << py(q.y - q.sd) << "' x2='" << px(q.x) << "' y2='" << py(q.y + q.sd)
        << "' stroke='" << col << "'/><circle cx='" << px(q.x) << "' cy='" << py(q.y) << "' r='4' fill='" << col
        << "'/>";
    const auto& c = r.claims.at(m);
    s << "<text x='" << W - R + 10 << "' y='" << T + 16 * series + 10 << "' fill='" << col << "'>" << detail::svg_escape(m)
      << " (rho " << detail::svg_number(c.spearman, 2) << ")</text>\n";
    ++series;
  }
  s << "</svg>\n";
  return s.str();
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
