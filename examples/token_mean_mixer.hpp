// A token mixer written outside the library, made a first-class sparsimix mixer in the steps
// of docs/architecture.md, "How to add a mixer". It mixes tokens through their mean (a
// global-pooling mixer, PoolFormer-like), x, y: [B, N, C]:
//
//   u = x W_in^T + b_in                        in_proj                  [B, N, C]
//   s_n = a * u_n + mean_{m alive} u_m         (a = self_weight)        [B, N, C]
//   y_n = s_n W^T + b                          proj                     [B, N, C]
//
// Dead tokens (a TokenMask) are left out of the mean and output 0. s is the output before the
// last projection, so the mixer offers FAR's pre-projection target (HasPreProjOutput), and
// its proj starts as the replaced attention's proj (InitsFromTeacher), as mh_lstm's does.
#pragma once
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <sparsimix/concepts.hpp>
#include <sparsimix/core/linalg.hpp>
#include <sparsimix/models/registry.hpp>

namespace example {

using sparsimix::ConstSeq;
using sparsimix::index_t;
using sparsimix::Seq;
using sparsimix::Shape;
using sparsimix::Tensor;
using sparsimix::TokenMask;

// Step 1: the options a config may set for this kind (JSON fields, in this order).
struct token_mean_options {
  double self_weight = 1.0;  // a: how much of a token's own value it keeps
  bool center = false;       // subtract the mean instead of adding it

  template <class F>
  void fields(F&& f) {
    f("self_weight", self_weight);
    f("center", center);
  }
  void validate(std::string_view where) const {
    if (!std::isfinite(self_weight))
      throw sparsimix::config_error(sparsimix::detail::concat(where, ": self_weight is ", self_weight, ", expected a finite number"));
  }
};

// Step 2: the mixer, a class template on the scalar that models SeqMixer.
template <class T = float>
class TokenMean {
 public:
  using scalar_type = T;
  struct cache_type {
    Tensor<T> x, s;              // input and pre-projection output [B, N, C]
    std::vector<index_t> alive;  // per sequence
    const TokenMask* mask = nullptr;
  };

  TokenMean(index_t dim, token_mean_options opt)
      : c_(dim), opt_(opt), w_in_(Shape{dim, dim}), b_in_(Shape{dim}), w_(Shape{dim, dim}), b_(Shape{dim}),
        gw_in_(Shape{dim, dim}), gb_in_(Shape{dim}), gw_(Shape{dim, dim}), gb_(Shape{dim}) {}

  index_t dim() const noexcept { return c_; }
  const token_mean_options& options() const noexcept { return opt_; }

  // PyTorch's nn.Linear default: U(+-1/sqrt(fan_in)).
  void init(sparsimix::Rng& rng) {
    const double k = 1.0 / std::sqrt(static_cast<double>(c_));
    for (Tensor<T>* t : {&w_in_, &b_in_, &w_, &b_}) sparsimix::fill_uniform(rng, t->data(), t->numel(), -k, k);
  }

  sparsimix::ParamList<T> parameters() {
    return {{"in_proj.weight", w_in_.view(), gw_in_.view(), true},
            {"in_proj.bias", b_in_.view(), gb_in_.view(), false},
            {"proj.weight", w_.view(), gw_.view(), true},
            {"proj.bias", b_.view(), gb_.view(), false}};
  }

  void forward(ConstSeq<T> x, Seq<T> y, const TokenMask* mask) const {
    cache_type c;
    run(x, y, c, mask);
  }
  void forward(ConstSeq<T> x, Seq<T> y, cache_type& c, const TokenMask* mask) { run(x, y, c, mask); }
  void backward(const cache_type& c, ConstSeq<T> dy, Seq<T> dx) { backward(c, dy, dx, ConstSeq<T>{}); }

