// FAR's unit pruning inside MultiHeadLSTM (docs/method.md 1.9): the group norms and the
// Hoyer-Square regulariser against a reference computed from the dense PyTorch layout, its
// gradient against finite differences, and that pruning disconnects a unit exactly.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/mixers/mh_lstm.hpp>

using namespace sparsimix;

namespace {

template <class T>
MultiHeadLSTM<T> random_pruning_lstm(index_t C, index_t H, std::uint64_t seed) {
  MultiHeadLSTM<T> m({C, H});
  Rng rng(seed);
  m.init(rng);
  return m;
}

// The groups read off the dense masked layout (lstm.weight_ih_l0 [4C, C], weight_hh [4C, C]):
// unit j of head h is dense hidden index h d + j; its rows are g C + h d + j, its recurrent
// column is h d + j restricted to the head's rows (entries outside the head are 0 anyway).
std::vector<double> dense_group_norms(const std::vector<std::pair<std::string, Tensor<double>>>& dense, index_t C,
                                      index_t H) {
  auto get = [&](const std::string& n) -> const Tensor<double>& {
    for (const auto& [name, t] : dense)
      if (name == n) return t;
    FAIL("no tensor " << n);
    return dense.front().second;
  };
  const index_t d = C / H;
  std::vector<double> out;
  for (const char* sfx : {"", "_reverse"}) {
    const auto& wi = get(std::string("lstm.weight_ih_l0") + sfx);
    const auto& wh = get(std::string("lstm.weight_hh_l0") + sfx);
    for (index_t h = 0; h < H; ++h)
      for (index_t j = 0; j < d; ++j) {
        const index_t u = h * d + j;
        double sq = 0;
        for (index_t g = 0; g < 4; ++g) {
          for (index_t c = 0; c < C; ++c) sq += wi(g * C + u, c) * wi(g * C + u, c) + wh(g * C + u, c) * wh(g * C + u, c);
          for (index_t r = 0; r < d; ++r) sq += wh(g * C + h * d + r, u) * wh(g * C + h * d + r, u);
        }
        out.push_back(std::sqrt(sq));
      }
  }
  return out;
}

double hoyer_square_of(const std::vector<double>& norms, index_t d) {
  double r = 0;
  for (std::size_t g = 0; g < norms.size(); g += static_cast<std::size_t>(d)) {
    double s = 0, q = 0;
    for (index_t j = 0; j < d; ++j) {
      s += norms[g + static_cast<std::size_t>(j)];
      q += norms[g + static_cast<std::size_t>(j)] * norms[g + static_cast<std::size_t>(j)];
    }
    r += s * s / (q + 1e-6);
  }
  return r;
}

}  // namespace

TEST_CASE("MultiHeadLSTM group norms and Hoyer-Square match the dense layout", "[mixer][lstm][prune]") {
  auto m = random_pruning_lstm<double>(12, 3, 7);
  const auto norms = m.unit_group_norms();
  const auto ref = dense_group_norms(m.export_dense(), 12, 3);
  REQUIRE(norms.size() == ref.size());
  for (std::size_t u = 0; u < ref.size(); ++u) REQUIRE(norms[u] == Approx(ref[u]).epsilon(1e-12));
  REQUIRE(m.add_hoyer_square_grad(0.0) == Approx(hoyer_square_of(ref, 4)).epsilon(1e-12));
}

TEST_CASE("MultiHeadLSTM Hoyer-Square gradient matches finite differences", "[mixer][lstm][prune][gradcheck]") {
  auto m = random_pruning_lstm<double>(8, 2, 11);
  // One pruned unit: its group norm is 0 there, where R is not differentiable; the gradient
  // must stay finite (0 on its entries) and be right everywhere else.
  std::vector<std::uint8_t> keep(16, 1);
  keep[5] = 0;
  m.prune_units(keep);
  const double weight = 0.37;
  m.zero_grad();
  m.add_hoyer_square_grad(weight);
  const double h = 1e-6;
  index_t checked = 0;
  for (auto& p : m.parameters()) {
    if (p.name.find("weight_") == std::string::npos) continue;  // the LSTM weights only
    for (index_t i = 0; i < p.value.numel(); ++i) {
      double& w = p.value.data()[i];
      if (w == 0.0) {
        REQUIRE(p.grad.data()[i] == 0.0);
        continue;
      }
      const double w0 = w;
      w = w0 + h;
      const double rp = m.add_hoyer_square_grad(0.0);
      w = w0 - h;
      const double rm = m.add_hoyer_square_grad(0.0);
      w = w0;
      INFO(p.name << "[" << i << "]");
      REQUIRE(p.grad.data()[i] == Approx(weight * (rp - rm) / (2 * h)).margin(1e-7).epsilon(1e-5));
      ++checked;
    }
  }
  REQUIRE(checked > 400);
  // Biases and the projections are outside every group.
  for (auto& p : m.parameters())
    if (p.name.find("weight_") == std::string::npos)
      for (const double g : p.grad) REQUIRE(g == 0.0);
}

