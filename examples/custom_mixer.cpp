// A mixer written outside sparsimix, used everywhere a built-in one is: token_mean_mixer.hpp
// defines TokenMean and registers it as kind "token_mean" (docs/architecture.md, "How to add a
// mixer"). Without arguments this program walks through what that buys, checking each step:
//   1. its backward against finite differences (double precision, with a token mask);
//   2. a HybridViT from config JSON that names the kind, trained a few steps with the tape;
//   3. a checkpoint round trip (the config records the mixer's own options);
//   4. layer-wise distillation into it with FAR's pre-projection target.
// With a subcommand it is the sparsimix command, with token_mean among the --mixer kinds:
//   custom_mixer distill --teacher teacher.safetensors --mixer token_mean:self_weight=0.5 --layers 1
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/cli/main.hpp>

#include "token_mean_mixer.hpp"

using namespace sparsimix;

namespace {

int fail(const std::string& what) {
  std::printf("FAILED: %s\n", what.c_str());
  return 1;
}

// Random images and labels in the shape the model reads.
data::image_dataset random_images(index_t n, const vit_config& c, Rng& rng) {
  data::image_dataset ds{Tensor<float>(Shape{n, c.in_chans, c.img_size, c.img_size}), Tensor<std::int64_t>(Shape{n})};
  fill_normal(rng, ds.images.data(), ds.images.numel(), 0.0, 1.0);
  for (index_t i = 0; i < n; ++i) ds.labels.data()[i] = static_cast<std::int64_t>(rng.below(static_cast<std::uint64_t>(c.num_classes)));
  return ds;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1) return cli::main(argc, argv);

  // 1. The backward, checked in double with every second token of one sequence dead.
  {
    Rng rng(1);
    example::TokenMean<double> m(6, {.self_weight = 0.7, .center = true});
    m.init(rng);
    Tensor<double> x(Shape{2, 5, 6});
    fill_normal(rng, x.data(), x.numel(), 0.0, 1.0);
    TokenMask mask(2, 5);
    for (index_t n = 1; n < 5; n += 2) mask.set(1, n, false);
    const auto r = gradcheck_mixer(m, x, &mask);
    std::printf("1. gradcheck (double, masked): %td entries, max |analytic - numeric| %.2e\n", r.checked, r.max_abs_error);
    if (!r.ok) return fail("gradcheck: " + r.worst);
  }

  // 2. A model whose config names the kind, like any built-in.
  const std::string config_json = R"({"img_size": 8, "patch_size": 4, "in_chans": 1, "num_classes": 3,
    "embed_dim": 12, "depth": 2, "num_heads": 2, "mlp_ratio": 2.0,
    "mixers": [{"kind": "attention"}, {"kind": "token_mean", "self_weight": 0.5}]})";
  const vit_config cfg = io::vit_config_from_string(config_json);
  HybridViT<float> model(cfg);
  Rng rng(7);
  model.init(rng);
  const auto train = random_images(64, cfg, rng);
  fit_options fo;
  fo.steps = 20;
  fo.batch = 16;
  fo.lr = 3e-3;
  const double first_loss = evaluate(model, train).loss;
  train_classifier(model, train, nullptr, fo);
  const double last_loss = evaluate(model, train).loss;
  std::printf("2. trained %td steps: training loss %.4f -> %.4f; config: %s\n", fo.steps, first_loss, last_loss,
              io::to_json(model.config().mixers[1]).dump().c_str());
  if (!(last_loss < first_loss)) return fail("training did not lower the loss");

  // 3. Save and load: the same logits.
  const std::string path = (std::filesystem::temp_directory_path() / "sparsimix_custom_mixer.safetensors").string();
  io::save_checkpoint(model, path);
  const auto loaded = io::load_checkpoint<float>(path);
  std::filesystem::remove(path);
  Tensor<float> a(Shape{8, 3}), b(Shape{8, 3});
  Tensor<float> images(Shape{8, 1, 8, 8});
  std::copy_n(train.images.data(), images.numel(), images.data());
  model.forward(images.view(), a.view());
  loaded.forward(images.view(), b.view());
  double diff = 0;
  for (index_t i = 0; i < a.numel(); ++i) diff = std::max(diff, std::abs(double(a.data()[i]) - double(b.data()[i])));
  std::printf("3. checkpoint round trip: max logit difference %.1e, kinds %s, %s\n", diff,
              loaded.config().mixers[0].kind().c_str(), loaded.config().mixers[1].kind().c_str());
  if (diff != 0 || !(loaded.config().mixers == model.config().mixers)) return fail("checkpoint round trip");

  // 4. Distil a teacher's attention layer 1 into a TokenMean: proj comes from the teacher and
  //    stays frozen in stage 1, which matches the pre-projection outputs.
  vit_config tcfg = cfg;
  tcfg.mixers.assign(2, mixer_spec{});
  HybridViT<float> teacher(tcfg);
  teacher.init(rng);
  HybridViT<float> student = make_student(teacher, {1}, spec_for<example::TokenMean>({.self_weight = 0.5}), rng);
  distill_options dopt;
  dopt.stage1 = fo;
  dopt.stage1.steps = 10;
  dopt.stage2 = fo;
  dopt.stage2.steps = 0;
  const auto res = distill(teacher, student, {1}, train, nullptr, dopt);
  const auto teacher_proj = teacher.mixer_tensors(1);
  const auto student_proj = student.mixer_tensors(1);
  bool proj_kept = true;
  for (const auto& [name, t] : student_proj)
    for (const auto& [tn, tt] : teacher_proj)
      if (name == tn && name.rfind("proj.", 0) == 0)
        for (index_t i = 0; i < t.numel(); ++i) proj_kept = proj_kept && t.data()[i] == tt.data()[i];
  std::printf("4. distilled layer 1 (target %s): stage-1 loss %.4f, proj = teacher's proj: %s\n",
              std::string(to_string(dopt.target)).c_str(), res.stage1.final_loss, proj_kept ? "yes" : "no");
  if (!proj_kept || !std::isfinite(res.stage1.final_loss)) return fail("distillation");
  std::printf("custom mixer ok\n");
  return 0;
}
