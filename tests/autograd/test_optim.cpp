// Optimizers against torch.optim (goldens from tests/golden/gen_adamw.py), the cosine
// schedule's formula at its key steps, and clip_grad_norm.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <string>

#include <sparsimix/autograd.hpp>

#include "support/golden.hpp"

using namespace sparsimix;

namespace {

template <class T>
struct golden_params {
  std::map<std::string, Tensor<T>> value, grad;
  explicit golden_params(const io::safetensors_file& f) {
    for (const char* k : {"w1", "b1", "w2", "f"}) {
      value[k] = f.get<T>(std::string(k) + ".init");
      grad[k] = Tensor<T>(value[k].shape());
    }
  }
  Param<T> param(const std::string& k, bool decay = true) { return {k, value[k].view(), grad[k].view(), decay}; }
};

// Replays the golden's gradients and learning rates through `opt`, comparing every
// parameter after every step. The group layout mirrors gen_adamw.py.
template <class T, class Opt>
void replay(Opt& opt, golden_params<T>& ps, const io::safetensors_file& f, double rtol, double atol) {
  const auto lr = f.get<double>("lr");
  const index_t steps = lr.numel();
  for (index_t s = 0; s < steps; ++s) {
    for (auto& [k, g] : ps.grad) g.copy_from(f.get<T>(k + ".grads")[s]);
    opt.set_lr(lr(s));
    opt.step();
    for (auto& [k, v] : ps.value) {
      INFO("step " << s << ", param " << k);
      const auto expected = f.get<T>(k + ".after");
      SPARSIMIX_REQUIRE_CLOSE(v.view(), expected[s], rtol, atol);
    }
  }
  // The frozen parameter never moved, bit for bit.
  const auto init = f.get<T>("f.init");
  for (index_t i = 0; i < init.numel(); ++i) REQUIRE(ps.value["f"].data()[i] == init.data()[i]);
}

template <class T>
const char* suffix() {
  return std::is_same_v<T, float> ? "f32" : "f64";
}
template <class T>
double tol() {
  return std::is_same_v<T, float> ? 1e-6 : 1e-13;
}

}  // namespace

TEMPLATE_TEST_CASE("AdamW matches torch.optim.AdamW: decay, no-decay, lr-scaled and frozen groups",
                   "[autograd][optim][golden]", float, double) {
  using T = TestType;
  const auto f = test::golden(std::string("adamw_") + suffix<T>() + ".safetensors");
  golden_params<T> ps(f);
  AdamW<T> opt({.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05});
  opt.add_group({ps.param("w1"), ps.param("b1", /*decay=*/false)});
  opt.add_group({ps.param("w2")}, {.lr_scale = 0.5, .weight_decay = 0.1});
  const index_t frozen = opt.add_group({ps.param("f")}, {.frozen = true});
  replay(opt, ps, f, tol<T>(), tol<T>() * 0.1);
  REQUIRE(opt.group_steps(0) == 6);
  REQUIRE(opt.group_steps(frozen) == 0);
  REQUIRE(opt.trainable().size() == 3);
}

TEMPLATE_TEST_CASE("SGD with momentum (and Nesterov) matches torch.optim.SGD without decay",
                   "[autograd][optim][golden]", float, double) {
  using T = TestType;
  for (bool nesterov : {false, true}) {
    INFO("nesterov " << nesterov);
    const auto f = test::golden(std::string(nesterov ? "sgd_nesterov_" : "sgd_") + suffix<T>() + ".safetensors");
    golden_params<T> ps(f);
    SGD<T> opt({.lr = 1e-2, .momentum = 0.9, .nesterov = nesterov});
    opt.add_group({ps.param("w1"), ps.param("b1", false)});
    opt.add_group({ps.param("w2")}, {.lr_scale = 0.5});
    opt.add_group({ps.param("f")}, {.frozen = true});
    replay(opt, ps, f, tol<T>(), tol<T>() * 0.1);
  }
}

TEST_CASE("SGD weight decay is decoupled: p *= 1 - lr * wd, and Param::decay = false opts out",
          "[autograd][optim]") {
  Tensor<double> w(Shape{3}, 2.0), gw(Shape{3}), b(Shape{3}, 2.0), gb(Shape{3});
  SGD<double> opt({.lr = 0.1, .momentum = 0.9, .weight_decay = 0.5});
  opt.add_group({{"w", w.view(), gw.view(), true}, {"b", b.view(), gb.view(), false}});
  opt.step();  // zero gradients: only the decay acts
  for (index_t i = 0; i < 3; ++i) {
    REQUIRE(w(i) == Approx(2.0 * (1 - 0.1 * 0.5)).epsilon(1e-15));
    REQUIRE(b(i) == 2.0);
  }
}

