// Layer-wise distillation of a trained ViT in code: the library calls behind
// `sparsimix distill --select sparsest`. It loads a teacher checkpoint, measures the attention
// sparsity of every layer on held-out training images, replaces the sparsest third of the
// layers by multi-head LSTMs, distils them (FAR's two stages), evaluates both models on the
// test set and saves the student.
// Usage: distill_checkpoint TEACHER.safetensors [STUDENT.safetensors] [fashion-mnist folder]
// (a teacher: `sparsimix train --out teacher.safetensors`, or a timm checkpoint of a ViT).
#include <cstdio>
#include <string>

#include <sparsimix/sparsimix.hpp>

using namespace sparsimix;

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: distill_checkpoint TEACHER.safetensors [STUDENT.safetensors] [data folder]\n");
    return 2;
  }
  const std::string teacher_path = argv[1];
  const std::string student_path = argc > 2 ? argv[2] : "student.safetensors";
  const std::string dir = argc > 3 ? argv[3] : data::fashion_mnist_default_dir;

  // The checkpoint names its architecture (sparsimix's config in the safetensors metadata,
  // or inferred from timm's tensor names and shapes).
  const HybridViT<float> teacher = io::load_checkpoint<float>(teacher_path);
  std::printf("teacher: %td blocks, embed_dim %td, %td heads\n", teacher.depth(), teacher.config().embed_dim,
              teacher.config().num_heads);

  // Training images for distillation; the last 5,000 are held out for measuring sparsity
  // (never the test set, which is only for the final numbers).
  auto [train, val] = data::split_tail(data::load_fashion_mnist(dir, "train"), 5000);
  const data::image_dataset test = data::load_fashion_mnist(dir, "test");

  // Sparsity of each attention layer's maps (k90: the fraction of keys holding 90% of a
  // query's attention; smaller is sparser), and the layers from sparsest to densest.
  const sparsity_ranking ranking = rank_by_sparsity(teacher, val, /*count=*/256);
  for (const index_t l : ranking.order) std::printf("  layer %td  k90 %.3f\n", l, ranking.score(l));
  const std::vector<index_t> layers =
      select_layers(ranking.order, layer_selection::sparsest, default_group_size(teacher.depth()));
  std::printf("replacing layers:");
  for (const index_t l : layers) std::printf(" %td", l);
  std::printf("\n");

  // The student starts as a copy of the teacher with fresh LSTM mixers in those layers (their
  // output projection taken from the teacher's attention). Stage 1 trains the new mixers to
  // reproduce the teacher's pre-projection attention outputs; stage 2 fine-tunes everything
  // with cross-entropy and knowledge distillation from the teacher's logits.
  Rng rng(0);
  HybridViT<float> student = make_student(teacher, layers, spec_for<MultiHeadLSTM>(), rng);
  distill_options opt;
  opt.stage1.steps = 150;
  opt.stage1.batch = 64;
  opt.stage1.lr = 5e-4;
  opt.stage2 = opt.stage1;
  opt.stage2.steps = 50;
  opt.stage2.lr = 1e-4;
  const distill_result r = distill(teacher, student, layers, train, nullptr, opt);
  std::printf("stage 1: %td steps in %.1f s, loss %.4f; stage 2: %td steps, loss %.4f\n", r.stage1.steps,
              r.stage1.seconds, r.stage1.final_loss, r.stage2.steps, r.stage2.final_loss);

  const double t_acc = evaluate(teacher, test).accuracy, s_acc = evaluate(student, test).accuracy;
  std::printf("test accuracy: teacher %.4f, student %.4f (drop %.2f points)\n", t_acc, s_acc, 100 * (t_acc - s_acc));

  // Written atomically (a crash never leaves half a file); PyTorch loads it with timm's names.
  io::save_checkpoint(student, student_path);
  std::printf("saved %s\n", student_path.c_str());
  return 0;
} catch (const sparsimix::error& e) {
  std::fprintf(stderr, "distill_checkpoint: %s\n", e.what());
  return 1;
}
