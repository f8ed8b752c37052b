// A-ViT halting cost per block, DeiT-Tiny width (C = 192), 12 blocks.
//
//   BM_Halting_Mask          the masking op (zero_dead_tokens after a copy): y = x * alive,
//                            one pass over [B, N, C] (memory bound: bytes/s is the counter)
//   BM_Halting_Update        the controller after each block: h = sigmoid(gamma y[..., 0] -
//                            beta), cumulative sum, kills; O(B N) scalar work per block
//   BM_Halting_Losses        ponder + prior KL and their gradient w.r.t. every block's
//                            channel 0 ([L, B, N]), once per training step
// Counters: tokens/s (B * N per iteration; per block for Mask/Update, per step for Losses).
#include <benchmark/benchmark.h>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/core/token_packing.hpp>
#include <sparsimix/models/halting.hpp>

namespace {

using namespace sparsimix;

constexpr index_t C = 192, L = 12;

void BM_Halting_Mask(benchmark::State& state) {
  const index_t B = state.range(0), N = state.range(1);
  Tensor<float> x(Shape{B, N, C}, 1.0f), y(Shape{B, N, C});
  TokenMask mask(B, N);
  for (index_t b = 0; b < B; ++b)
    for (index_t n = 1; n < N; n += 3) mask.set(b, n, false);
  for (auto _ : state) {
    std::copy_n(x.data(), x.numel(), y.data());
    zero_dead_tokens(mask, y.data(), C);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(B * N), benchmark::Counter::kIsIterationInvariantRate);
  state.SetBytesProcessed(state.iterations() * 2 * B * N * C * static_cast<int64_t>(sizeof(float)));
}

void BM_Halting_Update(benchmark::State& state) {
  const index_t B = state.range(0), N = state.range(1);
  HaltingController<float> h({10, 30, 0.01});
  Tensor<float> y(Shape{B, N, C});
  Rng rng(1);
  fill_uniform(rng, y.data(), y.numel(), 2.0, 3.5);  // scores spread so tokens halt mid-stack
  for (auto _ : state) {
    h.reset(B, N, L);
    for (index_t l = 0; l < L; ++l) h.update(l, y.view());
    benchmark::DoNotOptimize(h.mask().row(0));
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(B * N * L), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Halting_Losses(benchmark::State& state) {
  const index_t B = state.range(0), N = state.range(1);
  HaltingController<float> h({10, 30, 0.01});
  Tensor<float> y(Shape{B, N, C}), g(Shape{L, B, N});
  Rng rng(2);
  fill_uniform(rng, y.data(), y.numel(), 2.0, 3.5);
  h.reset(B, N, L);
  for (index_t l = 0; l < L; ++l) h.update(l, y.view());
  for (auto _ : state) {
    benchmark::DoNotOptimize(h.ponder_loss() + h.prior_kl());
    h.loss_grad(5e-4, 1e-3, g.view());
    benchmark::DoNotOptimize(g.data());
  }
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(B * N), benchmark::Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_Halting_Mask)->Args({1, 197})->Args({8, 197})->Args({8, 577});
BENCHMARK(BM_Halting_Update)->Args({1, 197})->Args({8, 197});
BENCHMARK(BM_Halting_Losses)->Args({8, 197});
