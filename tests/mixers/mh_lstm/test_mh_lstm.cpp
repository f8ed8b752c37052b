// MultiHeadLSTM: concept, config/shape errors, PyTorch goldens (forward, s, backward),
// finite differences, token masks (Note [token mask gather]), dense import/export.
#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <string>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/concepts.hpp>
#include <sparsimix/mixers/mh_lstm.hpp>

#include "support/golden.hpp"

using namespace sparsimix;

static_assert(SeqMixer<MultiHeadLSTM<float>> && SeqMixer<MultiHeadLSTM<double>>,
              "MultiHeadLSTM must model SeqMixer for float and double");

namespace {

template <class T>
Tensor<T> random_tensor(Shape s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Tensor<T> t(s);
  Rng rng(seed);
  fill_uniform(rng, t.data(), t.numel(), lo, hi);
  return t;
}

// True iff dense entry (r, c) of an LSTM weight [4C, C] / head_proj weight [C, 2C] is in a block.
bool in_lstm_block(index_t r, index_t c, index_t C, index_t d) { return (r % C) / d == c / d; }
bool in_head_block(index_t r, index_t c, index_t C, index_t d) { return r / d == (c % C) / d; }

// Every entry outside the blocks of the dense tensors is exactly 0.
template <class T>
void require_zero_outside_blocks(const std::vector<std::pair<std::string, Tensor<T>>>& dense, index_t C,
                                 index_t d) {
  index_t checked = 0;
  for (const auto& [name, t] : dense) {
    const bool lstm_w = name.rfind("lstm.weight", 0) == 0, head_w = name == "head_proj.weight";
    if (!lstm_w && !head_w) continue;
    for (index_t r = 0; r < t.size(0); ++r)
      for (index_t c = 0; c < t.size(1); ++c) {
        const bool in = lstm_w ? in_lstm_block(r, c, C, d) : in_head_block(r, c, C, d);
        if (!in) {
          INFO(name << "[" << r << ", " << c << "]");
          REQUIRE(t(r, c) == T(0));
          ++checked;
        }
      }
  }
  REQUIRE(checked == 4 * 4 * C * (C - d) + 2 * C * (C - d));
}

TokenMask mask_from(const Tensor<double>& m) {
  TokenMask mask(m.size(0), m.size(1));
  for (index_t b = 0; b < m.size(0); ++b)
    for (index_t n = 0; n < m.size(1); ++n) mask.set(b, n, m(b, n) != 0.0);
  return mask;
}

struct golden_case {
  const char* file;
  index_t C, H;
  bool masked;
};
const golden_case golden_cases[] = {
    {"mh_lstm_c40h5_b3n13.safetensors", 40, 5, false},
    {"mh_lstm_c48h3_b1n197.safetensors", 48, 3, false},
    {"mh_lstm_c48h3_b3n13_masked.safetensors", 48, 3, true},
    {"mh_lstm_c40h5_b1n197_masked.safetensors", 40, 5, true},
};

}  // namespace