TEMPLATE_TEST_CASE("MultiHeadLSTM pruning disconnects a unit exactly", "[mixer][lstm][prune]", float, double) {
  using T = TestType;
  const index_t B = 3, N = 7, C = 12, H = 3, d = 4;
  auto m = random_pruning_lstm<T>(C, H, 3);
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(2 * C), 1);
  for (const index_t u : {0, 5, 6, 13, 23}) keep[static_cast<std::size_t>(u)] = 0;  // (dir * H + h) * d + j
  m.prune_units(keep);
  REQUIRE(m.pruned());
  REQUIRE(m.widths() == std::vector<index_t>{3, 2, 4, 3, 4, 3});
  // Kept units first in every (dir, head): the pruned ones are units k..d-1 of their slot.
  std::vector<index_t> pruned_units;
  for (index_t slot = 0; slot < 2 * H; ++slot)
    for (index_t j = 0; j < d; ++j) {
      REQUIRE(m.unit_keep()[static_cast<std::size_t>(slot * d + j)] == (j < m.widths()[static_cast<std::size_t>(slot)]));
      if (j >= m.widths()[static_cast<std::size_t>(slot)]) pruned_units.push_back(slot * d + j);
    }
  REQUIRE(pruned_units.size() == 5u);
  const auto norms = m.unit_group_norms();
  for (const index_t u : pruned_units) REQUIRE(norms[static_cast<std::size_t>(u)] == 0.0);

  Tensor<T> x(Shape{B, N, C});
  Rng rng(9);
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  Tensor<T> y(x.shape());
  typename MultiHeadLSTM<T>::cache_type cache;
  m.forward(x.view(), y.view(), cache, nullptr);
  // A pruned unit's hidden state is exactly 0 at every token.
  for (const index_t u : pruned_units) {
    const index_t dir = u / C, h = (u % C) / d, j = u % d;
    for (index_t r = 0; r < B * N; ++r) REQUIRE(cache.st.hid(r, dir * C + h * d + j) == T(0));
  }
  // Disconnected, also when computed at full width: whatever a pruned unit's own gate rows
  // hold, the output does not change (its recurrent column and head_proj column are 0; its
  // biases are 0 too, or it would drive an input-independent sequence).
  auto other = m;
  other.clear_pruning();
  for (auto& p : other.parameters()) {
    if (p.name.find("weight_ih") == std::string::npos) continue;
    const index_t dir = p.name.find("_reverse") != std::string::npos;
    for (const index_t u : pruned_units) {
      if (u / C != dir) continue;
      const index_t h = (u % C) / d, j = u % d;
      for (index_t g = 0; g < 4; ++g)
        for (index_t c = 0; c < d; ++c) p.value.data()[(h * 4 * d + g * d + j) * d + c] = T(0.5);
    }
  }
  Tensor<T> y2(x.shape());
  other.forward(x.view(), y2.view(), nullptr);
  for (index_t i = 0; i < y.numel(); ++i) REQUIRE(y2.data()[i] == Approx(y.data()[i]).margin(1e-6));

  // The dense PyTorch layout keeps the unit order: the pruned units are zeros where they were.
  const auto dense = m.export_dense();
  {
    std::vector<std::pair<std::string, Tensor<double>>> dd;
    for (const auto& [name, t] : dense) {
      Tensor<double> c(t.shape());
      for (index_t i = 0; i < t.numel(); ++i) c.data()[i] = static_cast<double>(t.data()[i]);
      dd.emplace_back(name, std::move(c));
    }
    const auto ext = dense_group_norms(dd, C, H);
    for (index_t u = 0; u < 2 * C; ++u) {
      const bool was_pruned = u == 0 || u == 5 || u == 6 || u == 13 || u == 23;
      INFO("unit " << u);
      REQUIRE((ext[static_cast<std::size_t>(u)] == 0.0) == was_pruned);
    }
  }
  // ... and carries the pruning: a re-import finds the same units.
  MultiHeadLSTM<T> back({C, H});
  back.import_dense([&](const std::string& n) {
    for (const auto& [name, t] : dense)
      if (name == n) return t;
    throw std::runtime_error(n);
  });
  REQUIRE(back.unit_keep() == m.unit_keep());
  REQUIRE(back.widths() == m.widths());

  REQUIRE_THROWS_WITH(m.prune_units(std::vector<std::uint8_t>(5, 1)),
                      Catch::Contains("keep has 5 entries, expected 24"));
}

