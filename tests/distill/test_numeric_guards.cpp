// Training stops at the first non-finite number and says where it came from: the loss (with
// the step) or a parameter's gradient (with the parameter's name, so the layer).
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

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

data::image_dataset guard_images(index_t n) {
  data::image_dataset ds;
  ds.images = Tensor<float>(Shape{n, 1, 28, 28});
  ds.labels = Tensor<std::int64_t>(Shape{n});
  Rng rng(11);
  for (index_t i = 0; i < ds.images.numel(); ++i) ds.images.data()[i] = static_cast<float>(rng.uniform());
  for (index_t i = 0; i < n; ++i) ds.labels.data()[i] = i % 10;
  return ds;
}

}  // namespace

TEST_CASE("fit names the parameter whose gradient is not finite", "[distill][guards]") {
  HybridViT<float> m(test::tiny_vit_config());
  Rng rng(2);
  m.init(rng);
  m.replace_mixer(1, AnyMixer<float>(nan_backward_mixer<float>(24)));
  fit_options o;
  o.steps = 3;
  o.batch = 8;
  CHECK_THROWS_WITH(train_classifier(m, guard_images(16), nullptr, o),
                    Catch::StartsWith("numeric_error: fit: the gradient of blocks.1.attn.scale is nan at element 0, step 0"));
}

TEST_CASE("fit stops at a non-finite loss and names the step", "[distill][guards]") {
  HybridViT<float> m(test::tiny_vit_config());
  Rng rng(2);
  m.init(rng);
  fit_options o;
  o.steps = 6;
  o.batch = 8;
  o.lr = 1e30;  // the first update overflows every weight
  o.warmup_fraction = 0;
  CHECK_THROWS_WITH(train_classifier(m, guard_images(16), nullptr, o), Catch::Matches("numeric_error: fit: loss is -?nan at step 1 .*"));
}
