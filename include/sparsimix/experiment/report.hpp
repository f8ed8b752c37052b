// The experiment's run folder (docs/formats.md section 4): report.json, CSV tables and SVG plots.
// Keys are snake_case; accuracies are fractions in [0, 1], times in milliseconds.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/atomic_file.hpp"
#include "budget.hpp"
#include "experiment.hpp"
#include "svg.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// The four statistics of one sparsity_stats as a JSON object.
inline nlohmann::ordered_json stats_json(const sparsity_stats& s) {
  return {{"entropy", s.entropy}, {"top_k_mass", s.top_k_mass}, {"k90", s.k90}, {"threshold", s.threshold}};
}

// The fit options a run used, for report.json (hoyer_square only when on).
inline nlohmann::ordered_json to_json(const fit_options& f) {
  nlohmann::ordered_json j = {{"steps", f.steps},         {"batch", f.batch},
                              {"lr", f.lr},               {"weight_decay", f.weight_decay},
                              {"warmup_fraction", f.warmup_fraction}, {"min_lr", f.min_lr},
                              {"clip_norm", f.clip_norm}, {"augment", f.augment},
                              {"seed", f.seed}};
  if (f.hoyer_square > 0) j["hoyer_square"] = f.hoyer_square;
  return j;
}

// The distillation settings a run used, for report.json.
inline nlohmann::ordered_json to_json(const distill_options& d) {
  return {{"stage1", to_json(d.stage1)},
          {"stage2", to_json(d.stage2)},
          {"target", to_string(d.target)},
          {"teacher_forced", d.teacher_forced},
          {"sim_weight", d.sim_weight},
          {"ce_weight", d.ce_weight},
          {"kd_weight", d.kd_weight},
          {"kd_temperature", d.kd_temperature}};
}

// {metric, layers: [{layer, entropy, top_k_mass, k90, threshold, cls, heads}], ranking}
inline nlohmann::ordered_json to_json(const sparsity_ranking& r) {
  auto layers = nlohmann::ordered_json::array();
  for (const auto& l : r.layers) {
    if (!l.attention) continue;
    const auto o = stats_json(l.all);
    nlohmann::ordered_json e{{"layer", l.layer}};
    for (auto it = o.begin(); it != o.end(); ++it) e[it.key()] = it.value();
    e["cls"] = stats_json(l.cls);
    e["heads"] = nlohmann::ordered_json::array();
    for (const auto& h : l.heads) e["heads"].push_back(stats_json(h));
    layers.push_back(e);
  }
  return {{"metric", to_string(r.metric)}, {"layers", layers}, {"ranking", r.order}};
}

// The report.json document: the teacher, the sparsity ranking, every variant and the claims.
inline nlohmann::ordered_json to_json(const experiment_report& r) {
  nlohmann::ordered_json j;
  j["teacher"] = {{"test_accuracy", r.teacher_test_accuracy},
                  {"val_accuracy", r.teacher_val_accuracy},
                  {"params", r.teacher_params},
                  {"nonzero_params", r.teacher_nonzero_params},
                  {"stored_params", r.teacher_stored_params},
                  {"latency_ms", r.teacher_latency_ms},
                  {"images_per_s", r.teacher_images_per_s},
                  {"multiply_adds", r.teacher_multiply_adds},
                  {"train_seconds", r.teacher_train_seconds}};
  j["sparsity"] = to_json(r.sparsity);
  auto variants = nlohmann::ordered_json::array();
  for (const auto& v : r.variants)
    variants.push_back({{"name", v.name},
                        {"mixer", v.mixer},
                        {"replaced", v.replaced},
                        {"selection", v.selection},
                        {"mean_sparsity", v.mean_sparsity},
                        {"test_accuracy", v.test_accuracy},
                        {"val_accuracy", v.val_accuracy},
                        {"accuracy_drop", v.accuracy_drop},
                        {"params", v.params},
                        {"nonzero_params", v.nonzero_params},
                        {"stored_params", v.stored_params},
                        {"latency_ms", v.latency_ms},
                        {"images_per_s", v.images_per_s},
                        {"multiply_adds", v.multiply_adds},
                        {"speedup_allowed", speedup_of(r, v).allowed},
                        {"speedup_measured", speedup_of(r, v).measured},
                        {"pruned", v.pruned},
                        {"pruned_fraction", v.pruned_fraction},
                        {"train_seconds", v.seconds}});
  j["variants"] = variants;
  nlohmann::ordered_json claims = nlohmann::ordered_json::object();
  for (const auto& [mixer, c] : r.claims)
    claims[mixer] = {{"sparsest_drop", c.sparsest_drop},
                     {"densest_drop", c.densest_drop},
                     {"holds", c.holds},
                     {"spearman", c.spearman}};
  j["claims"] = {{"sparse_vs_dense", claims}};
  return j;
}


