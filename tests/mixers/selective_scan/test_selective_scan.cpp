// SelectiveScan: concept, config and shape errors, init, masks, gradients (double).
#include <catch2/catch.hpp>

#include <cmath>
#include <set>
#include <string>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/mixers/selective_scan.hpp>

using namespace sparsimix;

static_assert(SeqMixer<SelectiveScan<float>> && SeqMixer<SelectiveScan<double>>);

namespace {
template <class T>
Tensor<T> random_seq(index_t B, index_t N, index_t C, std::uint64_t seed) {
  Tensor<T> x({B, N, C});
  Rng rng(seed);
  fill_normal(rng, x.data(), x.numel(), 0.0, 1.0);
  return x;
}
// Moves every parameter off its structured init so gradients of A_log, D, biases all vary.
template <class T>
void jitter(SelectiveScan<T>& m, std::uint64_t seed, double amount = 0.2) {
  Rng rng(seed);
  for (auto& p : m.parameters())
    for (auto& v : p.value) v = static_cast<T>(v + rng.uniform(-amount, amount));
}
}  // namespace

TEST_CASE("selective_scan config validation", "[mixer][scan]") {
  using M = SelectiveScan<float>;
  CHECK_THROWS_AS(M(M::config{0}), config_error);
  CHECK_THROWS_AS(M(M::config{8, 0}), config_error);
  CHECK_THROWS_AS(M(M::config{8, 16, 0}), config_error);
  CHECK_THROWS_AS(M(M::config{8, 16, 4, -1.0}), config_error);
  CHECK_THROWS_AS(M(M::config{8, 16, 4, NAN}), config_error);
  CHECK_THROWS_AS(M(M::config{8, 16, 4, 0.1}), config_error);  // floor(0.8) = 0 channels
  CHECK_THROWS_AS(M(M::config{8, 16, 4, 2.0, -3}), config_error);
  CHECK_THROWS_WITH(M(M::config{8, 16, 4, 2.0, -3}), Catch::Contains("dt_rank is -3"));

  M m(M::config{40});
  CHECK(m.dim() == 40);
  CHECK(m.d_inner() == 80);
  CHECK(m.cfg().dt_rank == 3);  // ceil(40 / 16)
  CHECK(M(M::config{33, 16, 4, 1.5}).d_inner() == 49);
  CHECK(M(M::config{192}).cfg().dt_rank == 12);
}

TEST_CASE("selective_scan parameters: PyTorch names, shapes, decay flags", "[mixer][scan]") {
  SelectiveScan<float> m({.dim = 40, .d_state = 5, .d_conv = 3, .expand = 1.5, .dt_rank = 4, .bidirectional = true});
  const auto ps = m.parameters();
  REQUIRE(ps.size() == 16);
  auto find = [&](const std::string& n) -> const Param<float>& {
    for (auto& p : ps)
      if (p.name == n) return p;
    FAIL("no parameter " << n);
    return ps.front();
  };
  CHECK(find("in_proj.weight").value.shape() == Shape{120, 40});
  CHECK(find("conv1d.weight").value.shape() == Shape{60, 1, 3});
  CHECK(find("conv1d_b.bias").value.shape() == Shape{60});
  CHECK(find("x_proj.weight").value.shape() == Shape{14, 60});
  CHECK(find("x_proj_b.weight").value.shape() == Shape{14, 60});
  CHECK(find("dt_proj.weight").value.shape() == Shape{60, 4});
  CHECK(find("dt_proj_b.bias").value.shape() == Shape{60});
  CHECK(find("A_log").value.shape() == Shape{60, 5});
  CHECK(find("A_b_log").value.shape() == Shape{60, 5});
  CHECK(find("D_b").value.shape() == Shape{60});
  CHECK(find("out_proj.weight").value.shape() == Shape{40, 60});
  for (const char* n : {"A_log", "A_b_log", "D", "D_b", "conv1d.bias", "dt_proj.bias"}) CHECK_FALSE(find(n).decay);
  for (const char* n : {"in_proj.weight", "x_proj.weight", "dt_proj.weight", "out_proj.weight"}) CHECK(find(n).decay);
  std::set<std::string> names;
  for (auto& p : ps) {
    names.insert(p.name);
    CHECK(p.grad.shape() == p.value.shape());
  }
  CHECK(names.size() == ps.size());
  CHECK(SelectiveScan<float>({.dim = 40}).parameters().size() == 9);
}