  // HasPreProjOutput: s of a training forward, and a backward that takes a gradient on it.
  ConstSeq<T> pre_proj_output(const cache_type& c) const { return c.s.view(); }
  void backward(const cache_type& c, ConstSeq<T> dy, Seq<T> dx, ConstSeq<T> ds) {
    const index_t B = c.x.size(0), N = c.x.size(1), C = c_, rows = B * N;
    Tensor<T> dy_alive(Shape{B, N, C}), dst(Shape{B, N, C}), du(Shape{B, N, C});
    for (index_t r = 0; r < rows; ++r)
      if (alive(c.mask, r / N, r % N)) std::copy_n(dy.data() + r * C, C, dy_alive.data() + r * C);
    // proj: dW += dy^T s, db += sum dy, ds_total = dy W (+ ds)
    sparsimix::linear_backward(c.s.data(), w_.data(), dy_alive.data(), dst.data(), gw_.data(), gb_.data(), rows, C, C);
    if (ds.numel())
      for (index_t i = 0; i < dst.numel(); ++i) dst.data()[i] += ds.data()[i];
    const T a = static_cast<T>(opt_.self_weight), sign = opt_.center ? T(-1) : T(1);
    for (index_t b = 0; b < B; ++b) {
      std::vector<T> sum(static_cast<std::size_t>(C), T(0));
      for (index_t n = 0; n < N; ++n)
        if (alive(c.mask, b, n))
          for (index_t k = 0; k < C; ++k) sum[static_cast<std::size_t>(k)] += dst.data()[(b * N + n) * C + k];
      const T inv = c.alive[static_cast<std::size_t>(b)] ? T(1) / static_cast<T>(c.alive[static_cast<std::size_t>(b)]) : T(0);
      for (index_t n = 0; n < N; ++n) {
        if (!alive(c.mask, b, n)) continue;
        for (index_t k = 0; k < C; ++k)
          du.data()[(b * N + n) * C + k] = a * dst.data()[(b * N + n) * C + k] + sign * inv * sum[static_cast<std::size_t>(k)];
      }
    }
    // in_proj: dW_in += du^T x, db_in += sum du, dx = du W_in
    sparsimix::linear_backward(c.x.data(), w_in_.data(), du.data(), dx.data(), gw_in_.data(), gb_in_.data(), rows, C, C);
  }

  // InitsFromTeacher: proj starts as the replaced attention's proj (names relative to the mixer).
  std::vector<std::string> init_from_teacher(const sparsimix::named_tensors<T>& teacher) {
    for (const auto& [name, t] : teacher) {
      if (name == "proj.weight" && t.shape() == w_.shape()) w_.copy_from(t.view());
      if (name == "proj.bias" && t.shape() == b_.shape()) b_.copy_from(t.view());
    }
    return teacher_initialised();
  }
  std::vector<std::string> teacher_initialised() const { return {"proj.weight", "proj.bias"}; }

 private:
  static bool alive(const TokenMask* m, index_t b, index_t n) { return !m || m->alive(b, n); }

  void run(ConstSeq<T> x, Seq<T> y, cache_type& c, const TokenMask* mask) const {
    sparsimix::check_shape("TokenMean.forward", "x", x.shape(), {-1, -1, c_});
    sparsimix::check_shape("TokenMean.forward", "y", y.shape(), {x.size(0), x.size(1), c_});
    if (mask) mask->check_fits("TokenMean.forward", x.shape());
    const index_t B = x.size(0), N = x.size(1), C = c_, rows = B * N;
    c.x.resize(x.shape());
    c.x.copy_from(x);
    c.s.resize(x.shape());
    c.mask = mask;
    c.alive.assign(static_cast<std::size_t>(B), 0);
    Tensor<T> u(x.shape());
    sparsimix::linear_forward(x.data(), w_in_.data(), b_in_.data(), u.data(), rows, C, C);
    const T a = static_cast<T>(opt_.self_weight), sign = opt_.center ? T(-1) : T(1);
    for (index_t b = 0; b < B; ++b) {
      std::vector<T> mean(static_cast<std::size_t>(C), T(0));
      index_t& n_alive = c.alive[static_cast<std::size_t>(b)];
      for (index_t n = 0; n < N; ++n)
        if (alive(mask, b, n)) {
          ++n_alive;
          for (index_t k = 0; k < C; ++k) mean[static_cast<std::size_t>(k)] += u.data()[(b * N + n) * C + k];
        }
      for (auto& v : mean) v /= static_cast<T>(std::max<index_t>(n_alive, 1));
      for (index_t n = 0; n < N; ++n)
        for (index_t k = 0; k < C; ++k) {
          const index_t i = (b * N + n) * C + k;
          c.s.data()[i] = alive(mask, b, n) ? a * u.data()[i] + sign * mean[static_cast<std::size_t>(k)] : T(0);
        }
    }
    sparsimix::linear_forward(c.s.data(), w_.data(), b_.data(), y.data(), rows, C, C);
    for (index_t r = 0; r < rows; ++r)
      if (!alive(mask, r / N, r % N)) std::fill_n(y.data() + r * C, C, T(0));
  }

  index_t c_;
  token_mean_options opt_;
  Tensor<T> w_in_, b_in_, w_, b_, gw_in_, gb_in_, gw_, gb_;
};

}  // namespace example

// Step 3: the traits block: the kind's name in configs, its options, how to build one for a
// model's width and heads, and what a checkpoint records of an existing one.
template <class T>
struct sparsimix::mixer_traits<example::TokenMean<T>> {
  static constexpr std::string_view kind = "token_mean";
  using options = example::token_mean_options;
  static example::TokenMean<T> make(const options& o, const mixer_dims& d, Rng& rng) {
    example::TokenMean<T> m(d.dim, o);
    m.init(rng);
    return m;
  }
  static options options_of(const example::TokenMean<T>& m) { return m.options(); }
};

// Step 4: register it. From here on "token_mean" works wherever a built-in kind does.
namespace example {
SPARSIMIX_REGISTER_MIXER(TokenMean);
}
