// The example of docs/halting.md (kept compiling and passing here): a stack of L
// blocks under A-ViT halting, forward and the halting-loss gradient.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/core/token_packing.hpp>
#include <sparsimix/models/halting.hpp>

using namespace sparsimix;

TEST_CASE("docs example: a block stack under the halting controller", "[models][halting][docs]") {
  // [example]
  const index_t B = 2, N = 17, C = 8, L = 6;  // N = CLS + 16 patches
  HaltingController<float> halting({.gamma = 5, .beta = 3, .eps = 0.01});
  // A stand-in for a transformer block: y = tanh(2 x + 0.3) (any SeqMixer-based block works).
  auto block = [](ConstSeq<float> x, Seq<float> y) {
    for (index_t i = 0; i < x.numel(); ++i) y.data()[i] = std::tanh(2 * x.data()[i] + 0.3f);
  };

  Tensor<float> x(Shape{B, N, C}), y(Shape{B, N, C});
  Rng rng(1);
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);

  halting.reset(B, N, L);
  for (index_t l = 0; l < L; ++l) {
    const TokenMask& alive = halting.mask();  // the mask block l runs under
    zero_dead_tokens(alive, x.data(), C);     // dead tokens zeroed
    block(x.view(), y.view());                // (mixers inside get &alive too)
    zero_dead_tokens(alive, y.data(), C);     // masked block output
    halting.update(l, y.view());              // h, c, kills patch tokens
    x = y;
  }
  const Tensor<std::int64_t> depth = halting.depth();  // [B, N], 1..L, L for CLS
  const float aux = 5e-4f * halting.ponder_loss() + 1e-3f * halting.prior_kl();
  // d aux / d y_l[b, n, 0]: add to channel 0 of each block output's gradient in backward.
  const Tensor<float> g = halting.loss_grad(5e-4, 1e-3);  // [L, B, N]
  // [example]

  REQUIRE(std::isfinite(aux));
  REQUIRE(g.shape() == Shape{L, B, N});
  for (index_t b = 0; b < B; ++b) {
    REQUIRE(depth(b, 0) == L);
    for (index_t n = 1; n < N; ++n) REQUIRE((depth(b, n) >= 1 && depth(b, n) <= L));
  }
  REQUIRE(halting.keep_ratio(L - 1) <= halting.keep_ratio(0));
}