TEMPLATE_TEST_CASE("MultiHeadLSTM rejects bad configs and shapes", "[mixer][lstm]", float, double) {
  using M = MultiHeadLSTM<TestType>;
  REQUIRE_THROWS_AS(M({0, 1}), config_error);
  REQUIRE_THROWS_AS(M({12, 0}), config_error);
  REQUIRE_THROWS_AS(M({12, 5}), config_error);
  REQUIRE_THROWS_WITH(M({12, 5}), Catch::Contains("not divisible"));

  M m({12, 3});
  REQUIRE(m.dim() == 12);
  REQUIRE(m.head_dim() == 4);
  Tensor<TestType> x(Shape{2, 5, 12}), y(Shape{2, 5, 12}), bad(Shape{2, 5, 8}), bad_y(Shape{2, 4, 12});
  REQUIRE_THROWS_AS(m.forward(bad.view(), bad.view(), nullptr), shape_error);
  REQUIRE_THROWS_WITH(m.forward(bad.view(), bad.view(), nullptr), Catch::Contains("x is [2, 5, 8]"));
  REQUIRE_THROWS_WITH(m.forward(x.view(), bad_y.view(), nullptr), Catch::Contains("y is [2, 4, 12]"));
  TokenMask wrong(2, 4);
  REQUIRE_THROWS_AS(m.forward(x.view(), y.view(), &wrong), shape_error);

  typename M::cache_type cache;
  m.forward(x.view(), y.view(), cache, nullptr);
  Tensor<TestType> dx(Shape{2, 5, 12});
  REQUIRE_THROWS_WITH(m.backward(cache, bad_y.view(), dx.view()), Catch::Contains("dy is [2, 4, 12]"));
  REQUIRE_THROWS_WITH(m.backward(cache, y.view(), bad.view()), Catch::Contains("dx is [2, 5, 8]"));
  typename M::cache_type empty;
  REQUIRE_THROWS_AS(m.backward(empty, y.view(), dx.view()), config_error);
  M other({12, 4});  // same C, other heads: its cache does not fit m
  typename M::cache_type foreign;
  other.forward(x.view(), y.view(), foreign, nullptr);
  REQUIRE_THROWS_AS(m.backward(foreign, y.view(), dx.view()), config_error);

  // Parameters: compact blocks, named and sized.
  const auto ps = m.parameters();
  std::map<std::string, index_t> sizes;
  for (const auto& p : ps) {
    REQUIRE(p.value.shape() == p.grad.shape());
    sizes[p.name] = p.value.numel();
  }
  REQUIRE(ps.size() == 14);
  REQUIRE(sizes.at("lstm.weight_ih_l0.blocks") == 4 * 12 * 4);
  REQUIRE(sizes.at("lstm.weight_hh_l0_reverse.blocks") == 4 * 12 * 4);
  REQUIRE(sizes.at("head_proj.weight.blocks") == 12 * 2 * 4);
  REQUIRE(sizes.at("post_proj.weight") == 144);
}

TEMPLATE_TEST_CASE("MultiHeadLSTM matches PyTorch (forward, s, backward)", "[mixer][lstm][golden]", float,
                   double) {
  using T = TestType;
  // The reference is float64 on float32 inputs: float results carry only our own rounding.
  // 1e-5 relative as docs/method.md 6.16; the absolute floor covers sums that cancel to near 0
  // (scaled by the tensor's magnitude below). Double must agree to rounding.
  const double rtol = std::is_same_v<T, float> ? 1e-5 : 1e-10;
  const double atol_frac = std::is_same_v<T, float> ? 2e-6 : 1e-12;
  for (const auto& gc : golden_cases) {
    SECTION(gc.file) {
      const auto f = test::golden(gc.file);
      MultiHeadLSTM<T> m({gc.C, gc.H});
      m.import_dense([&](const std::string& n) { return f.get<T>(n); });
      const Tensor<T> x = f.get<T>("x"), dy = f.get<T>("dy");
      const index_t B = x.size(0), N = x.size(1);
      TokenMask mask(B, N);
      if (gc.masked) mask = mask_from(f.get<double>("mask"));
      const TokenMask* mp = gc.masked ? &mask : nullptr;
      auto atol = [&](const Tensor<double>& e) {
        double mx = 0;
        for (double v : e) mx = std::max(mx, std::abs(v));
        return atol_frac * mx;
      };
      const Tensor<double> y_ref = f.get<double>("y"), s_ref = f.get<double>("s");

      Tensor<T> y(x.shape()), s(x.shape());
      m.forward(x.view(), y.view(), mp);
      SPARSIMIX_REQUIRE_CLOSE(y, y_ref, rtol, atol(y_ref));
      y.fill(T(7));
      m.forward(x.view(), y.view(), s.view(), mp);
      SPARSIMIX_REQUIRE_CLOSE(y, y_ref, rtol, atol(y_ref));
      SPARSIMIX_REQUIRE_CLOSE(s, s_ref, rtol, atol(s_ref));

      typename MultiHeadLSTM<T>::cache_type cache;
      Tensor<T> yt(x.shape()), dx(x.shape(), T(7));
      m.forward(x.view(), yt.view(), cache, mp);
      SPARSIMIX_REQUIRE_CLOSE(yt, y_ref, rtol, atol(y_ref));
      SPARSIMIX_REQUIRE_CLOSE(cache.head_out, s_ref, rtol, atol(s_ref));
      m.zero_grad();
      m.backward(cache, dy.view(), dx.view());
      const Tensor<double> dx_ref = f.get<double>("dx");
      SPARSIMIX_REQUIRE_CLOSE(dx, dx_ref, rtol, atol(dx_ref));

      const auto grads = m.export_dense_grads();
      REQUIRE(grads.size() == 14);
      for (const auto& [name, g] : grads) {
        INFO("grad." << name);
        const Tensor<double> g_ref = f.get<double>("grad." + name);
        SPARSIMIX_REQUIRE_CLOSE(g, g_ref, rtol, atol(g_ref));
      }
      require_zero_outside_blocks(grads, gc.C, gc.C / gc.H);

      // Dead tokens: exactly 0 in y, s and dx.
      if (gc.masked) {
        index_t dead = 0;
        for (index_t b = 0; b < B; ++b)
          for (index_t n = 0; n < N; ++n)
            if (!mask.alive(b, n)) {
              ++dead;
              for (index_t c = 0; c < gc.C; ++c) {
                REQUIRE(yt(b, n, c) == T(0));
                REQUIRE(cache.head_out(b, n, c) == T(0));
                REQUIRE(dx(b, n, c) == T(0));
              }
            }
        REQUIRE(dead > 0);
      }
    }
  }
}