TEST_CASE("selective_scan init follows docs/method.md 4.1", "[mixer][scan]") {
  SelectiveScan<double> m({.dim = 64, .bidirectional = true});
  Rng rng(11);
  m.init(rng);
  const index_t Di = 128, S = 16, R = 4;
  for (auto& p : m.parameters()) {
    INFO(p.name);
    if (p.name == "A_log" || p.name == "A_b_log") {
      for (index_t d = 0; d < Di; ++d)
        for (index_t n = 0; n < S; ++n) REQUIRE(p.value(d, n) == Approx(std::log(double(n + 1))));
    } else if (p.name == "D" || p.name == "D_b") {
      for (double v : p.value) REQUIRE(v == 1.0);
    } else if (p.name == "dt_proj.bias" || p.name == "dt_proj_b.bias") {
      double lo = 1, hi = 0;
      for (double v : p.value) {
        const double dt = std::log1p(std::exp(v));  // softplus recovers dt
        REQUIRE(dt >= 1e-3 * (1 - 1e-9));
        REQUIRE(dt <= 0.1 * (1 + 1e-9));
        lo = std::min(lo, dt);
        hi = std::max(hi, dt);
      }
      CHECK(lo < 2e-3);  // log-uniform over two decades: both ends are reached
      CHECK(hi > 5e-2);
    } else {
      const double bound = p.name.rfind("in_proj", 0) == 0      ? 1 / std::sqrt(64.0)
                           : p.name.rfind("dt_proj", 0) == 0    ? 1 / std::sqrt(double(R))
                           : p.name.rfind("conv1d", 0) == 0     ? 1 / std::sqrt(4.0)
                                                                : 1 / std::sqrt(double(Di));
      double amax = 0;
      for (double v : p.value) amax = std::max(amax, std::abs(v));
      CHECK(amax <= bound);
      CHECK(amax > 0.9 * bound);  // uniform over the full range
    }
    for (double g : p.grad) REQUIRE(g == 0.0);
  }
}

TEST_CASE("selective_scan shape errors name the tensor", "[mixer][scan]") {
  SelectiveScan<float> m({.dim = 8});
  Tensor<float> x({2, 5, 8}), y({2, 5, 8}), bad({2, 5, 7}), y4({2, 4, 8});
  CHECK_THROWS_WITH(m.forward(bad.view(), bad.view(), nullptr), Catch::Contains("x is [2, 5, 7], expected [*, *, 8]"));
  CHECK_THROWS_AS(m.forward(x.view(), y4.view(), nullptr), shape_error);
  TokenMask mask(2, 4);
  CHECK_THROWS_AS(m.forward(x.view(), y.view(), &mask), shape_error);
  SelectiveScan<float>::cache_type cache;
  CHECK_THROWS_AS(m.backward(cache, y.view(), x.view()), shape_error);  // no training forward yet
  m.forward(x.view(), y.view(), cache, nullptr);
  CHECK_THROWS_WITH(m.backward(cache, y4.view(), x.view()), Catch::Contains("dy is [2, 4, 8]"));
}

TEMPLATE_TEST_CASE("selective_scan training forward equals inference forward", "[mixer][scan]", float, double) {
  using T = TestType;
  const bool bi = GENERATE(false, true);
  SelectiveScan<T> m({.dim = 24, .d_state = 7, .bidirectional = bi});
  jitter(m, 3);
  auto x = random_seq<T>(2, 19, 24, 4);
  Tensor<T> y1(x.shape()), y2(x.shape());
  typename SelectiveScan<T>::cache_type cache;
  m.forward(x.view(), y1.view(), nullptr);
  m.forward(x.view(), y2.view(), cache, nullptr);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(y1.data()[i] == y2.data()[i]);
  // A second inference call on the warm workspaces gives the same numbers.
  m.forward(x.view(), y2.view(), nullptr);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(y1.data()[i] == y2.data()[i]);
}

