// The study's run folder (docs/study.md, keys in docs/report.md): report.json, variants.csv,
// seeds.csv, differences.csv and the plots drop_vs_sparsity.svg (one panel per mixer and
// stage, error bars = 95% paired-bootstrap intervals) and accuracy.svg (points with intervals
// on an axis that spans the data).
#pragma once
#include <algorithm>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../io/atomic_file.hpp"
#include "report.hpp"
#include "interaction.hpp"
#include "study.hpp"
#include "svg.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// [lo, hi] as a JSON array.
inline nlohmann::ordered_json to_json(const interval& i) { return nlohmann::ordered_json::array({i.lo, i.hi}); }

// One claim (a mixer at one stage under one metric) as JSON.
inline nlohmann::ordered_json to_json(const study_claim& c) {
  return {{"sparsest", c.sparsest},
          {"densest", c.densest},
          {"sparsest_drop", c.sparsest_drop},
          {"densest_drop", c.densest_drop},
          {"difference", c.difference},
          {"difference_ci95", to_json(c.difference_ci95)},
          {"verdict", c.verdict},
          {"holds", c.verdict == "holds"},
          {"spearman", c.spearman},
          {"spearman_p", c.spearman_p},
          {"permutations", c.permutations},
          {"partial_spearman_depth", c.partial_spearman_depth},
          {"spearman_groups", c.spearman_groups},
          {"depth_matched", {{"pairs", c.depth_pairs}, {"sparser_cheaper", c.depth_pairs_agree}}}};
}

// The report.json document of a study.
inline nlohmann::ordered_json to_json(const study_report& r) {
  nlohmann::ordered_json j;
  j["metric"] = r.metric;
  j["seeds"] = r.seeds;
  j["group_size"] = r.group_size;
  j["bootstrap"] = {{"resamples", r.bootstrap_resamples}, {"seed", r.bootstrap_seed}, {"level", 0.95}};
  j["teacher"] = {{"test_accuracy", r.teacher_test_accuracy},
                  {"val_accuracy", r.teacher_val_accuracy},
                  {"test_images", r.teacher_correct.size()}};
  auto layers = nlohmann::ordered_json::array();
  for (const auto& l : r.sparsity) {
    if (!l.attention) continue;
    nlohmann::ordered_json e{{"layer", l.layer}};
    for (const auto& m : study_metrics()) e[m] = study_sparsity_score(l, m);
    e["all"] = stats_json(l.all);
    e["cls"] = stats_json(l.cls);
    layers.push_back(e);
  }
  nlohmann::ordered_json ranking;
  for (const auto& m : study_metrics()) ranking[m] = r.order.at(m);
  j["sparsity"] = {{"layers", layers}, {"ranking", ranking}};
  auto variants = nlohmann::ordered_json::array();
  for (const auto& v : r.variants) {
    auto seeds = nlohmann::ordered_json::array();
    for (const auto& s : v.seeds)
      seeds.push_back({{"seed", s.seed},
                       {"test_accuracy", s.test_accuracy},
                       {"val_accuracy", s.val_accuracy},
                       {"stage1_test_accuracy", s.stage1_test_accuracy},
                       {"stage1_val_accuracy", s.stage1_val_accuracy},
                       {"distill_mse", s.distill_mse},
                       {"seconds", s.seconds}});
    nlohmann::ordered_json sp;
    for (const auto& m : study_metrics()) sp[m] = v.sparsity.at(m);
    variants.push_back({{"name", v.name},
                        {"mixer", v.mixer},
                        {"replaced", v.replaced},
                        {"roles", v.roles},
                        {"mean_sparsity", v.sparsity.at(r.metric)},
                        {"sparsity", sp},
                        {"seeds", seeds},
                        {"test_accuracy_mean", v.stage2.accuracy_mean},
                        {"test_accuracy_sd", v.stage2.accuracy_sd},
                        {"accuracy_drop_mean", v.stage2.drop_mean},
                        {"accuracy_drop_sd", v.stage2.drop_sd},
                        {"accuracy_drop_ci95", to_json(v.stage2.drop_ci95)},
                        {"stage1",
                         {{"test_accuracy_mean", v.stage1.accuracy_mean},
                          {"test_accuracy_sd", v.stage1.accuracy_sd},
                          {"accuracy_drop_mean", v.stage1.drop_mean},
                          {"accuracy_drop_sd", v.stage1.drop_sd},
                          {"accuracy_drop_ci95", to_json(v.stage1.drop_ci95)}}}});
  }
  j["variants"] = variants;
  nlohmann::ordered_json claims = nlohmann::ordered_json::object();
  for (const auto& [mixer, stages] : r.claims) {
    nlohmann::ordered_json c = to_json(stages.at("stage2").at(r.metric));
    nlohmann::ordered_json by_stage;
    for (const auto& [stage, metrics] : stages) {
      nlohmann::ordered_json m;
      for (const auto& name : study_metrics()) m[name] = to_json(metrics.at(name));
      by_stage[stage] = m;
    }
    c["stages"] = by_stage;
    claims[mixer] = c;
  }
  j["claims"] = {{"sparse_vs_dense", claims}};
  auto inter = nlohmann::ordered_json::array();
  for (const auto& [variant, m] : r.interaction) {
    auto e = to_json(m);
    e["variant"] = variant;
    inter.push_back(e);
  }
  j["interaction"] = inter;
  return j;
}