TEST_CASE("MultiHeadLSTM backward matches finite differences", "[mixer][lstm][gradcheck]") {
  MultiHeadLSTM<double> m({6, 2});
  Rng rng(5);
  m.init(rng);
  Tensor<double> x = random_tensor<double>(Shape{2, 5, 6}, 11);
  SECTION("no mask") {
    const auto r = gradcheck_mixer(m, x);
    INFO(r.worst << " (max abs error " << r.max_abs_error << ")");
    REQUIRE(r.checked > 500);
    REQUIRE(r.ok);
  }
  SECTION("with a mask") {
    TokenMask mask(2, 5);
    mask.set(0, 1, false);
    mask.set(0, 3, false);
    mask.set(1, 0, false);
    mask.set(1, 4, false);
    const auto r = gradcheck_mixer(m, x, &mask);
    INFO(r.worst << " (max abs error " << r.max_abs_error << ")");
    REQUIRE(r.ok);
  }
  SECTION("extra gradient on s (distillation target)") {
    // L = sum(y * w) + sum(s * v): check dx and the parameter grads of the two-output backward.
    Tensor<double> w = random_tensor<double>(x.shape(), 21), v = random_tensor<double>(x.shape(), 22);
    Tensor<double> y(x.shape()), s(x.shape()), dx(x.shape());
    m.zero_grad();
    MultiHeadLSTM<double>::cache_type cache;
    m.forward(x.view(), y.view(), cache, nullptr);
    m.backward(cache, w.view(), dx.view(), v.view());
    std::vector<Tensor<double>> grads;
    std::vector<gradcheck_target> targets;
    auto ps = m.parameters();
    grads.reserve(ps.size());
    for (auto& p : ps) {
      grads.emplace_back(p.grad.shape());
      std::copy(p.grad.begin(), p.grad.end(), grads.back().data());
      targets.push_back({p.name, p.value.data(), grads.back().data(), p.value.numel()});
    }
    targets.push_back({"x", x.data(), dx.data(), x.numel()});
    auto loss = [&]() {
      m.forward(x.view(), y.view(), s.view(), nullptr);
      double l = 0;
      for (index_t i = 0; i < y.numel(); ++i) l += y.data()[i] * w.data()[i] + s.data()[i] * v.data()[i];
      return l;
    };
    const auto r = gradcheck(loss, targets);
    INFO(r.worst);
    REQUIRE(r.ok);
  }
}

