// The code of docs/guide.md, one [example NAME] region per section, compiled and run by CTest
// (docs.snippet.guide checks what it prints). Usage: snippet_guide [fashion-mnist folder]
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include <sparsimix/sparsimix.hpp>

using namespace sparsimix;

// [example own_mixer]
// A mixer of your own: y = x + tanh(x W^T), one weight matrix. These members make it a
// SeqMixer (concepts.hpp): scalar_type, cache_type, dim(), two forwards, backward, parameters().
template <class T>
struct TanhMixer {
  using scalar_type = T;
  struct cache_type {
    Tensor<T> x, t;  // what backward reads: the input and tanh(x W^T)
  };
  index_t c;
  Tensor<T> w{Shape{c, c}}, gw{Shape{c, c}};  // the weight and its gradient

  index_t dim() const { return c; }
  void init(Rng& rng) { fill_uniform(rng, w.data(), w.numel(), -0.1, 0.1); }  // optional
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask*) const {  // inference
    const index_t rows = x.numel() / c;
    for (index_t r = 0; r < rows; ++r)
      for (index_t o = 0; o < c; ++o) {
        T s = 0;
        for (index_t i = 0; i < c; ++i) s += x.data()[r * c + i] * w(o, i);
        y.data()[r * c + o] = x.data()[r * c + o] + std::tanh(s);
      }
  }
  void forward(ConstSeq<T> x, Seq<T> y, cache_type& cache, const TokenMask* mask) {  // training
    forward(x, y, mask);
    cache.x.resize(x.shape());
    cache.x.copy_from(x);
    cache.t.resize(x.shape());
    for (index_t i = 0; i < x.numel(); ++i) cache.t.data()[i] = y.data()[i] - x.data()[i];
  }
  void backward(const cache_type& cache, ConstSeq<T> dy, Seq<T> dx) {  // += grads, writes dx
    const index_t rows = dy.numel() / c;
    for (index_t r = 0; r < rows; ++r)
      for (index_t o = 0; o < c; ++o) dx.data()[r * c + o] = dy.data()[r * c + o];
    for (index_t r = 0; r < rows; ++r)
      for (index_t o = 0; o < c; ++o) {
        const T t = cache.t.data()[r * c + o];
        const T ds = dy.data()[r * c + o] * (1 - t * t);
        for (index_t i = 0; i < c; ++i) {
          gw(o, i) += ds * cache.x.data()[r * c + i];
          dx.data()[r * c + i] += ds * w(o, i);
        }
      }
  }
  ParamList<T> parameters() { return {{"w", w.view(), gw.view()}}; }  // PyTorch-style names
};
static_assert(SeqMixer<TanhMixer<float>>);
// [example own_mixer]

