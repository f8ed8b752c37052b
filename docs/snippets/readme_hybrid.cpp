// The README's example: a hybrid ViT built, run and saved (compiled and run by CTest).
// [example]
#include <cstdio>
#include <sparsimix/sparsimix.hpp>
using namespace sparsimix;

int main() {
  vit_config cfg;  // a DeiT-Tiny-shaped ViT: 224x224 RGB in 16x16 patches, 12 blocks of width 192
  cfg.img_size = 224; cfg.patch_size = 16; cfg.in_chans = 3; cfg.num_classes = 1000;
  cfg.embed_dim = 192; cfg.depth = 12; cfg.num_heads = 3;
  cfg.mixers.assign(12, mixer_spec{});  // attention in every block,
  for (index_t l : {4, 5, 6, 7}) cfg.mixers[l] = spec_for<MultiHeadLSTM>();  // but LSTMs in 4-7.
  HybridViT<float> model(cfg);
  Rng rng(0);
  model.init(rng);  // timm's initialisation

  Tensor<float> images(Shape{2, 3, 224, 224}), logits(Shape{2, 1000});
  fill_normal(rng, images.data(), images.numel(), 0.0, 1.0);
  model.forward(images.view(), logits.view());
  std::printf("%td parameters; logits[0, :3] = %.4f %.4f %.4f\n", model.num_parameters(), logits(0, 0),
              logits(0, 1), logits(0, 2));
  io::save_checkpoint(model, "hybrid.safetensors");  // timm's names: PyTorch loads it
}
// [example]
