// The `sparsimix` command line (docs/formats.md section 3) over cli/commands.hpp, with CLI11
// (Debian's libcli11-dev; header-only). examples/sparsimix.cpp is `return cli::main(argc, argv);`,
// and so is a user's program that registers its own mixer first: --mixer then accepts it.
// Every subcommand prints --help and exits non-zero with a one-line reason on bad input.
#pragma once
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "../core/malloc_tuning.hpp"
#include "commands.hpp"
#include "study_command.hpp"
#if defined(SPARSIMIX_USE_MPI)
#include "../distill/mpi_process_group.hpp"
#endif

namespace sparsimix::cli {
SPARSIMIX_ABI_BEGIN

// An option whose value is stored only when given, so that "not given" (the budget's
// default) and every value the user can type stay apart and each is checked.
template <class T>
CLI::Option* add_optional(CLI::App* app, const std::string& name, std::optional<T>& dst, const std::string& help) {
  return app->add_option_function<T>(name, [&dst](const T& v) { dst = v; }, help);
}

// A CLI11 check that a value parses with `parse` (an enum's parse_* function).
template <class Parse>
CLI::Validator parses_as(Parse parse, std::string description) {
  return CLI::Validator(
      [parse](std::string& v) -> std::string {
        try {
          parse(v);
          return {};
        } catch (const config_error& e) {
          return e.what();
        }
      },
      std::move(description));
}

// The evaluation transform's options (docs/own-data.md), shared by the data commands and
// infer; `crop_default` says the default --crop-pct in the help.
inline CLI::App* add_preprocess_options(CLI::App* app, data_options& o, const std::string& when,
                                        const std::string& crop_default) {
  auto* g = app->add_option_group("Image preprocessing", when);
  add_optional(g, "--crop-pct", o.crop_pct,
               "Evaluation: resize the shorter side to img_size / crop_pct, centre crop (default " + crop_default + ")");
  g->add_option("--interpolation", o.interpolation, "Resize filter: bicubic or bilinear (antialiased)")
      ->capture_default_str()
      ->check(parses_as(data::parse_interpolation, "bicubic|bilinear"));
  g->add_option("--resize-rounding", o.rounding,
                "pil: PIL's 8-bit resize, as timm's transforms run; tensor: torchvision's float resize (antialias=True)")
      ->capture_default_str()
      ->check(parses_as(data::parse_resize_rounding, "pil|tensor"));
  g->add_option("--mean", o.mean, "Per-channel mean, e.g. 0.485,0.456,0.406 (default ImageNet's; 0.5 for gray)");
  g->add_option("--std", o.std, "Per-channel std, e.g. 0.229,0.224,0.225 (default ImageNet's; 0.5 for gray)");
  return g;
}

// --data and the preprocessing options of image folders and CIFAR (docs/own-data.md).
inline void add_data_options(CLI::App* app, std::string& dir, data_options& o) {
  app->add_option("--data", dir,
                  "Data folder: Fashion-MNIST IDX files, CIFAR-10/100 .bin files, or an image folder "
                  "(train/<class>/*.jpg, val/<class>/*.jpg)")
      ->capture_default_str();
  auto* g = add_preprocess_options(app, o, "Image folders and CIFAR (Fashion-MNIST ignores these)",
                                   "0.875 for image folders, 1 for CIFAR");
  g->add_option("--crop-scale-min", o.crop_scale_min,
                "Training with --augment: smallest area fraction of the random resized crop")
      ->capture_default_str();
  g->add_option("--decode-threads", o.decode_threads, "Threads decoding images (0: one per core)")->capture_default_str();
}

#if defined(SPARSIMIX_USE_MPI)
// MPI for the life of the program (the sparsimix_mpi build): train, distill and prune run
// data-parallel over MPI_COMM_WORLD; an error on any process ends the whole job (MPI_Abort)
// rather than leaving the others waiting.
struct mpi_session {
  mpi_session(int* argc, char*** argv) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    group.emplace();
    parallel_group() = &*group;
  }
  ~mpi_session() {
    parallel_group() = nullptr;
    MPI_Finalize();
  }
  mpi_session(const mpi_session&) = delete;
  mpi_session& operator=(const mpi_session&) = delete;
  // Prints the error (naming the process when there are several) and stops every process.
  [[noreturn]] void abort(const char* what) const {
    std::fprintf(stderr, "sparsimix: process %d of %d: %s\n", group->rank(), group->size(), what);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort();
  }
  std::optional<mpi_process_group> group;
};
#endif

