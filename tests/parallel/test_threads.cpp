// Built with OpenMP (SPARSIMIX_USE_OPENMP): the threaded paths give the results of the serial
// ones. Note [GEMM threading] in core/linalg.hpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include <sparsimix/autograd/tape.hpp>
#include <sparsimix/core/linalg.hpp>
#include <sparsimix/mixers/mh_lstm.hpp>
#include <sparsimix/models/vit.hpp>

using namespace sparsimix;

#if !defined(SPARSIMIX_USE_OPENMP)
#error "this test must be compiled with SPARSIMIX_USE_OPENMP"
#endif

namespace {
// Plain loops in double: the reference for the chunked products.
void reference_linear(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>& dy, Tensor<double>& y,
                      Tensor<double>& dx, Tensor<double>& dw) {
  const index_t m = x.size(0), k = x.size(1), n = w.size(0);
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      double s = 0;
      for (index_t q = 0; q < k; ++q) s += double(x(i, q)) * double(w(j, q));
      y(i, j) = s;
    }
  for (index_t i = 0; i < m; ++i)
    for (index_t q = 0; q < k; ++q) {
      double s = 0;
      for (index_t j = 0; j < n; ++j) s += double(dy(i, j)) * double(w(j, q));
      dx(i, q) = s;
    }
  for (index_t j = 0; j < n; ++j)
    for (index_t q = 0; q < k; ++q) {
      double s = 0;
      for (index_t i = 0; i < m; ++i) s += double(dy(i, j)) * double(x(i, q));
      dw(j, q) = s;
    }
}
}  // namespace

TEST_CASE("row-chunked GEMMs over 2 threads equal a plain reference", "[parallel][linalg]") {
  set_num_threads(2);
  REQUIRE(max_threads() == 2);
  const index_t m = 1000, k = 96, n = 130;  // big enough to be chunked; odd n
  REQUIRE(detail::gemm_chunks(m, k, n) == 2);
  Rng rng(1);
  Tensor<float> x(Shape{m, k}), w(Shape{n, k}), dy(Shape{m, n}), y(Shape{m, n}), dx(Shape{m, k}), dw(Shape{n, k});
  fill_uniform(rng, x.data(), x.numel(), -1, 1);
  fill_uniform(rng, w.data(), w.numel(), -1, 1);
  fill_uniform(rng, dy.data(), dy.numel(), -1, 1);
  Tensor<double> ry(Shape{m, n}), rdx(Shape{m, k}), rdw(Shape{n, k});
  reference_linear(x, w, dy, ry, rdx, rdw);
  for (int rep = 0; rep < 2; ++rep) {  // twice: the per-chunk partials are reused
    dw.zero();
    linear_forward(x.data(), w.data(), static_cast<const float*>(nullptr), y.data(), m, k, n);
    linear_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), static_cast<float*>(nullptr), m, k, n);
    for (index_t i = 0; i < y.numel(); ++i) REQUIRE(double(y.data()[i]) == Approx(ry.data()[i]).margin(1e-4));
    for (index_t i = 0; i < dx.numel(); ++i) REQUIRE(double(dx.data()[i]) == Approx(rdx.data()[i]).margin(1e-4));
    for (index_t i = 0; i < dw.numel(); ++i) REQUIRE(double(dw.data()[i]) == Approx(rdw.data()[i]).margin(2e-3));
  }
}

namespace {

// 16x16 images in 4x4 patches, 4 classes, 3 heads: attention, mh_lstm, a bidirectional scan.
vit_config three_mixer_config(index_t embed_dim) {
  vit_config c;
  c.img_size = 16;
  c.patch_size = 4;
  c.in_chans = 1;
  c.num_classes = 4;
  c.embed_dim = embed_dim;
  c.num_heads = 3;
  c.mlp_ratio = 2;
  c.depth = 3;
  c.mixers = {mixer_spec{}, mixer_spec("mh_lstm"), spec_for<SelectiveScan>({.bidirectional = true})};
  return c;
}

}  // namespace

TEST_CASE("a hybrid ViT training step gives the same loss and gradients with 1 and 2 threads", "[parallel][vit]") {
  HybridViT<double> m(three_mixer_config(24));
  Rng rng(2);
  m.init(rng);
  Tensor<double> img(Shape{32, 1, 16, 16});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  std::vector<index_t> labels(32);
  for (index_t i = 0; i < 32; ++i) labels[static_cast<std::size_t>(i)] = i % 4;
  auto step = [&](int threads) {
    set_num_threads(threads);
    m.zero_grad();
    Tape<double> tape;
    const Var loss = tape.cross_entropy(m.forward(tape, img.view()), labels);
    tape.backward(loss);
    std::vector<double> g{tape.item(loss)};
    for (const auto& p : m.parameters()) g.insert(g.end(), p.grad.begin(), p.grad.end());
    return g;
  };
  const auto g1 = step(1), g2 = step(2);
  REQUIRE(g1.size() == g2.size());
  for (std::size_t i = 0; i < g1.size(); ++i) REQUIRE(g2[i] == Approx(g1[i]).margin(1e-12));
}

