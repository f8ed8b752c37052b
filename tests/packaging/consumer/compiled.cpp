// A user's program against the installed compiled library (sparsimix::compiled): a hybrid of
// all three built-in mixers trains two steps on random images; the model, tape, optimizer and
// training loop come from libsparsimix_compiled, not from this translation unit.
#include <cmath>
#include <cstdio>

#include <sparsimix/sparsimix.hpp>

#ifndef SPARSIMIX_EXTERN_TEMPLATES
#error "linking sparsimix::compiled defines SPARSIMIX_EXTERN_TEMPLATES"
#endif

int main() {
  using namespace sparsimix;
  vit_config c;
  c.img_size = 8;
  c.patch_size = 4;
  c.embed_dim = 12;
  c.depth = 3;
  c.num_heads = 2;
  c.mlp_ratio = 2.0;
  c.mixers = {mixer_spec("attention"), mixer_spec("mh_lstm"), mixer_spec("selective_scan")};
  HybridViT<float> model(c);
  Rng rng(3);
  model.init(rng);

  data::image_dataset ds;
  ds.images = Tensor<float>(Shape{32, 1, 8, 8});
  ds.labels = Tensor<std::int64_t>(Shape{32});
  fill_normal(rng, ds.images.data(), ds.images.numel(), 0, 1);
  for (index_t i = 0; i < 32; ++i) ds.labels.data()[i] = i % 10;

  fit_options opt;
  opt.steps = 2;
  opt.batch = 16;
  const fit_result r = train_classifier(model, ds, nullptr, opt);
  const eval_result e = evaluate(model, ds);
  if (!std::isfinite(e.loss)) { std::printf("loss is not finite\n"); return 1; }
  std::printf("compiled consumer ok: %lld steps, loss %.4f\n", static_cast<long long>(r.steps), e.loss);
  return 0;
}
