// A Google Benchmark microbenchmark of one mixer to copy and time your own shapes: the
// multi-head LSTM against the attention layer it replaces, inference forward and training
// forward + backward, at [B, N, C] with H heads. Edit `shapes` below, build Release, run:
//   bench_mixer --benchmark_min_time=0.5
// Counters: tokens/s (B * N per iteration). Pin the thread count for a fair comparison
// (OMP_NUM_THREADS=1 when built with SPARSIMIX_WITH_OPENMP). The library's full suites,
// with PyTorch side by side, are in bench/ (docs/performance.md).
#include <benchmark/benchmark.h>

#include <sparsimix/mixers/attention.hpp>
#include <sparsimix/mixers/mh_lstm.hpp>

namespace {

using namespace sparsimix;

// {B, N, C, H}: DeiT-Tiny (196 patches + CLS, C 192, 3 heads) at batch 1 and 8, and the
// Fashion-MNIST demo model (49 patches + CLS, C 96, 3 heads) at batch 64.
void shapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"B", "N", "C", "H"});
  b->Args({1, 197, 192, 3});
  b->Args({8, 197, 192, 3});
  b->Args({64, 50, 96, 3});
}

// Both mixers take the same {dim, num_heads} config.
template <class Mixer>
struct bench_setup {
  Mixer mixer;
  Tensor<float> x, y, dx;
  typename Mixer::cache_type cache;
  explicit bench_setup(const benchmark::State& state)
      : mixer({.dim = state.range(2), .num_heads = state.range(3)}),
        x(Shape{state.range(0), state.range(1), state.range(2)}),
        y(x.shape()),
        dx(x.shape()) {
    Rng rng(1);
    mixer.init(rng);
    fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  }
};

void count_tokens(benchmark::State& state) {
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(state.range(0) * state.range(1)), benchmark::Counter::kIsIterationInvariantRate);
}

template <class Mixer>
void BM_Forward(benchmark::State& state) {
  bench_setup<Mixer> s(state);
  for (auto _ : state) {
    s.mixer.forward(s.x.view(), s.y.view(), nullptr);
    benchmark::DoNotOptimize(s.y.data());
    benchmark::ClobberMemory();
  }
  count_tokens(state);
}

template <class Mixer>
void BM_ForwardBackward(benchmark::State& state) {
  bench_setup<Mixer> s(state);
  for (auto _ : state) {
    s.mixer.forward(s.x.view(), s.y.view(), s.cache, nullptr);
    s.mixer.backward(s.cache, s.y.view(), s.dx.view());  // dy = y: any gradient costs the same
    benchmark::DoNotOptimize(s.dx.data());
    benchmark::ClobberMemory();
  }
  count_tokens(state);
}

BENCHMARK_TEMPLATE(BM_Forward, Attention<float>)->Apply(shapes);
BENCHMARK_TEMPLATE(BM_Forward, MultiHeadLSTM<float>)->Apply(shapes);
BENCHMARK_TEMPLATE(BM_ForwardBackward, Attention<float>)->Apply(shapes);
BENCHMARK_TEMPLATE(BM_ForwardBackward, MultiHeadLSTM<float>)->Apply(shapes);

}  // namespace

BENCHMARK_MAIN();