namespace detail {
// A vertical error bar with its point.
inline void svg_point_with_bar(std::ostringstream& s, double x, double y, double ylo, double yhi, const char* colour,
                               bool square, const std::string& label, const std::string& title) {
  s << "<line x1='" << x << "' y1='" << ylo << "' x2='" << x << "' y2='" << yhi << "' stroke='" << colour << "'/>";
  if (square)
    s << "<rect x='" << x - 4 << "' y='" << y - 4 << "' width='8' height='8' fill='" << colour << "'>";
  else
    s << "<circle cx='" << x << "' cy='" << y << "' r='4' fill='" << colour << "'>";
  s << "<title>" << svg_escape(title) << "</title>" << (square ? "</rect>" : "</circle>");
  if (!label.empty()) s << "<text x='" << x + 6 << "' y='" << y - 5 << "' font-size='10'>" << svg_escape(label) << "</text>";
  s << "\n";
}
}  // namespace detail

// Drop against the replaced layers' sparsity (the primary metric), one panel per mixer (columns)
// and stage (rows); circles: single layers (labelled with the layer), squares: groups; bars:
// 95% paired-bootstrap intervals of the seed-averaged drop.
inline std::string study_drop_svg(const study_report& r) {
  std::vector<std::string> mixers;
  for (const auto& v : r.variants)
    if (std::find(mixers.begin(), mixers.end(), v.mixer) == mixers.end()) mixers.push_back(v.mixer);
  const int PW = 420, PH = 300, top = 46;
  const int W = std::max(1, static_cast<int>(mixers.size())) * PW, H = top + 2 * PH;
  // One y range for every panel, so panels compare.
  double xmin = 1e300, xmax = -1e300, ymin = 1e300, ymax = -1e300;
  for (const auto& v : r.variants) {
    if (v.seeds.empty()) continue;
    xmin = std::min(xmin, v.sparsity.at(r.metric)), xmax = std::max(xmax, v.sparsity.at(r.metric));
    for (const auto* st : {&v.stage1, &v.stage2}) ymin = std::min(ymin, st->drop_ci95.lo), ymax = std::max(ymax, st->drop_ci95.hi);
  }
  if (xmin > xmax) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  const double xpad = std::max(1e-3, (xmax - xmin) * 0.1), ypad = std::max(1e-3, (ymax - ymin) * 0.08);
  xmin -= xpad, xmax += xpad, ymin = std::min(ymin - ypad, 0.0), ymax += ypad;
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n";
  s << "<text x='10' y='18' font-size='15'>Accuracy drop vs sparsity (" << detail::svg_escape(r.metric) << "), mean over "
    << r.seeds << " seeds with 95% paired-bootstrap intervals</text>\n";
  s << "<text x='10' y='34'>circles: one layer (L = its index), squares: groups of layers</text>\n";
  for (std::size_t mi = 0; mi < mixers.size(); ++mi)
    for (int stage = 1; stage <= 2; ++stage) {
      s << "<g transform='translate(" << PW * static_cast<int>(mi) << "," << top + PH * (stage - 1) << ")'>\n";
      const detail::scatter_frame f{PW, PH, 70, 15, 25, 45, xmin, xmax, ymin, ymax};
      s << "<text x='" << f.L << "' y='16' font-weight='bold'>" << detail::svg_escape(mixers[mi]) << ", after stage "
        << stage << (stage == 1 ? " (distillation only)" : " (and fine-tune)") << "</text>\n";
      f.draw(s, "mean sparsity score of the replaced layers", "drop (teacher - student)", 3, 3);
      s << "<line x1='" << f.L << "' y1='" << f.py(0) << "' x2='" << PW - f.R << "' y2='" << f.py(0)
        << "' stroke='#999' stroke-dasharray='4 3'/>\n";
      for (const auto& v : r.variants) {
        if (v.mixer != mixers[mi] || v.seeds.empty()) continue;
        const auto& st = stage == 1 ? v.stage1 : v.stage2;
        const bool single = v.replaced.size() == 1;
        const char* colour = single ? "#1f77b4" : "#d62728";
        const std::string label = single ? "L" + std::to_string(v.replaced.front()) : detail::join(v.replaced, "-");
        detail::svg_point_with_bar(s, f.px(v.sparsity.at(r.metric)), f.py(st.drop_mean), f.py(st.drop_ci95.lo),
                                   f.py(st.drop_ci95.hi), colour, !single, label,
                                   detail::concat(v.name, ": drop ", st.drop_mean, " [", st.drop_ci95.lo, ", ",
                                                  st.drop_ci95.hi, "]"));
      }
      s << "</g>\n";
    }
  s << "</svg>\n";
  return s.str();
}

