// gradcheck: analytic gradients against central differences, in double, with PyTorch's
// torch.autograd.gradcheck criterion |analytic - numeric| <= atol + rtol * |numeric|.
// gradcheck (any loss closure), gradcheck_mixer (a SeqMixer), gradcheck_tape (tape ops).
#pragma once
#include <cmath>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "../concepts.hpp"
#include "../core/rng.hpp"
#include "tape.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Tolerances and step of a gradcheck (PyTorch's torch.autograd.gradcheck defaults).
struct gradcheck_options {
  double eps = 1e-6;   // central-difference step
  double atol = 1e-5;  // absolute tolerance (PyTorch's default)
  double rtol = 1e-3;  // relative tolerance (PyTorch's default)
  index_t max_per_tensor = -1;  // check at most this many entries per tensor (spread evenly); -1: all
};

// One tensor whose gradient is checked: `value` is perturbed in place, `grad` is the
// analytic gradient of the loss with respect to it.
struct gradcheck_target {
  std::string name;    // reported in gradcheck_result::worst
  double* value;       // `size` doubles, perturbed in place
  const double* grad;  // `size` analytic gradient entries, same layout as value
  index_t size;        // number of entries
};

// A gradcheck's verdict and its worst entry, for test messages.
struct gradcheck_result {
  bool ok = true;            // every checked entry is within tolerance
  index_t checked = 0;       // entries compared (max_per_tensor limits this)
  double max_abs_error = 0;  // max |analytic - numeric|
  double max_violation = 0;  // max |a - n| / (atol + rtol |n|); <= 1 means ok
  std::string worst;         // "name[i]: analytic A, numeric N"
};

// `loss()` recomputes the scalar loss from the current values of every target.
inline gradcheck_result gradcheck(const std::function<double()>& loss, const std::vector<gradcheck_target>& targets,
                                  const gradcheck_options& opt = {}) {
  gradcheck_result r;
  for (const auto& t : targets) {
    const index_t stride = (opt.max_per_tensor > 0 && t.size > opt.max_per_tensor)
                               ? (t.size + opt.max_per_tensor - 1) / opt.max_per_tensor
                               : 1;
    for (index_t i = 0; i < t.size; i += stride) {
      const double orig = t.value[i];
      t.value[i] = orig + opt.eps;
      const double lp = loss();
      t.value[i] = orig - opt.eps;
      const double lm = loss();
      t.value[i] = orig;
      const double numeric = (lp - lm) / (2 * opt.eps);
      const double analytic = t.grad[i];
      const double err = std::abs(analytic - numeric);
      const double viol = err / (opt.atol + opt.rtol * std::abs(numeric));
      ++r.checked;
      r.max_abs_error = std::max(r.max_abs_error, err);
      if (!(viol <= r.max_violation)) {  // also catches NaN
        r.max_violation = std::isnan(viol) ? INFINITY : viol;
        r.worst = t.name + "[" + std::to_string(i) + "]: analytic " + std::to_string(analytic) + ", numeric " +
                  std::to_string(numeric);
      }
    }
  }
  r.ok = r.max_violation <= 1.0;
  return r;
}

// Checks a SeqMixer<double>'s backward (every parameter and the input) with the loss
// L = sum(y * w) for a fixed random w. The mixer's gradients are zeroed first.
template <SeqMixer M>
  requires std::is_same_v<typename M::scalar_type, double>
