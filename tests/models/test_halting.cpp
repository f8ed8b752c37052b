// HaltingController (A-ViT, docs/formats.md section 1 "halting"), the masking op
// (zero_dead_tokens, token packing), the halting loop and its losses against a torch golden (gen_halting.py), finite
// differences of the losses in double, and the contract: CLS never halts, depth in 1..L,
// the mask fits the block inputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/concepts.hpp>
#include <sparsimix/core/rng.hpp>
#include <sparsimix/core/token_packing.hpp>
#include <sparsimix/models/halting.hpp>

#include "support/golden.hpp"

using namespace sparsimix;

namespace {

// The golden's stand-in block: y = tanh(x_in @ W_l), W_l [C, C] (x @ W, not W^T).
template <class T>
void stand_in_block(ConstSeq<T> x, TensorView<const T> W, Seq<T> y) {
  const index_t rows = x.size(0) * x.size(1), C = x.size(2);
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = 0; j < C; ++j) {
      T s = 0;
      for (index_t k = 0; k < C; ++k) s += x.data()[r * C + k] * W.data()[k * C + j];
      y.data()[r * C + j] = std::tanh(s);
    }
}

// Smallest |c - (1 - eps)| over patch tokens alive when a block updated them (the halting
// decision is discontinuous there).
template <class T>
double run_layers(HaltingController<T>& hm, const std::vector<Tensor<T>>& ys) {
  const index_t B = ys[0].size(0), N = ys[0].size(1);
  hm.reset(B, N, static_cast<index_t>(ys.size()));
  double margin = 1e300;
  for (index_t l = 0; l < static_cast<index_t>(ys.size()); ++l) {
    const TokenMask before = hm.mask();
    hm.update(l, ys[static_cast<std::size_t>(l)].view());
    for (index_t b = 0; b < B; ++b)
      for (index_t n = 1; n < N; ++n)
        if (before.alive(b, n)) margin = std::min(margin, std::abs(hm.cumulative()(b, n) - (1 - hm.cfg().eps)));
  }
  return margin;
}

}  // namespace

TEMPLATE_TEST_CASE("masking and token packing: dead tokens are zeroed, skipped and restored as zeros",
                   "[models][halting][packing]", float, double) {
  using T = TestType;
  Rng rng(7);
  Tensor<T> x(Shape{2, 6, 5});
  fill_uniform(rng, x.data(), x.numel(), -1.0, 1.0);
  TokenMask m(2, 6);
  m.set(0, 2, false), m.set(1, 1, false), m.set(1, 5, false);
  Tensor<T> z = x;
  zero_dead_tokens(m, z.data(), 5);
  for (index_t b = 0; b < 2; ++b)
    for (index_t n = 0; n < 6; ++n)
      for (index_t c = 0; c < 5; ++c) REQUIRE(z(b, n, c) == (m.alive(b, n) ? x(b, n, c) : T(0)));

  token_packing pack;
  REQUIRE(pack.plan(&m, 2, 6) == 9);
  REQUIRE(pack.masked());
  REQUIRE(pack.offset(1) == 5);
  REQUIRE(pack.length(1) == 4);
  REQUIRE(pack.max_length() == 5);
  REQUIRE(pack.source(5) == 6);  // sequence 1's first alive token, n = 0
  REQUIRE(pack.source(6) == 8);  // n = 1 is dead
  Tensor<T> packed(Shape{9, 5}), back(Shape{2, 6, 5});
  pack.gather(x.data(), packed.data(), 5);
  for (index_t c = 0; c < 5; ++c) REQUIRE(packed(2, c) == x(0, 3, c));
  back.fill(T(9));
  pack.scatter(packed.data(), back.data(), 5);
  for (index_t i = 0; i < x.numel(); ++i) REQUIRE(back.data()[i] == z.data()[i]);
  // Without a mask: every token, in order, and no index list.
  REQUIRE(pack.plan(nullptr, 2, 6) == 12);
  REQUIRE_FALSE(pack.masked());
  REQUIRE(pack.sources() == nullptr);
  REQUIRE(pack.source(7) == 7);

  REQUIRE_THROWS_AS((HaltingController<T>({.eps = 1.0})), config_error);
  REQUIRE_THROWS_AS((HaltingController<T>({.gamma = NAN})), config_error);
}

