// `sparsimix interaction`: FAR's token-interaction maps of a model's blocks beside a teacher's
// attention maps (experiment/interaction.hpp): interaction.json, interaction.safetensors and
// one interaction_layer<L>.svg per block.
// `sparsimix study`: the layer-sparsity claim with seeds, intervals and a depth control
// (experiment/study.hpp, docs/study.md), into a run folder it resumes from: config.json,
// teacher.safetensors, results.jsonl (one line per finished variant and seed), then
// report.json, variants.csv, seeds.csv, differences.csv, drop_vs_sparsity.svg, accuracy.svg and
// sparsity_heatmap.svg.
#pragma once
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "../experiment/interaction.hpp"
#include "../experiment/study_report.hpp"
#include "../io/safetensors.hpp"
#include "demo_commands.hpp"
#include "support.hpp"

namespace sparsimix::cli {
SPARSIMIX_ABI_BEGIN

// The study's command-line settings.
struct study_args {
  std::string data = data::fashion_mnist_default_dir, out = "runs/study", budget = "small";
  std::string metric = "k90";  // the primary sparsity metric
  std::uint64_t seed = 0;      // the teacher's seed and the base of the students'
  index_t seeds = 3;           // distillation seeds per variant
  index_t bootstrap = 2000;    // paired-bootstrap resamples
  index_t checkpoint_every = 200;  // each training phase's state every N steps (0: finished phases only)
  index_t teacher_cache_mb = 4096;  // study_options::teacher_cache_bytes, in MiB
};

inline int run_study_command(const study_args& a) {
  namespace fs = std::filesystem;
  const auto t0 = std::chrono::steady_clock::now();
  checked_at_least("study", "--seeds", a.seeds, 1);
  checked_at_least("study", "--bootstrap", a.bootstrap, 100);
  checked_at_least("study", "--checkpoint-every", a.checkpoint_every, 0);
  checked_at_least("study", "--teacher-cache-mb", a.teacher_cache_mb, 0);
  (void)study_sparsity_score(layer_sparsity{}, a.metric);
  const budget b = make_budget(a.budget);
  study_options o;
  o.teacher = b.teacher;
  o.teacher_fit = b.teacher_fit;
  o.teacher_fit.seed = a.seed;
  o.distill = b.distill;
  o.calibration = b.calibration;
  o.mse_images = b.calibration;
  o.metric = a.metric;
  o.seeds = static_cast<int>(a.seeds);
  o.bootstrap_resamples = static_cast<int>(a.bootstrap);
  o.seed = a.seed;
  o.checkpoint_every = a.checkpoint_every;  // not in config.json: it changes no number
  o.teacher_cache_bytes = static_cast<std::size_t>(a.teacher_cache_mb) << 20;  // nor does this
  demo_args da;
  da.data = a.data;
  da.seed = a.seed;
  nlohmann::ordered_json config = demo_config("study", da, b);
  config["distill"] = to_json(b.distill);
  config["metric"] = a.metric;
  config["seeds"] = a.seeds;
  config["bootstrap"] = a.bootstrap;
  config["calibration_images"] = b.calibration;
  config["validation_images"] = b.val_size;
  config["rerun"] = detail::concat("sparsimix study --budget ", to_string(b.size), " --seeds ", a.seeds, " --metric ",
                                   a.metric, " --seed ", a.seed, " --data ", a.data, " --out ", a.out,
                                   " (resumes from the folder's files)");
  // Resuming reuses the folder's teacher and results: only a study with the same settings
  // (more seeds, another bootstrap or another primary metric reuse every finished result).
  const fs::path config_path = fs::path(a.out) / "config.json";
  check_resumable_folder("study", "a study", a.out, config, {"seeds", "bootstrap", "metric"});
  io::require_output_folder(a.out, "--out");
  const auto d = load_demo_data(da, b);
  fs::create_directories(a.out);
  io::write_text_atomically(config_path.string(), config.dump(2) + "\n");

  study_hooks hooks;
  hooks.log = log_line;
  hooks.progress = print_progress;
  const auto rep = run_study<float>(d.train, d.val, d.test, o, a.out, hooks);
  write_study_report(rep, a.out);
  sparsity_ranking ranking;
  ranking.metric = sparsity_metric::k90;
  ranking.layers = rep.sparsity;
  ranking.order = rep.order.at("k90");
  io::write_text_atomically((fs::path(a.out) / "sparsity_heatmap.svg").string(), sparsity_heatmap_svg(ranking));

  std::printf("\n%-26s %-9s %-24s %-24s\n", "variant", "sparsity", "drop stage 1 [95% CI]", "drop stage 2 [95% CI]");
  for (const auto& v : rep.variants)
    std::printf("%-26s %-9.3f %+.4f [%+.4f, %+.4f] %+.4f [%+.4f, %+.4f]\n", v.name.c_str(), v.sparsity.at(a.metric),
                v.stage1.drop_mean, v.stage1.drop_ci95.lo, v.stage1.drop_ci95.hi, v.stage2.drop_mean,
                v.stage2.drop_ci95.lo, v.stage2.drop_ci95.hi);
  for (const auto& [mixer, stages] : rep.claims)
    for (const auto& [stage, metrics] : stages) {
      const auto& c = metrics.at(a.metric);
      std::printf("claim (%s, %s, %s): sparsest [%s] - densest [%s] = %+.4f [%+.4f, %+.4f] -> %s; Spearman over "
                  "single layers %+.3f (p = %.3f), controlling for depth %s\n",
                  mixer.c_str(), stage.c_str(), a.metric.c_str(), detail::join(c.sparsest, ",").c_str(),
                  detail::join(c.densest, ",").c_str(), c.difference, c.difference_ci95.lo, c.difference_ci95.hi,
                  c.verdict.c_str(), c.spearman, c.spearman_p,
                  std::isnan(c.partial_spearman_depth) ? "undefined (depth orders the layers as sparsity does)"
                                                       : detail::concat(c.partial_spearman_depth).c_str());
    }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\nrun folder: %s; total %s\n", a.out.c_str(), clock_str(total).c_str());
  return 0;
}

// The interaction command's settings.
struct interaction_args {
  std::string model, teacher, layers, data = data::fashion_mnist_default_dir, out = "interaction";
  data_options data_opt;
  index_t count = 64;  // validation images the maps average over
};

inline int run_interaction(const interaction_args& a) {
  namespace fs = std::filesystem;
  checked_at_least("interaction", "--count", a.count, 1);
  io::require_output_folder(a.out, "--out");
  const auto model = io::load_checkpoint<float>(a.model);
  std::optional<HybridViT<float>> teacher;
  if (!a.teacher.empty()) teacher = io::load_checkpoint<float>(a.teacher);
  std::vector<index_t> layers;
  if (!a.layers.empty()) {
    layers = parse_layer_list("interaction", a.layers, model.depth());
  } else {  // the blocks that are not attention (a hybrid's replaced layers), else every block
    for (index_t l = 0; l < model.depth(); ++l)
      if (model.config().mixers[static_cast<std::size_t>(l)].kind() != "attention") layers.push_back(l);
    if (layers.empty())
      for (index_t l = 0; l < model.depth(); ++l) layers.push_back(l);
  }
  if (teacher && (teacher->depth() != model.depth() || teacher->config().embed_dim != model.config().embed_dim ||
                  teacher->config().img_size != model.config().img_size ||
                  teacher->config().patch_size != model.config().patch_size))
    throw config_error(detail::concat("interaction: --teacher '", a.teacher, "' has another shape than --model '", a.model,
                                      "' (depth, embed_dim, img_size and patch_size must agree)"));
  // Maps of held-out training images, never test.
  auto [train, val] = data::load_train_val(a.data, preprocess_for(a.data, a.data_opt, model.config()), 5000);
  val.decode_threads = a.data_opt.decode_threads;
  check_model_fits_data("interaction", model.config(), val);
  fs::create_directories(a.out);
  auto doc = nlohmann::ordered_json::array();
  io::safetensors_writer maps;
  for (const index_t l : layers) {
    const auto r = token_interaction(model, teacher ? &*teacher : nullptr, l, val, a.count);
    doc.push_back(to_json(r));
    const Shape shape{r.heads, r.tokens, r.tokens};
    maps.add<double>(detail::concat("layer", l, ".interaction"), TensorView<const double>(r.gradient.data(), shape));
    if (!r.attention.empty())
      maps.add<double>(detail::concat("layer", l, ".attention"), TensorView<const double>(r.attention.data(), shape));
    io::write_text_atomically((fs::path(a.out) / detail::concat("interaction_layer", l, ".svg")).string(),
                              interaction_svg(r, detail::concat("Block ", l, " (", r.mixer, ") on ", a.count, " validation images")));
    log_line(detail::concat("layer ", l, " (", r.mixer, "): ",
                            r.per_head.empty() ? std::string("no attention map to compare with")
                                               : detail::concat("Spearman ", r.mean.spearman, ", top-k overlap ",
                                                                r.mean.top_k_overlap, " against the attention map")));
  }
  maps.write((fs::path(a.out) / "interaction.safetensors").string());
  const nlohmann::ordered_json j{{"model", a.model}, {"teacher", a.teacher.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(a.teacher)},
                                 {"images", a.count}, {"layers", doc}};
  io::write_text_atomically((fs::path(a.out) / "interaction.json").string(), j.dump(2) + "\n");
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::cli
