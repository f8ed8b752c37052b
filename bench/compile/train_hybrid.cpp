// Compile-time probe: a program that trains a hybrid ViT (attention + mh_lstm + scan blocks)
// with the library's training loop.
#include <sparsimix/distill/train.hpp>

int main() {
  sparsimix::vit_config cfg;
  cfg.img_size = 8, cfg.patch_size = 4, cfg.embed_dim = 12, cfg.depth = 3, cfg.num_heads = 3;
  cfg.mixers = {sparsimix::mixer_spec("attention"), sparsimix::mixer_spec("mh_lstm"), sparsimix::mixer_spec("selective_scan")};
  sparsimix::HybridViT<float> model(cfg);
  sparsimix::Rng rng(0);
  model.init(rng);
  sparsimix::data::image_dataset ds{sparsimix::Tensor<float>(sparsimix::Shape{16, 1, 8, 8}),
                                    sparsimix::Tensor<std::int64_t>(sparsimix::Shape{16})};
  sparsimix::fit_options fo;
  fo.steps = 2;
  fo.batch = 8;
  sparsimix::train_classifier(model, ds, nullptr, fo);
  return 0;
}