TEMPLATE_TEST_CASE("HaltingController matches the torch halting loop (masks, depth, ponder, prior KL, gradients)",
                   "[models][halting][golden]", float, double) {
  using T = TestType;
  for (const std::string name : {"b3_n17_c8_l6", "b2_n30_c6_l9", "b2_n21_c7_l8_td3"}) {
    INFO("case " << name);
    const auto g = test::golden("halting_" + name + ".safetensors");
    const Tensor<T> x0 = g.get<T>("x");
    const Tensor<T> W = g.get<T>("W");
    const Tensor<double> hp = g.get<double>("hparams", {6});
    const auto td = static_cast<index_t>(hp(5));  // the prior's centre (0: ceil(2L/3))
    const index_t B = x0.size(0), N = x0.size(1), C = x0.size(2), L = W.size(0);
    HaltingController<T> hm({.gamma = hp(0), .beta = hp(1), .eps = hp(2)});

    hm.reset(B, N, L);
    Tensor<T> x = x0, xin(x0.shape()), y(x0.shape());
    const Tensor<std::int64_t> masks = g.get<std::int64_t>("masks", {L, B, N});
    const Tensor<double> ys = g.get<double>("y", {L, B, N, C});
    for (index_t l = 0; l < L; ++l) {
      for (index_t b = 0; b < B; ++b)
        for (index_t n = 0; n < N; ++n) REQUIRE(hm.mask().alive(b, n) == (masks(l, b, n) != 0));
      hm.mask().check_fits("block input", x.shape());  // throws if not
      xin = x;
      zero_dead_tokens(hm.mask(), xin.data(), C);
      stand_in_block<T>(xin.view(), W[l], y.view());
      zero_dead_tokens(hm.mask(), y.data(), C);
      SPARSIMIX_REQUIRE_CLOSE(y.view(), ys[l], 1e-5, 1e-6);
      hm.update(l, y.view());
      x = y;
    }
    for (index_t l = 0; l < L; ++l)
      for (index_t b = 0; b < B; ++b)
        for (index_t n = 0; n < N; ++n) REQUIRE(hm.layer_masks()(l, b, n) == masks(l, b, n));

    const Tensor<std::int64_t> depth = hm.depth();
    const Tensor<std::int64_t> want_depth = g.get<std::int64_t>("depth", {B, N});
    bool mid_stack = false, to_the_end = false;
    for (index_t b = 0; b < B; ++b)
      for (index_t n = 0; n < N; ++n) {
        REQUIRE(depth(b, n) == want_depth(b, n));
        REQUIRE(depth(b, n) >= 1);
        REQUIRE(depth(b, n) <= L);
        if (n == 0) REQUIRE(depth(b, n) == L);
        if (n > 0 && depth(b, n) < L) mid_stack = true;
        if (n > 0 && depth(b, n) == L) to_the_end = true;
      }
    REQUIRE(mid_stack);  // the case really exercises halting
    REQUIRE(to_the_end);

    Tensor<T> ponder(Shape{1}), kl(Shape{1});
    ponder(0) = hm.ponder_loss();
    kl(0) = hm.prior_kl(td);
    SPARSIMIX_REQUIRE_CLOSE(ponder.view(), g.get<double>("ponder"), 1e-5, 0.0);
    SPARSIMIX_REQUIRE_CLOSE(kl.view(), g.get<double>("kl"), 1e-5, 0.0);

    const Tensor<T> grad = hm.loss_grad(hp(3), hp(4), td);
    const Tensor<double> want = g.get<double>("grad", {L, B, N});
    double scale = 0;
    for (double v : want) scale = std::max(scale, std::abs(v));
    SPARSIMIX_REQUIRE_CLOSE(grad.view(), want.view(), 1e-5, 1e-7 * scale);

    // keep_ratio is the fraction of patch tokens each block processed; never increases.
    for (index_t l = 0; l < L; ++l) {
      double k = 0;
      for (index_t b = 0; b < B; ++b)
        for (index_t n = 1; n < N; ++n) k += static_cast<double>(masks(l, b, n));
      REQUIRE(hm.keep_ratio(l) == Approx(k / static_cast<double>(B * (N - 1))));
      if (l > 0) REQUIRE(hm.keep_ratio(l) <= hm.keep_ratio(l - 1));
    }
  }
}

