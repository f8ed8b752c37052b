// Attention mixer: concept, config and shape errors, PyTorch goldens (forward, maps,
// attn_out, every gradient; with and without a token mask), finite differences in double,
// online softmax vs the full-matrix path, and the token-mask contract (docs/formats.md section 1).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/concepts.hpp>
#include <sparsimix/mixers/attention.hpp>

#include "support/golden.hpp"

using namespace sparsimix;

static_assert(SeqMixer<Attention<float>> && SeqMixer<Attention<double>>);

namespace {

template <class T>
void fill_params(Attention<T>& m, Rng& rng) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(m.dim()));
  for (auto& p : m.parameters()) fill_uniform(rng, p.value.data(), p.value.numel(), -bound, bound);
}

template <class T>
Tensor<T> random_seq(Rng& rng, index_t B, index_t N, index_t C) {
  Tensor<T> x(Shape{B, N, C});
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  return x;
}

TokenMask random_mask(Rng& rng, index_t B, index_t N, double keep) {
  TokenMask m(B, N);
  for (index_t b = 0; b < B; ++b)
    for (index_t n = 1; n < N; ++n) m.set(b, n, rng.uniform() < keep);
  return m;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const shape_error& e) {
    return e.what();
  }
  return "no shape_error";
}

}  // namespace

TEST_CASE("Attention config is validated", "[mixer][attention]") {
  REQUIRE_THROWS_AS(Attention<float>({40, 3}), config_error);
  REQUIRE_THROWS_AS(Attention<float>({0, 1}), config_error);
  REQUIRE_THROWS_AS(Attention<float>({8, 0}), config_error);
  REQUIRE_THROWS_WITH(Attention<float>({40, 3}), Catch::Contains("40") && Catch::Contains("3"));
  Attention<float> a({40, 5});
  REQUIRE(a.dim() == 40);
  REQUIRE(a.head_dim() == 8);
  const auto ps = a.parameters();
  REQUIRE(ps.size() == 4);
  REQUIRE(ps[0].name == "qkv.weight");
  REQUIRE(ps[0].value.shape() == Shape{120, 40});
  REQUIRE(ps[1].name == "qkv.bias");
  REQUIRE(ps[1].value.shape() == Shape{120});
  REQUIRE(!ps[1].decay);
  REQUIRE(ps[2].name == "proj.weight");
  REQUIRE(ps[2].value.shape() == Shape{40, 40});
  REQUIRE(ps[3].name == "proj.bias");
  REQUIRE(ps[3].value.shape() == Shape{40});
}

TEST_CASE("Attention::init follows timm's ViT init", "[mixer][attention]") {
  Attention<double> a({192, 3});
  Rng rng(5);
  a.init(rng);
  auto ps = a.parameters();
  double s = 0, s2 = 0;
  for (double v : ps[0].value) s += v, s2 += v * v;
  const auto n = static_cast<double>(ps[0].value.numel());
  REQUIRE(s / n == Approx(0.0).margin(1e-3));
  REQUIRE(std::sqrt(s2 / n) == Approx(0.02).epsilon(0.02));
  for (double v : ps[1].value) REQUIRE(v == 0.0);
  for (double v : ps[3].value) REQUIRE(v == 0.0);
}

