// Every tape op and loss against central differences in double (gradcheck_tape), plus the
// tape's bookkeeping: shared inputs accumulate, clear() reuses buffers, errors are typed.
#include <catch2/catch.hpp>

#include <vector>

#include <sparsimix/autograd.hpp>

#include "autograd/toy_mixer.hpp"

using namespace sparsimix;

namespace {

Tensor<double> rand_tensor(Shape s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  Tensor<double> t(s);
  Rng rng(seed);
  fill_uniform(rng, t.data(), t.numel(), lo, hi);
  return t;
}

// Tight PyTorch-like tolerances: the ops are smooth and we run in double.
gradcheck_options opts() {
  gradcheck_options o;
  o.eps = 1e-6;
  o.atol = 1e-7;
  o.rtol = 1e-5;
  return o;
}

#define CHECK_GRAD(result)                                                                          \
  do {                                                                                              \
    const auto _r = (result);                                                                       \
    INFO("checked " << _r.checked << ", max abs err " << _r.max_abs_error << ", worst " << _r.worst); \
    REQUIRE(_r.checked > 0);                                                                        \
    REQUIRE(_r.ok);                                                                                 \
  } while (0)

using Leaves = std::span<const Var>;

}  // namespace

TEST_CASE("tape linear and fused linear_gelu: gradients of x, w and b", "[autograd][gradcheck]") {
  auto x = rand_tensor({2, 3, 4}, 1), w = rand_tensor({5, 4}, 2), b = rand_tensor({5}, 3);
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.linear(v[0], v[1], v[2]); },
                            {{"x", &x}, {"w", &w}, {"b", &b}}, {}, opts()));
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.linear_gelu(v[0], v[1], v[2]); },
                            {{"x", &x}, {"w", &w}, {"b", &b}}, {}, opts()));
  auto x2 = rand_tensor({6, 4}, 4);
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.linear(v[0], v[1]); },
                            {{"x", &x2}, {"w", &w}}, {}, opts()));
}

TEST_CASE("tape add (same shape and broadcast), sub, mul, scale", "[autograd][gradcheck]") {
  auto a = rand_tensor({2, 3, 4}, 5), b = rand_tensor({2, 3, 4}, 6);
  auto bias = rand_tensor({4}, 7), pos = rand_tensor({1, 3, 4}, 8);
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.add(v[0], v[1]); }, {{"a", &a}, {"b", &b}}, {},
                            opts()));
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.add(v[0], v[1]); }, {{"a", &a}, {"bias", &bias}},
                            {}, opts()));
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.add(v[0], v[1]); }, {{"a", &a}, {"pos", &pos}},
                            {}, opts()));
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.mul(v[0], v[1]); }, {{"a", &a}, {"b", &b}}, {},
                            opts()));
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.scale(v[0], -2.5); }, {{"a", &a}}, {}, opts()));
}

TEST_CASE("tape layernorm, linear_gelu", "[autograd][gradcheck]") {
  auto x = rand_tensor({2, 3, 6}, 9, -2, 2), g = rand_tensor({6}, 10, 0.5, 1.5), b = rand_tensor({6}, 11);
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.layernorm(v[0], v[1], v[2], 1e-5); },
                            {{"x", &x}, {"gamma", &g}, {"beta", &b}}, {}, opts()));
  auto w = rand_tensor({5, 6}, 12), bias = rand_tensor({5}, 13);
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.linear_gelu(v[0], v[1], v[2]); },
                            {{"x", &x}, {"w", &w}, {"b", &bias}}, {}, opts()));
}