gradcheck_result gradcheck_mixer(M& mixer, Tensor<double>& x, const TokenMask* mask = nullptr,
                                 const gradcheck_options& opt = {}, std::uint64_t seed = 1234) {
  Rng rng(seed);
  Tensor<double> w(x.shape()), y(x.shape()), dx(x.shape());
  fill_uniform(rng, w.data(), w.numel(), -1.0, 1.0);
  auto params = mixer.parameters();
  for (auto& p : params) std::fill(p.grad.begin(), p.grad.end(), 0.0);
  typename M::cache_type cache;
  mixer.forward(x.view(), y.view(), cache, mask);
  mixer.backward(cache, w.view(), dx.view());
  // Snapshot analytic gradients: backward accumulates, and the loss closure must not touch them.
  std::vector<Tensor<double>> grads;
  std::vector<gradcheck_target> targets;
  grads.reserve(params.size() + 1);
  for (auto& p : params) {
    grads.emplace_back(p.grad.shape());
    std::copy(p.grad.begin(), p.grad.end(), grads.back().data());
    targets.push_back({p.name, p.value.data(), grads.back().data(), p.value.numel()});
  }
  targets.push_back({"x", x.data(), dx.data(), x.numel()});
  auto loss = [&]() {
    mixer.forward(x.view(), y.view(), mask);
    double s = 0;
    for (index_t i = 0; i < y.numel(); ++i) s += y.data()[i] * w.data()[i];
    return s;
  };
  return gradcheck(loss, targets, opt);
}

// One leaf of a tape gradcheck: the tensor is perturbed in place.
struct gradcheck_input {
  std::string name;       // reported in gradcheck_result::worst
  Tensor<double>* value;  // the leaf's value, perturbed in place
};

// Checks everything `build` records on a Tape<double>: build(tape, leaves) gets one var per
// entry of `inputs` (bound as params, in order) and returns the output var. A non-scalar
// output y is reduced with L = sum(y * w) for a fixed random w. `params` are extra tensors
// whose gradients backward accumulates outside the tape (a mixer's parameters, say); their
// grads are zeroed first. The tape is rebuilt for every finite-difference evaluation.
inline gradcheck_result gradcheck_tape(const std::function<Var(Tape<double>&, std::span<const Var>)>& build,
                                       const std::vector<gradcheck_input>& inputs,
                                       const ParamList<double>& params = {}, const gradcheck_options& opt = {},
                                       std::uint64_t seed = 1234) {
  Tape<double> tape;
  std::vector<Tensor<double>> grads;
  grads.reserve(inputs.size() + params.size());
  std::vector<Var> leaves;
  Tensor<double> w;
  bool reduce = false;
  // Records the forward; grads of the leaves land in `grads` (or a throwaway buffer).
  auto record = [&](bool first) {
    tape.clear();
    leaves.clear();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      Tensor<double>& g = grads[i];
      leaves.push_back(tape.param(inputs[i].value->view(), g.view()));
    }
    Var out = build(tape, std::span<const Var>(leaves));
    if (first) {
      reduce = tape.shape(out).numel() != 1;
      if (reduce) {
        Rng rng(seed);
        w = Tensor<double>(tape.shape(out));
        fill_uniform(rng, w.data(), w.numel(), -1.0, 1.0);
      }
    }
    if (reduce) out = tape.sum(tape.mul(out, tape.input(w.view())));
    return out;
  };
  for (const auto& in : inputs) grads.emplace_back(in.value->shape());
  for (const auto& p : params) std::fill(p.grad.begin(), p.grad.end(), 0.0);
  tape.backward(record(true));
  std::vector<gradcheck_target> targets;
  for (std::size_t i = 0; i < inputs.size(); ++i)
    targets.push_back({inputs[i].name, inputs[i].value->data(), grads[i].data(), inputs[i].value->numel()});
  // Snapshot the external grads: the loss closure below must not disturb what is compared.
  std::vector<Tensor<double>> pgrads;
  pgrads.reserve(params.size());
  for (const auto& p : params) {
    pgrads.emplace_back(p.grad.shape());
    std::copy(p.grad.begin(), p.grad.end(), pgrads.back().data());
    targets.push_back({p.name, p.value.data(), pgrads.back().data(), p.value.numel()});
  }
  auto loss = [&]() { return tape.item(record(false)); };
  return gradcheck(loss, targets, opt);
}

SPARSIMIX_ABI_END
}  // namespace sparsimix