int main(int argc, char** argv) try {
  const std::string dir = argc > 1 ? argv[1] : data::fashion_mnist_default_dir;

  // [example tensors]
  Tensor<float> x(Shape{2, 5, 8});  // owns aligned storage, zero-filled
  Rng rng(42);                      // the same stream on every machine
  fill_normal(rng, x.data(), x.numel(), 0.0, 1.0);
  TensorView<float> first = x[0];   // a view: [5, 8] of x's storage, no copy
  first(0, 0) = 1.5f;
  std::printf("x %s, first %s, x(0, 0, 0) = %.1f\n", x.shape().str().c_str(), first.shape().str().c_str(),
              x(0, 0, 0));
  // [example tensors]

  // [example config]
  vit_config cfg;  // defaults: 28x28, 1 channel, 4x4 patches, 10 classes, C 96, 6 blocks, 3 heads
  cfg.embed_dim = 48;
  cfg.depth = 3;
  cfg.num_heads = 2;
  cfg.mixers = {mixer_spec{},                                                  // attention
                spec_for<MultiHeadLSTM>(),                                     // FAR's LSTM
                spec_for<SelectiveScan>({.d_state = 8, .bidirectional = true})};  // Mamba scan
  cfg.validate();  // HybridViT's constructor does this too: a config_error names the field
  std::printf("config: %s\n", io::to_string(cfg).c_str());
  // [example config]

  // [example model]
  HybridViT<float> model(cfg);
  model.init(rng);  // timm's initialisation (each mixer its own)
  Tensor<float> images(Shape{4, 1, 28, 28}), logits(Shape{4, 10});
  fill_normal(rng, images.data(), images.numel(), 0.0, 1.0);
  model.forward(images.view(), logits.view());  // inference: no tape, no gradients
  std::printf("blocks: %s, %s, %s; %td parameters\n", cfg.mixers[0].kind().c_str(), cfg.mixers[1].kind().c_str(),
              cfg.mixers[2].kind().c_str(), model.num_parameters());
  // [example model]

  // [example any_mixer]
  // An unregistered mixer goes into any block as an AnyMixer (type erasure): it trains and
  // runs, but a checkpoint cannot describe it until it is registered (SPARSIMIX_REGISTER_MIXER,
  // examples/custom_mixer.cpp). Registered and built-in mixers are held without erasure.
  HybridViT<float> custom = model;
  TanhMixer<float> tanh_mixer{.c = cfg.embed_dim};
  tanh_mixer.init(rng);
  custom.replace_mixer(1, AnyMixer<float>(std::move(tanh_mixer)));
  custom.forward(images.view(), logits.view());
  std::printf("block 1 holds an AnyMixer: %s; saveable: %s\n",
              std::holds_alternative<AnyMixer<float>>(custom.mixer(1)) ? "yes" : "no",
              custom.serializable() ? "yes" : "no");
  // [example any_mixer]

  // [example tape]
  // One training step by hand: the tape records the forward, backward fills the parameters'
  // grad views, AdamW updates them (docs/method.md has the exact optimizer).
  AdamW<float> optimizer({.lr = 1e-3, .weight_decay = 0.05});
  optimizer.add_group(custom.parameters());
  Tape<float> tape;
  const std::vector<index_t> labels = {0, 3, 7, 9};
  optimizer.zero_grad();
  const Var out = custom.forward(tape, images.view());  // [4, 10] logits on the tape
  const Var loss = tape.cross_entropy(out, labels);
  tape.backward(loss);
  clip_grad_norm(optimizer.trainable(), 1.0);
  optimizer.step();
  std::printf("one step: loss %.4f\n", double(tape.item(loss)));
  // [example tape]

  // [example data]
  // Fashion-MNIST from Debian's dataset-fashion-mnist (IDX files, gzip or not), normalised; the
  // last 1,000 training images held out for validation and model selection.
  const auto [train, val] = data::split_tail(data::load_fashion_mnist(dir, "train", 6000), 1000);
  const data::image_dataset test = data::load_fashion_mnist(dir, "test", 2000);
  std::printf("train %s, val %td, test %td images\n", train.images.shape().str().c_str(), val.size(), test.size());
  // [example data]

  // [example train]
  fit_options fo;  // AdamW, cosine schedule with warm-up, clipping; see distill/train.hpp
  fo.steps = 150;
  fo.batch = 64;
  fo.lr = 2e-3;
  fo.eval_every = 50;
  fo.restore_best = true;  // end with the weights of the best validation run
  const fit_result fr = train_classifier(model, train, &val, fo);
  const eval_result er = evaluate(model, test);
  std::printf("trained %td steps (%.0f images/s): best validation accuracy %.3f at step %td, test %.3f\n", fr.steps,
              fr.images_per_second, fr.best_val_accuracy, fr.best_step, er.accuracy);
  // [example train]

  // [example checkpoint]
  const std::string path = (std::filesystem::temp_directory_path() / "guide_model.safetensors").string();
  io::save_checkpoint(model, path);  // atomic; timm names, config in the metadata
  const HybridViT<float> loaded = io::load_checkpoint<float>(path);
  std::printf("reloaded: %td blocks, mixer 2 is %s, test accuracy %.3f\n", loaded.depth(),
              loaded.config().mixers[2].kind().c_str(), evaluate(loaded, test).accuracy);
  // [example checkpoint]
  std::filesystem::remove(path);

  // [example distill]
  // The teacher: an all-attention model. Rank its layers by attention sparsity on held-out
  // images, replace the sparsest one by an LSTM, and distil (stage 1: match the teacher's
  // pre-projection output; stage 2: fine-tune with cross-entropy + KD on the logits).
  vit_config tcfg = cfg;
  tcfg.mixers.assign(3, mixer_spec{});
  HybridViT<float> teacher(tcfg);
  teacher.init(rng);
  train_classifier(teacher, train, &val, fo);
  const sparsity_ranking ranking = rank_by_sparsity(teacher, val, 256);
  const std::vector<index_t> layers = select_layers(ranking.order, layer_selection::sparsest, 1);
  HybridViT<float> student = make_student(teacher, layers, spec_for<MultiHeadLSTM>(), rng);
  distill_options dopt;
  dopt.stage1 = fo;
  dopt.stage1.steps = 60;
  dopt.stage1.restore_best = false;
  dopt.stage2 = dopt.stage1;
  dopt.stage2.steps = 30;
  distill(teacher, student, layers, train, nullptr, dopt);
  std::printf("replaced layer %td: teacher test %.3f, student test %.3f\n", layers[0], evaluate(teacher, test).accuracy,
              evaluate(student, test).accuracy);
  // [example distill]

  // [example prune]
  // FAR's pruning of the student's LSTM units: Hoyer-Square training, one global cut of half
  // the units, a masked fine-tune; the pruned LSTM then computes at its reduced widths.
  prune_options popt;
  popt.regularise = dopt.stage1;
  popt.regularise.steps = 30;
  popt.finetune = popt.regularise;
  popt.select.fraction = 0.5;
  const prune_result pr = prune(student, train, nullptr, popt);
  std::printf("pruned %td of %td units: %td -> %td non-zero parameters, test %.3f\n", pr.pruning.pruned_units,
              pr.pruning.units, pr.before.nonzero_params, pr.after.nonzero_params, evaluate(student, test).accuracy);
  // [example prune]

  // [example errors]
  // Every sparsimix exception derives from sparsimix::error (a std::runtime_error): one line
  // naming the tensor, file or option, the expected and the actual.
  try {
    Tensor<float> wrong(Shape{4, 3, 28, 28});
    model.forward(wrong.view(), logits.view());
  } catch (const shape_error& e) {  // what() starts with the type: "shape_error: ..."
    std::printf("%s\n", e.what());
  }
  // [example errors]
  std::printf("guide ok\n");
  return 0;
} catch (const sparsimix::error& e) {
  std::fprintf(stderr, "FAILED: %s\n", e.what());
  return 1;
}