TEST_CASE("tape concat_tokens (with batch broadcast), slice_tokens, reshape, mask_tokens", "[autograd][gradcheck]") {
  auto cls = rand_tensor({1, 1, 4}, 12), patches = rand_tensor({3, 5, 4}, 13), other = rand_tensor({3, 2, 4}, 14);
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.concat_tokens(v[0], v[1]); },
                            {{"cls", &cls}, {"patches", &patches}}, {}, opts()));
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.concat_tokens(v[0], v[1]); },
                            {{"patches", &patches}, {"other", &other}}, {}, opts()));
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.slice_tokens(v[0], 1, 3); },
                            {{"patches", &patches}}, {}, opts()));
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.reshape(v[0], Shape{15, 4}); },
                            {{"patches", &patches}}, {}, opts()));
  TokenMask mask(3, 5);
  mask.set(0, 0, false);
  mask.set(2, 3, false);
  CHECK_GRAD(gradcheck_tape([&](Tape<double>& t, Leaves v) { return t.mask_tokens(v[0], mask); },
                            {{"patches", &patches}}, {}, opts()));
}

TEST_CASE("tape sum", "[autograd][gradcheck]") {
  auto x = rand_tensor({2, 3, 4}, 15);
  // The squared input makes the gradient depend on x, so a wrong factor shows.
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.sum(t.mul(v[0], v[0])); }, {{"x", &x}}, {},
                            opts()));
}

TEST_CASE("tape mixer node: input and the mixer's own parameters", "[autograd][gradcheck]") {
  static_assert(SeqMixer<test::ToyMixer<double>>);
  test::ToyMixer<double> m(4, 77);
  auto x = rand_tensor({2, 5, 4}, 16);
  // The toy mixer's backward is itself checked first, so a failure below is the node's.
  CHECK_GRAD(gradcheck_mixer(m, x, nullptr, opts()));
  CHECK_GRAD(gradcheck_tape([&](Tape<double>& t, Leaves v) { return t.mul(t.mixer(m, t.mul(v[0], v[0])), v[0]); },
                            {{"x", &x}}, m.parameters(), opts()));
  TokenMask mask(2, 5);
  mask.set(0, 1, false);
  mask.set(1, 4, false);
  CHECK_GRAD(gradcheck_tape([&](Tape<double>& t, Leaves v) { return mixer(t, m, v[0], &mask); }, {{"x", &x}},
                            m.parameters(), opts()));
}

TEST_CASE("tape losses: mse (plain and masked), cosine, cross-entropy, soft CE, KL, Bernoulli KL",
          "[autograd][gradcheck][loss]") {
  auto a = rand_tensor({2, 3, 4}, 17), b = rand_tensor({2, 3, 4}, 18);
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.mse(v[0], v[1]); }, {{"a", &a}, {"b", &b}}, {},
                            opts()));
  TokenMask mask(2, 3);
  mask.set(0, 2, false);
  CHECK_GRAD(gradcheck_tape([&](Tape<double>& t, Leaves v) { return t.mse(v[0], v[1], &mask); },
                            {{"a", &a}, {"b", &b}}, {}, opts()));
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.cosine_loss(v[0], v[1]); },
                            {{"a", &a}, {"b", &b}}, {}, opts()));

  auto logits = rand_tensor({4, 5}, 19, -3, 3), teacher = rand_tensor({4, 5}, 20, -3, 3);
  const std::vector<index_t> labels{0, 4, 2, 2};
  CHECK_GRAD(gradcheck_tape([&](Tape<double>& t, Leaves v) { return t.cross_entropy(v[0], labels, 0.1); },
                            {{"logits", &logits}}, {}, opts()));
  CHECK_GRAD(gradcheck_tape([&](Tape<double>& t, Leaves v) { return t.cross_entropy(v[0], labels); },
                            {{"logits", &logits}}, {}, opts()));
  for (double tau : {1.0, 2.0, 4.0}) {
    CHECK_GRAD(gradcheck_tape([&](Tape<double>& t, Leaves v) { return t.kl_div_logits(v[0], v[1], tau); },
                              {{"student", &logits}, {"teacher", &teacher}}, {}, opts()));
  }
  auto p = rand_tensor({3, 7}, 22, 0.05, 0.95), q = rand_tensor({3, 7}, 23, 0.05, 0.95);
  CHECK_GRAD(gradcheck_tape([](Tape<double>& t, Leaves v) { return t.bernoulli_kl(v[0], v[1]); },
                            {{"p", &p}, {"q", &q}}, {}, opts()));
}