TEST_CASE("Attention rejects bad shapes with a message naming the tensor", "[mixer][attention]") {
  Attention<float> a({40, 5});
  Tensor<float> x(Shape{2, 7, 40}), y(Shape{2, 7, 40}), bad(Shape{2, 7, 32}), y2(Shape{2, 6, 40});
  Tensor<float> maps(Shape{2, 5, 7, 7}), badmaps(Shape{2, 5, 7, 6});
  REQUIRE(error_of([&] { a.forward(bad.view(), y.view(), nullptr); }) ==
          "shape_error: Attention::forward: x is [2, 7, 32], expected [*, *, 40]");
  REQUIRE(error_of([&] { a.forward(x.view(), y2.view(), nullptr); }) ==
          "shape_error: Attention::forward: y is [2, 6, 40], expected [2, 7, 40]");
  REQUIRE_THAT(error_of([&] { a.forward_capture(x.view(), y.view(), badmaps.view(), nullptr); }),
               Catch::Contains("maps is [2, 5, 7, 6], expected [2, 5, 7, 7]"));
  TokenMask wrong(2, 6);
  REQUIRE_THAT(error_of([&] { a.forward(x.view(), y.view(), &wrong); }),
               Catch::Contains("mask is [2, 6]") && Catch::Contains("[2, 7, 40]"));
  Attention<float>::cache_type cache;
  REQUIRE_THAT(error_of([&] { a.backward(cache, y.view(), x.view()); }), Catch::Contains("cache"));
  a.forward(x.view(), y.view(), cache, nullptr);
  REQUIRE_THAT(error_of([&] { a.backward(cache, y2.view(), x.view()); }),
               Catch::Contains("dy is [2, 6, 40], expected [2, 7, 40]"));
}

// max |e| over a tensor, at least 1: the scale that float rounding of a sum is relative to.
template <class E>
double scale_of(const E& e) {
  double m = 1.0;
  for (index_t i = 0; i < e.numel(); ++i) m = std::max(m, std::abs(static_cast<double>(e.data()[i])));
  return m;
}

TEMPLATE_TEST_CASE("Attention matches timm Attention in PyTorch", "[mixer][attention][golden]", float, double) {
  using T = TestType;
  // The reference is float64 torch on the same float32 inputs. Float: rtol 1e-5 per element
  // plus atol 2e-6 x max(1, max |expected|) of the tensor: weight gradients are sums over
  // B*N rows whose terms cancel, and float rounding of such a sum scales with the terms,
  // not with the (possibly tiny) result. Double: the same with 1e-12.
  const double rtol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  const double atol0 = std::is_same_v<T, float> ? 2e-6 : 1e-12;
  const std::string name = GENERATE(as<std::string>{}, "b1_n13_c40_h5", "b3_n197_c40_h5", "b2_n70_c48_h3",
                                    "b3_n29_c40_h5_masked", "b2_n131_c24_h2_masked");
  CAPTURE(name);
  const auto f = test::golden("attention_" + name + ".safetensors");
  const auto x = f.get<T>("x");
  const index_t B = x.size(0), N = x.size(1), C = x.size(2);
  const index_t H = std::stoi(f.metadata().at("H"));
  Attention<T> a({C, H});
  for (auto& p : a.parameters()) f.read_into<T>(p.name, p.value);
  TokenMask mask;
  const TokenMask* mp = nullptr;
  if (f.contains("alive")) {
    mask = TokenMask(f.get<std::uint8_t>("alive", {B, N}));
    mp = &mask;
    REQUIRE(mask.count(B - 1) == 1);  // the case with a single alive token is really there
  }
  const auto close = [&](const auto& actual, const std::string& ref) {
    const auto e = f.get<double>(ref);
    INFO(ref);
    SPARSIMIX_REQUIRE_CLOSE(actual, e, rtol, atol0 * scale_of(e));
  };

  Tensor<T> y(Shape{B, N, C}), maps(Shape{B, H, N, N}), ao(Shape{B, N, C});
  a.forward(x.view(), y.view(), mp);
  close(y, "y");
  a.forward_capture(x.view(), y.view(), maps.view(), mp);
  close(y, "y");
  close(maps, "attn_map");
  a.forward_pre_proj(x.view(), ao.view(), mp);
  close(ao, "attn_out");

  typename Attention<T>::cache_type cache;
  Tensor<T> yt(Shape{B, N, C}), dx(Shape{B, N, C});
  a.forward(x.view(), yt.view(), cache, mp);
  close(yt, "y");
  close(cache.attn_out(), "attn_out");
  const auto dy = f.get<T>("dy");
  for (auto& p : a.parameters()) std::fill(p.grad.begin(), p.grad.end(), T(0));
  a.backward(cache, dy.view(), dx.view());
  close(dx, "grad.x");
  for (auto& p : a.parameters()) close(p.grad, "grad." + p.name);
}