TEMPLATE_TEST_CASE("MultiHeadLSTM under a mask equals running the gathered sequences", "[mixer][lstm][mask]",
                   float, double) {
  using T = TestType;
  const index_t B = 3, N = 9, C = 12;
  MultiHeadLSTM<T> m({C, 3});
  Rng rng(9);
  m.init(rng);
  const Tensor<T> x = random_tensor<T>(Shape{B, N, C}, 31), dy = random_tensor<T>(Shape{B, N, C}, 32);
  TokenMask mask(B, N);
  for (index_t n : {2, 3, 7}) mask.set(0, n, false);
  for (index_t n = 0; n < N; ++n) mask.set(1, n, n == 4);  // one alive token
  // sequence 2 fully alive
  typename MultiHeadLSTM<T>::cache_type cache;
  Tensor<T> y(x.shape()), dx(x.shape());
  m.zero_grad();
  m.forward(x.view(), y.view(), cache, &mask);
  m.backward(cache, dy.view(), dx.view());
  const auto g_masked = m.export_dense_grads();

  m.zero_grad();
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-12;
  for (index_t b = 0; b < B; ++b) {
    const index_t L = mask.count(b);
    Tensor<T> xs(Shape{1, L, C}), dys(Shape{1, L, C}), ys(Shape{1, L, C}), dxs(Shape{1, L, C});
    index_t j = 0;
    for (index_t n = 0; n < N; ++n)
      if (mask.alive(b, n)) {
        for (index_t c = 0; c < C; ++c) {
          xs(0, j, c) = x(b, n, c);
          dys(0, j, c) = dy(b, n, c);
        }
        ++j;
      }
    typename MultiHeadLSTM<T>::cache_type cs;
    m.forward(xs.view(), ys.view(), cs, nullptr);
    m.backward(cs, dys.view(), dxs.view());
    j = 0;
    for (index_t n = 0; n < N; ++n) {
      for (index_t c = 0; c < C; ++c) {
        if (mask.alive(b, n)) {
          REQUIRE(y(b, n, c) == Approx(ys(0, j, c)).epsilon(tol).margin(tol));
          REQUIRE(dx(b, n, c) == Approx(dxs(0, j, c)).epsilon(tol).margin(tol));
        } else {
          REQUIRE(y(b, n, c) == T(0));
          REQUIRE(dx(b, n, c) == T(0));
        }
      }
      j += mask.alive(b, n) ? 1 : 0;
    }
  }
  const auto g_seq = m.export_dense_grads();
  for (std::size_t i = 0; i < g_seq.size(); ++i) {
    INFO(g_seq[i].first);
    SPARSIMIX_REQUIRE_CLOSE(g_masked[i].second, g_seq[i].second, tol, tol);
  }

  // Every token dead: y and dx are all 0 and backward adds nothing but the exact zeros.
  {
    TokenMask none(B, N);
    for (index_t b = 0; b < B; ++b)
      for (index_t n = 0; n < N; ++n) none.set(b, n, false);
    typename MultiHeadLSTM<T>::cache_type c0;
    Tensor<T> y0(x.shape(), T(3)), dx0(x.shape(), T(3));
    m.zero_grad();
    m.forward(x.view(), y0.view(), c0, &none);
    m.backward(c0, dy.view(), dx0.view());
    for (index_t i = 0; i < y0.numel(); ++i) {
      REQUIRE(y0.data()[i] == T(0));
      REQUIRE(dx0.data()[i] == T(0));
    }
    for (const auto& p : m.parameters())
      for (T v : p.grad) REQUIRE(v == T(0));
  }

  // A fully dead sequence outputs 0 and leaves the others unchanged.
  TokenMask dead = mask;
  for (index_t n = 0; n < N; ++n) dead.set(1, n, false);
  Tensor<T> y2(x.shape());
  m.forward(x.view(), y2.view(), &dead);
  for (index_t n = 0; n < N; ++n)
    for (index_t c = 0; c < C; ++c) {
      REQUIRE(y2(1, n, c) == T(0));
      REQUIRE(y2(0, n, c) == Approx(y(0, n, c)).epsilon(tol).margin(tol));
      REQUIRE(y2(2, n, c) == Approx(y(2, n, c)).epsilon(tol).margin(tol));
    }
}

