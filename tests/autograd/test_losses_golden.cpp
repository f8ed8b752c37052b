// Loss values and gradients against PyTorch (tests/golden/gen_losses.py, float64 reference).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <sparsimix/autograd.hpp>

#include "support/golden.hpp"

using namespace sparsimix;

namespace {

template <class T>
struct tols {
  // float: inputs rounded to float, sums kept in double where the tape does so.
  double rtol = std::is_same_v<T, float> ? 2e-5 : 1e-11;
  double atol = std::is_same_v<T, float> ? 2e-6 : 1e-13;
};

template <class T>
Tensor<T> scalar(T v) {
  return Tensor<T>(Shape{1}, v);
}

}  // namespace

TEMPLATE_TEST_CASE("losses match PyTorch: value and gradients", "[autograd][loss][golden]", float, double) {
  using T = TestType;
  const tols<T> tol;
  const auto f = test::golden("losses.safetensors");
  Tape<T> tape;

  SECTION("cross-entropy with and without label smoothing") {
    const auto logits = f.get<T>("ce.logits");
    const auto lab = f.get<index_t>("ce.labels");
    const std::vector<index_t> labels(lab.begin(), lab.end());
    for (const char* name : {"ce", "ce0"}) {
      INFO(name);
      tape.clear();
      Var x = tape.input(logits.view(), true);
      Var loss = tape.cross_entropy(x, labels, std::string(name) == "ce" ? T(0.1) : T(0));
      tape.backward(loss);
      SPARSIMIX_REQUIRE_CLOSE(scalar(tape.item(loss)), f.get<T>(std::string(name) + ".loss"), tol.rtol, tol.atol);
      SPARSIMIX_REQUIRE_CLOSE(tape.grad(x), f.get<T>(std::string(name) + ".dlogits"), tol.rtol, tol.atol);
    }
  }
  SECTION("KL divergence with temperature 2 (batchmean, times T^2)") {
    Var s = tape.input(f.get<T>("kl.s").view(), true);
    Var t = tape.input(f.get<T>("kl.t").view(), true);
    Var loss = tape.kl_div_logits(s, t, T(2));
    tape.backward(loss);
    SPARSIMIX_REQUIRE_CLOSE(scalar(tape.item(loss)), f.get<T>("kl.loss"), tol.rtol, tol.atol);
    SPARSIMIX_REQUIRE_CLOSE(tape.grad(s), f.get<T>("kl.ds"), tol.rtol, tol.atol);
    SPARSIMIX_REQUIRE_CLOSE(tape.grad(t), f.get<T>("kl.dt"), tol.rtol, tol.atol);
  }
  SECTION("cosine over channels and MSE") {
    Var a = tape.input(f.get<T>("a").view(), true);
    Var b = tape.input(f.get<T>("b").view(), true);
    Var loss = tape.cosine_loss(a, b);
    tape.backward(loss);
    SPARSIMIX_REQUIRE_CLOSE(scalar(tape.item(loss)), f.get<T>("cos.loss"), tol.rtol, tol.atol);
    SPARSIMIX_REQUIRE_CLOSE(tape.grad(a), f.get<T>("cos.da"), tol.rtol, tol.atol);
    SPARSIMIX_REQUIRE_CLOSE(tape.grad(b), f.get<T>("cos.db"), tol.rtol, tol.atol);
    tape.clear();
    a = tape.input(f.get<T>("a").view(), true);
    b = tape.input(f.get<T>("b").view(), true);
    loss = tape.mse(a, b);
    tape.backward(loss);
    SPARSIMIX_REQUIRE_CLOSE(scalar(tape.item(loss)), f.get<T>("mse.loss"), tol.rtol, tol.atol);
    SPARSIMIX_REQUIRE_CLOSE(tape.grad(a), f.get<T>("mse.da"), tol.rtol, tol.atol);
    SPARSIMIX_REQUIRE_CLOSE(tape.grad(b), f.get<T>("mse.db"), tol.rtol, tol.atol);
  }
  SECTION("Bernoulli KL with clamped entries") {
    Var p = tape.input(f.get<T>("bkl.p").view(), true);
    Var q = tape.input(f.get<T>("bkl.q").view(), true);
    Var loss = tape.bernoulli_kl(p, q);
    tape.backward(loss);
    SPARSIMIX_REQUIRE_CLOSE(scalar(tape.item(loss)), f.get<T>("bkl.loss"), tol.rtol, tol.atol);
    // Entries next to the clamp have gradients ~1/(1e-6): compare relative to their size.
    SPARSIMIX_REQUIRE_CLOSE(tape.grad(p), f.get<T>("bkl.dp"), tol.rtol, tol.atol);
    SPARSIMIX_REQUIRE_CLOSE(tape.grad(q), f.get<T>("bkl.dq"), tol.rtol, tol.atol);
    // Clamped entries pass no gradient (gen_losses.py puts them at [0,0], [1,1] of p and
    // [2,2], [3,3] of q).
    const index_t c = tape.shape(p)[1];
    REQUIRE(tape.grad(p).data()[0] == T(0));
    REQUIRE(tape.grad(p).data()[c + 1] == T(0));
    REQUIRE(tape.grad(q).data()[2 * c + 2] == T(0));
    REQUIRE(tape.grad(q).data()[3 * c + 3] == T(0));
  }
}
