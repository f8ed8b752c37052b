// Elementwise and row kernels (include/sparsimix/kernels/), float, single thread.
//
//   BM_Gelu/<n>              kernels::gelu -> simd::gelu(xsimd::default_arch): xsimd::erf over
//                            n contiguous floats (AVX-512 with this project's -march=native)
//   BM_Gelu_Ref/<n>          kernels::ref::gelu: the scalar twin, std::erf per element
//   BM_Softmax/<rows>/<cols> kernels::softmax_rows: per row max pass, simd::fast_exp + sum pass,
//                            scale pass (197 x 197: one DeiT attention head's probabilities)
//   BM_LayerNorm/<rows>/<cols>          kernels::layernorm_forward with gamma/beta, saving
//                                       mean/rstd (training path): two reduction passes + one
//                                       fma pass per row (197 tokens x C = 192 / 768)
//   BM_LayerNormBackward/<rows>/<cols>  kernels::layernorm_backward: dx, dgamma, dbeta
//
// Counters: elements/s (rows * cols or n per iteration) and bytes/s (bytes read + written
// once per element, the DRAM/cache traffic the kernel cannot avoid).
#include <benchmark/benchmark.h>

#include <vector>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/kernels.hpp>

namespace {

using namespace sparsimix;

std::vector<float> random(index_t n, std::uint64_t seed) {
  std::vector<float> v(static_cast<std::size_t>(n));
  Rng rng(seed);
  fill_uniform(rng, v.data(), n, -4.0, 4.0);
  return v;
}

void set_counters(benchmark::State& state, index_t elements, index_t bytes_per_element) {
  const double e = static_cast<double>(elements);
  state.counters["elements/s"] = benchmark::Counter(e, benchmark::Counter::kIsIterationInvariantRate);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(elements * bytes_per_element));
}

void BM_Gelu(benchmark::State& state) {
  const index_t n = state.range(0);
  const auto x = random(n, 1);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    kernels::gelu(x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n, 8);
}
BENCHMARK(BM_Gelu)->Arg(4096)->Arg(1 << 16)->Arg(1 << 20);

void BM_Gelu_Ref(benchmark::State& state) {
  const index_t n = state.range(0);
  const auto x = random(n, 1);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    kernels::ref::gelu(x.data(), y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n, 8);
}
BENCHMARK(BM_Gelu_Ref)->Arg(4096)->Arg(1 << 16)->Arg(1 << 20);

void BM_Softmax(benchmark::State& state) {
  const index_t rows = state.range(0), cols = state.range(1);
  const auto x = random(rows * cols, 2);
  std::vector<float> y(x.size());
  for (auto _ : state) {
    kernels::softmax_rows(x.data(), y.data(), rows, cols);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, rows * cols, 8);
}
BENCHMARK(BM_Softmax)->Args({197, 197})->Args({64, 1024})->Args({1024, 1024});

void BM_LayerNorm(benchmark::State& state) {
  const index_t rows = state.range(0), cols = state.range(1);
  const auto x = random(rows * cols, 3), gamma = random(cols, 4), beta = random(cols, 5);
  std::vector<float> y(x.size()), mean(static_cast<std::size_t>(rows)), rstd(mean.size());
  for (auto _ : state) {
    kernels::layernorm_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), rows, cols,
                               1e-6f);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, rows * cols, 8);
}
BENCHMARK(BM_LayerNorm)->Args({197, 192})->Args({197, 768})->Args({4096, 768});

void BM_LayerNormBackward(benchmark::State& state) {
  const index_t rows = state.range(0), cols = state.range(1);
  const auto x = random(rows * cols, 3), gamma = random(cols, 4), beta = random(cols, 5), dy = random(rows * cols, 6);
  std::vector<float> y(x.size()), dx(x.size()), mean(static_cast<std::size_t>(rows)), rstd(mean.size()),
      dgamma(static_cast<std::size_t>(cols)), dbeta(dgamma.size());
  kernels::layernorm_forward(x.data(), gamma.data(), beta.data(), y.data(), mean.data(), rstd.data(), rows, cols, 1e-6f);
  for (auto _ : state) {
    kernels::layernorm_backward(x.data(), gamma.data(), mean.data(), rstd.data(), dy.data(), dx.data(), dgamma.data(),
                                dbeta.data(), rows, cols);
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, rows * cols, 12);
}
BENCHMARK(BM_LayerNormBackward)->Args({197, 192})->Args({197, 768});

}  // namespace