TEMPLATE_TEST_CASE("MultiHeadLSTM dense import/export", "[mixer][lstm][io]", float, double) {
  using T = TestType;
  const index_t C = 12, H = 3, d = 4;
  MultiHeadLSTM<T> a({C, H}), b({C, H});
  Rng rng(3);
  a.init(rng);
  const auto dense = a.export_dense();
  REQUIRE(dense.size() == 14);
  std::vector<std::string> names;
  for (const auto& kv : dense) names.push_back(kv.first);
  REQUIRE(names == MultiHeadLSTM<T>::dense_names());
  require_zero_outside_blocks(dense, C, d);
  // Blocks are what init drew: PyTorch's bound 1/sqrt(C) for the LSTM, none exactly 0.
  for (const auto& [name, t] : dense)
    if (name.rfind("lstm.", 0) == 0)
      for (T v : t) REQUIRE(std::abs(static_cast<double>(v)) <= 1.0 / std::sqrt(double(C)));

  std::map<std::string, Tensor<T>> file(dense.begin(), dense.end());
  auto lookup = [&](const std::string& n) { return file.at(n); };
  b.import_dense(lookup);
  const Tensor<T> x = random_tensor<T>(Shape{2, 7, C}, 41);
  Tensor<T> ya(x.shape()), yb(x.shape());
  a.forward(x.view(), ya.view(), nullptr);
  b.forward(x.view(), yb.view(), nullptr);
  for (index_t i = 0; i < ya.numel(); ++i) REQUIRE(ya.data()[i] == yb.data()[i]);
  const auto again = b.export_dense();
  for (std::size_t i = 0; i < dense.size(); ++i)
    for (index_t k = 0; k < dense[i].second.numel(); ++k) REQUIRE(again[i].second.data()[k] == dense[i].second.data()[k]);

  SECTION("a non-zero outside the blocks is refused, naming the tensor, and nothing changes") {
    MultiHeadLSTM<T> c({C, H});
    for (const char* bad_name : {"lstm.weight_ih_l0_reverse", "lstm.weight_hh_l0", "head_proj.weight"}) {
      auto bad = file;
      // Row 1 belongs to head 0, column C-1 to the last head: outside (also for [C, 2C]).
      bad.at(bad_name)(1, C - 1) = T(0.25);
      auto bad_lookup = [&](const std::string& n) { return bad.at(n); };
      REQUIRE_THROWS_AS(c.import_dense(bad_lookup), format_error);
      REQUIRE_THROWS_WITH(c.import_dense(bad_lookup), Catch::Contains(bad_name) && Catch::Contains("[1, 11]"));
    }
    for (const auto& [name, t] : c.export_dense())
      for (T v : t) REQUIRE(v == T(0));  // still the zero-initialised parameters
  }
  SECTION("a wrong shape is refused naming the tensor") {
    auto bad = file;
    bad["head_proj.weight"] = Tensor<T>(Shape{C, C});
    REQUIRE_THROWS_AS(b.import_dense([&](const std::string& n) { return bad.at(n); }), shape_error);
    REQUIRE_THROWS_WITH(b.import_dense([&](const std::string& n) { return bad.at(n); }),
                        Catch::Contains("head_proj.weight is [12, 12], expected [12, 24]"));
  }
}
