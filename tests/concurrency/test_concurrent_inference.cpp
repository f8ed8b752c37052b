// A const mixer or model serves inference from several threads at once: every thread's
// outputs equal, bit for bit, those of the same calls made one at a time. The inputs differ
// per call (and per batch size), so a workspace shared between threads would mix them up.
// scripts/test.sh --tsan builds this executable under ThreadSanitizer (OpenMP off).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include <sparsimix/models.hpp>

#include "support/tiny_vit.hpp"

using namespace sparsimix;

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 6;  // calls per thread over the inputs

// Runs call(k) for k in [0, inputs) once serially (the reference), then from kThreads
// threads kRounds times each, every thread starting at a different input; returns the number
// of outputs that differ from the reference.
int mismatches_under_threads(int inputs, const std::function<std::vector<float>(int)>& call) {
  std::vector<std::vector<float>> reference;
  for (int k = 0; k < inputs; ++k) reference.push_back(call(k));
  std::atomic<int> bad{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < kThreads; ++t)
    pool.emplace_back([&, t] {
      for (int r = 0; r < kRounds * inputs; ++r) {
        const int k = (t + r) % inputs;
        const std::vector<float> out = call(k);
        const auto& ref = reference[static_cast<std::size_t>(k)];
        if (out.size() != ref.size() || std::memcmp(out.data(), ref.data(), out.size() * sizeof(float)) != 0) ++bad;
      }
    });
  for (auto& th : pool) th.join();
  return bad.load();
}

// Input k: batch 1 + k % 3 (the workspaces change size between calls), values from seed k.
Tensor<float> input(int k, index_t N, index_t C) {
  Tensor<float> x(Shape{1 + k % 3, N, C});
  Rng rng(static_cast<std::uint64_t>(100 + k));
  fill_normal(rng, x.data(), x.numel(), 0, 1);
  return x;
}

// Every odd input gets a mask that kills a different set of tokens.
std::optional<TokenMask> mask_for(int k, index_t B, index_t N) {
  if (k % 2 == 0) return std::nullopt;
  TokenMask m(B, N);
  for (index_t b = 0; b < B; ++b)
    for (index_t n = 1; n < N; ++n) m.set(b, n, (n + b + k) % 3 != 0);
  return m;
}

template <class M>
int mixer_mismatches(const M& mixer, index_t N, index_t C) {
  return mismatches_under_threads(6, [&](int k) {
    const Tensor<float> x = input(k, N, C);
    const auto mask = mask_for(k, x.size(0), N);
    Tensor<float> y(x.shape());
    mixer.forward(x.view(), y.view(), mask ? &*mask : nullptr);
    return std::vector<float>(y.begin(), y.end());
  });
}

// Every kind of block: attention, the LSTM, the bidirectional scan.
vit_config hybrid_config() {
  return test::tiny_vit_config({mixer_spec("attention"), mixer_spec("mh_lstm"),
                                spec_for<SelectiveScan>({.d_state = 4, .expand = 1.0, .bidirectional = true}),
                                mixer_spec("attention")});
}

Tensor<float> images(int k) {
  Tensor<float> x(Shape{1 + k % 3, 1, 28, 28});
  Rng rng(static_cast<std::uint64_t>(200 + k));
  fill_normal(rng, x.data(), x.numel(), 0, 1);
  return x;
}

}  // namespace

TEST_CASE("one const attention serves forwards from several threads", "[concurrency][attention]") {
  Attention<float> a({16, 4});
  Rng rng(1);
  a.init(rng);
  CHECK(mixer_mismatches(a, 9, 16) == 0);
  // The capture path (maps) and the pre-projection output lease workspaces too.
  CHECK(mismatches_under_threads(4, [&](int k) {
          const Tensor<float> x = input(k, 7, 16);
          const auto mask = mask_for(k, x.size(0), 7);
          Tensor<float> y(x.shape()), pre(x.shape()), maps(Shape{x.size(0), 4, 7, 7});
          a.forward_capture(x.view(), y.view(), maps.view(), mask ? &*mask : nullptr);
          a.forward_pre_proj(x.view(), pre.view(), mask ? &*mask : nullptr);
          std::vector<float> out(y.begin(), y.end());
          out.insert(out.end(), maps.begin(), maps.end());
          out.insert(out.end(), pre.begin(), pre.end());
          return out;
        }) == 0);
}

