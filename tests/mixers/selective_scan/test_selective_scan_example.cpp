// The example of docs/mixers/selective_scan.md, compiled and run (the page quotes the lines
// between the [example] markers verbatim).
#include <catch2/catch.hpp>

#include <cmath>

// [example]
#include <sparsimix/mixers/selective_scan.hpp>

using namespace sparsimix;

double example() {
  // Vision-Mamba style bidirectional scan at DeiT-Tiny width; d_state 16, d_conv 4, expand 2,
  // dt_rank ceil(192 / 16) = 12 by default.
  SelectiveScan<float> scan({.dim = 192, .bidirectional = true});
  Rng rng(0);
  scan.init(rng);  // docs/method.md 4.1 initialisation

  Tensor<float> x({2, 197, 192}), y(x.shape());
  fill_normal(rng, x.data(), x.numel(), 0.0, 1.0);
  scan.forward(x.view(), y.view(), nullptr);  // inference: no allocation after warm-up

  // Training: forward keeps a cache, backward accumulates parameter grads and writes dx.
  SelectiveScan<float>::cache_type cache;
  scan.forward(x.view(), y.view(), cache, nullptr);
  Tensor<float> dy(x.shape(), 1.0f), dx(x.shape());
  scan.backward(cache, dy.view(), dx.view());

  // Under an A-ViT token mask the scan runs over each sequence's alive tokens only.
  TokenMask mask(2, 197);
  mask.set(1, 5, false);
  scan.forward(x.view(), y.view(), &mask);  // y(1, 5, :) == 0

  double decayed = 0;  // PyTorch names; A_log, D and biases are flagged decay = false
  for (auto& p : scan.parameters())
    if (p.decay) decayed += static_cast<double>(p.value.numel());
  return decayed;
}
// [example]

TEST_CASE("docs/mixers/selective_scan.md example runs", "[mixer][scan][docs]") {
  // in_proj 768x192 + out_proj 192x384 + 2 x (conv 384x4 + x_proj 44x384 + dt_proj 384x12)
  CHECK(example() == 768.0 * 192 + 192.0 * 384 + 2 * (384.0 * 4 + 44.0 * 384 + 384.0 * 12));
}