// Determinism (docs/errors.md, "Resuming"): with a fixed thread count a float run repeats bit
// for bit (what resuming relies on). Across thread counts results differ in the last bits:
// the GEMMs are chunked by rows and Eigen's blocking, and the order of the weight-gradient
// sums over rows, follow the chunk sizes; they agree to float rounding.
TEST_CASE("float training and inference repeat bit for bit at a fixed thread count", "[parallel][vit][determinism]") {
  HybridViT<float> m(three_mixer_config(48));
  Rng rng(5);
  m.init(rng);
  Tensor<float> img(Shape{64, 1, 16, 16});
  fill_normal(rng, img.data(), img.numel(), 0, 1);
  std::vector<index_t> labels(64);
  for (index_t i = 0; i < 64; ++i) labels[static_cast<std::size_t>(i)] = (i * 7) % 4;
  auto run = [&](int threads) {
    set_num_threads(threads);
    std::vector<float> out(static_cast<std::size_t>(64 * 4));
    m.forward(img.view(), TensorView<float>(out.data(), Shape{64, 4}));
    m.zero_grad();
    Tape<float> tape;
    const Var loss = tape.cross_entropy(m.forward(tape, img.view()), labels);
    tape.backward(loss);
    out.push_back(tape.item(loss));
    for (const auto& p : m.parameters()) out.insert(out.end(), p.grad.begin(), p.grad.end());
    return out;
  };
  const auto two = run(2), two_again = run(2), one = run(1), one_again = run(1);
  CHECK(two == two_again);
  CHECK(one == one_again);
  REQUIRE(one.size() == two.size());
  double worst = 0;
  for (std::size_t i = 0; i < one.size(); ++i)
    worst = std::max(worst, std::abs(double(one[i]) - double(two[i])) / (std::abs(double(one[i])) + 1e-3));
  CHECK(worst < 1e-3);
  set_num_threads(2);
}

TEST_CASE("parallel_for_each_dynamic calls f once for every listed index", "[parallel]") {
  set_num_threads(2);
  const std::vector<index_t> order{5, 0, 3, 4, 1, 2};
  std::vector<int> calls(order.size(), 0);
  parallel_for_each_dynamic(order, [&](index_t i) { ++calls[static_cast<std::size_t>(i)]; });
  CHECK(calls == std::vector<int>(order.size(), 1));
}

// A pruned demo block's widths (forward 16, 9, 3; backward 4, 5, 7 of 32 units per head): its
// (head, direction) recurrences run widest first on whichever thread is free, and head_proj
// splits the rows between the threads. Neither may change a bit: B N = 3200 rows split at
// multiples of 16.
TEST_CASE("a pruned LSTM of uneven widths gives the same bits on 1 and 2 threads", "[parallel][mh_lstm]") {
  const index_t B = 64, N = 50, C = 96, H = 3, d = C / H;
  MultiHeadLSTM<float> m({C, H});
  Rng rng(11);
  m.init(rng);
  const index_t widths[2][3] = {{16, 9, 3}, {4, 5, 7}};
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(2 * C));
  for (index_t dir = 0; dir < 2; ++dir)
    for (index_t h = 0; h < H; ++h)
      for (index_t j = 0; j < d; ++j) keep[static_cast<std::size_t>((dir * H + h) * d + j)] = j < widths[dir][h];
  m.prune_units(keep);
  REQUIRE(m.widths() == std::vector<index_t>{16, 9, 3, 4, 5, 7});
  Tensor<float> x(Shape{B, N, C}), dy(Shape{B, N, C});
  fill_uniform(rng, x.data(), x.numel(), -1, 1);
  fill_uniform(rng, dy.data(), dy.numel(), -1, 1);
  auto run = [&](int threads) {
    set_num_threads(threads);
    Tensor<float> y(Shape{B, N, C}), y_train(Shape{B, N, C}), dx(Shape{B, N, C});
    m.forward(x.view(), y.view(), nullptr);
    MultiHeadLSTM<float>::cache_type cache;
    m.zero_grad();
    m.forward(x.view(), y_train.view(), cache, nullptr);
    m.backward(cache, dy.view(), dx.view());
    std::vector<float> out(y.begin(), y.end()), grads;
    out.insert(out.end(), y_train.begin(), y_train.end());
    out.insert(out.end(), dx.begin(), dx.end());
    for (const auto& p : m.parameters()) grads.insert(grads.end(), p.grad.begin(), p.grad.end());
    return std::pair{out, grads};
  };
  const auto [one, one_grads] = run(1);
  const auto [two, two_grads] = run(2);
  REQUIRE(one.size() == two.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < one.size(); ++i) differ += one[i] != two[i];
  CHECK(differ == 0);
  // The projections' weight gradients sum over row chunks, one per thread: equal to rounding.
  REQUIRE(one_grads.size() == two_grads.size());
  double worst = 0;
  for (std::size_t i = 0; i < one_grads.size(); ++i)
    worst = std::max(worst, std::abs(double(one_grads[i]) - double(two_grads[i])) / (std::abs(double(one_grads[i])) + 1e-2));
  CHECK(worst < 1e-4);
  set_num_threads(2);
}
