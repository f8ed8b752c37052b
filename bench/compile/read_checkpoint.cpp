// Compile-time probe: what a program that only serves a trained model compiles: load a
// checkpoint, run inference (no tape, no training code).
#include <cstdio>

#include <sparsimix/io/checkpoint.hpp>

int main(int argc, char** argv) {
  if (argc < 2) return 0;
  const auto model = sparsimix::io::load_checkpoint<float>(argv[1]);
  const auto& c = model.config();
  sparsimix::Tensor<float> images(sparsimix::Shape{1, c.in_chans, c.img_size, c.img_size});
  sparsimix::Tensor<float> logits(sparsimix::Shape{1, c.num_classes});
  model.forward(images.view(), logits.view());
  std::printf("%f\n", static_cast<double>(logits.data()[0]));
  return 0;
}
