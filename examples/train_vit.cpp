// Trains a small hybrid ViT on Fashion-MNIST with the autograd tape and AdamW, written out as
// the loop it is (sparsimix::train_classifier wraps the same loop with checkpoints, validation
// and A-ViT losses). Usage: train_vit [steps] [fashion-mnist folder]
//   steps   optimizer updates (default 600: about a minute on 2 cores)
//   folder  the IDX files (default /usr/share/datasets/fashion-mnist, Debian's
//           dataset-fashion-mnist package)
#include <cstdio>
#include <cstdlib>
#include <string>

#include <sparsimix/sparsimix.hpp>

using namespace sparsimix;

int main(int argc, char** argv) try {
  const index_t steps = argc > 1 ? std::atoll(argv[1]) : 600;
  const std::string dir = argc > 2 ? argv[2] : data::fashion_mnist_default_dir;

  // 28x28 images in 4x4 patches: 49 patch tokens + CLS. Block 1 mixes its tokens with a
  // multi-head LSTM instead of attention: each block's mixer is a config entry.
  vit_config cfg;
  cfg.embed_dim = 64;
  cfg.depth = 3;
  cfg.num_heads = 2;
  cfg.mlp_ratio = 2.0;
  cfg.mixers = {mixer_spec{}, spec_for<MultiHeadLSTM>(), mixer_spec{}};  // attention, LSTM, attention
  HybridViT<float> model(cfg);
  Rng rng(0);
  model.init(rng);
  std::printf("model: %td blocks (attention, mh_lstm, attention), %td parameters\n", cfg.depth, model.num_parameters());

  // Pixels normalised with the dataset's mean and std; labels 0..9.
  const data::image_dataset train = data::load_fashion_mnist(dir, "train");
  const data::image_dataset test = data::load_fashion_mnist(dir, "test");

  // AdamW over every parameter (biases and norms are excluded from weight decay by their
  // Param::decay flag), a cosine learning-rate schedule with a short linear warm-up.
  AdamW<float> optimizer({.lr = 2e-3, .weight_decay = 0.05});
  optimizer.add_group(model.parameters());
  const cosine_schedule schedule(2e-3, steps, steps / 20, 1e-5);
  data::batch_loader loader(train, {.batch = 64, .seed = 0});

  Tape<float> tape;
  Tensor<float> images;
  std::vector<index_t> labels;
  index_t epoch = 0;
  for (index_t step = 0; step < steps; ++step) {
    if (!loader.next(images, labels)) {  // end of an epoch: reshuffle
      loader.start_epoch(++epoch);
      loader.next(images, labels);
    }
    tape.clear();           // the tape records one step's graph
    optimizer.zero_grad();  // backward accumulates into the parameters' grad views
    const Var logits = model.forward(tape, images.view());
    const Var loss = tape.cross_entropy(logits, labels);
    tape.backward(loss);
    clip_grad_norm(optimizer.trainable(), 1.0);
    optimizer.set_lr(schedule(step));
    optimizer.step();
    if ((step + 1) % 100 == 0 || step + 1 == steps)
      std::printf("step %4td/%td  loss %.4f  batch accuracy %.3f  lr %.2e\n", step + 1, steps, double(tape.item(loss)),
                  batch_accuracy(tape.value(logits), labels), schedule(step));
  }

  const eval_result r = evaluate(model, test);
  std::printf("test accuracy %.4f on %td images (loss %.4f)\n", r.accuracy, r.count, r.loss);
  return 0;
} catch (const sparsimix::error& e) {  // every sparsimix exception: a typed error with one clear line
  std::fprintf(stderr, "train_vit: %s\n", e.what());
  return 1;
}