TEMPLATE_TEST_CASE("selective_scan under a mask equals running on the gathered sequence", "[mixer][scan]", float,
                   double) {
  using T = TestType;
  const bool bi = GENERATE(false, true);
  const index_t B = 3, N = 11, C = 16;
  SelectiveScan<T> m({.dim = C, .d_state = 4, .d_conv = 3, .bidirectional = bi});
  jitter(m, 8);
  auto x = random_seq<T>(B, N, C, 9);
  TokenMask mask(B, N);
  Rng rng(10);
  for (index_t b = 0; b < B; ++b)
    for (index_t n = 0; n < N; ++n) mask.set(b, n, rng.uniform() < 0.6);
  mask.set(0, 0, false);
  for (index_t n = 0; n < N; ++n) mask.set(2, n, false);  // a fully dead sequence
  Tensor<T> y(x.shape()), dy = random_seq<T>(B, N, C, 12), dx(x.shape());
  typename SelectiveScan<T>::cache_type cache;
  m.forward(x.view(), y.view(), cache, &mask);
  Tensor<T> y_inf(x.shape());
  m.forward(x.view(), y_inf.view(), &mask);
  m.backward(cache, dy.view(), dx.view());

  const double tol = std::is_same_v<T, float> ? 1e-6 : 1e-13;
  for (index_t b = 0; b < B; ++b) {
    const index_t L = mask.count(b);
    Tensor<T> xs({1, L, C}), ys({1, L, C}), dys({1, L, C}), dxs({1, L, C});
    index_t r = 0;
    for (index_t n = 0; n < N; ++n) {
      if (!mask.alive(b, n)) {
        for (index_t c = 0; c < C; ++c) {
          REQUIRE(y(b, n, c) == T(0));  // exactly 0, no bias at dead positions
          REQUIRE(y_inf(b, n, c) == T(0));
          REQUIRE(dx(b, n, c) == T(0));
        }
        continue;
      }
      for (index_t c = 0; c < C; ++c) {
        xs(0, r, c) = x(b, n, c);
        dys(0, r, c) = dy(b, n, c);
      }
      ++r;
    }
    if (L == 0) continue;
    typename SelectiveScan<T>::cache_type cs;
    m.forward(xs.view(), ys.view(), cs, nullptr);
    m.backward(cs, dys.view(), dxs.view());
    r = 0;
    for (index_t n = 0; n < N; ++n) {
      if (!mask.alive(b, n)) continue;
      for (index_t c = 0; c < C; ++c) {
        REQUIRE(y(b, n, c) == Approx(ys(0, r, c)).margin(tol));
        REQUIRE(y_inf(b, n, c) == Approx(ys(0, r, c)).margin(tol));
        REQUIRE(dx(b, n, c) == Approx(dxs(0, r, c)).margin(tol));
      }
      ++r;
    }
  }
  // Parameter gradients: the masked batch accumulated once; the per-sequence runs accumulated
  // the same sums again, so every grad is now exactly twice the masked run's (up to rounding).
  // Check that via a fresh mixer with the same values.
  SelectiveScan<T> m2({.dim = C, .d_state = 4, .d_conv = 3, .bidirectional = bi});
  auto p1 = m.parameters(), p2 = m2.parameters();
  for (std::size_t i = 0; i < p1.size(); ++i) std::copy(p1[i].value.begin(), p1[i].value.end(), p2[i].value.begin());
  typename SelectiveScan<T>::cache_type c2;
  m2.forward(x.view(), y.view(), c2, &mask);
  m2.backward(c2, dy.view(), dx.view());
  for (std::size_t i = 0; i < p1.size(); ++i) {
    INFO(p1[i].name);
    for (index_t k = 0; k < p1[i].grad.numel(); ++k)
      REQUIRE(p1[i].grad.data()[k] == Approx(2 * p2[i].grad.data()[k]).margin(10 * tol).epsilon(1e-4));
  }
}

TEST_CASE("selective_scan backward matches finite differences (double)", "[mixer][scan][gradcheck]") {
  const bool bi = GENERATE(false, true);
  const bool masked = GENERATE(false, true);
  INFO("bidirectional " << bi << ", masked " << masked);
  // Small on purpose: gradcheck perturbs every entry of every parameter and of x.
  SelectiveScan<double> m({.dim = 6, .d_state = 3, .d_conv = 3, .expand = 1.5, .dt_rank = 2, .bidirectional = bi});
  jitter(m, 21, 0.3);
  auto x = random_seq<double>(2, 7, 6, 22);
  TokenMask mask(2, 7);
  for (index_t n : {0, 3, 4}) mask.set(0, n, false);
  mask.set(1, 6, false);
  gradcheck_options opt;
  opt.atol = 1e-7;
  opt.rtol = 1e-6;
  const auto r = gradcheck_mixer(m, x, masked ? &mask : nullptr, opt);
  INFO(r.worst << " (max abs error " << r.max_abs_error << ")");
  CHECK(r.checked > 300);
  CHECK(r.ok);
}
