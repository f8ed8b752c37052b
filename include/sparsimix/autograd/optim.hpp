// Optimizers over ParamList<T> with parameter groups, and global-norm gradient clipping.
//   AdamW: exactly torch.optim.AdamW (1.13, single-tensor path, amsgrad off): bias
//          correction, eps added outside the sqrt, decoupled decay p *= 1 - lr * wd.
//   SGD:   momentum (optionally Nesterov) with the same decoupled decay p *= 1 - lr * wd
//          (SGDW, Loshchilov & Hutter 2019, arXiv:1711.05101); NOTE torch.optim.SGD instead
//          adds wd * p to the gradient (coupled L2). Without decay they coincide.
// A group has an lr multiplier, its own weight decay, and can be frozen (step() leaves it
// and its state untouched). A Param with decay == false never decays (biases, norms).
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/param.hpp"
#include "../core/tensor.hpp"

namespace sparsimix {
SPARSIMIX_ABI_BEGIN

// Per-group settings for add_group: lr multiplier, weight decay override, frozen.
struct param_group_options {
  double lr_scale = 1.0;      // this group's lr = optimizer lr * lr_scale
  double weight_decay = -1;   // < 0: the optimizer's default; Param::decay == false still wins
  bool frozen = false;        // step() skips the group (no update, no state change)
};

namespace detail {

template <class T>
struct param_group {
  ParamList<T> params;
  param_group_options opt;
  std::vector<Tensor<T>> state1, state2;  // per param: AdamW m, v; SGD momentum buffer
  index_t steps = 0;                      // updates this group has received (bias correction)
};

template <class T>
class param_groups {
 public:
  index_t add_group(ParamList<T> params, const param_group_options& opt, const char* who);
  index_t num_groups() const noexcept { return static_cast<index_t>(groups_.size()); }
  const param_group_options& group_options(index_t i) const { return group(i).opt; }
  void set_frozen(index_t i, bool frozen) { group(i).opt.frozen = frozen; }
  void set_lr_scale(index_t i, double s) { group(i).opt.lr_scale = s; }
  index_t group_steps(index_t i) const { return group(i).steps; }

  // Every parameter of the groups that are not frozen (what clip_grad_norm should see).
  // Builds a new list: call it once, outside the training loop.
  ParamList<T> trainable() const;
  // Zeroes the gradient of every parameter in every group (frozen ones too).
  void zero_grad() noexcept;

  // The state an exact resume needs (distill/fit_state.hpp): per group its update count and
  // parameters, per parameter its state tensors (which 1: AdamW m / SGD momentum; 2: AdamW
  // v), empty until the first update.
  const ParamList<T>& group_params(index_t i) const { return group(i).params; }
  Tensor<T>& state_tensor(index_t i, std::size_t k, int which) {
    auto& g = group(i);
    if (k >= g.params.size() || (which != 1 && which != 2))
      throw config_error(concat("optimizer: state ", which, " of parameter ", k, " of group ", i, " does not exist"));
    return which == 1 ? g.state1[k] : g.state2[k];
  }
  void set_group_steps(index_t i, index_t steps) { group(i).steps = steps; }

 protected:
  param_group<T>& group(index_t i);
  const param_group<T>& group(index_t i) const { return const_cast<param_groups*>(this)->group(i); }
  double decay_of(const param_group<T>& g, const Param<T>& p, double default_wd) const noexcept {
    if (!p.decay) return 0.0;
    return g.opt.weight_decay < 0 ? default_wd : g.opt.weight_decay;
  }
  std::vector<param_group<T>> groups_;
};

template <class T>
index_t param_groups<T>::add_group(ParamList<T> params, const param_group_options& opt, const char* who) {
  if (!(opt.lr_scale >= 0) || !std::isfinite(opt.lr_scale))
    throw config_error(concat(who, ".add_group: lr_scale is ", opt.lr_scale, ", expected >= 0"));
  for (const auto& p : params)
    if (!(p.value.shape() == p.grad.shape()))
      throw shape_error(concat(who, ".add_group: grad of '", p.name, "' is ", p.grad.shape().str(), ", expected ",
                               p.value.shape().str()));
  param_group<T> g;
  g.params = std::move(params);
  g.opt = opt;
  g.state1.resize(g.params.size());
  g.state2.resize(g.params.size());
  groups_.push_back(std::move(g));
  return static_cast<index_t>(groups_.size()) - 1;
}

template <class T>
ParamList<T> param_groups<T>::trainable() const {
  ParamList<T> out;
  for (const auto& g : groups_)
    if (!g.opt.frozen) out.insert(out.end(), g.params.begin(), g.params.end());
  return out;
}

template <class T>
void param_groups<T>::zero_grad() noexcept {
  for (auto& g : groups_)
    for (auto& p : g.params) std::fill(p.grad.begin(), p.grad.end(), T(0));
}

template <class T>
param_group<T>& param_groups<T>::group(index_t i) {
  if (i < 0 || i >= num_groups())
    throw config_error(concat("optimizer: group ", i, " does not exist (", num_groups(), " groups)"));
  return groups_[static_cast<std::size_t>(i)];
}

SPARSIMIX_EXTERN_TEMPLATE(class param_groups<float>)
SPARSIMIX_EXTERN_TEMPLATE(class param_groups<double>)

}  // namespace detail

// torch.optim.AdamW over parameter groups: decoupled weight decay, bias correction (header note).
template <class T = float>
class AdamW : public detail::param_groups<T> {
 public:
  // AdamW's hyper-parameters; the defaults are torch.optim.AdamW's.
  struct config {
    double lr = 1e-3;            // learning rate (set_lr changes it between steps)
    double beta1 = 0.9;          // decay of the gradient average m
    double beta2 = 0.999;        // decay of the squared-gradient average v
    double eps = 1e-8;           // added to the denominator sqrt(v_hat), outside the sqrt as in torch
    double weight_decay = 1e-2;  // decoupled: p *= 1 - lr * wd (groups and Param::decay can override)
  };
  // Throws config_error on a negative lr, eps or weight_decay, or a beta outside [0, 1).
  explicit AdamW(const config& cfg);
  // Adds parameters as a new group; returns its index (for set_frozen, set_lr_scale, ...).
  index_t add_group(ParamList<T> params, const param_group_options& opt = {}) {
    return detail::param_groups<T>::add_group(std::move(params), opt, "AdamW");
  }
  // The hyper-parameters, lr as last set.
  const config& cfg() const noexcept { return cfg_; }
  // The current base learning rate (a group's is lr() * lr_scale).
  double lr() const noexcept { return cfg_.lr; }
  // Sets the base learning rate for the next step() (schedules call it every step).
  void set_lr(double lr) { cfg_.lr = lr; }