TEST_CASE("Attention backward matches finite differences", "[mixer][attention][gradcheck]") {
  Rng rng(11);
  Attention<double> a({12, 3});
  fill_params(a, rng);
  const bool masked = GENERATE(false, true);
  CAPTURE(masked);
  auto x = random_seq<double>(rng, 2, 9, 12);
  TokenMask mask = random_mask(rng, 2, 9, 0.6);
  mask.set(1, 4, false);
  mask.set(1, 5, true);
  const auto r = gradcheck_mixer(a, x, masked ? &mask : nullptr);
  INFO(r.worst << " (max abs error " << r.max_abs_error << ")");
  REQUIRE(r.checked == a.dim() * a.dim() * 4 + a.dim() * 4 + x.numel());
  REQUIRE(r.max_violation <= 1.0);
}

TEMPLATE_TEST_CASE("Online-softmax inference equals the full-matrix training forward", "[mixer][attention]", float,
                   double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 2e-6 : 1e-13;
  const index_t N = GENERATE(1, 7, 63, 64, 65, 128, 129, 197, 256, 257, 300);
  const bool masked = GENERATE(false, true);
  CAPTURE(N, masked);
  Rng rng(static_cast<std::uint64_t>(N) * 2 + masked);
  Attention<T> a({48, 3});
  fill_params(a, rng);
  auto x = random_seq<T>(rng, 2, N, 48);
  // Larger logits than the init gives, so the running max actually moves between tiles.
  for (T& v : x) v *= T(3);
  TokenMask mask = random_mask(rng, 2, N, 0.5);
  const TokenMask* mp = masked ? &mask : nullptr;
  Tensor<T> y1(x.shape()), y2(x.shape()), ao(x.shape());
  typename Attention<T>::cache_type cache;
  a.forward(x.view(), y1.view(), mp);
  a.forward(x.view(), y2.view(), cache, mp);
  SPARSIMIX_REQUIRE_CLOSE(y1, y2, tol, tol);
  a.forward_pre_proj(x.view(), ao.view(), mp);
  SPARSIMIX_REQUIRE_CLOSE(ao, cache.attn_out(), tol, tol);
}

TEST_CASE("The one-pass pre-proj forward and project() give forward's values bit for bit", "[mixer][attention]") {
  const bool masked = GENERATE(false, true);
  CAPTURE(masked);
  Rng rng(23);
  Attention<float> a({48, 3});
  fill_params(a, rng);
  auto x = random_seq<float>(rng, 3, 50, 48);
  TokenMask mask = random_mask(rng, 3, 50, 0.5);
  const TokenMask* mp = masked ? &mask : nullptr;
  Tensor<float> y(x.shape()), ao(x.shape()), ao2(x.shape()), y2(x.shape()), y3(x.shape());
  a.forward(x.view(), y.view(), mp);
  a.forward_pre_proj(x.view(), ao.view(), mp);
  a.forward_pre_proj(x.view(), ao2.view(), y2.view(), mp);
  a.project(ao.view(), y3.view(), mp);
  auto same = [](const Tensor<float>& p, const Tensor<float>& q) { return std::equal(p.begin(), p.end(), q.begin()); };
  CHECK(same(ao, ao2));
  CHECK(same(y, y2));
  CHECK(same(y, y3));
  Tensor<float> wrong(Shape{3, 49, 48});
  REQUIRE_THROWS_WITH(a.forward_pre_proj(x.view(), ao.view(), wrong.view(), mp),
                      Catch::Contains("Attention::forward_pre_proj") && Catch::Contains("y"));
}

