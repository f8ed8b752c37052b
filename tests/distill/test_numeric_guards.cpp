// Training stops at the first non-finite number and says where it came from: the loss (with
// the step and the first layer whose output overflows) or a parameter's gradient (with the
// parameter's name, so the layer).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>

#include <sparsimix/distill/train.hpp>
#include <sparsimix/models.hpp>

#include "support/tiny_vit.hpp"

using namespace sparsimix;

namespace {

// A user mixer whose forward is the identity and whose backward overflows: a finite loss
// with a NaN gradient for its own parameter.
template <class T>
struct nan_backward_mixer {
  using scalar_type = T;
  struct cache_type {};
  Tensor<T> w, gw;
  explicit nan_backward_mixer(index_t c) : w(Shape{c}, T(1)), gw(Shape{c}) {}
  index_t dim() const { return w.numel(); }
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask*) const {
    for (index_t i = 0; i < x.numel(); ++i) y.data()[i] = x.data()[i];
  }
  void forward(ConstSeq<T> x, Seq<T> y, cache_type&, const TokenMask* m) { forward(x, y, m); }
  void backward(const cache_type&, ConstSeq<T> dy, Seq<T> dx) {
    for (index_t i = 0; i < dy.numel(); ++i) dx.data()[i] = dy.data()[i];
    gw.data()[0] = std::numeric_limits<T>::quiet_NaN();
  }
  ParamList<T> parameters() { return {{"scale", w.view(), gw.view(), false}}; }
};

// A user mixer whose forward overflows float: y = x * 1e30 * 1e30.
template <class T>
struct overflowing_mixer {
  using scalar_type = T;
  struct cache_type {};
  Tensor<T> w, gw;
  explicit overflowing_mixer(index_t c) : w(Shape{c}, T(1e30)), gw(Shape{c}) {}
  index_t dim() const { return w.numel(); }
  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask*) const {
    for (index_t i = 0; i < x.numel(); ++i) y.data()[i] = x.data()[i] * w.data()[0] * w.data()[0];
  }
  void forward(ConstSeq<T> x, Seq<T> y, cache_type&, const TokenMask* m) { forward(x, y, m); }
  void backward(const cache_type&, ConstSeq<T> dy, Seq<T> dx) {
    for (index_t i = 0; i < dy.numel(); ++i) dx.data()[i] = dy.data()[i];
  }
  ParamList<T> parameters() { return {{"scale", w.view(), gw.view(), false}}; }
};

data::image_dataset guard_images(index_t n) {
  data::image_dataset ds;
  ds.images = Tensor<float>(Shape{n, 1, 28, 28});
  ds.labels = Tensor<std::int64_t>(Shape{n});
  Rng rng(11);
  for (index_t i = 0; i < ds.images.numel(); ++i) ds.images.data()[i] = static_cast<float>(rng.uniform());
  for (index_t i = 0; i < n; ++i) ds.labels.data()[i] = i % 10;
  return ds;
}

HybridViT<float> guard_model() {
  HybridViT<float> m(test::tiny_vit_config());
  Rng rng(2);
  m.init(rng);
  return m;
}

fit_options guard_options(index_t steps) {
  fit_options o;
  o.steps = steps;
  o.batch = 8;
  return o;
}

void set_weight(HybridViT<float>& m, const std::string& name, float v) {
  for (auto& p : m.parameters())
    if (p.name == name) std::fill(p.value.begin(), p.value.end(), v);
}

}  // namespace

TEST_CASE("fit names the parameter whose gradient is not finite", "[distill][guards]") {
  HybridViT<float> m = guard_model();
  m.replace_mixer(1, AnyMixer<float>(nan_backward_mixer<float>(24)));
  CHECK_THROWS_WITH(train_classifier(m, guard_images(16), nullptr, guard_options(3)),
                    Catch::StartsWith("numeric_error: fit: the gradient of blocks.1.attn.scale is nan at element 0, step 0"));
}

TEST_CASE("fit stops at a non-finite loss and names the step", "[distill][guards]") {
  HybridViT<float> m = guard_model();
  fit_options o = guard_options(6);
  o.lr = 1e30;  // the first update overflows every weight
  o.warmup_fraction = 0;
  CHECK_THROWS_WITH(train_classifier(m, guard_images(16), nullptr, o), Catch::Matches("numeric_error: fit: loss is -?nan at step 1 .*"));
}

TEST_CASE("a non-finite loss names the first layer whose output overflows", "[distill][guards]") {
  HybridViT<float> custom = guard_model();
  custom.replace_mixer(1, AnyMixer<float>(overflowing_mixer<float>(24)));
  CHECK_THROWS_WITH(train_classifier(custom, guard_images(16), nullptr, guard_options(3)),
                    Catch::Matches("numeric_error: fit: loss is -?nan at step 0 \\(lr [^)]*\\); the forward pass first "
                                   "overflows at the output of block 1's mixer \\(an unregistered mixer\\)"));
  // A registered mixer is named by its kind; an overflow after the mixer, by its block.
  HybridViT<float> attention = guard_model();
  set_weight(attention, "blocks.2.attn.proj.weight", 1e30f);
  CHECK_THROWS_WITH(train_classifier(attention, guard_images(16), nullptr, guard_options(3)),
                    Catch::Contains("first overflows at the output of block 2's mixer (attention)"));
  HybridViT<float> mlp = guard_model();
  set_weight(mlp, "blocks.0.mlp.fc2.weight", 1e30f);
  CHECK_THROWS_WITH(train_classifier(mlp, guard_images(16), nullptr, guard_options(3)),
                    Catch::Contains("first overflows at the output of block 0 (after its MLP)"));
}
