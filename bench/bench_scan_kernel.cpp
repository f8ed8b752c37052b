// The selective-scan recurrence alone, to set against mamba's `selective_scan_ref` (the
// PyTorch loop over tokens that bench/compare/torch_bench.py times as scan_ref_fwd): same
// inputs and outputs, D_in = 2 C = 384, S = 16, float32, one direction.
//
//   BM_ScanKernel/B/N   per sequence: kernels::softplus(delta + delta_bias) (the ref's
//                       delta_softplus), kernels::silu(z) (the ref's gate), then
//                       kernels::scan_forward (xsimd over D_in with the S states in registers,
//                       D skip and gate fused into the store, no per-step states kept:
//                       inference). Sequences run one after another (one thread).
//
// Counters: tokens/s and GFLOP/s with 8 S + 3 flops per (token, channel) (per state: exp(dA)
// counted as 1, dA 1, the h FMA 2, delta u B 2 with delta u shared, the C FMA 2; plus the
// skip, gate and softplus share); as bench_selective_scan's 8 S.
#include <benchmark/benchmark.h>

#include <sparsimix/core/rng.hpp>
#include <sparsimix/core/tensor.hpp>
#include <sparsimix/kernels/activations.hpp>
#include <sparsimix/kernels/scan.hpp>

namespace {

using namespace sparsimix;

constexpr index_t kChannels = 384, kState = 16;

void BM_ScanKernel(benchmark::State& state) {
  const index_t B = state.range(0), L = state.range(1), Dn = kChannels, S = kState;
  Rng rng(1);
  Tensor<float> u(Shape{B, L, Dn}), dt_raw(Shape{B, L, Dn}), z(Shape{B, L, Dn}), bc(Shape{B, L, 2 * S});
  Tensor<float> a(Shape{S, Dn}), dskip(Shape{Dn}), dt_bias(Shape{Dn});
  for (auto* t : {&u, &dt_raw, &z, &bc}) fill_uniform(rng, t->data(), t->numel(), -0.5, 0.5);
  fill_uniform(rng, a.data(), a.numel(), -4.0, -0.5);
  fill_uniform(rng, dskip.data(), dskip.numel(), 0.5, 1.5);
  fill_uniform(rng, dt_bias.data(), dt_bias.numel(), -4.0, -2.0);
  Tensor<float> delta(Shape{L, Dn}), gate(Shape{L, Dn}), h(Shape{S, Dn}), y(Shape{B, L, Dn});
  for (auto _ : state) {
    for (index_t b = 0; b < B; ++b) {
      const float* dtb = dt_raw.data() + b * L * Dn;
      for (index_t t = 0; t < L; ++t)
        for (index_t c = 0; c < Dn; ++c) delta.data()[t * Dn + c] = dtb[t * Dn + c] + dt_bias.data()[c];
      kernels::softplus(delta.data(), delta.data(), L * Dn);
      kernels::silu(z.data() + b * L * Dn, gate.data(), L * Dn);
      kernels::scan_problem<float> p;
      p.len = L;
      p.channels = Dn;
      p.state = S;
      p.u = u.data() + b * L * Dn;
      p.delta = delta.data();
      p.bc = bc.data() + b * L * 2 * S;
      p.ldbc = 2 * S;
      p.a = a.data();
      p.d = dskip.data();
      kernels::scan_forward(p, h.data(), static_cast<float*>(nullptr), static_cast<float*>(nullptr),
                            y.data() + b * L * Dn, gate.data(), 1.0f);
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  using benchmark::Counter;
  state.counters["tokens/s"] = Counter(static_cast<double>(B * L), Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = Counter(static_cast<double>(B * L * Dn) * (8.0 * S + 3) * 1e-9,
                                      Counter::kIsIterationInvariantRate);
}

}  // namespace

BENCHMARK(BM_ScanKernel)->ArgNames({"B", "N"})->Args({1, 197})->Args({8, 197})->Args({1, 1025})->Unit(benchmark::kMicrosecond);
