// Whole-model HybridViT benchmarks (float32), the shapes of issue 6.
//
// Kernel paths:
//   BM_ViT_Forward/deit_tiny/B:b/T:t   HybridViT::forward (inference, no tape): patchify +
//                                      linear_forward (Eigen) patch embed; per block
//                                      kernels::layernorm_forward, Attention::forward
//                                      (Eigen qkv/proj GEMMs, kernels::simd::attention_online),
//                                      MLP as Eigen fc1 + kernels::bias_gelu + Eigen fc2
//                                      (accumulating into the residual); head GEMM.
//   BM_ViT_TrainStep/<model>/B:b/T:t   one AdamW training step on a reused Tape: tape.clear,
//                                      zero_grad, HybridViT::forward(tape) (tape linear/
//                                      layernorm/gelu nodes, Attention cache forward),
//                                      cross_entropy, tape.backward (linear_backward GEMMs,
//                                      kernels::attention_backward, layernorm_backward),
//                                      AdamW::step. model = deit_tiny (img 224, patch 16, C 192,
//                                      depth 12, H 3, 1000 classes) or demo (img 28, patch 4,
//                                      C 96, depth 6, H 3, 10 classes, 1 channel).
//   BM_ViT_Hybrid/<mix>/N:n/T:t        inference forward of a DeiT-Tiny-shaped model at
//                                      N = (img/16)^2 + 1 tokens (img 224, 384, 512 ->
//                                      N 197, 577, 1025), B = 1; mix = attn (12 attention
//                                      blocks) or half_lstm (blocks 0, 2, .. attention, 1, 3, ..
//                                      MultiHeadLSTM: pre_proj GEMM, per head x direction LSTM
//                                      recurrences over parallel_for, head_proj, post_proj), or
//                                      half_lstm_pruned50: the same with half of every (head,
//                                      direction)'s LSTM units pruned (FAR), computed at
//                                      width d/2.
//
//   BM_ViT_Halting/<model>/B:b/R:r     inference forward of the same model with A-ViT halting at
//                                      a chosen mean retention r% (r = 100, 70, 50), or
//                                      without halting (R:dense). Halted tokens are compacted
//                                      away: the mixers pack the alive tokens of each image
//                                      (ragged batches, no padding), the residual add, LN2 and
//                                      the MLP run on the alive rows only. The retention is
//                                      set through the data: proj and fc2 are zero (so the
//                                      residual stream is the patch embedding), channel 0 of a
//                                      patch is its pixel sum, and a "bright" patch scores
//                                      sigmoid(10 - 5) and halts after block 0 while the others
//                                      run to the end; a fraction f of bright patches gives a
//                                      mean retention of 1 - f (L - 1) / L. Zero weights cost
//                                      the same multiply-adds as any others. The counter
//                                      "retention" is the measured mean retention.
//
// Threads: T is set with sparsimix::set_num_threads (OpenMP: parallel_for regions and Eigen's
// own GEMM threading). Without SPARSIMIX_WITH_OPENMP only T = 1 is registered.
// Heavy cases register only when the environment has SPARSIMIX_BENCH_FULL=1, so the CTest
// smoke run (--benchmark_min_time=0) stays short: by default only DeiT forward B=1, the demo
// training step and the N=197 hybrid pair run.
//
// Counters: images/s, tokens/s (B * N per iteration) and GFLOP/s with the nominal count
// (multiply-add = 2; softmax, LayerNorm, GELU, exp not counted) per image, twice
// count_multiply_adds (models/cost.hpp; a pruned LSTM at its widths):
//   F = 2 np (Cin P^2) C                                   patch embed
//     + sum over blocks: N * 16 C^2                        MLP (C -> 4C -> C)
//                        + attention: N * 8 C^2 + 4 N^2 C  (qkv, proj, q k^T, p v)
//                        + mh_lstm:   N * (4 C^2 + 36 C d) (pre/post_proj, 2 dirs x (ih+hh)
//                                                           = 32 C d, head_proj 4 C d), d = C/H
//     + 2 C classes                                        head
// A training step is counted as 3 F per image (backward = 2x forward GEMMs; AdamW not counted).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <sparsimix/autograd/optim.hpp>
#include <sparsimix/autograd/tape.hpp>
#include <sparsimix/models/cost.hpp>
#include <sparsimix/models/vit.hpp>