TEST_CASE("a ViT-like composite graph: shared vars and residuals accumulate", "[autograd][gradcheck]") {
  const index_t B = 2, N = 4, C = 6, H = 8, K = 3;
  test::ToyMixer<double> m(C, 5);
  auto patches = rand_tensor({B, N, C}, 30), cls = rand_tensor({1, 1, C}, 31), pos = rand_tensor({1, N + 1, C}, 32);
  auto g1 = rand_tensor({C}, 33, 0.5, 1.5), b1 = rand_tensor({C}, 34), w1 = rand_tensor({H, C}, 35),
       bb1 = rand_tensor({H}, 36), w2 = rand_tensor({C, H}, 37), wh = rand_tensor({K, C}, 38);
  const std::vector<index_t> labels{2, 0};
  auto build = [&](Tape<double>& t, Leaves v) {
    Var x = t.add(t.concat_tokens(v[1], v[0]), v[2]);
    x = t.add(x, t.mixer(m, t.layernorm(x, v[3], v[4])));  // x += mixer(LN1(x))
    // The same LN parameters again (shared leaves accumulate from two places).
    Var h = t.linear_gelu(t.layernorm(x, v[3], v[4]), v[5], v[6]);
    x = t.add(x, t.linear(h, v[7]));
    Var cls_out = t.reshape(t.slice_tokens(x, 0, 1), Shape{B, C});
    Var logits = t.linear(cls_out, v[8]);
    return t.add(t.cross_entropy(logits, labels, 0.1), t.scale(t.sum(t.mul(x, x)), 0.001));
  };
  CHECK_GRAD(gradcheck_tape(build,
                            {{"patches", &patches}, {"cls", &cls}, {"pos", &pos}, {"ln.gamma", &g1},
                             {"ln.beta", &b1}, {"fc1.w", &w1}, {"fc1.b", &bb1}, {"fc2.w", &w2}, {"head.w", &wh}},
                            m.parameters(), opts()));
}

TEST_CASE("tape: a var used twice gets both contributions; leaves accumulate across backward calls",
          "[autograd]") {
  Tensor<double> x(Shape{3}), gx(Shape{3});
  x(0) = 1;
  x(1) = -2;
  x(2) = 0.5;
  Tape<double> t;
  Var v = t.param(x.view(), gx.view());
  t.backward(t.sum(t.add(v, v)));  // d/dx sum(2x) = 2
  for (index_t i = 0; i < 3; ++i) REQUIRE(gx(i) == 2.0);
  t.clear();
  v = t.param(x.view(), gx.view());
  t.backward(t.sum(t.mul(v, v)));  // += 2x
  for (index_t i = 0; i < 3; ++i) REQUIRE(gx(i) == Approx(2.0 + 2 * x(i)).epsilon(1e-15));
}

TEST_CASE("tape: input(requires_grad) exposes dL/dx; frozen values get no gradient", "[autograd]") {
  auto x = rand_tensor({2, 4}, 40), w = rand_tensor({3, 4}, 41);
  Tape<double> t;
  Var vx = t.input(x.view(), true);
  Var vw = t.frozen(w.view());
  REQUIRE_FALSE(t.requires_grad(vw));
  Var y = t.sum(t.linear(vx, vw));
  t.backward(y);
  REQUIRE(t.grad(vw).empty());
  // d sum(x W^T) / dx[i, k] = sum_n W[n, k]
  for (index_t i = 0; i < 2; ++i)
    for (index_t k = 0; k < 4; ++k) REQUIRE(t.grad(vx).data()[i * 4 + k] == Approx(w(0, k) + w(1, k) + w(2, k)));
}