  // One update of every parameter in every group that is not frozen, from its .grad.
  void step();

 private:
  config cfg_;
};

template <class T>
AdamW<T>::AdamW(const config& cfg) : cfg_(cfg) {
  using detail::concat;
  if (!(cfg.lr >= 0)) throw config_error(concat("AdamW: lr is ", cfg.lr, ", expected >= 0"));
  if (!(cfg.beta1 >= 0 && cfg.beta1 < 1)) throw config_error(concat("AdamW: beta1 is ", cfg.beta1, ", expected [0, 1)"));
  if (!(cfg.beta2 >= 0 && cfg.beta2 < 1)) throw config_error(concat("AdamW: beta2 is ", cfg.beta2, ", expected [0, 1)"));
  if (!(cfg.eps >= 0)) throw config_error(concat("AdamW: eps is ", cfg.eps, ", expected >= 0"));
  if (!(cfg.weight_decay >= 0))
    throw config_error(concat("AdamW: weight_decay is ", cfg.weight_decay, ", expected >= 0"));
}

template <class T>
void AdamW<T>::step() {
  for (auto& g : this->groups_) {
    if (g.opt.frozen) continue;
    ++g.steps;
    const double lr = cfg_.lr * g.opt.lr_scale;
    const double step = static_cast<double>(g.steps);
    const double bc1 = 1 - std::pow(cfg_.beta1, step);
    const double bc2 = 1 - std::pow(cfg_.beta2, step);
    // The scalars are rounded to T once, like PyTorch's Python-float arguments to the
    // in-place tensor ops, so float runs follow torch's arithmetic step by step.
    const T neg_step_size = static_cast<T>(-(lr / bc1));
    const T bc2_sqrt = static_cast<T>(std::sqrt(bc2));
    const T b1 = static_cast<T>(cfg_.beta1), one_b1 = static_cast<T>(1 - cfg_.beta1);
    const T b2 = static_cast<T>(cfg_.beta2), one_b2 = static_cast<T>(1 - cfg_.beta2);
    const T eps = static_cast<T>(cfg_.eps);
    for (std::size_t k = 0; k < g.params.size(); ++k) {
      auto& p = g.params[k];
      const index_t n = p.value.numel();
      auto& m = g.state1[k];
      auto& v = g.state2[k];
      if (m.numel() != n) {  // lazily, like torch's state init on the first step
        m = Tensor<T>(Shape{n});
        v = Tensor<T>(Shape{n});
      }
      const T keep = static_cast<T>(1 - lr * this->decay_of(g, p, cfg_.weight_decay));
      T* w = p.value.data();
      const T* gr = p.grad.data();
      T* mm = m.data();
      T* vv = v.data();
      for (index_t i = 0; i < n; ++i) {
        w[i] = w[i] * keep;
        mm[i] = mm[i] * b1 + gr[i] * one_b1;
        vv[i] = vv[i] * b2 + one_b2 * gr[i] * gr[i];
        const T denom = std::sqrt(vv[i]) / bc2_sqrt + eps;
        w[i] = w[i] + neg_step_size * (mm[i] / denom);
      }
    }
  }
}

SPARSIMIX_EXTERN_TEMPLATE(class AdamW<float>)
SPARSIMIX_EXTERN_TEMPLATE(class AdamW<double>)

// SGD with momentum (optionally Nesterov) and decoupled weight decay (SGDW).
template <class T = float>
class SGD : public detail::param_groups<T> {
 public:
  // SGD's hyper-parameters; momentum and dampening follow torch.optim.SGD.
  struct config {
    double lr = 1e-2;  // learning rate
    double momentum = 0.9;  // buffer decay; 0 gives plain SGD
    double dampening = 0;  // torch's: buf = momentum * buf + (1 - dampening) * g
    bool nesterov = false;  // Nesterov momentum: step along g + momentum * buf
    double weight_decay = 0;  // decoupled: p *= 1 - lr * wd (see the header note)
  };
  // Throws config_error on a negative lr, momentum or weight_decay, or on nesterov without
  // momentum > 0 and dampening 0.
  explicit SGD(const config& cfg);
  // Adds parameters as a new group; returns its index (for set_frozen, set_lr_scale, ...).
  index_t add_group(ParamList<T> params, const param_group_options& opt = {}) {
    return detail::param_groups<T>::add_group(std::move(params), opt, "SGD");
  }
  // The hyper-parameters, lr as last set.
  const config& cfg() const noexcept { return cfg_; }
  // The current base learning rate (a group's is lr() * lr_scale).
  double lr() const noexcept { return cfg_.lr; }
  // Sets the base learning rate for the next step() (schedules call it every step).
  void set_lr(double lr) { cfg_.lr = lr; }