// Layers x heads heatmap of the sparsity score (1 - k90 for the k90 metric).
inline std::string sparsity_heatmap_svg(const sparsity_ranking& r) {
  index_t heads = 0;
  for (const auto& l : r.layers) heads = std::max<index_t>(heads, static_cast<index_t>(l.heads.size()));
  const int cw = 70, ch = 34, left = 90, top = 50;
  const int W = std::max(520, left + cw * static_cast<int>(heads + 1) + 40);
  const int H = top + ch * static_cast<int>(r.layers.size()) + 40;
  // Colours span the observed range so differences between layers stay visible.
  double lo = 1e300, hi = -1e300;
  for (const auto& l : r.layers) {
    if (!l.attention) continue;
    for (const auto& st : l.heads) {
      lo = std::min(lo, sparsity_score(st, r.metric));
      hi = std::max(hi, sparsity_score(st, r.metric));
    }
  }
  if (!(hi > lo)) hi = lo + 1e-9;
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n";
  s << "<text x='10' y='22' font-size='15'>Attention sparsity per layer and head (" << to_string(r.metric)
    << " score; darker = sparser)</text>\n";
  s << "<text x='10' y='" << H - 12 << "' font-size='11'>colour scale: white = " << detail::svg_number(lo, 3)
    << ", dark blue = " << detail::svg_number(hi, 3) << "</text>\n";
  for (index_t h = 0; h <= heads; ++h)
    s << "<text x='" << left + cw * h + cw / 2 << "' y='" << top - 8 << "' text-anchor='middle'>"
      << (h < heads ? "head " + std::to_string(h) : std::string("mean")) << "</text>\n";
  for (std::size_t i = 0; i < r.layers.size(); ++i) {
    const auto& l = r.layers[i];
    const int y = top + ch * static_cast<int>(i);
    s << "<text x='10' y='" << y + ch / 2 + 4 << "'>layer " << l.layer << "</text>\n";
    if (!l.attention) continue;
    for (index_t h = 0; h <= heads; ++h) {
      const auto& st = h < static_cast<index_t>(l.heads.size()) ? l.heads[static_cast<std::size_t>(h)] : l.all;
      if (h < heads && h >= static_cast<index_t>(l.heads.size())) continue;
      const double v = sparsity_score(st, r.metric);
      s << "<rect x='" << left + cw * h << "' y='" << y << "' width='" << cw - 2 << "' height='" << ch - 2
        << "' fill='" << detail::heat_colour((v - lo) / (hi - lo)) << "'/>";
      s << "<text x='" << left + cw * h + cw / 2 << "' y='" << y + ch / 2 + 4 << "' text-anchor='middle' fill='"
        << ((v - lo) / (hi - lo) > 0.55 ? "white" : "black") << "'>" << detail::svg_number(v, 3) << "</text>\n";
    }
  }
  s << "</svg>\n";
  return s.str();
}