// Test accuracy per model as points with 95% intervals (the teacher's accuracy minus each drop
// interval) on an axis spanning the data, the teacher as a dashed line.
inline std::string study_accuracy_svg(const study_report& r) {
  std::vector<const study_variant_result*> rows;
  for (const auto& v : r.variants)
    if (!v.seeds.empty()) rows.push_back(&v);
  const int rh = 18, L = 170, R = 30, T = 40, B = 40, W = 760;
  const int H = T + B + rh * static_cast<int>(rows.size() + 1);
  double lo = r.teacher_test_accuracy, hi = r.teacher_test_accuracy;
  for (const auto* v : rows) {
    lo = std::min(lo, r.teacher_test_accuracy - v->stage2.drop_ci95.hi);
    hi = std::max(hi, r.teacher_test_accuracy - v->stage2.drop_ci95.lo);
  }
  const double pad = std::max(1e-3, (hi - lo) * 0.08);
  lo -= pad, hi += pad;
  auto px = [&](double a) { return L + (a - lo) / (hi - lo) * (W - L - R); };
  std::ostringstream s;
  s << "<svg xmlns='http://www.w3.org/2000/svg' width='" << W << "' height='" << H
    << "' font-family='sans-serif' font-size='12'>\n";
  s << "<text x='10' y='22' font-size='15'>Test accuracy after stage 2: mean over " << r.seeds
    << " seeds, 95% paired-bootstrap interval; dashed: teacher</text>\n";
  s << "<line x1='" << L << "' y1='" << H - B << "' x2='" << W - R << "' y2='" << H - B << "' stroke='black'/>\n";
  for (int i = 0; i <= 4; ++i) {
    const double a = lo + (hi - lo) * i / 4;
    s << "<text x='" << px(a) << "' y='" << H - B + 16 << "' text-anchor='middle'>" << detail::svg_number(a, 4) << "</text>";
    s << "<line x1='" << px(a) << "' y1='" << T << "' x2='" << px(a) << "' y2='" << H - B << "' stroke='#eee'/>\n";
  }
  s << "<line x1='" << px(r.teacher_test_accuracy) << "' y1='" << T << "' x2='" << px(r.teacher_test_accuracy)
    << "' y2='" << H - B << "' stroke='#555' stroke-dasharray='4 3'/>\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const auto& v = *rows[i];
    const double y = T + rh * (static_cast<double>(i) + 0.5);
    const char* colour = v.mixer == "mh_lstm" ? "#1f77b4" : v.mixer == "selective_scan" ? "#d62728" : "#2ca02c";
    s << "<text x='" << L - 6 << "' y='" << y + 4 << "' text-anchor='end'>" << detail::svg_escape(v.name) << "</text>";
    s << "<line x1='" << px(r.teacher_test_accuracy - v.stage2.drop_ci95.hi) << "' y1='" << y << "' x2='"
      << px(r.teacher_test_accuracy - v.stage2.drop_ci95.lo) << "' y2='" << y << "' stroke='" << colour << "'/>";
    s << "<circle cx='" << px(v.stage2.accuracy_mean) << "' cy='" << y << "' r='4' fill='" << colour << "'><title>"
      << detail::svg_escape(v.name) << ": " << detail::svg_number(v.stage2.accuracy_mean, 4) << "</title></circle>\n";
  }
  s << "<text x='" << (L + W - R) / 2 << "' y='" << H - 8 << "' text-anchor='middle'>test accuracy</text>\n";
  s << "</svg>\n";
  return s.str();
}

