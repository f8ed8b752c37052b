// SelectiveScan (Mamba-1) throughput, expand 2, d_state S = 16, d_conv K = 4, R = ceil(C/16).
//
//   BM_SelectiveScan_Forward          inference forward: in_proj GEMM (Eigen, all B*N tokens)
//                                     -> kernels::silu on z -> per sequence the depthwise conv
//                                     (auto-vectorised over channels) -> kernels::silu ->
//                                     x_proj / dt_proj GEMMs -> kernels::softplus ->
//                                     kernels::scan_forward (xsimd over D_in, S states in
//                                     registers, D skip and SiLU(z) gate fused into the store;
//                                     one task per sequence x direction over parallel_for)
//                                     -> out_proj GEMM
//   BM_SelectiveScan_ForwardBackward  training forward (per-step states [N, S, D_in] stored in
//                                     the cache) + backward: out_proj GEMM, gate, the adjoint
//                                     kernels::scan_backward per sequence x direction, dt/x_proj
//                                     weight and input GEMMs, conv backward, in_proj GEMMs
//   *_Bi                              the same with the Vim v2 backward branch (2 directions)
//
// Counters: tokens/s (B * N per iteration) and GFLOP/s from the nominal count per token
//   F = 6 C D_in (in_proj 4 C D_in + out_proj 2 C D_in)
//     + dirs * D_in * (2 (R + 2S) + 2 R + 2 K + 8 S)
// (8 S: per state, delta*A, exp counted as 1, the h FMA (2), delta*u*B (1) and the C FMA (2),
// plus one for the skip/gate share); forward+backward counted as 3 F.
#include <benchmark/benchmark.h>

#include <cmath>

#include <sparsimix/mixers/selective_scan.hpp>

namespace {

using namespace sparsimix;

double forward_flops(index_t B, index_t N, index_t C, int dirs) {
  const double c = static_cast<double>(C), di = std::floor(2.0 * c), r = std::ceil(c / 16), s = 16, k = 4;
  return static_cast<double>(B * N) * (6 * c * di + dirs * di * (2 * (r + 2 * s) + 2 * r + 2 * k + 8 * s));
}

struct setup {
  SelectiveScan<float> m;
  Tensor<float> x, y, dx;
  setup(index_t B, index_t N, index_t C, bool bi)
      : m({.dim = C, .bidirectional = bi}), x(Shape{B, N, C}), y(Shape{B, N, C}), dx(Shape{B, N, C}) {
    Rng rng(1);
    m.init(rng);
    fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  }
};

void set_counters(benchmark::State& state, index_t B, index_t N, double flops) {
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(B * N), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void run_forward(benchmark::State& state, bool bi) {
  const index_t B = state.range(0), N = state.range(1), C = state.range(2);
  setup s(B, N, C, bi);
  for (auto _ : state) {
    s.m.forward(s.x.view(), s.y.view(), nullptr);
    benchmark::DoNotOptimize(s.y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, B, N, forward_flops(B, N, C, bi ? 2 : 1));
}

void run_forward_backward(benchmark::State& state, bool bi) {
  const index_t B = state.range(0), N = state.range(1), C = state.range(2);
  setup s(B, N, C, bi);
  SelectiveScan<float>::cache_type cache;
  for (auto _ : state) {
    s.m.forward(s.x.view(), s.y.view(), cache, nullptr);
    s.m.backward(cache, s.y.view(), s.dx.view());
    benchmark::DoNotOptimize(s.dx.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, B, N, 3 * forward_flops(B, N, C, bi ? 2 : 1));
}

void BM_SelectiveScan_Forward(benchmark::State& state) { run_forward(state, false); }
void BM_SelectiveScan_ForwardBackward(benchmark::State& state) { run_forward_backward(state, false); }
void BM_SelectiveScan_Forward_Bi(benchmark::State& state) { run_forward(state, true); }
void BM_SelectiveScan_ForwardBackward_Bi(benchmark::State& state) { run_forward_backward(state, true); }

void shapes(benchmark::internal::Benchmark* b) {
  b->Args({1, 197, 192})->Args({8, 197, 192})->Args({1, 1025, 192})->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(BM_SelectiveScan_Forward)->Apply(shapes);
BENCHMARK(BM_SelectiveScan_ForwardBackward)->Apply(shapes);
BENCHMARK(BM_SelectiveScan_Forward_Bi)->Apply(shapes);
BENCHMARK(BM_SelectiveScan_ForwardBackward_Bi)->Apply(shapes);