TEST_CASE("A pruned MultiHeadLSTM computes at its widths what the masked full width computes",
          "[mixer][lstm][prune]") {
  const index_t B = 3, N = 9, C = 12, H = 3, d = 4;
  auto m = random_pruning_lstm<double>(C, H, 21);
  std::vector<std::uint8_t> keep(static_cast<std::size_t>(2 * C), 1);
  // Head 1's forward direction loses every unit (width 0); others lose one or two.
  for (const index_t u : {4, 5, 6, 7, 1, 14, 15, 23}) keep[static_cast<std::size_t>(u)] = 0;
  m.prune_units(keep);
  REQUIRE(m.widths() == std::vector<index_t>{3, 0, 4, 2, 4, 3});
  auto full = m;  // same weights (zeros included), computed at full width
  full.clear_pruning();

  Tensor<double> x(Shape{B, N, C}), dy(Shape{B, N, C}), ds(Shape{B, N, C});
  Rng rng(5);
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  fill_uniform(rng, dy.data(), dy.numel(), -1.0, 1.0);
  fill_uniform(rng, ds.data(), ds.numel(), -1.0, 1.0);
  TokenMask mask(B, N);
  for (index_t b = 0; b < B; ++b)
    for (index_t n = 0; n < N; ++n) mask.set(b, n, (n + b) % 3 != 1);
  const TokenMask* const none = nullptr;
  for (const TokenMask* mk : {none, static_cast<const TokenMask*>(&mask)}) {
    INFO((mk ? "masked tokens" : "all tokens"));
    Tensor<double> y(x.shape()), yf(x.shape()), dx(x.shape()), dxf(x.shape());
    typename MultiHeadLSTM<double>::cache_type c, cf;
    m.zero_grad();
    full.zero_grad();
    m.forward(x.view(), y.view(), c, mk);
    full.forward(x.view(), yf.view(), cf, mk);
    for (index_t i = 0; i < y.numel(); ++i) REQUIRE(y.data()[i] == Approx(yf.data()[i]).margin(1e-12));
    Tensor<double> yi(x.shape());
    m.forward(x.view(), yi.view(), mk);  // the inference path
    for (index_t i = 0; i < y.numel(); ++i) REQUIRE(yi.data()[i] == Approx(yf.data()[i]).margin(1e-12));
    m.backward(c, dy.view(), dx.view(), ds.view());
    full.backward(cf, dy.view(), dxf.view(), ds.view());
    for (index_t i = 0; i < dx.numel(); ++i) REQUIRE(dx.data()[i] == Approx(dxf.data()[i]).margin(1e-12));
    // Kept entries get the masked computation's gradient; pruned ones (value 0) get none.
    auto pm = m.parameters();
    auto pf = full.parameters();
    index_t zero_grads = 0;
    for (std::size_t p = 0; p < pm.size(); ++p)
      for (index_t i = 0; i < pm[p].value.numel(); ++i) {
        INFO(pm[p].name << "[" << i << "]");
        if (pm[p].value.data()[i] == 0.0) {
          REQUIRE(pm[p].grad.data()[i] == 0.0);
          ++zero_grads;
        } else {
          REQUIRE(pm[p].grad.data()[i] == Approx(pf[p].grad.data()[i]).margin(1e-12));
        }
      }
    REQUIRE(zero_grads > 8 * (4 * d + 8 + d));
  }
}

TEST_CASE("A pruned MultiHeadLSTM's backward matches finite differences", "[mixer][lstm][prune][gradcheck]") {
  auto m = random_pruning_lstm<double>(6, 2, 17);
  std::vector<std::uint8_t> keep(12, 1);
  for (const index_t u : {0, 3, 4, 5, 10}) keep[static_cast<std::size_t>(u)] = 0;  // widths 2, 0, 3, 2
  m.prune_units(keep);
  REQUIRE(m.widths() == std::vector<index_t>{2, 0, 3, 2});
  Rng rng(3);
  Tensor<double> x(Shape{2, 5, 6});
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  const auto r = gradcheck_mixer(m, x);
  INFO(r.worst << " (max abs error " << r.max_abs_error << ")");
  REQUIRE(r.checked > 300);
  REQUIRE(r.ok);
  TokenMask mask(2, 5);
  mask.set(0, 2, false);
  mask.set(1, 0, false);
  const auto rm = gradcheck_mixer(m, x, &mask);
  INFO(rm.worst);
  REQUIRE(rm.ok);
}
