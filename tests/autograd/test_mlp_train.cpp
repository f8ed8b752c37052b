// End to end: a two-layer MLP on the tape, trained with AdamW + cosine schedule + clipping
// on a synthetic classification problem that a linear model cannot solve.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <sparsimix/autograd.hpp>

using namespace sparsimix;

namespace {

// Labels from a fixed random teacher network: class = argmax(V tanh(U x)). The decision
// boundaries are curved, so the student needs its hidden layer.
struct dataset {
  static constexpr index_t n = 512, d = 8, k = 4;
  Tensor<float> x{Shape{n, d}};
  std::vector<index_t> y;
  explicit dataset(std::uint64_t seed) {
    Rng rng(seed);
    fill_normal(rng, x.data(), x.numel(), 0.0, 1.0);
    std::vector<double> u(16 * d), v(k * 16);
    for (auto& e : u) e = rng.normal(0.0, 1.0);
    for (auto& e : v) e = rng.normal(0.0, 1.0);
    for (index_t i = 0; i < n; ++i) {
      double h[16], best = -1e300;
      for (index_t j = 0; j < 16; ++j) {
        double s = 0;
        for (index_t c = 0; c < d; ++c) s += u[static_cast<std::size_t>(j * d + c)] * static_cast<double>(x(i, c));
        h[j] = std::tanh(s);
      }
      index_t arg = 0;
      for (index_t c = 0; c < k; ++c) {
        double s = 0;
        for (index_t j = 0; j < 16; ++j) s += v[static_cast<std::size_t>(c * 16 + j)] * h[j];
        if (s > best) { best = s; arg = c; }
      }
      y.push_back(arg);
    }
  }
};

struct mlp {
  static constexpr index_t hidden = 32;
  Tensor<float> w1, b1, w2, b2, gw1, gb1, gw2, gb2;
  explicit mlp(std::uint64_t seed)
      : w1(Shape{hidden, dataset::d}), b1(Shape{hidden}), w2(Shape{dataset::k, hidden}), b2(Shape{dataset::k}),
        gw1(w1.shape()), gb1(b1.shape()), gw2(w2.shape()), gb2(b2.shape()) {
    Rng rng(seed);  // PyTorch's Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    const double a1 = 1 / std::sqrt(double(dataset::d)), a2 = 1 / std::sqrt(double(hidden));
    fill_uniform(rng, w1.data(), w1.numel(), -a1, a1);
    fill_uniform(rng, b1.data(), b1.numel(), -a1, a1);
    fill_uniform(rng, w2.data(), w2.numel(), -a2, a2);
    fill_uniform(rng, b2.data(), b2.numel(), -a2, a2);
  }
  ParamList<float> parameters() {
    return {{"fc1.weight", w1.view(), gw1.view(), true}, {"fc1.bias", b1.view(), gb1.view(), false},
            {"fc2.weight", w2.view(), gw2.view(), true}, {"fc2.bias", b2.view(), gb2.view(), false}};
  }
  // Logits [n, k] on the tape.
  Var forward(Tape<float>& t, Var x) {
    Var h = t.linear_gelu(x, t.param(w1.view(), gw1.view()), t.param(b1.view(), gb1.view()));
    return t.linear(h, t.param(w2.view(), gw2.view()), t.param(b2.view(), gb2.view()));
  }
};

double accuracy(const Tape<float>& t, Var logits, const std::vector<index_t>& y) {
  const auto l = t.value(logits);
  const index_t k = l.size(1);
  index_t right = 0;
  for (index_t i = 0; i < l.size(0); ++i) {
    index_t arg = 0;
    for (index_t c = 1; c < k; ++c)
      if (l.data()[i * k + c] > l.data()[i * k + arg]) arg = c;
    right += arg == y[static_cast<std::size_t>(i)];
  }
  return static_cast<double>(right) / static_cast<double>(l.size(0));
}

}  // namespace

TEST_CASE("a two-layer MLP trained on the tape fits a nonlinear synthetic problem", "[autograd][train]") {
  const dataset data(3);
  mlp net(4);
  AdamW<float> opt({.lr = 1e-2, .weight_decay = 1e-4});
  opt.add_group(net.parameters());
  const index_t steps = 400;
  const cosine_schedule schedule(2e-2, steps, steps / 20);
  Tape<float> tape;
  double first = 0, last = 0, acc = 0;
  for (index_t s = 0; s < steps; ++s) {
    tape.clear();
    opt.zero_grad();
    Var logits = net.forward(tape, tape.input(data.x.view()));
    Var loss = tape.cross_entropy(logits, data.y);
    tape.backward(loss);
    clip_grad_norm(opt.trainable(), 5.0);
    opt.set_lr(schedule(s));
    opt.step();
    if (s == 0) first = tape.item(loss);
    last = tape.item(loss);
    acc = accuracy(tape, logits, data.y);
  }
  INFO("initial loss " << first << ", final loss " << last << ", accuracy " << acc);
  // Chance is ln 4 = 1.39 for 4 classes; a broken gradient or optimizer stays near it.
  REQUIRE(first > 1.0);
  REQUIRE(last < 0.15);
  REQUIRE(last < first / 8);
  REQUIRE(acc > 0.95);
}

TEST_CASE("the same MLP trains with SGD + momentum", "[autograd][train]") {
  const dataset data(5);
  mlp net(6);
  SGD<float> opt({.lr = 0.2, .momentum = 0.9});
  opt.add_group(net.parameters());
  Tape<float> tape;
  double first = 0, last = 0;
  for (index_t s = 0; s < 400; ++s) {
    tape.clear();
    opt.zero_grad();
    Var loss = tape.cross_entropy(net.forward(tape, tape.input(data.x.view())), data.y);
    tape.backward(loss);
    opt.step();
    if (s == 0) first = tape.item(loss);
    last = tape.item(loss);
  }
  INFO("initial loss " << first << ", final loss " << last);
  REQUIRE(last < 0.3);
  REQUIRE(last < first / 4);
}

TEST_CASE("the synthetic problem needs the hidden layer: a linear model stays above the MLP threshold",
          "[autograd][train]") {
  const dataset data(3);
  Tensor<float> w(Shape{dataset::k, dataset::d}), b(Shape{dataset::k}), gw(w.shape()), gb(b.shape());
  AdamW<float> opt({.lr = 2e-2, .weight_decay = 0});
  opt.add_group({{"w", w.view(), gw.view(), true}, {"b", b.view(), gb.view(), false}});
  Tape<float> tape;
  double last = 0;
  for (index_t s = 0; s < 400; ++s) {
    tape.clear();
    opt.zero_grad();
    Var logits = tape.linear(tape.input(data.x.view()), tape.param(w.view(), gw.view()), tape.param(b.view(), gb.view()));
    Var loss = tape.cross_entropy(logits, data.y);
    tape.backward(loss);
    opt.step();
    last = tape.item(loss);
  }
  INFO("linear model final loss " << last);
  REQUIRE(last > 0.15);  // the threshold the MLP test asserts is out of a linear model's reach
}