TEST_CASE("HaltingController losses: analytic gradients match finite differences", "[models][halting][gradcheck]") {
  const index_t B = 2, N = 9, L = 5;
  const index_t target_depth = GENERATE(0, 2);  // the default centre ceil(2L/3) = 4, and an early one
  INFO("target depth " << target_depth);
  const double alpha_p = 0.6, alpha_d = 0.4;
  HaltingController<double> hm({.gamma = 4, .beta = 2, .eps = 0.01});
  std::vector<Tensor<double>> ys;
  Rng rng(11);
  double margin = 0;
  for (int attempt = 0; attempt < 200 && margin < 1e-3; ++attempt) {
    ys.clear();
    for (index_t l = 0; l < L; ++l) {
      ys.emplace_back(Shape{B, N, 1});
      fill_uniform(rng, ys.back().data(), ys.back().numel(), -1.0, 1.2);
    }
    margin = run_layers(hm, ys);
  }
  REQUIRE(margin >= 1e-3);  // no token sits on the c >= 1 - eps discontinuity
  const Tensor<std::int64_t> depth = hm.depth();
  bool mid_stack = false;
  for (index_t b = 0; b < B; ++b)
    for (index_t n = 1; n < N; ++n) mid_stack = mid_stack || depth(b, n) < L;
  REQUIRE(mid_stack);

  const Tensor<double> grad = hm.loss_grad(alpha_p, alpha_d, target_depth);
  std::vector<Tensor<double>> g_l;
  std::vector<gradcheck_target> targets;
  g_l.reserve(static_cast<std::size_t>(L));
  for (index_t l = 0; l < L; ++l) {
    g_l.emplace_back(Shape{B, N, 1});
    std::copy(grad[l].begin(), grad[l].end(), g_l.back().data());
    std::string tname = std::to_string(l);  // not "y" + to_string: GCC 12 -Wrestrict false positive
    tname.insert(tname.begin(), 'y');
    targets.push_back({tname, ys[static_cast<std::size_t>(l)].data(), g_l.back().data(), B * N});
  }
  auto loss = [&]() {
    run_layers(hm, ys);
    return alpha_p * hm.ponder_loss() + alpha_d * hm.prior_kl(target_depth);
  };
  gradcheck_options opt;
  opt.atol = 1e-9;
  opt.rtol = 1e-5;
  const auto r = gradcheck(loss, targets, opt);
  INFO(r.worst << " (max violation " << r.max_violation << ")");
  REQUIRE(r.ok);
  REQUIRE(r.checked == L * B * N);
  // CLS gets no halting gradient; patch tokens do.
  for (index_t l = 0; l < L; ++l)
    for (index_t b = 0; b < B; ++b) REQUIRE(grad(l, b, 0) == 0.0);
  REQUIRE(grad(0, 0, 1) != 0.0);
}