TEST_CASE("one const multi-head LSTM serves forwards from several threads", "[concurrency][mh_lstm]") {
  MultiHeadLSTM<float> m({16, 4});
  Rng rng(2);
  m.init(rng);
  CHECK(mixer_mismatches(m, 9, 16) == 0);
}

TEST_CASE("one const selective scan serves forwards from several threads", "[concurrency][selective_scan]") {
  SelectiveScan<float>::config cfg;
  cfg.dim = 16;
  cfg.d_state = 4;
  cfg.bidirectional = true;
  SelectiveScan<float> s(cfg);
  Rng rng(3);
  s.init(rng);
  CHECK(mixer_mismatches(s, 9, 16) == 0);
}

TEST_CASE("one const hybrid ViT serves forwards from several threads", "[concurrency][vit]") {
  HybridViT<float> model(hybrid_config());
  Rng rng(4);
  model.init(rng);
  CHECK(mismatches_under_threads(6, [&](int k) {
          const Tensor<float> x = images(k);
          Tensor<float> logits(Shape{x.size(0), 10});
          vit_capture<float> cap;
          cap.blocks = k % 2 == 1;  // captures are the caller's, not shared
          model.forward(x.view(), logits.view(), &cap);
          std::vector<float> out(logits.begin(), logits.end());
          for (const auto& t : cap.block_out) out.insert(out.end(), t.begin(), t.end());
          return out;
        }) == 0);
}

TEST_CASE("a halting ViT shared by threads gives each forward its own halting state", "[concurrency][vit][halting]") {
  vit_config cfg = hybrid_config();
  cfg.halting = halting_spec{2.0, 0.5, 0.01};  // tokens halt at different blocks
  HybridViT<float> model(cfg);
  Rng rng(5);
  model.init(rng);
  // Logits, then each token's halting depth from the call's own state.
  const auto run = [&](int k, vit_capture<float>& cap) {
    const Tensor<float> x = images(k);
    Tensor<float> logits(Shape{x.size(0), 10});
    cap.halting = true;
    model.forward(x.view(), logits.view(), &cap);
    std::vector<float> out(logits.begin(), logits.end());
    for (const std::int64_t d : cap.halting_state->depth()) out.push_back(static_cast<float>(d));
    return out;
  };
  CHECK(mismatches_under_threads(6, [&](int k) {
          vit_capture<float> cap;
          return run(k, cap);
        }) == 0);
  // Alone, halting() is the last forward's state, as the capture reports it.
  vit_capture<float> cap;
  run(2, cap);
  const Tensor<std::int64_t> mine = cap.halting_state->depth(), last = model.halting().depth();
  REQUIRE(mine.shape() == last.shape());
  CHECK(std::equal(mine.begin(), mine.end(), last.begin()));
}

TEST_CASE("a warm mixer holds one workspace per concurrent caller and a copy starts with none",
          "[concurrency][workspace_pool]") {
  workspace_pool<Tensor<float>> pool;
  CHECK(pool.idle() == 0);
  {
    const auto a = pool.acquire();
    const auto b = pool.acquire();
    a->resize(Shape{4});
    CHECK(pool.idle() == 0);
    CHECK(&*a != &*b);
  }
  CHECK(pool.idle() == 2);
  const Tensor<float>* kept = nullptr;
  {
    const auto c = pool.acquire();  // reuses a returned workspace, no new one
    kept = &*c;
    CHECK(pool.idle() == 1);
  }
  {
    const auto d = pool.acquire();
    CHECK(&*d == kept);  // last returned, first leased again: warm buffers stay in use
  }
  const workspace_pool<Tensor<float>> copy(pool);
  CHECK(copy.idle() == 0);
  CHECK(pool.idle() == 2);
}