// Scatter: accuracy drop against the replaced group's mean sparsity, one series per mixer.
inline std::string drop_vs_sparsity_svg(const experiment_report& r) {
  const int W = 560, H = 380, L = 70, R = 20, T = 40, B = 50;
  double xmin = 1e9, xmax = -1e9, ymin = 1e9, ymax = -1e9;
  for (const auto& v : r.variants) {
    xmin = std::min(xmin, v.mean_sparsity);
    xmax = std::max(xmax, v.mean_sparsity);
    ymin = std::min(ymin, v.accuracy_drop);
    ymax = std::max(ymax, v.accuracy_drop);
  }
  if (r.variants.empty()) xmin = ymin = 0, xmax = ymax = 1;
  const double xpad = std::max(1e-3, (xmax - xmin) * 0.1), ypad = std::max(1e-3, (ymax - ymin) * 0.1);
  xmin -= xpad, xmax += xpad, ymin -= ypad, ymax += ypad;
  const detail::scatter_frame f{W, H, L, R, T, B, xmin, xmax, ymin, ymax};
  auto px = [&](double x) { return f.px(x); };
  auto py = [&](double y) { return f.py(y); };
  const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n";
  s << "<text x='10' y='22' font-size='15'>Accuracy drop vs mean sparsity of the replaced layers</text>\n";
  f.draw(s, "mean sparsity score of the group", "accuracy drop (teacher - student)", 3, 3);
  int series = 0;
  for (const auto& [mixer, c] : r.claims) {
    const char* col = colours[series % 4];
    s << "<text x='" << W - R - 150 << "' y='" << T + 14 * series << "' fill='" << col << "'>" << detail::svg_escape(mixer)
      << " (rho " << detail::svg_number(c.spearman, 2) << ")</text>\n";
    for (const auto& v : r.variants) {
      if (v.mixer != mixer || v.pruned) continue;
      const char* shape = v.selection == "sparsest" ? "S" : v.selection == "densest" ? "D" : "";
      s << "<circle cx='" << px(v.mean_sparsity) << "' cy='" << py(v.accuracy_drop) << "' r='5' fill='" << col
        << "'><title>" << detail::svg_escape(v.name) << "</title></circle>";
      if (*shape) s << "<text x='" << px(v.mean_sparsity) + 7 << "' y='" << py(v.accuracy_drop) - 6 << "' fill='" << col << "'>" << shape << "</text>";
      s << "\n";
    }
    ++series;
  }
  s << "</svg>\n";
  return s.str();
}