  // torch.optim.SGD's momentum rule (the first step copies the gradient into the buffer),
  // after the decoupled decay.
  void step();

 private:
  config cfg_;
};

template <class T>
SGD<T>::SGD(const config& cfg) : cfg_(cfg) {
  using detail::concat;
  if (!(cfg.lr >= 0)) throw config_error(concat("SGD: lr is ", cfg.lr, ", expected >= 0"));
  if (!(cfg.momentum >= 0)) throw config_error(concat("SGD: momentum is ", cfg.momentum, ", expected >= 0"));
  if (!(cfg.weight_decay >= 0))
    throw config_error(concat("SGD: weight_decay is ", cfg.weight_decay, ", expected >= 0"));
  if (cfg.nesterov && (cfg.momentum <= 0 || cfg.dampening != 0))
    throw config_error("SGD: nesterov needs momentum > 0 and dampening 0 (as torch.optim.SGD)");
}

template <class T>
void SGD<T>::step() {
  const T mu = static_cast<T>(cfg_.momentum), damp = static_cast<T>(1 - cfg_.dampening);
  for (auto& g : this->groups_) {
    if (g.opt.frozen) continue;
    ++g.steps;
    const double lr = cfg_.lr * g.opt.lr_scale;
    const T neg_lr = static_cast<T>(-lr);
    for (std::size_t k = 0; k < g.params.size(); ++k) {
      auto& p = g.params[k];
      const index_t n = p.value.numel();
      const T keep = static_cast<T>(1 - lr * this->decay_of(g, p, cfg_.weight_decay));
      T* w = p.value.data();
      const T* gr = p.grad.data();
      if (cfg_.momentum == 0) {
        for (index_t i = 0; i < n; ++i) w[i] = w[i] * keep + neg_lr * gr[i];
        continue;
      }
      auto& buf = g.state1[k];
      const bool first = buf.numel() != n;
      if (first) buf.resize(Shape{n});
      T* b = buf.data();
      for (index_t i = 0; i < n; ++i) {
        b[i] = first ? gr[i] : b[i] * mu + damp * gr[i];
        const T d = cfg_.nesterov ? gr[i] + mu * b[i] : b[i];
        w[i] = w[i] * keep + neg_lr * d;
      }
    }
  }
}

SPARSIMIX_EXTERN_TEMPLATE(class SGD<float>)
SPARSIMIX_EXTERN_TEMPLATE(class SGD<double>)

// Scales every gradient by max_norm / (norm + 1e-6) when the global L2 norm over all of
// them exceeds max_norm, as torch.nn.utils.clip_grad_norm_ (norm_type 2); returns the norm
// before clipping (summed in double). A non-finite norm throws numeric_error when
// error_if_nonfinite, else (torch's default) scales by max_norm / (inf or nan + 1e-6).
template <class T>
double clip_grad_norm(const ParamList<T>& params, double max_norm, bool error_if_nonfinite = false) {
  if (!(max_norm > 0)) throw config_error(detail::concat("clip_grad_norm: max_norm is ", max_norm, ", expected > 0"));
  double ss = 0;
  for (const auto& p : params)
    for (const T g : p.grad) ss += static_cast<double>(g) * static_cast<double>(g);
  const double norm = std::sqrt(ss);
  if (!std::isfinite(norm) && error_if_nonfinite)
    throw numeric_error(detail::concat("clip_grad_norm: the total gradient norm is ", norm));
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1 || std::isnan(coef)) {
    const T c = static_cast<T>(coef);
    for (const auto& p : params)
      for (T& g : p.grad) g *= c;
  }
  return norm;
}

SPARSIMIX_EXTERN_TEMPLATE(double clip_grad_norm<float>(const ParamList<float>&, double, bool))
SPARSIMIX_EXTERN_TEMPLATE(double clip_grad_norm<double>(const ParamList<double>&, double, bool))

SPARSIMIX_ABI_END
}  // namespace sparsimix
