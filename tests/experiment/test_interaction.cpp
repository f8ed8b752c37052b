#include <catch2/catch.hpp>

#include <sparsimix/experiment/interaction.hpp>

#include "support/tiny_vit.hpp"

using namespace sparsimix;

namespace {

data::image_dataset random_images(index_t count, std::uint64_t seed) {
  data::image_dataset ds{Tensor<float>(Shape{count, 1, 28, 28}), Tensor<std::int64_t>(Shape{count})};
  Rng rng(seed);
  for (auto& v : ds.images) v = static_cast<float>(rng.uniform(-1, 1));
  return ds;
}

}  // namespace

TEST_CASE("compare_maps: equal maps agree fully, unrelated rows share nothing", "[experiment][interaction]") {
  const std::vector<double> a{0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.3, 0.3, 0.4};
  auto s = compare_maps(a.data(), a.data(), 3);
  CHECK(s.spearman == Approx(1.0));
  CHECK(s.top_k_overlap == Approx(1.0));
  // Each row's strongest input moved elsewhere: top-1 (k = ceil(0.3) = 1) never shared.
  const std::vector<double> b{0.1, 0.7, 0.2, 0.8, 0.1, 0.1, 0.4, 0.3, 0.3};
  s = compare_maps(a.data(), b.data(), 3);
  CHECK(s.top_k_overlap == 0.0);
  CHECK(s.spearman < 0.5);
}

TEST_CASE("token_interaction sums the mixer's input gradients as finite differences do", "[experiment][interaction]") {
  // Double precision, a selective-scan block between attention blocks: the map of head h at
  // output token i is sum_j,c |d (sum of y[i, head h's channels]) / d x[j, c]|, x the mixer
  // input, averaged over images; compare it with central differences of the mixer's forward.
  HybridViT<double> model(test::tiny_vit_config({mixer_spec{}, spec_for<SelectiveScan>(), mixer_spec{}}));
  Rng rng(4);
  model.init(rng);
  const auto ds = random_images(3, 9);
  const auto r = token_interaction(model, nullptr, 1, ds, 3, 2);
  REQUIRE(r.tokens == 17);
  REQUIRE(r.heads == 2);
  CHECK(r.attention.empty());  // a scan block and no reference: nothing to compare with
  const index_t N = 17, C = 24, d = 12;
  Tensor<double> images(Shape{3, 1, 28, 28}), logits(Shape{3, 10});
  ds.copy_images(0, 3, images.data());
  vit_capture<double> cap;
  cap.mixer_inputs = true;
  model.forward(images.view(), logits.view(), &cap);
  const auto& mixer = std::get<SelectiveScan<double>>(model.mixer(1));
  Tensor<double> x = cap.mixer_in[1], y(x.shape());
  const double eps = 1e-6;
  // Output token i = 5 and 0 (CLS), both heads, every input token.
  for (const index_t i : {index_t{5}, index_t{0}})
    for (index_t h = 0; h < 2; ++h) {
      std::vector<double> expect(static_cast<std::size_t>(N), 0.0);
      for (index_t b = 0; b < 3; ++b)
        for (index_t j = 0; j < N; ++j)
          for (index_t c = 0; c < C; ++c) {
            double& xv = x.data()[(b * N + j) * C + c];
            const double keep = xv;
            double f[2];
            for (int side = 0; side < 2; ++side) {
              xv = keep + (side ? -eps : eps);
              mixer.forward(x.view(), y.view(), nullptr);
              f[side] = 0;
              for (index_t k = 0; k < d; ++k) f[side] += y.data()[(b * N + i) * C + h * d + k];
            }
            xv = keep;
            expect[static_cast<std::size_t>(j)] += std::abs((f[0] - f[1]) / (2 * eps)) / 3.0;
          }
      for (index_t j = 0; j < N; ++j)
        CHECK(r.gradient[static_cast<std::size_t>((h * N + i) * N + j)] ==
              Approx(expect[static_cast<std::size_t>(j)]).epsilon(1e-6).margin(1e-9));
    }
}

TEST_CASE("an attention block's interaction map follows its own attention map", "[experiment][interaction]") {
  // With no reference the model's own attention maps are the comparison; the gradient of an
  // attention output token flows mostly through the keys it attends to, so the two maps are
  // alike (far above the 0 of unrelated maps) and the attention rows sum to 1.
  HybridViT<float> model(test::tiny_vit_config());
  Rng rng(2);
  model.init(rng);
  const auto ds = random_images(8, 3);
  const auto r = token_interaction(model, nullptr, 0, ds, 8, 4);
  REQUIRE(r.attention.size() == static_cast<std::size_t>(2 * 17 * 17));
  for (index_t row = 0; row < 2 * 17; ++row) {
    double sum = 0;
    for (index_t j = 0; j < 17; ++j) sum += r.attention[static_cast<std::size_t>(row * 17 + j)];
    CHECK(sum == Approx(1.0).epsilon(1e-5));
  }
  REQUIRE(r.per_head.size() == 2);
  CHECK(r.mean.spearman > 0.2);
  CHECK(interaction_svg(r, "layer 0").find("<svg") == 0);
  CHECK_THROWS_AS(token_interaction(model, nullptr, 3, ds, 8), config_error);
  CHECK_THROWS_AS(token_interaction(model, nullptr, 0, ds, 0), config_error);
}