TEMPLATE_TEST_CASE("Attention under a token mask: maps, dead rows, exact key exclusion", "[mixer][attention][mask]",
                   float, double) {
  using T = TestType;
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  Rng rng(3);
  const index_t B = 3, N = 70, C = 24, H = 2;
  Attention<T> a({C, H});
  fill_params(a, rng);
  auto x = random_seq<T>(rng, B, N, C);
  TokenMask mask = random_mask(rng, B, N, 0.4);
  for (index_t n = 0; n < N; ++n) mask.set(2, n, false);  // a sequence with nothing alive
  Tensor<T> y(x.shape()), yc(x.shape()), maps(Shape{B, H, N, N});
  a.forward_capture(x.view(), yc.view(), maps.view(), &mask);
  a.forward(x.view(), y.view(), &mask);

  for (index_t b = 0; b < B; ++b)
    for (index_t n = 0; n < N; ++n) {
      const bool alive = mask.alive(b, n);
      for (index_t c = 0; c < C; ++c)
        if (!alive) REQUIRE((y(b, n, c) == T(0) && yc(b, n, c) == T(0)));
      for (index_t h = 0; h < H; ++h) {
        double row = 0;
        for (index_t j = 0; j < N; ++j) {
          const T p = maps(b, h, n, j);
          if (!alive || !mask.alive(b, j)) REQUIRE(p == T(0));
          REQUIRE(p >= T(0));
          row += static_cast<double>(p);
        }
        if (alive) REQUIRE(row == Approx(1.0).margin(tol));
      }
    }

  // Exact exclusion: changing dead tokens' inputs changes nothing anywhere (same path,
  // bit for bit).
  auto x2 = x;
  for (index_t b = 0; b < B; ++b)
    for (index_t n = 0; n < N; ++n)
      if (!mask.alive(b, n))
        for (index_t c = 0; c < C; ++c) x2(b, n, c) = T(100) * x(b, n, c) + T(7);
  Tensor<T> y2(x.shape());
  a.forward(x2.view(), y2.view(), &mask);
  SPARSIMIX_REQUIRE_CLOSE(y2, y, 0.0, 0.0);

  // Alive tokens of sequence 0 alone (gathered, no mask) give the same outputs.
  index_t alive0 = mask.count(0);
  Tensor<T> xs(Shape{1, alive0, C}), ys(Shape{1, alive0, C});
  for (index_t n = 0, t = 0; n < N; ++n)
    if (mask.alive(0, n)) {
      for (index_t c = 0; c < C; ++c) xs(0, t, c) = x(0, n, c);
      ++t;
    }
  a.forward(xs.view(), ys.view(), nullptr);
  for (index_t n = 0, t = 0; n < N; ++n)
    if (mask.alive(0, n)) {
      for (index_t c = 0; c < C; ++c) REQUIRE(y(0, n, c) == Approx(ys(0, t, c)).margin(tol));
      ++t;
    }

  // Training path: dead rows of dx are 0 whatever dy holds there.
  typename Attention<T>::cache_type cache;
  Tensor<T> dy(x.shape()), dx(x.shape());
  fill_uniform(rng, dy.data(), dy.numel(), -1.0, 1.0);
  a.forward(x.view(), y2.view(), cache, &mask);
  a.backward(cache, dy.view(), dx.view());
  for (index_t b = 0; b < B; ++b)
    for (index_t n = 0; n < N; ++n)
      if (!mask.alive(b, n))
        for (index_t c = 0; c < C; ++c) REQUIRE(dx(b, n, c) == T(0));
  for (T v : dx) REQUIRE(std::isfinite(v));
}

TEST_CASE("Attention with an all-alive mask equals no mask", "[mixer][attention][mask]") {
  Rng rng(9);
  Attention<float> a({40, 5});
  fill_params(a, rng);
  auto x = random_seq<float>(rng, 2, 33, 40);
  TokenMask all(2, 33);
  Tensor<float> y1(x.shape()), y2(x.shape());
  a.forward(x.view(), y1.view(), nullptr);
  a.forward(x.view(), y2.view(), &all);
  SPARSIMIX_REQUIRE_CLOSE(y2, y1, 0.0, 0.0);
}