TEST_CASE("tape: clear() reuses buffers and gives the same results step after step", "[autograd]") {
  test::ToyMixer<double> m(4, 9);
  auto x = rand_tensor({2, 3, 4}, 42);
  Tensor<double> gx(x.shape());
  Tape<double> t;
  std::vector<double> losses;
  const double* first_value = nullptr;
  for (int step = 0; step < 3; ++step) {
    t.clear();
    gx.zero();
    for (auto& p : m.parameters()) std::fill(p.grad.begin(), p.grad.end(), 0.0);
    Var v = t.param(x.view(), gx.view());
    Var h = t.layernorm(v, t.input(Tensor<double>(Shape{4}, 1.0).view()), t.input(Tensor<double>(Shape{4}).view()));
    Var y = t.mixer(m, h);
    Var loss = t.sum(t.mul(y, y));
    if (step == 0) first_value = t.value(y).data();
    REQUIRE(t.value(y).data() == first_value);  // same pooled buffer
    t.backward(loss);
    losses.push_back(t.item(loss));
  }
  REQUIRE(losses[0] == losses[1]);
  REQUIRE(losses[1] == losses[2]);
}

TEST_CASE("tape: bad shapes and vars throw typed errors", "[autograd][errors]") {
  Tape<float> t;
  Tensor<float> a(Shape{2, 3}), b(Shape{2, 4}), w(Shape{5, 4});
  Var va = t.input(a.view(), true), vb = t.input(b.view(), true), vw = t.input(w.view());
  REQUIRE_THROWS_AS(t.add(va, vb), shape_error);
  REQUIRE_THROWS_AS(t.mse(va, vb), shape_error);
  REQUIRE_THROWS_AS(t.linear(va, vw), shape_error);
  REQUIRE_THROWS_WITH(t.linear(va, vw), Catch::Contains("x is [2, 3]"));
  REQUIRE_THROWS_AS(t.reshape(va, Shape{5}), shape_error);
  const std::vector<index_t> labels{0, 3};
  REQUIRE_THROWS_AS(t.cross_entropy(va, labels), numeric_error);
  REQUIRE_THROWS_AS(t.cross_entropy(va, std::vector<index_t>{0}), shape_error);
  REQUIRE_THROWS_AS(t.kl_div_logits(va, va, 0.0f), config_error);
  REQUIRE_THROWS_AS(t.backward(va), shape_error);  // not a scalar
  REQUIRE_THROWS_AS(t.scale(Var{}, 2.0f), config_error);
  REQUIRE_THROWS_AS(t.backward(t.sum(t.input(a.view()))), config_error);  // nothing needs grad
}

TEST_CASE("tape linear_gelu equals gelu(linear) in float", "[autograd]") {
  Tensor<float> x(Shape{3, 7, 16}), w(Shape{24, 16}), b(Shape{24});
  Rng rng(50);
  fill_uniform(rng, x.data(), x.numel(), -2, 2);
  fill_uniform(rng, w.data(), w.numel(), -0.5, 0.5);
  fill_uniform(rng, b.data(), b.numel(), -1, 1);
  Tape<float> t;
  Var vx = t.input(x.view()), vw = t.input(w.view()), vb = t.input(b.view());
  Var fused = t.linear_gelu(vx, vw, vb), lin = t.linear(vx, vw, vb);
  REQUIRE(t.shape(fused) == Shape{3, 7, 24});
  for (index_t i = 0; i < t.value(fused).numel(); ++i)
    REQUIRE(t.value(fused).data()[i] == Approx(kernels::ref::gelu(t.value(lin).data()[i])).epsilon(1e-5).margin(1e-6));
}

TEST_CASE("tape: masks are copied, so changing one after the forward leaves backward unchanged", "[autograd]") {
  auto a = rand_tensor({2, 3, 4}, 60), b = rand_tensor({2, 3, 4}, 61);
  auto run = [&](bool mutate) {
    TokenMask mask(2, 3);
    mask.set(1, 0, false);
    Tape<double> t;
    Var va = t.input(a.view(), true);
    Var loss = t.mse(t.mask_tokens(va, mask), t.input(b.view()), &mask);
    if (mutate) mask.set(0, 1, false);
    t.backward(loss);
    return std::vector<double>(t.grad(va).begin(), t.grad(va).end());
  };
  const auto g = run(false);
  REQUIRE(g == run(true));
  for (index_t j = 0; j < 4; ++j) REQUIRE(g[static_cast<std::size_t>(3 * 4 + j)] == 0.0);  // dead token (1, 0)
}
