// Tape::mixer_pre_proj: a loss on the mixer's pre-projection output (FAR's distillation
// target) and on its output, both through one backward, against finite differences.
#include <catch2/catch.hpp>

#include <sparsimix/autograd/gradcheck.hpp>
#include <sparsimix/autograd/tape.hpp>
#include <sparsimix/mixers/mh_lstm.hpp>

using namespace sparsimix;

static_assert(HasPreProjOutput<MultiHeadLSTM<double>>);

TEST_CASE("Tape::mixer_pre_proj passes gradients of losses on s and y to the mixer", "[autograd][tape][mixer]") {
  MultiHeadLSTM<double> m({8, 2});
  Rng rng(4);
  m.init(rng);
  Tensor<double> x(Shape{2, 5, 8}), target_s(Shape{2, 5, 8});
  fill_normal(rng, x.data(), x.numel(), 0, 1);
  fill_normal(rng, target_s.data(), target_s.numel(), 0, 0.3);
  for (const bool with_ce : {false, true}) {
    auto loss_of = [&](Tape<double>& t, Var& xv) {
      xv = t.input(x.view(), true);
      auto [y, s] = t.mixer_pre_proj(m, xv);
      Var l = t.mse(s, t.input(target_s.view()));
      if (with_ce) l = t.add(l, t.scale(t.sum(t.mul(y, y)), 0.01));
      return l;
    };
    m.zero_grad();
    Tape<double> tape;
    Var xv;
    tape.backward(loss_of(tape, xv));
    // The pre-projection value is the mixer's s.
    Tensor<double> y(x.shape()), s(x.shape());
    m.forward(x.view(), y.view(), s.view(), nullptr);
    auto params = m.parameters();
    std::vector<Tensor<double>> grads;
    std::vector<gradcheck_target> targets;
    grads.reserve(params.size() + 1);
    for (auto& p : params) {
      grads.emplace_back(p.grad.shape());
      grads.back().copy_from(TensorView<const double>(p.grad));
      targets.push_back({p.name, p.value.data(), grads.back().data(), p.value.numel()});
    }
    grads.emplace_back(x.shape());
    grads.back().copy_from(tape.grad(xv));
    targets.push_back({"x", x.data(), grads.back().data(), x.numel()});
    auto f = [&] {
      Tape<double> t;
      Var v;
      return t.item(loss_of(t, v));
    };
    gradcheck_options opt;
    opt.atol = 1e-8;
    opt.rtol = 1e-6;
    const auto r = gradcheck(f, targets, opt);
    INFO("with loss on y: " << with_ce << "; " << r.worst);
    REQUIRE(r.ok);
  }
}