// Horizontal bars of one quantity per model (teacher first).
inline std::string bars_svg(const experiment_report& r, const std::string& title, const std::string& unit,
                            double teacher_value, double (*get)(const variant_result&)) {
  std::vector<std::pair<std::string, double>> rows{{"teacher (attention)", teacher_value}};
  for (const auto& v : r.variants) rows.emplace_back(v.name, get(v));
  double mx = 0;
  for (const auto& [n, v] : rows) mx = std::max(mx, v);
  if (mx <= 0) mx = 1;
  const int rh = 22, L = 250, W = 720, T = 40;
  const int H = T + rh * static_cast<int>(rows.size()) + 20;
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n";
  s << "<text x='10' y='22' font-size='15'>" << detail::svg_escape(title) << "</text>\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const int y = T + rh * static_cast<int>(i);
    const double w = rows[i].second / mx * (W - L - 90);
    s << "<text x='" << L - 6 << "' y='" << y + 15 << "' text-anchor='end'>" << detail::svg_escape(rows[i].first) << "</text>";
    s << "<rect x='" << L << "' y='" << y + 3 << "' width='" << w << "' height='" << rh - 6 << "' fill='"
      << (i == 0 ? "#7f7f7f" : "#1f77b4") << "'/>";
    s << "<text x='" << L + w + 5 << "' y='" << y + 15 << "'>" << detail::svg_number(rows[i].second, 4) << " " << unit << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// Test accuracy against images/s at the timing batch, one marker per model (area proportional
// to its non-zero parameters; hollow markers are pruned variants): what each replacement buys.
inline std::string pareto_svg(const experiment_report& r) {
  struct point {
    std::string name, mixer;
    double x, y, size;
    bool pruned;
  };
  std::vector<point> pts{{"teacher", "attention", r.teacher_images_per_s, r.teacher_test_accuracy,
                          static_cast<double>(r.teacher_nonzero_params), false}};
  for (const auto& v : r.variants)
    pts.push_back({v.name, v.mixer, v.images_per_s, v.test_accuracy, static_cast<double>(v.nonzero_params), v.pruned});
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300, smax = 1;
  for (const auto& q : pts) {
    xmin = std::min(xmin, q.x), xmax = std::max(xmax, q.x), ymin = std::min(ymin, q.y), ymax = std::max(ymax, q.y);
    smax = std::max(smax, q.size);
  }
  const double xpad = std::max(1.0, (xmax - xmin) * 0.1), ypad = std::max(1e-3, (ymax - ymin) * 0.1);
  xmin -= xpad, xmax += xpad, ymin -= ypad, ymax += ypad;
  const int W = 640, H = 420, L = 70, R = 20, T = 40, B = 50;
  const detail::scatter_frame f{W, H, L, R, T, B, xmin, xmax, ymin, ymax};
  auto px = [&](double x) { return f.px(x); };
  auto py = [&](double y) { return f.py(y); };
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H << "' font-family='sans-serif' font-size='12'>\n";
  s << "<text x='10' y='22' font-size='15'>Test accuracy vs images/s (marker area = non-zero parameters; hollow = pruned)</text>\n";
  f.draw(s, "images/s (batch inference)", "test accuracy", 4, 3);
  const std::map<std::string, const char*> colour{{"attention", "#7f7f7f"}, {"mh_lstm", "#1f77b4"}, {"selective_scan", "#d62728"}};
  for (const auto& q : pts) {
    const auto it = colour.find(q.mixer);
    const char* col = it == colour.end() ? "#2ca02c" : it->second;
    const double rad = 3 + 9 * std::sqrt(q.size / smax);
    s << "<circle cx='" << px(q.x) << "' cy='" << py(q.y) << "' r='" << rad << "' fill='" << (q.pruned ? "none" : col)
      << "' fill-opacity='0.6' stroke='" << col << "' stroke-width='2'><title>" << detail::svg_escape(q.name) << ": "
      << detail::svg_number(q.y, 4) << ", " << detail::svg_number(q.x, 4) << " images/s, "
      << static_cast<long long>(q.size) << " non-zero parameters</title></circle>\n";
  }
  s << "</svg>\n";
  return s.str();
}

// Writes report.json, sparsity.csv, variants.csv and the SVG plots into `dir`.
inline void write_report(const experiment_report& r, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const auto p = [&](const char* f) { return (std::filesystem::path(dir) / f).string(); };
  io::write_text_atomically(p("report.json"), to_json(r).dump(2) + "\n");
  std::ostringstream sp;
  sp << "layer,head,entropy,top_k_mass,k90,threshold\n";
  for (const auto& l : r.sparsity.layers) {
    if (!l.attention) continue;
    auto row = [&](const std::string& head, const sparsity_stats& s) {
      sp << l.layer << "," << head << "," << s.entropy << "," << s.top_k_mass << "," << s.k90 << "," << s.threshold << "\n";
    };
    row("mean", l.all);
    row("cls", l.cls);
    for (std::size_t h = 0; h < l.heads.size(); ++h) row(std::to_string(h), l.heads[h]);
  }
  io::write_text_atomically(p("sparsity.csv"), sp.str());
  std::ostringstream vs;
  vs << "name,mixer,selection,replaced,pruned,mean_sparsity,test_accuracy,accuracy_drop,params,nonzero_params,"
        "latency_ms,images_per_s,multiply_adds,train_seconds\n";
  vs << "teacher,attention,none,,false,," << r.teacher_test_accuracy << ",0," << r.teacher_params << ","
     << r.teacher_nonzero_params << "," << r.teacher_latency_ms << "," << r.teacher_images_per_s << ","
     << r.teacher_multiply_adds << "," << r.teacher_train_seconds << "\n";
  for (const auto& v : r.variants) {
    vs << v.name << "," << v.mixer << "," << v.selection << "," << detail::join(v.replaced, " ") << ","
       << (v.pruned ? "true" : "false") << "," << v.mean_sparsity << "," << v.test_accuracy << "," << v.accuracy_drop << ","
       << v.params << "," << v.nonzero_params << "," << v.latency_ms << "," << v.images_per_s << ","
       << v.multiply_adds << "," << v.seconds << "\n";
  }
  io::write_text_atomically(p("variants.csv"), vs.str());
  io::write_text_atomically(p("sparsity_heatmap.svg"), sparsity_heatmap_svg(r.sparsity));
  io::write_text_atomically(p("drop_vs_sparsity.svg"), drop_vs_sparsity_svg(r));
  io::write_text_atomically(p("accuracy.svg"), bars_svg(r, "Test accuracy per model", "", r.teacher_test_accuracy,
                                                    [](const variant_result& v) { return v.test_accuracy; }));
  io::write_text_atomically(p("params.svg"), bars_svg(r, "Parameters per model", "", static_cast<double>(r.teacher_params),
                                                  [](const variant_result& v) { return static_cast<double>(v.params); }));
  io::write_text_atomically(p("pareto.svg"), pareto_svg(r));
  io::write_text_atomically(p("latency.svg"), bars_svg(r, "Latency per image (batch 1, 1 process)", "ms", r.teacher_latency_ms,
                                                   [](const variant_result& v) { return v.latency_ms; }));
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