TEST_CASE("HaltingController: CLS never halts, patches halt on their score, losses only after every block",
          "[models][halting]") {
  const index_t B = 2, N = 4, L = 3;
  HaltingController<double> hm({});  // gamma 10, beta 30, eps 0.01
  Tensor<double> y(Shape{B, N, 2});
  hm.reset(B, N, L);
  REQUIRE_THROWS_AS(hm.ponder_loss(), config_error);
  REQUIRE_THROWS_AS(hm.update(1, y.view()), config_error);  // out of order
  // Block 0: CLS and token 1 score ~1 (10 * 10 - 30 = 70), the rest ~0.
  for (index_t b = 0; b < B; ++b) {
    y(b, 0, 0) = 10;
    y(b, 1, 0) = 10;
  }
  hm.update(0, y.view());
  for (index_t b = 0; b < B; ++b) {
    REQUIRE(hm.mask().alive(b, 0));
    REQUIRE_FALSE(hm.mask().alive(b, 1));
    REQUIRE(hm.mask().alive(b, 2));
  }
  hm.update(1, y.view());
  hm.update(2, y.view());  // last block: everything left halts (h forced to 1)
  REQUIRE_THROWS_AS(hm.update(3, y.view()), config_error);
  const auto depth = hm.depth();
  for (index_t b = 0; b < B; ++b) {
    REQUIRE(depth(b, 0) == L);
    REQUIRE(depth(b, 1) == 1);
    REQUIRE(depth(b, 2) == L);
    REQUIRE(depth(b, 3) == L);
    for (index_t l = 0; l < L; ++l) REQUIRE(hm.layer_masks()(l, b, 0) == 1);
  }
  // rho: token 1 halts at block 0 with remainder 1 -> 2; tokens 2, 3 run 3 blocks with
  // remainder 1 - 2 sigmoid(-30) -> ~4. Mean over 3 patches.
  const double s = 1 / (1 + std::exp(30.0));
  REQUIRE(hm.ponder_loss() == Approx((2 + 2 * (4 - 2 * s)) / 3).epsilon(1e-12));
  REQUIRE(hm.keep_ratio(0) == 1.0);
  REQUIRE(hm.keep_ratio(1) == Approx(2.0 / 3.0));
  REQUIRE(std::isfinite(hm.prior_kl()));
}

TEST_CASE("HaltingController prior target: A-ViT's Gaussian, depth ceil(2L/3)", "[models][halting]") {
  // L = 12 gives A-ViT's target depth 8 (docs/method.md 3.4 lists the values).
  const auto t = HaltingController<double>::prior_target(12);
  REQUIRE(t.size() == 12);
  double below = 0;
  for (int l = 0; l < 8; ++l) below += t[static_cast<std::size_t>(l)];
  REQUIRE(below == Approx(0.98).epsilon(1e-12));
  REQUIRE(t[8] == Approx(1.30092).epsilon(1e-5));
  REQUIRE(t[7] == Approx(t[9]).epsilon(1e-12));
  const auto t6 = HaltingController<double>::prior_target(6);  // depth 4
  REQUIRE(t6[4] > t6[3]);
  REQUIRE(t6[4] > t6[5]);
  REQUIRE(t6[3] == Approx(t6[5]).epsilon(1e-12));
  // An explicit centre: the default one is the same as asking for it; an earlier centre moves
  // the peak (and so the halting the prior asks for) to that block.
  REQUIRE(HaltingController<double>::prior_target(12, 8) == t);
  const auto t2 = HaltingController<double>::prior_target(6, 2);
  REQUIRE(std::max_element(t2.begin(), t2.end()) - t2.begin() == 2);
  REQUIRE(t2[0] + t2[1] == Approx(0.98).epsilon(1e-12));
  REQUIRE_THROWS_AS(HaltingController<double>::prior_target(6, 7), config_error);
  REQUIRE_THROWS_AS(HaltingController<double>::prior_target(6, -1), config_error);
}

TEST_CASE("bernoulli_kl: zero for equal inputs, gradient matches finite differences", "[models][halting]") {
  Rng rng(3);
  Tensor<double> p(Shape{3, 7}), q(Shape{3, 7}), dq(Shape{3, 7});
  fill_uniform(rng, p.data(), p.numel(), 0.05, 0.95);
  fill_uniform(rng, q.data(), q.numel(), 0.05, 0.95);
  REQUIRE(bernoulli_kl<double>(p.view(), p.view()) == Approx(0.0).margin(1e-15));
  const double kl = bernoulli_kl<double>(p.view(), q.view(), dq.view());
  REQUIRE(kl > 0);
  Tensor<double> g = dq;
  auto loss = [&]() { return bernoulli_kl<double>(p.view(), q.view()); };
  const auto r = gradcheck(loss, {{"q", q.data(), g.data(), q.numel()}});
  INFO(r.worst);
  REQUIRE(r.ok);
  Tensor<double> bad(Shape{3, 6});
  REQUIRE_THROWS_AS(bernoulli_kl<double>(p.view(), bad.view()), shape_error);
}