inline int main(int argc, char** argv) {
#if defined(SPARSIMIX_USE_MPI)
  const mpi_session mpi(&argc, &argv);
#endif
  // Training-size GEMMs otherwise mmap/munmap their packing buffers on every call.
  keep_large_allocations_in_heap();
  CLI::App app{"sparsimix: distil ViT attention layers into multi-head LSTMs and selective scans"};
  app.require_subcommand(1);
  const std::string data_help = "Folder with the Fashion-MNIST .gz files";  // the demo's data
  const auto budget_check = parses_as(parse_budget_size, "tiny|small|full");
  const std::string kinds = mixer_registry::instance().choices();

  demo_args da;
  auto* demo = app.add_subcommand("demo", "The main job on Fashion-MNIST: teacher, sparsity, distillation, report");
  demo->add_option("--data", da.data, data_help)->capture_default_str();
  demo->add_option("--out", da.out, "Run folder for config.json, report.json, CSV and SVG")->capture_default_str();
  demo->add_option("--budget", da.budget, "small (< 20 min on 2 cores), full (quality run) or tiny (smoke test)")
      ->capture_default_str()
      ->check(budget_check);
  demo->add_option("--seed", da.seed, "RNG seed (same seed, same numbers on one machine)")->capture_default_str();
  demo->add_option("--checkpoint-every", da.checkpoint_every,
                   "Every training phase keeps its state in the run folder every N steps, so a killed run "
                   "continues mid-phase when rerun (0: only finished phases are kept)")
      ->capture_default_str();
  demo->add_option("--teacher-cache-mb", da.teacher_cache_mb,
                   "Memory for the teacher's stage-1 targets that every variant reuses (15 MB per batch; "
                   "0: the teacher runs again for each variant; the numbers are the same)")
      ->capture_default_str();
  demo->add_flag("--keep-students", da.keep_students,
                 "Keep every distilled (and pruned) student in the run folder as student_NAME.safetensors "
                 "(NAME: the variant's name with '/' as '_')");
  demo->add_flag("--avit", da.avit,
                 "The A-ViT teacher-sparsity sweep: a dense teacher, A-ViT teachers of increasing sparsity, "
                 "mask-guided students of each (resumes from the run folder)");

  study_args sta;
  auto* study = app.add_subcommand(
      "study", "The layer-sparsity claim with seeds, bootstrap intervals and a depth control (resumes from --out)");
  study->add_option("--data", sta.data, data_help)->capture_default_str();
  study->add_option("--out", sta.out, "Run folder (config.json, results.jsonl, report.json, CSV, SVG)")
      ->capture_default_str();
  study->add_option("--budget", sta.budget, "small, full or tiny: the demo's teacher and distillation budgets")
      ->capture_default_str()
      ->check(budget_check);
  study->add_option("--seeds", sta.seeds, "Distillation seeds per variant (each: new student init and data order)")
      ->capture_default_str();
  study->add_option("--metric", sta.metric, "Primary sparsity metric: k90, cls_k90, entropy or top_k_mass "
                                            "(the report evaluates the claims under every one)")
      ->capture_default_str();
  study->add_option("--seed", sta.seed, "The teacher's seed and the base of the students' seeds")->capture_default_str();
  study->add_option("--bootstrap", sta.bootstrap, "Paired-bootstrap resamples over the test images")
      ->capture_default_str();
  study->add_option("--checkpoint-every", sta.checkpoint_every,
                    "Every training phase keeps its state in the run folder every N steps (0: finished ones only)")
      ->capture_default_str();
  study->add_option("--teacher-cache-mb", sta.teacher_cache_mb,
                    "Memory for the teacher's stage-1 targets that the variants of a seed reuse (0: none; the "
                    "numbers are the same)")
      ->capture_default_str();

  interaction_args xa;
  auto* interaction = app.add_subcommand(
      "interaction", "FAR's token-interaction maps of a model's blocks beside a teacher's attention maps (SVG, JSON)");
  interaction->add_option("--model", xa.model, "Checkpoint whose blocks are mapped (e.g. a distilled hybrid)")->required();
  interaction->add_option("--teacher", xa.teacher,
                          "Checkpoint whose attention maps are the comparison (default: the model's own attention blocks)");
  interaction->add_option("--layers", xa.layers, "Blocks to map, e.g. 1,2 (default: every non-attention block)");
  interaction->add_option("--count", xa.count, "Validation images the maps average over")->capture_default_str();
  add_data_options(interaction, xa.data, xa.data_opt);
  interaction->add_option("--out", xa.out, "Folder for interaction.json, interaction.safetensors and the SVGs")
      ->capture_default_str();

  train_args ta;
  auto* train = app.add_subcommand("train", "Train a ViT teacher on Fashion-MNIST, keeping the best checkpoint");
  add_data_options(train, ta.data, ta.data_opt);
  train->add_option("--out", ta.out, "Checkpoint to write (best validation accuracy)")->capture_default_str();
  train->add_option("--config", ta.config, "Model config JSON (default: the demo teacher)");
  train->add_option("--budget", ta.budget, "Preset for steps and learning rate: tiny, small, full")
      ->capture_default_str()
      ->check(budget_check);
  add_optional(train, "--steps", ta.steps, "Optimizer steps (overrides the budget)");
  add_optional(train, "--batch", ta.batch, "Batch size (overrides the budget)");
  add_optional(train, "--lr", ta.lr, "Peak learning rate (overrides the budget)");
  train->add_flag("--augment", ta.augment,
                  "Fashion-MNIST: random shifts and horizontal flips; images: random resized crop and flip");
  train->add_option("--seed", ta.seed, "RNG seed")->capture_default_str();
  train->add_option("--checkpoint-every", ta.checkpoint_every,
                    "Write the full training state to OUT.state every N steps (and on SIGINT/SIGTERM)")
      ->capture_default_str();
  train->add_flag("--resume", ta.resume, "Continue from OUT.state if it exists (same options), else start anew");
  train->add_option("--init", ta.init, "Start from this checkpoint (its config and weights), e.g. a dense teacher");
  train->add_flag("--halting", ta.halting,
                  "A-ViT token halting (docs/halting.md): train with CE + ponder + prior losses; with --init, "
                  "from a dense teacher");
  // Each A-ViT option records that it was given: without --halting it is an error, not ignored.
  auto avit = [&](const char* name, auto& value, const std::string& help) {
    train->add_option(name, value, help)->capture_default_str()->each([&ta, name](const std::string&) {
      ta.halting_options_given.emplace_back(name);
    });
  };
  avit("--gamma", ta.gate.gamma, "A-ViT gate scale: h = sigmoid(gamma * x[0] - beta)");
  avit("--beta", ta.gate.beta, "A-ViT gate centre; SMALLER is sparser (tokens halt earlier)");
  avit("--eps", ta.gate.eps, "A-ViT: a token halts once its cumulative score reaches 1 - eps");
  avit("--ponder-weight", ta.halting_loss.ponder_weight, "Weight of the ponder loss; LARGER is sparser");
  avit("--prior-weight", ta.halting_loss.prior_weight,
       "Weight of the KL to the halting-depth prior (pulls the halting depths towards --target-depth)");
  avit("--target-depth", ta.halting_loss.target_depth,
       "Centre of the halting-depth prior, 1..depth (0: ceil(2 depth / 3)); SMALLER is sparser");

  sparsity_args sa;
  auto* sparsity = app.add_subcommand("sparsity", "Attention sparsity per layer and head on held-out training images");
  sparsity->add_option("--model", sa.model, "Teacher checkpoint")->required();
  add_data_options(sparsity, sa.data, sa.data_opt);
  sparsity->add_option("--out", sa.out, "Folder for sparsity.json and sparsity_heatmap.svg")->capture_default_str();
  sparsity->add_option("--count", sa.count, "Calibration images")->capture_default_str();
  sparsity->add_option("--metric", sa.metric, "Ranking metric: k90, entropy, top_k_mass or threshold")
      ->capture_default_str()
      ->check(parses_as(parse_sparsity_metric, "k90|entropy|top_k_mass|threshold"));

  distill_args di;
  auto* distill = app.add_subcommand("distill", "Replace attention layers by another mixer and distil them");
  distill->add_option("--teacher", di.teacher, "Teacher checkpoint")->required();
  add_data_options(distill, di.data, di.data_opt);
  distill->add_option("--out", di.out, "Student checkpoint to write")->capture_default_str();
  distill->add_option("--mixer", di.mixer,
                      "Student mixer: " + kinds + ", optionally with options, e.g. selective_scan:d_state=8")
      ->capture_default_str()
      ->check(parses_as([](const std::string& s) { student_spec(s); }, "KIND[:option=value,...]"));
  distill->add_option("--layers", di.layers, "Layers to replace, comma-separated, e.g. 0,2");
  distill->add_option("--select", di.select, "Or pick them by attention sparsity: sparsest or densest (--k of them), or all")
      ->check(CLI::IsMember({"sparsest", "densest", "all"}));
  add_optional(distill, "--k", di.k, "How many layers --select picks (default depth/3)");
  distill->add_option("--target", di.target, "Stage-1 target: pre_proj, mixer_out, block_out or cosine")
      ->capture_default_str()
      ->check(parses_as(parse_distill_target, "pre_proj|mixer_out|block_out|cosine"));
  distill->add_flag("--teacher-forced", di.teacher_forced, "Stage 1 on the teacher's block inputs (local losses only)");
  distill->add_flag("--mask-guided", di.mask_guided,
                    "A-ViT teacher: stage 1 runs the student under the teacher's token masks (MSE on alive tokens, "
                    "halting KL and keep-ratio terms); stage 2 with the student's own halting");
  add_optional(distill, "--prune", di.prune,
                      "Then prune this fraction of the student's mh_lstm units (FAR, docs/pruning.md; settings from "
                      "--budget)");
  add_optional(distill, "--stage1-steps", di.stage1, "Stage-1 steps (default from --budget)");
  add_optional(distill, "--stage2-steps", di.stage2, "Stage-2 steps (default from --budget; 0 skips it)");
  add_optional(distill, "--batch", di.batch, "Batch size of both stages (default from --budget)");
  distill->add_flag("--layer-parallel", di.layer_parallel,
                    "With --teacher-forced under mpirun (sparsimix_mpi): the processes split stage 1's layers, then "
                    "share them; stage 2 runs data-parallel");
  distill->add_option("--budget", di.budget, "Preset: tiny, small, full")->capture_default_str()->check(budget_check);
  distill->add_option("--seed", di.seed, "RNG seed")->capture_default_str();
  distill->add_option("--checkpoint-every", di.checkpoint_every,
                      "Write each phase's full training state to OUT.<phase>.state every N steps (and on SIGINT/SIGTERM)")
      ->capture_default_str();
  distill->add_flag("--resume", di.resume, "Continue each phase from its OUT.<phase>.state (same options)");

  prune_args pa;
  auto* prune = app.add_subcommand(
      "prune", "FAR's structured pruning of a hybrid's mh_lstm units: Hoyer-Square training, prune, fine-tune");
  prune->add_option("--model", pa.model, "Checkpoint with mh_lstm blocks (e.g. from distill --mixer mh_lstm)")
      ->required();
  add_data_options(prune, pa.data, pa.data_opt);
  prune->add_option("--out", pa.out, "Pruned checkpoint to write (report beside it as OUT.json)")->capture_default_str();
  add_optional(prune, "--fraction", pa.fraction, "Prune this fraction of all LSTM units, lowest group norm first (default 0.5)");
  add_optional(prune, "--threshold", pa.threshold, "Or prune every unit whose group norm is <= this (FAR: 1e-4)");
  prune->add_option("--weight", pa.weight, "Hoyer-Square regulariser weight of the first phase")->capture_default_str();
  add_optional(prune, "--steps", pa.steps, "Regularised training steps (default from --budget; 0 skips it)");
  add_optional(prune, "--finetune-steps", pa.finetune_steps, "Masked fine-tune steps (default from --budget; 0 skips it)");
  add_optional(prune, "--batch", pa.batch, "Batch size of both phases (default from --budget)");
  add_optional(prune, "--lr", pa.lr, "Peak learning rate of the regularised phase (the fine-tune's scales with it)");
  prune->add_option("--budget", pa.budget, "Preset: tiny, small, full")->capture_default_str()->check(budget_check);
  prune->add_option("--seed", pa.seed, "RNG seed")->capture_default_str();
  prune->add_option("--checkpoint-every", pa.checkpoint_every,
                    "Write each phase's full training state to OUT.<phase>.state every N steps (and on SIGINT/SIGTERM)")
      ->capture_default_str();
  prune->add_flag("--resume", pa.resume, "Continue each phase from its OUT.<phase>.state (same options)");

  eval_args ea;
  auto* eval = app.add_subcommand("eval", "Test accuracy, parameter count and latency of a checkpoint");
  eval->add_option("--model", ea.model, "Checkpoint")->required();
  add_data_options(eval, ea.data, ea.data_opt);
  add_optional(eval, "--limit", ea.limit, "Evaluate on the first N test images only (N >= 1)");

  speed_args spa;
  auto* speed = app.add_subcommand(
      "speed", "Batch-1 latency and images/s of checkpoints, timed side by side in interleaved rounds");
  speed->add_option("--model", spa.models, "Checkpoint (repeat the option for more; the first is the reference)")
      ->required();
  add_data_options(speed, spa.data, spa.data_opt);
  speed->add_option("--batch", spa.batch, "Images per batch of the throughput timing")->capture_default_str();
  speed->add_option("--rounds", spa.rounds, "Rounds through all models; each number is the median over them")
      ->capture_default_str();
  speed->add_option("--latency-runs", spa.latency_runs, "Batch-1 forwards per model, spread over the rounds")
      ->capture_default_str();

  retention_args ra;
  auto* retention = app.add_subcommand("retention", "How an A-ViT model halts: retention per block, depth per patch");
  retention->add_option("--model", ra.model, "A-ViT checkpoint (trained with train --halting)")->required();
  add_data_options(retention, ra.data, ra.data_opt);
  retention->add_option("--out", ra.out, "Folder for retention.json, retention.svg, halting_depth.svg")
      ->capture_default_str();
  retention->add_option("--count", ra.count, "Test images to average over")->capture_default_str();
  retention->add_option("--images", ra.images, "Test images drawn with their halting depths (0..64)")
      ->capture_default_str();

  std::string inspect_path;
  auto* inspect = app.add_subcommand("inspect", "List the tensors and metadata of a safetensors file");
  inspect->add_option("file", inspect_path, "A .safetensors file")->required();

  infer_args ia;
  auto* infer = app.add_subcommand("infer", "Logits of a checkpoint on images (a .safetensors tensor, or JPEG/PNG files)");
  infer->add_option("--model", ia.model, "Model checkpoint (.safetensors; sparsimix or timm names)")->required();
  infer->add_option("--input", ia.input,
                    "Input .safetensors holding F32 'images' [B, C, H, W], or a .jpg/.png file or a folder of them "
                    "(sorted; preprocessed with the evaluation transform)")
      ->required();
  infer->add_option("--out", ia.out, "Output .safetensors: 'logits' [B, classes]")->required();
  infer->add_flag("--capture", ia.capture, "Also write blocks.{i}.out and, for attention blocks, blocks.{i}.attn_map");
  add_optional(infer, "--heads", ia.heads, "Heads of a timm checkpoint without sparsimix.config (default C/64)");
  add_preprocess_options(infer, ia.data_opt, "When --input names images", "0.875");

  grad_args ga;
  auto* grad = app.add_subcommand("grad", "Mean cross-entropy and its gradient for every parameter");
  grad->add_option("--model", ga.model, "Model checkpoint (.safetensors)")->required();
  grad->add_option("--input", ga.input, "Input .safetensors holding 'images' and 'labels' (I64 [B])")->required();
  grad->add_option("--out", ga.out, "Output .safetensors: 'loss' [1] and grad.{name} per parameter")->required();
  add_optional(grad, "--heads", ga.heads, "Heads of a timm checkpoint without sparsimix.config (default C/64)");

  init_args na;
  auto* init = app.add_subcommand("init", "Write a randomly initialised model for a config (sparsimix.config JSON)");
  init->add_option("--config", na.config, "JSON file in the sparsimix.config format")->required();
  init->add_option("--seed", na.seed, "RNG seed")->capture_default_str();
  init->add_option("--out", na.out, "Output checkpoint (.safetensors)")->required();

  // An unknown command gets its own line (CLI11 would say "A subcommand is required").
  if (argc > 1 && argv[1][0] != '-') {
    std::string names;
    bool known = false;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      names += (names.empty() ? "" : ", ") + sub->get_name();
      known = known || sub->get_name() == argv[1];
    }
    if (!known) {
      std::fprintf(stderr, "sparsimix: unknown command '%s' (commands: %s)\n", argv[1], names.c_str());
      return 1;
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);  // --help
    // Every failure is one prefixed line and exit status 1 (docs/cli.md), as for the commands.
    const std::string where = argc > 1 && argv[1][0] != '-' ? std::string(argv[1]) + ": " : std::string();
    std::fprintf(stderr, "sparsimix: %s%s (see sparsimix %s--help)\n", where.c_str(), e.what(),
                 argc > 1 && argv[1][0] != '-' ? (std::string(argv[1]) + " ").c_str() : "");
    return 1;
  }
  try {
#if defined(SPARSIMIX_USE_MPI)
    if (mpi.group->size() > 1 && !*train && !*distill && !*prune)
      throw config_error(detail::concat(app.get_subcommands().front()->get_name(), ": only train, distill and prune run ",
                                        "data-parallel; run it as one process (without mpirun, or with -np 1)"));
#endif
    if (*demo) return run_demo(da);
    if (*study) return run_study_command(sta);
    if (*interaction) return run_interaction(xa);
    if (*train) return run_train(ta);
    if (*sparsity) return run_sparsity(sa);
    if (*distill) return run_distill(di);
    if (*prune) return run_prune(pa);
    if (*eval) return run_eval(ea);
    if (*speed) return run_speed(spa);
    if (*retention) return run_retention(ra);
    if (*inspect) return run_inspect(inspect_path);
    if (*infer) return run_infer(ia);
    if (*grad) return run_grad(ga);
    if (*init) return run_init(na);
  } catch (const std::exception& e) {
#if defined(SPARSIMIX_USE_MPI)
    if (mpi.group->size() > 1) mpi.abort(e.what());
#endif
    std::fprintf(stderr, "sparsimix: %s\n", e.what());
    return 1;
  }
  return 0;
}

SPARSIMIX_ABI_END
}  // namespace sparsimix::cli