// Writes report.json, variants.csv, seeds.csv, differences.csv and the SVG plots into `dir`.
inline void write_study_report(const study_report& r, const std::string& dir) {
  std::filesystem::create_directories(dir);
  const auto p = [&](const char* f) { return (std::filesystem::path(dir) / f).string(); };
  io::write_text_atomically(p("report.json"), to_json(r).dump(2) + "\n");
  std::ostringstream vs;
  vs << "name,mixer,replaced,roles,mean_sparsity,seeds,stage1_drop_mean,stage1_drop_sd,stage1_ci_lo,stage1_ci_hi,"
        "drop_mean,drop_sd,ci_lo,ci_hi,test_accuracy_mean\n";
  for (const auto& v : r.variants)
    vs << v.name << "," << v.mixer << "," << detail::join(v.replaced, " ") << "," << detail::join(v.roles, " ") << ","
       << v.sparsity.at(r.metric) << "," << v.seeds.size() << "," << v.stage1.drop_mean << "," << v.stage1.drop_sd << ","
       << v.stage1.drop_ci95.lo << "," << v.stage1.drop_ci95.hi << "," << v.stage2.drop_mean << "," << v.stage2.drop_sd
       << "," << v.stage2.drop_ci95.lo << "," << v.stage2.drop_ci95.hi << "," << v.stage2.accuracy_mean << "\n";
  io::write_text_atomically(p("variants.csv"), vs.str());
  std::ostringstream ss;
  ss << "name,seed,stage1_test_accuracy,test_accuracy,stage1_val_accuracy,val_accuracy,distill_mse,seconds\n";
  for (const auto& v : r.variants)
    for (const auto& s : v.seeds) {
      ss << v.name << "," << s.seed << "," << s.stage1_test_accuracy << "," << s.test_accuracy << ","
         << s.stage1_val_accuracy << "," << s.val_accuracy << ",";
      for (std::size_t i = 0; i < s.distill_mse.size(); ++i) ss << (i ? " " : "") << s.distill_mse[i];
      ss << "," << s.seconds << "\n";
    }
  io::write_text_atomically(p("seeds.csv"), ss.str());
  std::ostringstream ds;
  ds << "a,b,stage,difference,ci_lo,ci_hi\n";
  for (const auto& d : r.differences)
    ds << d.a << "," << d.b << "," << d.stage << "," << d.difference << "," << d.ci95.lo << "," << d.ci95.hi << "\n";
  io::write_text_atomically(p("differences.csv"), ds.str());
  io::write_text_atomically(p("drop_vs_sparsity.svg"), study_drop_svg(r));
  io::write_text_atomically(p("accuracy.svg"), study_accuracy_svg(r));
  for (const auto& [variant, m] : r.interaction) {
    const std::string file = detail::concat("interaction_", m.mixer, "_layer", m.layer, ".svg");
    io::write_text_atomically(p(file.c_str()), interaction_svg(m, detail::concat(variant, " (best by validation accuracy), block ",
                                                                               m.layer, ": teacher attention vs student")));
  }
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
