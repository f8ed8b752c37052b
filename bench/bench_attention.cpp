// Attention mixer benchmarks over Args({B, N, C}), 3 heads (DeiT-Tiny: C 192, H 3, N 197).
// Kernel paths:
//   BM_Attention_Forward         Attention::forward(x, y, nullptr): qkv and proj through
//                                linear_forward (Eigen GEMM); per (batch, head)
//                                kernels::simd::attention_online (64 x 64 score tiles via
//                                Eigen, xsimd online-softmax rows, no N x N buffer).
//   BM_Attention_ForwardCapture  Attention::forward_capture: kernels::attention_probs
//                                (Eigen Q K^T + kernels::softmax_rows), attention_apply,
//                                maps written [B, H, N, N].
//   BM_Attention_ForwardBackward training forward (probabilities kept in the cache) then
//                                backward: linear_backward x 2, kernels::attention_backward
//                                (4 Eigen GEMMs + kernels::softmax_rows_backward).
// FLOP counts (multiply-add = 2, exp and softmax not counted), d = C / H:
//   forward  = 2 B N C 3C (qkv) + 2 B H N^2 d x 2 (q k^T, p v) + 2 B N C^2 (proj)
//            = 8 B N C^2 + 4 B N^2 C
//   backward = 2x the GEMMs of forward: 16 B N C^2 + 8 B N^2 C; forward+backward = 3x forward.
// With SPARSIMIX_BENCH_FULL=1 in the environment, BM_Attention_Forward also runs the long
// DeiT shapes N = 1025 and 4097 (B = 1): too slow for the CTest smoke run.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>

#include <sparsimix/mixers/attention.hpp>

using namespace sparsimix;

namespace {

constexpr index_t kHeads = 3;

double forward_flops(index_t B, index_t N, index_t C) {
  const auto b = static_cast<double>(B), n = static_cast<double>(N), c = static_cast<double>(C);
  return 8 * b * n * c * c + 4 * b * n * n * c;
}

struct fixture {
  index_t B, N, C;
  Attention<float> attn;
  Tensor<float> x, y;
  explicit fixture(const benchmark::State& state)
      : B(state.range(0)), N(state.range(1)), C(state.range(2)), attn({C, kHeads}) {
    Rng rng(1);
    attn.init(rng);
    x = Tensor<float>(Shape{B, N, C});
    y = Tensor<float>(Shape{B, N, C});
    fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  }
  void counters(benchmark::State& state, double flop_factor) const {
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(B * N), benchmark::Counter::kIsIterationInvariantRate);
    state.counters["GFLOP/s"] = benchmark::Counter(flop_factor * forward_flops(B, N, C) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
  }
};

void BM_Attention_Forward(benchmark::State& state) {
  fixture f(state);
  for (auto _ : state) {
    f.attn.forward(f.x.view(), f.y.view(), nullptr);
    benchmark::DoNotOptimize(f.y.data());
    benchmark::ClobberMemory();
  }
  f.counters(state, 1.0);
}

void BM_Attention_ForwardCapture(benchmark::State& state) {
  fixture f(state);
  Tensor<float> maps(Shape{f.B, kHeads, f.N, f.N});
  for (auto _ : state) {
    f.attn.forward_capture(f.x.view(), f.y.view(), maps.view(), nullptr);
    benchmark::DoNotOptimize(maps.data());
    benchmark::ClobberMemory();
  }
  f.counters(state, 1.0);
}

void BM_Attention_ForwardBackward(benchmark::State& state) {
  fixture f(state);
  Tensor<float> dy(f.x.shape()), dx(f.x.shape());
  Rng rng(2);
  fill_uniform(rng, dy.data(), dy.numel(), -1.0, 1.0);
  Attention<float>::cache_type cache;
  for (auto _ : state) {
    f.attn.forward(f.x.view(), f.y.view(), cache, nullptr);
    f.attn.backward(cache, dy.view(), dx.view());
    benchmark::DoNotOptimize(dx.data());
    benchmark::ClobberMemory();
  }
  f.counters(state, 3.0);
}

#define SPARSIMIX_ATTENTION_ARGS ArgNames({"B", "N", "C"})->Args({1, 197, 192})->Args({8, 197, 192})->Args({1, 577, 192})

BENCHMARK(BM_Attention_Forward)->SPARSIMIX_ATTENTION_ARGS->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Attention_ForwardCapture)->SPARSIMIX_ATTENTION_ARGS->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Attention_ForwardBackward)->SPARSIMIX_ATTENTION_ARGS->Unit(benchmark::kMicrosecond);

const int long_shapes = [] {
  const char* e = std::getenv("SPARSIMIX_BENCH_FULL");
  if (e && std::string(e) == "1")
    benchmark::RegisterBenchmark("BM_Attention_Forward", BM_Attention_Forward)
        ->ArgNames({"B", "N", "C"})
        ->Args({1, 1025, 192})
        ->Args({1, 4097, 192})
        ->Unit(benchmark::kMicrosecond);
  return 0;
}();

}  // namespace
