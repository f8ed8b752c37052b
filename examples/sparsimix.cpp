// The sparsimix command: one program, one subcommand per pipeline step (FORMATS.md §3).
// Every subcommand prints --help, and exits non-zero with a one-line reason on bad input.
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <sparsimix/io/checkpoint.hpp>
#include <sparsimix/sparsimix.hpp>

#include "pipeline_commands.hpp"

namespace {

using namespace sparsimix;

// `inspect`: what a safetensors file holds (names, dtypes, shapes, metadata).
int run_inspect(const std::string& path) {
  const auto f = io::safetensors_file::load(path);
  for (const auto& [k, v] : f.metadata()) std::printf("metadata %s = %s\n", k.c_str(), v.c_str());
  for (const auto& r : f.records())
    std::printf("%-48s %-5s %s\n", r.name.c_str(), io::dtype_name(r.type), r.shape.str().c_str());
  return 0;
}

// `infer`: logits (and with capture, block outputs and attention maps) of a checkpoint.
int run_infer(const std::string& model_path, const std::string& input_path, const std::string& out_path, bool capture,
              const io::load_options& opt) {
  auto model = io::load_checkpoint<float>(model_path, opt);
  const auto in = io::safetensors_file::load(input_path);
  const auto& c = model.config();
  const auto images = in.get<float>("images", {-1, c.in_chans, c.img_size, c.img_size});
  check_finite<float>(input_path.c_str(), "images", images.view());
  Tensor<float> logits(Shape{images.size(0), c.num_classes});
  vit_capture<float> cap;
  cap.blocks = cap.maps = capture;
  model.forward(images.view(), logits.view(), capture ? &cap : nullptr);
  io::safetensors_writer w;
  w.add("logits", logits);
  if (capture) {
    for (index_t i = 0; i < model.depth(); ++i) {
      const auto k = static_cast<std::size_t>(i);
      w.add("blocks." + std::to_string(i) + ".out", cap.block_out[k]);
      if (cap.attn_map[k].numel()) w.add("blocks." + std::to_string(i) + ".attn_map", cap.attn_map[k]);
    }
    if (c.halting) w.add("halting.depth", model.halting().depth(), io::dtype::i64);
  }
  w.write(out_path);
  return 0;
}

// `grad`: mean cross-entropy of the logits and d loss / d parameter, in PyTorch's layout.
int run_grad(const std::string& model_path, const std::string& input_path, const std::string& out_path,
             const io::load_options& opt) {
  auto model = io::load_checkpoint<float>(model_path, opt);
  const auto in = io::safetensors_file::load(input_path);
  const auto& c = model.config();
  const auto images = in.get<float>("images", {-1, c.in_chans, c.img_size, c.img_size});
  check_finite<float>(input_path.c_str(), "images", images.view());
  const auto labels = in.get<std::int64_t>("labels", {images.size(0)});
  std::vector<index_t> y(static_cast<std::size_t>(labels.numel()));
  for (index_t i = 0; i < labels.numel(); ++i) {
    if (labels.data()[i] < 0 || labels.data()[i] >= c.num_classes)
      throw format_error(detail::concat(input_path, ": labels[", i, "] is ", labels.data()[i], ", expected 0..",
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
  w.write(out_path);
  return 0;
}

// `init`: a randomly initialised model from a config JSON file, written as a checkpoint.
int run_init(const std::string& config_path, std::uint64_t seed, const std::string& out_path) {
  std::ifstream f(config_path);
  if (!f) throw io_error("cannot open '" + config_path + "'");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  HybridViT<float> model(io::vit_config_from_string(text));
  Rng rng(seed);
  model.init(rng);
  io::save_checkpoint(model, out_path);
  std::printf("%s: %td parameters\n", out_path.c_str(), model.num_parameters());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Training-size GEMMs otherwise mmap/munmap their packing buffers on every call.
  sparsimix::keep_large_allocations_in_heap();
  CLI::App app{"sparsimix: distil ViT attention layers into multi-head LSTMs and selective scans"};
  app.require_subcommand(1);

  std::string data_dir = io::fashion_mnist_default_dir, out_dir = "runs/demo", budget = "small";
  std::uint64_t demo_seed = 0;
  auto* demo = app.add_subcommand("demo", "The main job on Fashion-MNIST: teacher, sparsity, distillation, report");
  demo->add_option("--data", data_dir, "Folder with the Fashion-MNIST .gz files")->capture_default_str();
  demo->add_option("--out", out_dir, "Run folder for config.json, report.json, CSV and SVG")->capture_default_str();
  demo->add_option("--budget", budget, "small (< 20 min on 2 cores), full (quality run) or tiny (smoke test)")
      ->capture_default_str();
  demo->add_option("--seed", demo_seed, "RNG seed (same seed, same numbers on one machine)")->capture_default_str();

  cli::train_args ta;
  auto* train = app.add_subcommand("train", "Train a ViT teacher on Fashion-MNIST, keeping the best checkpoint");
  train->add_option("--data", ta.data, "Folder with the Fashion-MNIST .gz files")->capture_default_str();
  train->add_option("--out", ta.out, "Checkpoint to write (best validation accuracy)")->capture_default_str();
  train->add_option("--config", ta.config, "Model config JSON (default: the demo teacher)");
  train->add_option("--budget", ta.budget, "Preset for steps and learning rate: tiny, small, full")->capture_default_str();
  train->add_option("--steps", ta.steps, "Optimizer steps (overrides the budget)");
  train->add_option("--batch", ta.batch, "Batch size (overrides the budget)");
  train->add_option("--lr", ta.lr, "Peak learning rate (overrides the budget)");
  train->add_flag("--augment", ta.augment, "Random shifts and horizontal flips");
  train->add_option("--seed", ta.seed, "RNG seed")->capture_default_str();

  std::string sp_model, sp_out = "sparsity";
  index_t sp_count = 1000;
  auto* sparsity = app.add_subcommand("sparsity", "Attention sparsity per layer and head on held-out training images");
  sparsity->add_option("--model", sp_model, "Teacher checkpoint")->required();
  sparsity->add_option("--data", data_dir, "Folder with the Fashion-MNIST .gz files")->capture_default_str();
  sparsity->add_option("--out", sp_out, "Folder for sparsity.json and sparsity_heatmap.svg")->capture_default_str();
  sparsity->add_option("--count", sp_count, "Calibration images")->capture_default_str();

  cli::distill_args da;
  auto* distill = app.add_subcommand("distill", "Replace attention layers by a sequential mixer and distil them");
  distill->add_option("--teacher", da.teacher, "Teacher checkpoint")->required();
  distill->add_option("--data", da.data, "Folder with the Fashion-MNIST .gz files")->capture_default_str();
  distill->add_option("--out", da.out, "Student checkpoint to write")->capture_default_str();
  distill->add_option("--mixer", da.mixer, "mh_lstm or selective_scan")->capture_default_str();
  distill->add_option("--layers", da.layers, "Layers to replace, e.g. 0,1");
  distill->add_option("--select", da.select, "Or pick them by attention sparsity: sparsest or densest");
  distill->add_option("--k", da.k, "How many layers --select picks (default depth/3)");
  distill->add_option("--target", da.target, "Stage-1 target: pre_proj, mixer_out, block_out or cosine")->capture_default_str();
  distill->add_flag("--teacher-forced", da.teacher_forced, "Stage 1 on the teacher's block inputs (local losses only)");
  distill->add_option("--stage1-steps", da.stage1, "Stage-1 steps (default from --budget)");
  distill->add_option("--stage2-steps", da.stage2, "Stage-2 steps (default from --budget; 0 skips it)");
  distill->add_option("--budget", da.budget, "Preset: tiny, small, full")->capture_default_str();
  distill->add_option("--seed", da.seed, "RNG seed")->capture_default_str();

  std::string ev_model;
  index_t ev_limit = 0;
  auto* eval = app.add_subcommand("eval", "Test accuracy, parameter count and latency of a checkpoint");
  eval->add_option("--model", ev_model, "Checkpoint")->required();
  eval->add_option("--data", data_dir, "Folder with the Fashion-MNIST .gz files")->capture_default_str();
  eval->add_option("--limit", ev_limit, "Evaluate on the first N test images only");

  std::string inspect_path;
  auto* inspect = app.add_subcommand("inspect", "List the tensors and metadata of a safetensors file");
  inspect->add_option("file", inspect_path, "A .safetensors file")->required();

  std::string model_path, input_path, out_path, config_path;
  bool capture = false;
  std::uint64_t seed = 0;
  io::load_options opt;
  auto* infer = app.add_subcommand("infer", "Logits of a checkpoint on images (F32 [B, C, H, W] tensor 'images')");
  infer->add_option("--model", model_path, "Model checkpoint (.safetensors; sparsimix or timm names)")->required();
  infer->add_option("--input", input_path, "Input .safetensors holding 'images'")->required();
  infer->add_option("--out", out_path, "Output .safetensors: 'logits' [B, classes]")->required();
  infer->add_flag("--capture", capture, "Also write blocks.{i}.out and, for attention blocks, blocks.{i}.attn_map");
  infer->add_option("--heads", opt.num_heads, "Heads of a timm checkpoint without sparsimix.config (default C/64)");
  auto* grad = app.add_subcommand("grad", "Mean cross-entropy and its gradient for every parameter");
  grad->add_option("--model", model_path, "Model checkpoint (.safetensors)")->required();
  grad->add_option("--input", input_path, "Input .safetensors holding 'images' and 'labels' (I64 [B])")->required();
  grad->add_option("--out", out_path, "Output .safetensors: 'loss' [1] and grad.{name} per parameter")->required();
  grad->add_option("--heads", opt.num_heads, "Heads of a timm checkpoint without sparsimix.config (default C/64)");
  auto* init = app.add_subcommand("init", "Write a randomly initialised model for a config (sparsimix.config JSON)");
  init->add_option("--config", config_path, "JSON file in the sparsimix.config format")->required();
  init->add_option("--seed", seed, "RNG seed")->capture_default_str();
  init->add_option("--out", out_path, "Output checkpoint (.safetensors)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*demo) return cli::run_demo(data_dir, out_dir, budget, demo_seed);
    if (*train) return cli::run_train(ta);
    if (*sparsity) return cli::run_sparsity(sp_model, data_dir, sp_out, sp_count);
    if (*distill) return cli::run_distill(da);
    if (*eval) return cli::run_eval(ev_model, data_dir, ev_limit);
    if (*inspect) return run_inspect(inspect_path);
    if (*infer) return run_infer(model_path, input_path, out_path, capture, opt);
    if (*grad) return run_grad(model_path, input_path, out_path, opt);
    if (*init) return run_init(config_path, seed, out_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sparsimix: %s\n", e.what());
    return 1;
  }
  return 0;
}