TEST_CASE("optimizers refuse bad configurations", "[autograd][optim][errors]") {
  REQUIRE_THROWS_AS(AdamW<float>({.beta1 = 1.0}), config_error);
  REQUIRE_THROWS_AS(AdamW<float>({.lr = -1}), config_error);
  REQUIRE_THROWS_AS(SGD<float>({.momentum = 0, .nesterov = true}), config_error);
  Tensor<float> v(Shape{2, 2}), g(Shape{4});
  AdamW<float> opt({});
  REQUIRE_THROWS_AS(opt.add_group({{"v", v.view(), g.view(), true}}), shape_error);
  REQUIRE_THROWS_AS(opt.set_frozen(3, true), config_error);
}

TEST_CASE("cosine schedule: linear warm-up, cosine decay, floor", "[autograd][schedule]") {
  const double base = 1e-3, lo = 1e-5;
  const index_t total = 100, warm = 10;
  cosine_schedule s(base, total, warm, lo);
  const double pi = std::acos(-1.0);
  // Warm-up: base * (step + 1) / warm.
  REQUIRE(s(0) == Approx(base / 10).epsilon(1e-14));
  REQUIRE(s(4) == Approx(base * 5 / 10).epsilon(1e-14));
  REQUIRE(s(warm - 1) == Approx(base).epsilon(1e-14));
  // Cosine from base at step warm to lo at step total.
  REQUIRE(s(warm) == Approx(base).epsilon(1e-14));
  REQUIRE(s(warm + 45) == Approx((base + lo) / 2).epsilon(1e-12));  // half way through the decay
  REQUIRE(s(warm + 30) == Approx(lo + (base - lo) * 0.5 * (1 + std::cos(pi * 30.0 / 90.0))).epsilon(1e-12));
  REQUIRE(s(total - 1) > lo);
  REQUIRE(s(total - 1) < lo + (base - lo) * 1e-3);
  REQUIRE(s(total) == lo);
  REQUIRE(s(10 * total) == lo);
  for (index_t i = warm; i + 1 < total; ++i) REQUIRE(s(i + 1) <= s(i));
  for (index_t i = 0; i + 1 < warm; ++i) REQUIRE(s(i + 1) > s(i));
  // No warm-up: starts at base.
  cosine_schedule nw(base, total);
  REQUIRE(nw(0) == base);
  REQUIRE(nw(50) == Approx(base / 2).epsilon(1e-12));
  REQUIRE_THROWS_AS(cosine_schedule(base, 10, 11), config_error);
  REQUIRE_THROWS_AS(cosine_schedule(base, 0), config_error);
  REQUIRE_THROWS_AS(cosine_schedule(base, 10, 0, 2 * base), config_error);
}

TEST_CASE("clip_grad_norm: global L2 norm over all params, scales only above max_norm",
          "[autograd][clip]") {
  Tensor<float> a(Shape{2}), ga(Shape{2}), b(Shape{1}), gb(Shape{1});
  ParamList<float> ps{{"a", a.view(), ga.view(), true}, {"b", b.view(), gb.view(), true}};
  ga(0) = 1;
  ga(1) = 2;
  gb(0) = 2;  // norm 3 across both tensors
  double n = clip_grad_norm(ps, 10.0);
  REQUIRE(n == Approx(3.0).epsilon(1e-12));
  REQUIRE(ga(0) == 1.0f);  // untouched below the threshold
  n = clip_grad_norm(ps, 1.5);
  REQUIRE(n == Approx(3.0).epsilon(1e-12));
  const double coef = 1.5 / (3.0 + 1e-6);  // torch's clip_coef
  REQUIRE(ga(0) == Approx(1 * coef).epsilon(1e-6));
  REQUIRE(ga(1) == Approx(2 * coef).epsilon(1e-6));
  REQUIRE(gb(0) == Approx(2 * coef).epsilon(1e-6));
  REQUIRE(clip_grad_norm(ps, 100.0) == Approx(1.5).epsilon(1e-5));  // the new norm
  gb(0) = std::numeric_limits<float>::infinity();
  REQUIRE_THROWS_AS(clip_grad_norm(ps, 1.0, /*error_if_nonfinite=*/true), numeric_error);
  REQUIRE_THROWS_AS(clip_grad_norm(ps, 0.0), config_error);
}
