// MultiHeadLSTM (FAR) throughput, heads = 3 (DeiT-Tiny: C = 192, d = 64).
//
//   BM_MultiHeadLSTM_Forward          inference forward: pre_proj GEMM (Eigen) -> per (head,
//                                     direction) task over parallel_for: input-to-hidden GEMM
//                                     for all tokens, then kernels::lstm_recurrence_forward (per
//                                     step a [B, d] x [d, 4d] product and the cell) ->
//                                     head_proj per head (strided Eigen GEMMs) -> post_proj GEMM
//   BM_MultiHeadLSTM_ForwardBackward  training forward (gates and cells into the cache) +
//                                     backward: post/head_proj GEMMs, BPTT tasks
//                                     (kernels::lstm_recurrence_backward: the cell backward + a
//                                     [B, 4d] x [4d, d] product per step), weight-gradient GEMMs
//                                     over all tokens, pre_proj
//
//   BM_MultiHeadLSTM_PrunedForward    the inference forward after FAR's pruning kept keep% of
//                                     every (head, direction)'s units (docs/pruning.md): the
//                                     recurrences, input-to-hidden and head_proj products run at
//                                     the reduced width; args B, N, C, keep%
//   BM_MultiHeadLSTM_PrunedForwardBackward  the same pruned mixer's training forward + backward
//   BM_Attention_SameShape            the attention the mixer replaces, same B, N, C, 3 heads
//
// B = 1 at the demo shape (N = 50, C = 96) is the latency case of docs/pruning.md: 50
// dependent steps per (head, direction) against attention's few small GEMMs.
//
// Counters: tokens/s (B * N per iteration) and GFLOP/s with the state formula per token
// 4 C^2 (pre/post_proj) + 36 C d (LSTM 2 directions x (ih + hh) = 32 C d, head_proj 4 C d),
// times 2 flops per multiply-add already included; backward counted as 2x forward.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <vector>

#include <sparsimix/mixers/attention.hpp>
#include <sparsimix/mixers/mh_lstm.hpp>

namespace {

using namespace sparsimix;

constexpr index_t heads = 3;

double forward_flops(index_t B, index_t N, index_t C) {
  const double d = static_cast<double>(C / heads), c = static_cast<double>(C);
  return static_cast<double>(B * N) * (4 * c * c + 36 * c * d);
}

struct setup {
  MultiHeadLSTM<float> m;
  Tensor<float> x, y, dx;
  setup(index_t B, index_t N, index_t C)
      : m({C, heads}), x(Shape{B, N, C}), y(Shape{B, N, C}), dx(Shape{B, N, C}) {
    Rng rng(1);
    m.init(rng);
    fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  }
};

void set_counters(benchmark::State& state, index_t B, index_t N, double flops) {
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(B * N), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_MultiHeadLSTM_Forward(benchmark::State& state) {
  const index_t B = state.range(0), N = state.range(1), C = state.range(2);
  setup s(B, N, C);
  for (auto _ : state) {
    s.m.forward(s.x.view(), s.y.view(), nullptr);
    benchmark::DoNotOptimize(s.y.data());
  }
  set_counters(state, B, N, forward_flops(B, N, C));
}

void BM_MultiHeadLSTM_ForwardBackward(benchmark::State& state) {
  const index_t B = state.range(0), N = state.range(1), C = state.range(2);
  setup s(B, N, C);
  MultiHeadLSTM<float>::cache_type cache;
  for (auto _ : state) {
    s.m.forward(s.x.view(), s.y.view(), cache, nullptr);
    s.m.backward(cache, s.y.view(), s.dx.view());  // dy = y: any upstream gradient will do
    benchmark::DoNotOptimize(s.dx.data());
  }
  set_counters(state, B, N, 3 * forward_flops(B, N, C));
}

// Keeps the first keep_pct% of every (head, direction)'s units of s.m; returns the forward's
// flops per token: pre/post_proj 2 C^2, per (head, direction) 4 k d + 4 k^2 + k d
// multiply-adds.
double prune_to(setup& s, index_t C, index_t keep_pct) {
  const index_t d = C / heads, k = d * keep_pct / 100;
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(2 * C));
  for (std::size_t u = 0; u < keep.size(); ++u) keep[u] = static_cast<index_t>(u) % d < k;
  s.m.prune_units(keep);
  const double c = static_cast<double>(C), dd = static_cast<double>(d), kk = static_cast<double>(k);
  return 2 * (2 * c * c + 2 * heads * (4 * kk * dd + 4 * kk * kk + kk * dd));
}

void BM_MultiHeadLSTM_PrunedForward(benchmark::State& state) {
  const index_t B = state.range(0), N = state.range(1), C = state.range(2);
  setup s(B, N, C);
  const double flops_per_token = prune_to(s, C, state.range(3));
  for (auto _ : state) {
    s.m.forward(s.x.view(), s.y.view(), nullptr);
    benchmark::DoNotOptimize(s.y.data());
  }
  set_counters(state, B, N, static_cast<double>(B * N) * flops_per_token);
}

void BM_MultiHeadLSTM_PrunedForwardBackward(benchmark::State& state) {
  const index_t B = state.range(0), N = state.range(1), C = state.range(2);
  setup s(B, N, C);
  const double flops_per_token = prune_to(s, C, state.range(3));
  MultiHeadLSTM<float>::cache_type cache;
  for (auto _ : state) {
    s.m.forward(s.x.view(), s.y.view(), cache, nullptr);
    s.m.backward(cache, s.y.view(), s.dx.view());
    benchmark::DoNotOptimize(s.dx.data());
  }
  set_counters(state, B, N, 3 * static_cast<double>(B * N) * flops_per_token);
}

void BM_Attention_SameShape(benchmark::State& state) {
  const index_t B = state.range(0), N = state.range(1), C = state.range(2);
  Attention<float> a({C, heads});
  Rng rng(1);
  a.init(rng);
  Tensor<float> x(Shape{B, N, C}), y(Shape{B, N, C});
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  for (auto _ : state) {
    a.forward(x.view(), y.view(), nullptr);
    benchmark::DoNotOptimize(y.data());
  }
  const double b = static_cast<double>(B), n = static_cast<double>(N), c = static_cast<double>(C);
  set_counters(state, B, N, 8 * b * n * c * c + 4 * b * n * n * c);
}

}  // namespace

BENCHMARK(BM_MultiHeadLSTM_PrunedForward)
    ->ArgsProduct({{64, 1}, {50}, {96}, {100, 50, 25}})
    ->ArgsProduct({{8}, {197}, {192}, {100, 50, 25}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MultiHeadLSTM_PrunedForwardBackward)
    ->ArgsProduct({{64}, {50}, {96}, {100, 50, 25}})
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Attention_SameShape)->Args({64, 50, 96})->Args({1, 50, 96})->Args({8, 197, 192})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MultiHeadLSTM_Forward)->Args({1, 197, 192})->Args({8, 197, 192})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MultiHeadLSTM_ForwardBackward)->Args({1, 197, 192})->Args({8, 197, 192})->Unit(benchmark::kMillisecond);