namespace {

using namespace sparsimix;

vit_config deit_tiny(index_t img, bool half_lstm) {
  vit_config c;
  c.img_size = img;
  c.patch_size = 16;
  c.in_chans = 3;
  c.num_classes = 1000;
  c.embed_dim = 192;
  c.depth = 12;
  c.num_heads = 3;
  c.mixers.assign(12, mixer_spec{});
  if (half_lstm)
    for (std::size_t i = 1; i < c.mixers.size(); i += 2) c.mixers[i] = mixer_spec("mh_lstm");
  return c;
}

vit_config demo() {
  vit_config c;  // the defaults are the demo model: img 28, patch 4, C 96, depth 6, H 3
  c.mixers.assign(static_cast<std::size_t>(c.depth), mixer_spec{});
  return c;
}

// Models are built once per configuration: init of DeiT-Tiny's 5.7M weights would otherwise
// run again for every iteration-count probe of the benchmark library. A key ending in
// "_pruned50" prunes the second half of every (direction, head)'s units of each LSTM block.
HybridViT<float>& model(const std::string& key, const vit_config& cfg) {
  static std::map<std::string, std::unique_ptr<HybridViT<float>>> cache;
  auto& m = cache[key];
  if (!m) {
    m = std::make_unique<HybridViT<float>>(cfg);
    Rng rng(1);
    m->init(rng);
    if (key.find("_pruned50") != std::string::npos)
      for (index_t l = 0; l < m->depth(); ++l)
        if (auto* lstm = std::get_if<MultiHeadLSTM<float>>(&m->mixer(l))) {
          const index_t d = lstm->head_dim();
          std::vector<std::uint8_t> keep(static_cast<std::size_t>(2 * lstm->dim()));
          for (std::size_t u = 0; u < keep.size(); ++u) keep[u] = static_cast<index_t>(u) % d < d / 2;
          lstm->prune_units(keep);
        }
  }
  return *m;
}

void counters(benchmark::State& state, const HybridViT<float>& m, index_t B, double flop_factor) {
  using benchmark::Counter;
  const vit_config& c = m.config();
  const double image_flops = 2.0 * static_cast<double>(count_multiply_adds(m).value_or(0));
  state.counters["images/s"] = Counter(static_cast<double>(B), Counter::kIsIterationInvariantRate);
  state.counters["tokens/s"] = Counter(static_cast<double>(B * c.num_tokens()), Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] =
      Counter(flop_factor * static_cast<double>(B) * image_flops * 1e-9, Counter::kIsIterationInvariantRate);
  state.counters["threads"] = static_cast<double>(max_threads());
}

Tensor<float> images(const vit_config& c, index_t B) {
  Tensor<float> img(Shape{B, c.in_chans, c.img_size, c.img_size});
  Rng rng(7);
  fill_normal(rng, img.data(), img.numel(), 0.0, 1.0);
  return img;
}

void run_forward(benchmark::State& state, const std::string& key, const vit_config& cfg, index_t B, int threads) {
  set_num_threads(threads);
  const auto& m = model(key, cfg);
  const Tensor<float> img = images(cfg, B);
  Tensor<float> logits(Shape{B, cfg.num_classes});
  m.forward(img.view(), logits.view());  // warm-up: workspaces grow once
  for (auto _ : state) {
    m.forward(img.view(), logits.view());
    benchmark::DoNotOptimize(logits.data());
    benchmark::ClobberMemory();
  }
  counters(state, m, B, 1.0);
}

void run_train(benchmark::State& state, const std::string& key, const vit_config& cfg, index_t B, int threads) {
  set_num_threads(threads);
  auto& m = model(key, cfg);
  const Tensor<float> img = images(cfg, B);
  std::vector<index_t> labels(static_cast<std::size_t>(B));
  for (index_t i = 0; i < B; ++i) labels[static_cast<std::size_t>(i)] = (i * 7) % cfg.num_classes;
  AdamW<float> opt({.lr = 1e-4, .weight_decay = 0.05});
  opt.add_group(m.parameters());
  Tape<float> tape;
  auto step = [&] {
    tape.clear();
    opt.zero_grad();
    const Var loss = tape.cross_entropy(m.forward(tape, img.view()), labels);
    tape.backward(loss);
    opt.step();
  };
  step();  // warm-up: the tape's pools and the optimizer state grow once
  for (auto _ : state) {
    step();
    benchmark::ClobberMemory();
  }
  counters(state, m, B, 3.0);
}

// A model and images whose halting gives mean retention `retention` (see BM_ViT_Halting).
struct halting_case {
  std::unique_ptr<HybridViT<float>> model;
  Tensor<float> images;
};

halting_case make_halting_case(vit_config cfg, index_t B, int retention_percent) {
  const bool dense = retention_percent <= 0;
  if (!dense) cfg.halting = halting_spec{10, 5, 0.01};
  halting_case hc{std::make_unique<HybridViT<float>>(cfg), Tensor<float>()};
  auto& m = *hc.model;
  Rng rng(1);
  m.init(rng);
  std::map<std::string, Tensor<float>> w;
  for (auto& [name, t] : m.state_dict()) w[name] = std::move(t);
  for (index_t i = 0; i < cfg.depth; ++i)
    for (const char* n : {"attn.proj.weight", "attn.proj.bias", "mlp.fc2.weight", "mlp.fc2.bias"}) {
      auto it = w.find("blocks." + std::to_string(i) + "." + n);
      if (it != w.end()) it->second.zero();
    }
  const index_t P = cfg.patch_size, F = cfg.in_chans * P * P, np = cfg.num_patches();
  auto& pw = w.at("patch_embed.proj.weight");
  std::fill_n(pw.data(), F, 1.0f);  // output channel 0 = the patch's pixel sum
  w.at("patch_embed.proj.bias").data()[0] = 0;
  auto& pos = w.at("pos_embed");
  for (index_t n = 0; n < pos.size(1); ++n) pos(0, n, 0) = 0;
  m.load_state_dict([&](const std::string& name) { return w.at(name); });
  // Bright patches: exactly k per image, a different set per image ((p * 37 + i) mod np is a
  // permutation of the patches when np and 37 are coprime, as for 49 and 196).
  const double L = static_cast<double>(cfg.depth);
  const double f = dense ? 0.0 : (1.0 - retention_percent / 100.0) * L / (L - 1);
  const auto k = static_cast<index_t>(std::lround(f * static_cast<double>(np)));
  hc.images = Tensor<float>(Shape{B, cfg.in_chans, cfg.img_size, cfg.img_size});
  hc.images.zero();
  const index_t g = cfg.grid();
  for (index_t i = 0; i < B; ++i)
    for (index_t p = 0; p < np; ++p) {
      if ((p * 37 + i) % np >= k) continue;
      for (index_t c = 0; c < cfg.in_chans; ++c)
        for (index_t y = 0; y < P; ++y)
          for (index_t x = 0; x < P; ++x)
            hc.images(i, c, (p / g) * P + y, (p % g) * P + x) = 1.0f / static_cast<float>(F);
    }
  return hc;
}

void run_halting(benchmark::State& state, const vit_config& cfg, index_t B, int retention_percent) {
  set_num_threads(1);
  const halting_case hc = make_halting_case(cfg, B, retention_percent);
  const auto& m = *hc.model;
  Tensor<float> logits(Shape{B, cfg.num_classes});
  m.forward(hc.images.view(), logits.view());  // warm-up: workspaces grow once
  double retention = 1.0;
  if (m.config().halting) {
    const auto& h = m.halting();
    retention = 0;
    for (index_t l = 0; l < cfg.depth; ++l) retention += h.keep_ratio(l) / static_cast<double>(cfg.depth);
  }
  for (auto _ : state) {
    m.forward(hc.images.view(), logits.view());
    benchmark::DoNotOptimize(logits.data());
    benchmark::ClobberMemory();
  }
  counters(state, m, B, 1.0);
  state.counters["retention"] = retention;
}

bool full() {
  const char* e = std::getenv("SPARSIMIX_BENCH_FULL");
  return e && std::string(e) == "1";
}

int register_all() {
  const bool all = full();
  std::vector<int> ts{1};
#if defined(SPARSIMIX_USE_OPENMP)
  ts.push_back(2);
#endif
  auto name = [](std::string base, std::string what, index_t v, int t) {
    return base + "/" + what + std::to_string(v) + "/T:" + std::to_string(t);
  };
  for (int t : ts) {
    const bool heavy_t = t > 1;
    for (index_t B : {index_t{1}, index_t{8}}) {
      if ((B > 1 || heavy_t) && !all) continue;
      benchmark::RegisterBenchmark(name("BM_ViT_Forward/deit_tiny", "B:", B, t).c_str(),
                                   [B, t](benchmark::State& s) { run_forward(s, "deit_tiny_224", deit_tiny(224, false), B, t); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
    if (all)
      benchmark::RegisterBenchmark(name("BM_ViT_TrainStep/deit_tiny", "B:", 8, t).c_str(),
                                   [t](benchmark::State& s) { run_train(s, "deit_tiny_224", deit_tiny(224, false), 8, t); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    if (all || !heavy_t)
      benchmark::RegisterBenchmark(name("BM_ViT_TrainStep/demo", "B:", 128, t).c_str(),
                                   [t](benchmark::State& s) { run_train(s, "demo", demo(), 128, t); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    if (t == 1)
      for (index_t B : {index_t{1}, index_t{64}})
        for (int r : {0, 100, 70, 50}) {
          if (B > 1 && !all) continue;
          const std::string what = "B:" + std::to_string(B) + "/R:" + (r == 0 ? std::string("dense") : std::to_string(r));
          benchmark::RegisterBenchmark(("BM_ViT_Halting/demo/" + what).c_str(),
                                       [B, r](benchmark::State& s) { run_halting(s, demo(), B, r); })
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
          if (all || B == 1)
            benchmark::RegisterBenchmark(("BM_ViT_Halting/deit_tiny/" + what).c_str(),
                                         [B, r](benchmark::State& s) { run_halting(s, deit_tiny(224, false), B, r); })
                ->Unit(benchmark::kMillisecond)
                ->UseRealTime();
        }
    for (index_t img : {index_t{224}, index_t{384}, index_t{512}}) {
      if ((img > 224 || heavy_t) && !all) continue;
      const index_t N = (img / 16) * (img / 16) + 1;
      for (const std::string mix : {"attn", "half_lstm", "half_lstm_pruned50"}) {
        const bool half = mix != "attn";
        const std::string key = mix + "_" + std::to_string(img);
        benchmark::RegisterBenchmark(name("BM_ViT_Hybrid/" + mix, "N:", N, t).c_str(),
                                     [=](benchmark::State& s) { run_forward(s, key, deit_tiny(img, half), 1, t); })
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
    }
  }
  return 0;
}

const int registered = register_all();

}  // namespace