namespace {
Tensor<double> halting_scores(const Tensor<double>& y0, double gamma, double beta) {
  Tensor<double> h(y0.shape());
  for (index_t i = 0; i < y0.numel(); ++i) h.data()[i] = 1 / (1 + std::exp(-(gamma * y0.data()[i] - beta)));
  return h;
}
}  // namespace

TEST_CASE("halting_distill_loss matches torch (value and gradient w.r.t. the student's channel 0)",
          "[models][halting][golden]") {
  for (const std::string name : {"l5_b3_n9", "l7_b2_n13"}) {
    INFO("case " << name);
    const auto g = test::golden("halting_distill_" + name + ".safetensors");
    const Tensor<double> hT = g.get<double>("teacher_scores");
    const index_t L = hT.size(0), B = hT.size(1), N = hT.size(2);
    const Tensor<std::int64_t> m64 = g.get<std::int64_t>("teacher_masks", {L, B, N});
    Tensor<std::uint8_t> masks(Shape{L, B, N});
    for (index_t i = 0; i < masks.numel(); ++i) masks.data()[i] = static_cast<std::uint8_t>(m64.data()[i]);
    const Tensor<double> y0 = g.get<double>("student_y0", {L, B, N});
    const Tensor<double> hp = g.get<double>("hparams", {3});
    Tensor<double> grad;
    const double loss = halting_distill_loss(hT, masks, halting_scores(y0, hp(0), hp(1)), hp(0), hp(2), &grad);
    REQUIRE(loss == Approx(g.get<double>("loss", {1})(0)).epsilon(1e-12));
    const Tensor<double> want = g.get<double>("grad", {L, B, N});
    SPARSIMIX_REQUIRE_CLOSE(grad.view(), want.view(), 1e-9, 1e-14);
    for (index_t b = 0; b < B; ++b)
      for (index_t l = 0; l < L; ++l) REQUIRE(grad(l, b, 0) == 0.0);  // CLS never halts
  }
}

TEST_CASE("halting_distill_loss: gradient matches finite differences, errors name the tensor",
          "[models][halting][gradcheck]") {
  const index_t L = 4, B = 2, N = 6;
  const double gamma = 3, beta = 1, keep_weight = 5;
  Rng rng(9);
  Tensor<double> hT(Shape{L, B, N}), y0(Shape{L, B, N});
  fill_uniform(rng, hT.data(), hT.numel(), 0.05, 0.95);
  fill_uniform(rng, y0.data(), y0.numel(), -0.5, 1.2);
  Tensor<std::uint8_t> masks(Shape{L, B, N});
  for (index_t l = 0; l < L; ++l)
    for (index_t b = 0; b < B; ++b)
      for (index_t n = 0; n < N; ++n) masks(l, b, n) = n == 0 || (n + b) % L >= l;
  Tensor<double> grad;
  halting_distill_loss(hT, masks, halting_scores(y0, gamma, beta), gamma, keep_weight, &grad);
  auto loss = [&]() { return halting_distill_loss(hT, masks, halting_scores(y0, gamma, beta), gamma, keep_weight); };
  gradcheck_options opt;
  opt.atol = 1e-9;
  opt.rtol = 1e-6;
  const auto r = gradcheck(loss, {{"y0", y0.data(), grad.data(), y0.numel()}}, opt);
  INFO(r.worst << " (max violation " << r.max_violation << ")");
  REQUIRE(r.ok);
  REQUIRE(grad(0, 0, 1) != 0.0);

  const Tensor<double> wrong(Shape{L, B, N + 1});
  REQUIRE_THROWS_WITH(halting_distill_loss(hT, masks, wrong, gamma, keep_weight),
                      Catch::Contains("student_scores") && Catch::Contains("[4, 2, 6]"));
}
